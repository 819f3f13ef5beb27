//! Roost's user database: a Dovecot-compatible passwd-file and the password
//! schemes needed to verify logins against it.
//!
//! This crate owns the file `DATA_DIR/users`, its parsing, reloading and
//! atomic editing, and password verification and hashing. It has no notion
//! of IMAP, LMTP, sessions or the mail store, so deleting a user removes the
//! login only.
//!
//! # The passwd-file
//!
//! One user per line, in the format of Dovecot's passwd-file driver:
//!
//! ```text
//! name:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
//! ```
//!
//! Only `name` and the password field are required; the trailing fields are
//! optional, kept unchanged by every edit, and not used by Roost. Blank
//! lines and lines starting with `#` are ignored. A line that does not parse
//! is skipped with a warning in the log, and when a name appears twice the
//! first line wins, as in Dovecot.
//!
//! User names are 1 to 255 bytes of UTF-8 without `:`, whitespace or control
//! characters, and do not start with `#` (see [`validate_user_name`]).
//!
//! The password field is `{SCHEME}data`, or a bare crypt string, which
//! Dovecot's passwd-file driver reads as scheme `CRYPT`. Scheme names are
//! case-insensitive. The schemes verified are listed in
//! [`SUPPORTED_SCHEMES`]; the raw-digest and plaintext schemes also take a
//! `.B64` or `.HEX` suffix (`{SHA256.HEX}`). `CRYPT` is detected from the
//! prefix: `$6$` SHA512-CRYPT, `$5$` SHA256-CRYPT, `$2a$`, `$2b$` or `$2y$`
//! BLF-CRYPT. Any other scheme, such as MD5-CRYPT, fails the login with a
//! log line naming the scheme, and fails an import.
//!
//! New passwords are stored as `{ARGON2ID}$argon2id$v=19$m=7168,t=5,p=1$...`,
//! which Dovecot 2.3 and later also verify.

mod db;
mod edit;
mod error;
mod passwd;
mod scheme;
mod secret;

pub use db::{ImportSummary, USERS_FILE_NAME, UserDb, UserDbOptions};
pub use error::AuthError;
pub use passwd::{USER_NAME_BYTES_MAX, validate_user_name};
pub use scheme::NEW_PASSWORD_SCHEME;
pub use secret::Secret;

/// Password schemes that logins are verified against, as Dovecot names them.
pub const SUPPORTED_SCHEMES: &[&str] = &[
    "ARGON2ID",
    "ARGON2I",
    "BLF-CRYPT",
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "CRYPT",
    "SSHA512",
    "SSHA256",
    "SSHA",
    "SHA512",
    "SHA256",
    "SHA",
    "SHA1",
    "PLAIN",
    "CLEARTEXT",
    "CLEAR",
];
