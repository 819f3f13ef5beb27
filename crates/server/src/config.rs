//! The settings a running server needs, already validated.
//!
//! The `roost` binary reads TOML and command-line flags into this struct;
//! the server never reads files or flags itself. Every field is a key in
//! `docs/configuration.md` under the same name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use roost_governor::Network;

use crate::tls::TlsSettings;

/// Everything `roost serve` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder of the embedded store and the passwd-file.
    pub data_dir: PathBuf,
    /// IMAP listener; `None` turns it off. Port 0 picks a free port.
    pub imap_listen: Option<SocketAddr>,
    /// LMTP listener; `None` turns it off. Port 0 picks a free port.
    pub lmtp_listen: Option<SocketAddr>,
    /// Implicit-TLS IMAP listener (the port 993 role); `None` turns it off.
    pub imaps_listen: Option<SocketAddr>,
    /// Client networks allowed to log in without TLS. Other clients get
    /// LOGINDISABLED before STARTTLS and `NO [PRIVACYREQUIRED]` for a login.
    pub trusted_networks: Vec<Network>,
    pub tls: TlsConfig,
    /// Time in-flight work gets to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub imap: ImapConfig,
    pub lmtp: LmtpConfig,
    pub limits: Limits,
    pub governor: GovernorConfig,
    /// Prometheus metrics listener; `None` turns it off.
    pub metrics_listen: Option<SocketAddr>,
    pub workers: WorkersConfig,
}

/// Worker processes that hold the sessions.
#[derive(Clone, Debug)]
pub struct WorkersConfig {
    /// How to start a worker; `None` serves every session in this process.
    pub command: Option<crate::workers::WorkerCommand>,
    /// Most worker processes.
    pub workers_max: usize,
    /// Most connections one worker holds, below its descriptor limit.
    pub connections_per_worker_max: usize,
    /// Maximum time a worker waits for the supervisor's reply to a
    /// password check or login request before it rejects the login itself.
    pub answer_timeout: std::time::Duration,
}

impl WorkersConfig {
    /// The default of [`WorkersConfig::answer_timeout`]: long enough for a
    /// supervisor busy with a storm of Argon2 checks, short enough that a
    /// client is not left hanging by a stuck supervisor.
    pub const ANSWER_TIMEOUT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

    /// Returns the setting that serves every session in this process.
    pub fn single_process() -> WorkersConfig {
        WorkersConfig {
            command: None,
            workers_max: 0,
            connections_per_worker_max: 0,
            answer_timeout: Self::ANSWER_TIMEOUT_DEFAULT,
        }
    }
}

/// Admission control: the governor's policy and what the server needs
/// around it.
#[derive(Clone, Debug)]
pub struct GovernorConfig {
    pub policy: roost_governor::Policy,
    /// Load balancers whose connections start with a PROXY protocol header
    /// (v1 or v2) naming the real client. Connections from other
    /// addresses never have a header read.
    pub trusted_proxies: Vec<Network>,
    /// Time a trusted proxy gets to send its header.
    pub proxy_header_timeout: Duration,
    /// Longest PROXY header accepted, in bytes.
    pub proxy_header_bytes_max: usize,
    /// Groups of each user, for classes that match on `groups`.
    pub groups: std::collections::HashMap<String, Vec<String>>,
}

impl GovernorConfig {
    /// Returns a configuration with one default class and the given
    /// capacity, no proxies and no groups.
    pub fn with_capacity(max_sessions: u32, max_preauth: u32) -> GovernorConfig {
        GovernorConfig {
            policy: roost_governor::Policy::with_capacity(max_sessions, max_preauth),
            trusted_proxies: Vec::new(),
            proxy_header_timeout: Duration::from_secs(5),
            proxy_header_bytes_max: 4096,
            groups: std::collections::HashMap::new(),
        }
    }
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
    /// Maximum length of a command line, excluding literals, in bytes.
    pub line_bytes_max: usize,
    /// Largest literal accepted before authentication, in bytes.
    pub literal_bytes_max_unauthenticated: usize,
    /// Largest message APPEND or LMTP accepts, in bytes.
    pub message_bytes_max: usize,
    /// Most bytes one command other than APPEND may hold buffered, lines
    /// and literals together.
    pub command_bytes_max: usize,
    /// Maximum length of a mailbox name, in bytes of its UTF-8 form.
    pub mailbox_name_bytes_max: usize,
    /// Maximum number of levels in a mailbox name.
    pub mailbox_depth_max: usize,
    /// Deepest MIME nesting parsed; deeper parts are treated as opaque.
    pub mime_depth_max: usize,
    /// Maximum number of MIME parts analysed in one message; later parts
    /// stay inside the body of the part before them.
    pub mime_parts_max: usize,
    /// Failed LOGIN or AUTHENTICATE attempts before the connection is closed.
    pub login_failures_max: u32,
    /// Maximum number of recipients in one LMTP transaction.
    pub lmtp_recipients_max: usize,
    /// Maximum number of mailboxes per account, counting the parents
    /// CREATE and RENAME add.
    pub mailboxes_per_account_max: u64,
    /// Page cache of each of the store's read connections, in bytes.
    pub store_reader_cache_bytes: usize,
}

impl Limits {
    /// Returns the bounds for MIME analysis.
    pub fn mime(&self) -> roost_mime::Limits {
        roost_mime::Limits { depth_max: self.mime_depth_max, parts_max: self.mime_parts_max }
    }
}

/// TLS settings shared by STARTTLS and the implicit-TLS listener.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Certificate chain and key files; when both are unset, a self-signed
    /// certificate is generated in the data folder for development.
    pub settings: TlsSettings,
    /// Time a client gets to complete the TLS handshake.
    pub timeout_handshake: Duration,
    /// Most bytes of undecrypted TLS records buffered for one connection;
    /// at least one maximum-size record.
    pub incoming_bytes_max: usize,
}
