//! Errors of the user database.
//!
//! Messages name the user, the file, the line and the scheme, but never a
//! password or a stored hash.

use std::io;
use std::path::PathBuf;

/// Failure of a lookup, a login or an edit of the user database.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading, writing, locking or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A user name breaks the rules in [`crate::validate_user_name`].
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName { name: String, reason: &'static str },

    /// No user of that name exists.
    #[error("user {0:?} not found")]
    UserNotFound(String),

    /// `add` was asked for a name that already exists.
    #[error("user {0:?} already exists; use passwd to change the password")]
    UserExists(String),

    /// The password does not match the stored hash.
    #[error("wrong password for user {0:?}")]
    PasswordMismatch(String),

    /// The password is longer than `UserDbOptions::password_bytes_max`, so
    /// it was rejected without hashing.
    #[error("password for user {user:?} is {len} bytes, more than the maximum of {max}")]
    PasswordTooLong {
        user: String,
        len: usize,
        max: usize,
    },

    /// An empty password was given to `add` or `set_password`.
    #[error("empty password rejected")]
    EmptyPassword,

    /// The stored password field names a scheme this crate cannot verify.
    #[error("user {user:?}: unsupported password scheme {scheme}")]
    UnsupportedScheme { user: String, scheme: String },

    /// The stored hash does not parse for its scheme (bad base64, a broken
    /// crypt string, a wrong length).
    #[error("user {user:?}: malformed {scheme} hash: {reason}")]
    MalformedHash {
        user: String,
        scheme: String,
        reason: String,
    },

    /// A line of an import does not parse. `line` counts from 1.
    #[error("line {line}: {message}")]
    ImportLine { line: usize, message: String },

    /// Hashing a new password failed, which only a broken system random
    /// number generator should cause.
    #[error("hashing the new password failed: {0}")]
    Hashing(String),
}

impl AuthError {
    /// Returns true for errors that mean "these credentials do not log in",
    /// as opposed to a broken file or system.
    pub fn is_rejected_login(&self) -> bool {
        matches!(
            self,
            AuthError::UserNotFound(_)
                | AuthError::PasswordMismatch(_)
                | AuthError::PasswordTooLong { .. }
                | AuthError::UnsupportedScheme { .. }
                | AuthError::MalformedHash { .. }
                | AuthError::InvalidUserName { .. }
        )
    }
}
