//! The settings a running server needs, already validated.
//!
//! The `roost` binary reads TOML and command-line flags into this struct;
//! the server never reads files or flags itself. Every field is a key in
//! `docs/configuration.md` under the same name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `roost serve` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder of the embedded store and the passwd-file.
    pub data_dir: PathBuf,
    /// IMAP listener; `None` turns it off. Port 0 picks a free port.
    pub imap_listen: Option<SocketAddr>,
    /// LMTP listener; `None` turns it off. Port 0 picks a free port.
    pub lmtp_listen: Option<SocketAddr>,
    /// Time in-flight work gets to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub imap: ImapConfig,
    pub lmtp: LmtpConfig,
    pub limits: Limits,
}

/// IMAP session behaviour.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// How often a session in IDLE gets `* OK Still here`, so that NAT
    /// boxes and proxies keep the connection open.
    pub idle_keepalive: Duration,
    /// Inactivity after which an authenticated session is logged out.
    /// RFC 3501 section 5.4 requires at least 30 minutes.
    pub timeout_authenticated: Duration,
    /// Inactivity after which a session that has not logged in is closed.
    pub timeout_unauthenticated: Duration,
    /// Special-use mailboxes (name, attribute such as `\Sent`) created with
    /// every new account.
    pub default_mailboxes: Vec<(String, String)>,
}

/// LMTP behaviour.
#[derive(Clone, Debug)]
pub struct LmtpConfig {
    /// Domains accepted in recipient addresses; empty accepts any domain.
    /// A recipient without a domain is always accepted.
    pub local_domains: Vec<String>,
    /// Host name in the greeting and LHLO reply.
    pub hostname: String,
}

/// Bounds on everything a client can make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest command line, excluding literals, in bytes.
    pub line_bytes_max: usize,
    /// Largest literal accepted before authentication, in bytes.
    pub literal_bytes_max_unauthenticated: usize,
    /// Largest message APPEND or LMTP accepts, in bytes.
    pub message_bytes_max: usize,
    /// Most bytes one command other than APPEND may hold buffered, lines
    /// and literals together.
    pub command_bytes_max: usize,
    /// Longest mailbox name, in bytes of its UTF-8 form.
    pub mailbox_name_bytes_max: usize,
    /// Most levels in a mailbox name.
    pub mailbox_depth_max: usize,
    /// Deepest MIME nesting parsed; deeper parts are treated as opaque.
    pub mime_depth_max: usize,
    /// Failed LOGIN or AUTHENTICATE attempts before the connection is closed.
    pub login_failures_max: u32,
    /// Most recipients in one LMTP transaction.
    pub lmtp_recipients_max: usize,
}
