//! Building `roost_server::config::Config` from defaults, a TOML file and
//! command-line flags, in that order of precedence.
//!
//! This module owns the TOML layout, the defaults and the one-line error
//! messages for bad keys and values. Clap and what the server does with
//! each setting are outside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roost_server::config::{Config, GovernorConfig, ImapConfig, Limits, LmtpConfig, Network, TlsConfig};
use roost_server::tls::TlsSettings;

use crate::governor_config::{Capacity, apply_governor, apply_groups};
pub use crate::governor_config::resolve_capacity;
use crate::values::{
    DURATION_EXPECTED, LISTEN_EXPECTED, check_log_filter, format_duration, parse_duration,
    parse_listen,
};

/// Data directory used when neither the file nor a flag names one.
pub const DATA_DIR_DEFAULT: &str = "./roost-data";
/// Log filter used when neither a flag, `RUST_LOG` nor the file sets one.
pub const LOG_LEVEL_DEFAULT: &str = "info";

/// Keys of each part of the file, in the order the docs list them.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "imap_listen",
    "imaps_listen",
    "lmtp_listen",
    "trusted_networks",
    "shutdown_grace",
    "log_level",
    "metrics_listen",
    "workers",
    "worker_connections_max",
    "worker_blocking_threads_max",
    "worker_answer_timeout",
    "[imap]",
    "[lmtp]",
    "[tls]",
    "[limits]",
    "[governor]",
    "[groups]",
];
const TLS_KEYS: &[&str] = &["cert_file", "key_file", "timeout_handshake", "incoming_bytes_max"];

/// Smallest `tls.incoming_bytes_max`: one TLS record of the largest size
/// (RFC 8446 section 5.2) must fit.
const TLS_INCOMING_BYTES_MIN: usize = roost_server::transport::RECORD_BYTES_MAX;
const IMAP_KEYS: &[&str] = &[
    "idle_keepalive",
    "timeout_authenticated",
    "timeout_unauthenticated",
    "default_mailboxes",
];
const LMTP_KEYS: &[&str] = &["hostname", "local_domains"];
const LIMITS_KEYS: &[&str] = &[
    "line_bytes_max",
    "literal_bytes_max_unauthenticated",
    "message_bytes_max",
    "command_bytes_max",
    "mailbox_name_bytes_max",
    "mailbox_depth_max",
    "mime_depth_max",
    "mime_parts_max",
    "login_failures_max",
    "lmtp_recipients_max",
    "mailboxes_per_account_max",
    "store_reader_cache_bytes",
];

/// Special-use attributes of RFC 6154 that a default mailbox may carry.
const SPECIAL_USE_ATTRIBUTES: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

/// Everything `roost serve` starts with: the server's settings plus the
/// binary's own.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: Config,
    /// Session counts as written, resolved against the memory budget by
    /// [`resolve_capacity`].
    pub capacity: Capacity,
    /// Worker processes as written, resolved at start against the
    /// descriptor limit.
    pub workers: WorkerCount,
    /// Most connections one worker holds, if the file sets it; else the
    /// descriptor limit less what a process keeps for itself.
    pub worker_connections_max: Option<usize>,
    /// Maximum number of threads a worker runs store work on.
    pub worker_blocking_threads_max: usize,
    /// Log filter from the file, if it sets one.
    pub log_level: Option<String>,
}

/// A config file that could not be read or has an invalid key or value.
/// Its `Display` is one line: `config FILE: what is wrong`.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Returns the settings used when no file and no flag changes them.
pub fn default_settings() -> Settings {
    Settings {
        server: Config {
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            imap_listen: Some("127.0.0.1:1143".parse().expect("valid literal address")),
            lmtp_listen: Some("127.0.0.1:2424".parse().expect("valid literal address")),
            imaps_listen: Some("127.0.0.1:1993".parse().expect("valid literal address")),
            trusted_networks: Network::loopback(),
            tls: TlsConfig {
                settings: TlsSettings { cert_path: None, key_path: None },
                timeout_handshake: Duration::from_secs(30),
                // One largest TLS record plus 64 KiB of pipelined records.
                incoming_bytes_max: 65_536 + TLS_INCOMING_BYTES_MIN,
            },
            shutdown_grace: Duration::from_secs(10),
            imap: ImapConfig {
                idle_keepalive: Duration::from_secs(2 * 60),
                timeout_authenticated: Duration::from_secs(30 * 60),
                timeout_unauthenticated: Duration::from_secs(60),
                default_mailboxes: ["Drafts", "Sent", "Trash", "Junk", "Archive"]
                    .into_iter()
                    .map(|name| (name.to_owned(), format!("\\{name}")))
                    .collect(),
            },
            lmtp: LmtpConfig {
                local_domains: Vec::new(),
                hostname: system_host_name(),
            },
            limits: Limits {
                line_bytes_max: 65_536,
                literal_bytes_max_unauthenticated: 8_192,
                message_bytes_max: 52_428_800,
                command_bytes_max: 1_048_576,
                mailbox_name_bytes_max: 1_024,
                mailbox_depth_max: 32,
                mime_depth_max: 32,
                mime_parts_max: 10_000,
                login_failures_max: 3,
                lmtp_recipients_max: 100,
                mailboxes_per_account_max: 10_000,
                store_reader_cache_bytes: 256 * 1024,
            },
            governor: GovernorConfig::with_capacity(0, 0),
            metrics_listen: Some("127.0.0.1:9143".parse().expect("valid literal address")),
            workers: roost_server::config::WorkersConfig::single_process(),
        },
        capacity: Capacity::default(),
        workers: WorkerCount::Auto,
        worker_connections_max: None,
        worker_blocking_threads_max: WORKER_BLOCKING_THREADS_DEFAULT,
        log_level: None,
    }
}

/// Default of `worker_blocking_threads_max`, the threads a worker runs
/// store work on. Tokio's default of 512 per process, times dozens of
/// workers, would let a burst of logins start thousands of threads, each
/// with its own stack.
const WORKER_BLOCKING_THREADS_DEFAULT: usize = 16;

/// Highest `limits.store_reader_cache_bytes` accepted. SQLite takes the
/// size in KiB as a 32-bit number, and more than 1 GiB per reader is a
/// mistake rather than a choice.
const STORE_READER_CACHE_BYTES_LIMIT: usize = 1 << 30;

/// Highest `worker_blocking_threads_max` accepted: tokio's own default
/// for one process.
const WORKER_BLOCKING_THREADS_LIMIT: usize = 512;

/// The `workers` setting: how many worker processes hold sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerCount {
    /// As many as `max_sessions` and `max_preauth` need under the
    /// descriptor limit; none when one process has room for them all.
    Auto,
    /// This many; 0 serves every session in the main process.
    Fixed(usize),
}

fn worker_count_value(key: &str, value: &toml::Value) -> Result<WorkerCount, String> {
    if value.as_str() == Some("auto") {
        return Ok(WorkerCount::Auto);
    }
    whole_number(value, 0)
        .filter(|count| *count <= 4096)
        .map(WorkerCount::Fixed)
        .ok_or_else(|| invalid(key, value, "expected \"auto\" or a whole number from 0 to 4096"))
}

/// Returns the machine's host name, or `localhost` if it cannot be read.
fn system_host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the
    // call; gethostname writes at most that many bytes.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "localhost".to_owned();
    }
    let end = buffer
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(buffer.len());
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// Reads `path` and applies its keys on top of `settings`.
///
/// A relative `data_dir` in the file is taken relative to the file's own
/// folder, so a service started from any working directory finds it.
pub fn apply_file(settings: &mut Settings, path: &Path) -> Result<(), ConfigError> {
    let error = |message: String| ConfigError {
        file: path.to_path_buf(),
        message,
    };

    let text =
        std::fs::read_to_string(path).map_err(|err| error(format!("reading failed: {err}")))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|err| error(describe_toml_error(&text, &err)))?;
    let base_dir = path.parent().unwrap_or(Path::new("."));

    apply_table(settings, &table, base_dir).map_err(error)?;
    check_consistency(&settings.server).map_err(error)
}

/// Turns a TOML syntax error into one line with its position.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |index| index + 1) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
    }
}

fn apply_table(
    settings: &mut Settings,
    table: &toml::Table,
    base_dir: &Path,
) -> Result<(), String> {
    let config = &mut settings.server;
    for (key, value) in table {
        match key.as_str() {
            "data_dir" => {
                let text = string_value(
                    key,
                    value,
                    "expected a folder path such as \"/var/lib/roost\"",
                )?;
                if text.is_empty() {
                    return Err(invalid(
                        key,
                        value,
                        "expected a folder path such as \"/var/lib/roost\"",
                    ));
                }
                config.data_dir = base_dir.join(text);
            }
            "imap_listen" => config.imap_listen = listen_value(key, value)?,
            "lmtp_listen" => config.lmtp_listen = listen_value(key, value)?,
            "imaps_listen" => config.imaps_listen = listen_value(key, value)?,
            "trusted_networks" => config.trusted_networks = networks_value(key, value)?,
            "tls" => apply_tls(&mut config.tls, section(key, value)?, base_dir)?,
            "shutdown_grace" => config.shutdown_grace = duration_value(key, value, Duration::ZERO)?,
            "log_level" => {
                let text = string_value(key, value, "expected a log filter such as \"info\"")?;
                check_log_filter(text).map_err(|expected| invalid(key, value, &expected))?;
                settings.log_level = Some(text.to_owned());
            }
            "imap" => apply_imap(&mut config.imap, section(key, value)?)?,
            "lmtp" => apply_lmtp(&mut config.lmtp, section(key, value)?)?,
            "limits" => apply_limits(&mut config.limits, section(key, value)?)?,
            "governor" => apply_governor(&mut config.governor, &mut settings.capacity, section(key, value)?)?,
            "groups" => apply_groups(&mut config.governor.groups, section(key, value)?)?,
            "metrics_listen" => config.metrics_listen = listen_value(key, value)?,
            "workers" => settings.workers = worker_count_value(key, value)?,
            "worker_connections_max" => settings.worker_connections_max = Some(count_value(key, value, 1, 19_000)?),
            "worker_blocking_threads_max" => {
                let count = count_value(key, value, 1, WORKER_BLOCKING_THREADS_DEFAULT)?;
                if count > WORKER_BLOCKING_THREADS_LIMIT {
                    return Err(invalid(
                        key,
                        value,
                        &format!("expected at most {WORKER_BLOCKING_THREADS_LIMIT}, e.g. {WORKER_BLOCKING_THREADS_DEFAULT}"),
                    ));
                }
                settings.worker_blocking_threads_max = count;
            }
            "worker_answer_timeout" => {
                config.workers.answer_timeout = duration_value(key, value, Duration::from_secs(1))?
            }
            _ => return Err(unknown_key("", key, TOP_LEVEL_KEYS)),
        }
    }
    Ok(())
}

fn apply_tls(tls: &mut TlsConfig, table: &toml::Table, base_dir: &Path) -> Result<(), String> {
    for (key, value) in table {
        let full_key = format!("tls.{key}");
        let file_expected = "expected a PEM file path such as \"/etc/roost/tls/fullchain.pem\"";
        match key.as_str() {
            "cert_file" => {
                let text = string_value(&full_key, value, file_expected)?;
                tls.settings.cert_path = Some(base_dir.join(text));
            }
            "key_file" => {
                let text = string_value(&full_key, value, file_expected)?;
                tls.settings.key_path = Some(base_dir.join(text));
            }
            "timeout_handshake" => tls.timeout_handshake = duration_value(&full_key, value, Duration::from_secs(1))?,
            "incoming_bytes_max" => {
                tls.incoming_bytes_max = bytes_value(&full_key, value, TLS_INCOMING_BYTES_MIN, 65_536 + TLS_INCOMING_BYTES_MIN)?
            }
            _ => return Err(unknown_key("tls", key, TLS_KEYS)),
        }
    }
    Ok(())
}

fn networks_value(key: &str, value: &toml::Value) -> Result<Vec<Network>, String> {
    let expected = "expected a list of networks such as [\"127.0.0.0/8\", \"::1/128\"]";
    let Some(items) = value.as_array() else {
        return Err(invalid(key, value, expected));
    };
    let mut networks = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(invalid(key, value, expected));
        };
        let network = text.parse::<Network>().map_err(|why| format!("key {key}: invalid value \"{text}\": {why}"))?;
        networks.push(network);
    }
    Ok(networks)
}

fn apply_imap(imap: &mut ImapConfig, table: &toml::Table) -> Result<(), String> {
    for (key, value) in table {
        let full_key = format!("imap.{key}");
        let one_second = Duration::from_secs(1);
        match key.as_str() {
            "idle_keepalive" => imap.idle_keepalive = duration_value(&full_key, value, one_second)?,
            "timeout_authenticated" => {
                imap.timeout_authenticated = duration_value(&full_key, value, one_second)?
            }
            "timeout_unauthenticated" => {
                imap.timeout_unauthenticated = duration_value(&full_key, value, one_second)?
            }
            "default_mailboxes" => imap.default_mailboxes = mailboxes_value(&full_key, value)?,
            _ => return Err(unknown_key("imap", key, IMAP_KEYS)),
        }
    }
    Ok(())
}

fn apply_lmtp(lmtp: &mut LmtpConfig, table: &toml::Table) -> Result<(), String> {
    for (key, value) in table {
        let full_key = format!("lmtp.{key}");
        match key.as_str() {
            "hostname" => {
                let expected = "expected a host name such as \"mail.example.org\"";
                let text = string_value(&full_key, value, expected)?;
                if !is_domain_like(text) {
                    return Err(invalid(&full_key, value, expected));
                }
                lmtp.hostname = text.to_owned();
            }
            "local_domains" => {
                let expected =
                    "expected a list of domains such as [\"example.org\", \"example.net\"]";
                let Some(items) = value.as_array() else {
                    return Err(invalid(&full_key, value, expected));
                };
                let mut domains = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_str() {
                        Some(domain) if is_domain_like(domain) => {
                            domains.push(domain.to_ascii_lowercase())
                        }
                        _ => return Err(invalid(&full_key, item, expected)),
                    }
                }
                lmtp.local_domains = domains;
            }
            _ => return Err(unknown_key("lmtp", key, LMTP_KEYS)),
        }
    }
    Ok(())
}

fn apply_limits(limits: &mut Limits, table: &toml::Table) -> Result<(), String> {
    for (key, value) in table {
        let full_key = format!("limits.{key}");
        let key = key.as_str();
        match key {
            "line_bytes_max" => {
                limits.line_bytes_max = bytes_value(&full_key, value, 1_024, limits.line_bytes_max)?
            }
            "literal_bytes_max_unauthenticated" => {
                limits.literal_bytes_max_unauthenticated = bytes_value(
                    &full_key,
                    value,
                    0,
                    limits.literal_bytes_max_unauthenticated,
                )?
            }
            "message_bytes_max" => {
                limits.message_bytes_max =
                    bytes_value(&full_key, value, 1_024, limits.message_bytes_max)?
            }
            "command_bytes_max" => {
                limits.command_bytes_max =
                    bytes_value(&full_key, value, 1_024, limits.command_bytes_max)?
            }
            "mailbox_name_bytes_max" => {
                limits.mailbox_name_bytes_max =
                    bytes_value(&full_key, value, 1, limits.mailbox_name_bytes_max)?
            }
            "mailbox_depth_max" => {
                limits.mailbox_depth_max =
                    count_value(&full_key, value, 1, limits.mailbox_depth_max)?
            }
            "mime_depth_max" => {
                limits.mime_depth_max = count_value(&full_key, value, 1, limits.mime_depth_max)?
            }
            "login_failures_max" => {
                let count = count_value(&full_key, value, 1, limits.login_failures_max as usize)?;
                limits.login_failures_max = u32::try_from(count).map_err(|_| {
                    invalid(&full_key, value, "expected a whole number below 4294967296")
                })?;
            }
            "mime_parts_max" => {
                limits.mime_parts_max = count_value(&full_key, value, 1, limits.mime_parts_max)?
            }
            "lmtp_recipients_max" => {
                limits.lmtp_recipients_max =
                    count_value(&full_key, value, 1, limits.lmtp_recipients_max)?
            }
            "mailboxes_per_account_max" => {
                let example = limits.mailboxes_per_account_max as usize;
                limits.mailboxes_per_account_max = count_value(&full_key, value, 1, example)? as u64
            }
            "store_reader_cache_bytes" => {
                let example = limits.store_reader_cache_bytes;
                let bytes = bytes_value(&full_key, value, 1_024, example)?;
                if bytes > STORE_READER_CACHE_BYTES_LIMIT {
                    return Err(invalid(
                        &full_key,
                        value,
                        &format!("expected at most {STORE_READER_CACHE_BYTES_LIMIT} (1 GiB), e.g. {example}"),
                    ));
                }
                limits.store_reader_cache_bytes = bytes
            }
            _ => return Err(unknown_key("limits", key, LIMITS_KEYS)),
        }
    }
    Ok(())
}

/// Checks rules between keys, after the file and the flags are applied.
pub fn check_consistency(config: &Config) -> Result<(), String> {
    let limits = &config.limits;
    if limits.command_bytes_max < limits.line_bytes_max {
        return Err(format!(
            "key limits.command_bytes_max: invalid value {}: must be at least limits.line_bytes_max ({}), because a command holds at least one line",
            limits.command_bytes_max, limits.line_bytes_max
        ));
    }
    let tls = &config.tls.settings;
    if tls.cert_path.is_some() != tls.key_path.is_some() {
        return Err(
            "keys tls.cert_file and tls.key_file: set both, or neither to use a generated self-signed certificate"
                .to_owned(),
        );
    }
    let listeners = [
        ("imap_listen", config.imap_listen),
        ("imaps_listen", config.imaps_listen),
        ("lmtp_listen", config.lmtp_listen),
        ("metrics_listen", config.metrics_listen),
    ];
    for (index, (first_key, first)) in listeners.iter().enumerate() {
        for (second_key, second) in &listeners[index + 1..] {
            if let (Some(first), Some(second)) = (first, second)
                && first == second
                && first.port() != 0
            {
                return Err(format!(
                    "keys {first_key} and {second_key}: both are {first}; give each listener its own address or port"
                ));
            }
        }
    }
    // Every new account gets INBOX and the default mailboxes.
    let mailboxes_at_creation = 1 + config.imap.default_mailboxes.len() as u64;
    if limits.mailboxes_per_account_max < mailboxes_at_creation {
        return Err(format!(
            "key limits.mailboxes_per_account_max: invalid value {}: must be at least {mailboxes_at_creation}, the INBOX plus imap.default_mailboxes",
            limits.mailboxes_per_account_max
        ));
    }
    for (name, _) in &config.imap.default_mailboxes {
        if name.len() > limits.mailbox_name_bytes_max {
            return Err(format!(
                "key imap.default_mailboxes: invalid value \"{name}\": the name is longer than limits.mailbox_name_bytes_max ({})",
                limits.mailbox_name_bytes_max
            ));
        }
    }
    Ok(())
}

fn invalid(key: &str, value: &toml::Value, expected: &str) -> String {
    format!(
        "key {key}: invalid value {}: {expected}",
        display_value(value)
    )
}

/// Shows a value as it would appear in the file, on one line.
fn display_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("\"{}\"", text.escape_debug()),
        toml::Value::Table(_) => "(a table)".to_owned(),
        other => other.to_string().replace('\n', " "),
    }
}

fn unknown_key(section: &str, key: &str, valid: &[&str]) -> String {
    if section.is_empty() {
        format!(
            "unknown key {key}: valid top-level keys are {}",
            valid.join(", ")
        )
    } else {
        format!(
            "unknown key {section}.{key}: valid keys in [{section}] are {}",
            valid.join(", ")
        )
    }
}

fn section<'a>(key: &str, value: &'a toml::Value) -> Result<&'a toml::Table, String> {
    value
        .as_table()
        .ok_or_else(|| invalid(key, value, &format!("expected a [{key}] section")))
}

fn string_value<'a>(key: &str, value: &'a toml::Value, expected: &str) -> Result<&'a str, String> {
    value.as_str().ok_or_else(|| invalid(key, value, expected))
}

fn listen_value(key: &str, value: &toml::Value) -> Result<Option<std::net::SocketAddr>, String> {
    let text = string_value(key, value, LISTEN_EXPECTED)?;
    parse_listen(text).map_err(|expected| invalid(key, value, &expected))
}

fn duration_value(key: &str, value: &toml::Value, min: Duration) -> Result<Duration, String> {
    let text = string_value(key, value, DURATION_EXPECTED)?;
    let duration = parse_duration(text).map_err(|expected| invalid(key, value, &expected))?;
    if duration < min {
        return Err(invalid(
            key,
            value,
            &format!("expected a duration of at least {}", format_duration(min)),
        ));
    }
    Ok(duration)
}

fn bytes_value(
    key: &str,
    value: &toml::Value,
    min: usize,
    example: usize,
) -> Result<usize, String> {
    let expected = if min == 0 {
        format!("expected a whole number of bytes, e.g. {example}")
    } else {
        format!("expected a whole number of bytes of at least {min}, e.g. {example}")
    };
    whole_number(value, min).ok_or_else(|| invalid(key, value, &expected))
}

fn count_value(
    key: &str,
    value: &toml::Value,
    min: usize,
    example: usize,
) -> Result<usize, String> {
    let expected = format!("expected a whole number of at least {min}, e.g. {example}");
    whole_number(value, min).ok_or_else(|| invalid(key, value, &expected))
}

fn whole_number(value: &toml::Value, min: usize) -> Option<usize> {
    let number = usize::try_from(value.as_integer()?).ok()?;
    (number >= min).then_some(number)
}

/// Reads `default_mailboxes`, written either as a table
/// `{ Sent = "\\Sent" }` or as an array of `{ name, special_use }` tables.
/// The backslash of the attribute may be left out.
fn mailboxes_value(key: &str, value: &toml::Value) -> Result<Vec<(String, String)>, String> {
    let expected = "expected a table such as { Sent = \"\\\\Sent\" } or an array of { name = \"Sent\", special_use = \"\\\\Sent\" }";
    let pairs: Vec<(&str, &toml::Value)> = match value {
        toml::Value::Table(table) => table
            .iter()
            .map(|(name, attribute)| (name.as_str(), attribute))
            .collect(),
        toml::Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len());
            for item in items {
                let Some(entry) = item.as_table() else {
                    return Err(invalid(key, item, expected));
                };
                if let Some(extra) = entry
                    .keys()
                    .find(|field| !["name", "special_use"].contains(&field.as_str()))
                {
                    return Err(format!(
                        "unknown key {key}.{extra}: valid keys of a default mailbox are name, special_use"
                    ));
                }
                let Some(name) = entry.get("name").and_then(toml::Value::as_str) else {
                    return Err(invalid(key, item, "each entry needs name = \"...\""));
                };
                let Some(attribute) = entry.get("special_use") else {
                    return Err(invalid(
                        key,
                        item,
                        "each entry needs special_use = \"\\\\...\"",
                    ));
                };
                pairs.push((name, attribute));
            }
            pairs
        }
        _ => return Err(invalid(key, value, expected)),
    };

    let mut mailboxes: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (name, attribute) in pairs {
        let name_value = toml::Value::String(name.to_owned());
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(invalid(
                key,
                &name_value,
                "expected a mailbox name without control characters",
            ));
        }
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(invalid(
                key,
                &name_value,
                "INBOX always exists and takes no special-use attribute",
            ));
        }
        if mailboxes.iter().any(|(existing, _)| existing == name) {
            return Err(invalid(key, &name_value, "each mailbox may be listed once"));
        }
        let attribute = special_use_value(key, attribute)?;
        mailboxes.push((name.to_owned(), attribute));
    }
    Ok(mailboxes)
}

fn special_use_value(key: &str, value: &toml::Value) -> Result<String, String> {
    let expected = format!(
        "expected a special-use attribute: one of {}",
        SPECIAL_USE_ATTRIBUTES.join(" ")
    );
    let text = string_value(key, value, &expected)?;
    let with_backslash = if text.starts_with('\\') {
        text.to_owned()
    } else {
        format!("\\{text}")
    };
    SPECIAL_USE_ATTRIBUTES
        .iter()
        .find(|attribute| attribute.eq_ignore_ascii_case(&with_backslash))
        .map(|attribute| (*attribute).to_owned())
        .ok_or_else(|| invalid(key, value, &expected))
}

/// Returns true for something shaped like a host or domain name: labels of
/// letters, digits, `-` and `_` separated by dots.
fn is_domain_like(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_text(text: &str) -> Result<Settings, String> {
        let mut settings = default_settings();
        let table: toml::Table = toml::from_str(text).map_err(|err| err.to_string())?;
        apply_table(&mut settings, &table, Path::new("/etc/roost"))?;
        check_consistency(&settings.server)?;
        Ok(settings)
    }

    #[test]
    fn defaults_match_documentation() {
        let config = default_settings().server;

        assert_eq!(config.data_dir, PathBuf::from("./roost-data"));
        assert_eq!(config.imap_listen, Some("127.0.0.1:1143".parse().unwrap()));
        assert_eq!(config.lmtp_listen, Some("127.0.0.1:2424".parse().unwrap()));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(
            config.imap.default_mailboxes[1],
            ("Sent".to_owned(), "\\Sent".to_owned())
        );
        assert_eq!(config.imap.default_mailboxes.len(), 5);
        assert!(!config.lmtp.hostname.is_empty());
        assert!(check_consistency(&config).is_ok());
    }

    #[test]
    fn full_file_applies() {
        let settings = apply_text(
            r#"
            data_dir = "data"
            imap_listen = "[::1]:0"
            lmtp_listen = "off"
            shutdown_grace = "30s"
            log_level = "roost_server=debug,info"
            [imap]
            idle_keepalive = "5m"
            timeout_authenticated = "1h"
            timeout_unauthenticated = "90s"
            default_mailboxes = [ { name = "Sent Items", special_use = "Sent" }, { name = "Bin", special_use = '\Trash' } ]
            [lmtp]
            hostname = "mx.example.org"
            local_domains = ["Example.org"]
            [limits]
            line_bytes_max = 8192
            literal_bytes_max_unauthenticated = 0
            login_failures_max = 5
            "#,
        )
        .unwrap();
        let config = settings.server;

        assert_eq!(config.data_dir, PathBuf::from("/etc/roost/data"));
        assert_eq!(config.imap_listen, Some("[::1]:0".parse().unwrap()));
        assert_eq!(config.lmtp_listen, None);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(
            settings.log_level.as_deref(),
            Some("roost_server=debug,info")
        );
        assert_eq!(config.imap.timeout_authenticated, Duration::from_secs(3600));
        assert_eq!(
            config.imap.default_mailboxes,
            vec![
                ("Sent Items".to_owned(), "\\Sent".to_owned()),
                ("Bin".to_owned(), "\\Trash".to_owned())
            ]
        );
        assert_eq!(config.lmtp.local_domains, vec!["example.org".to_owned()]);
        assert_eq!(config.limits.line_bytes_max, 8192);
        assert_eq!(config.limits.literal_bytes_max_unauthenticated, 0);
        assert_eq!(config.limits.login_failures_max, 5);
        assert_eq!(
            config.limits.message_bytes_max, 52_428_800,
            "unset keys keep their defaults"
        );
    }

    #[test]
    fn mailboxes_as_table() {
        let settings =
            apply_text("[imap]\ndefault_mailboxes = { Sent = '\\Sent', Trash = \"\\\\Trash\" }\n")
                .unwrap();

        assert_eq!(settings.server.imap.default_mailboxes.len(), 2);
        assert!(
            settings
                .server
                .imap
                .default_mailboxes
                .contains(&("Trash".to_owned(), "\\Trash".to_owned()))
        );
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let cases = [
            (
                "[limits]\nline_bytes_max = \"abc\"",
                "key limits.line_bytes_max: invalid value \"abc\": expected a whole number of bytes of at least 1024, e.g. 65536",
            ),
            (
                "[limits]\nline_bytes_max = 1023",
                "key limits.line_bytes_max: invalid value 1023: expected a whole number of bytes of at least 1024, e.g. 65536",
            ),
            (
                "[limits]\nmailbox_depth_max = 0",
                "key limits.mailbox_depth_max: invalid value 0: expected a whole number of at least 1, e.g. 32",
            ),
            (
                "[limits]\nlogin_failures_max = -1",
                "key limits.login_failures_max: invalid value -1: expected a whole number of at least 1, e.g. 3",
            ),
            (
                "shutdown_grace = \"10\"",
                "key shutdown_grace: invalid value \"10\": expected a duration such as \"30s\", \"10m\", \"2h\" or \"1h30m\"",
            ),
            (
                "[imap]\nidle_keepalive = \"0s\"",
                "key imap.idle_keepalive: invalid value \"0s\": expected a duration of at least 1s",
            ),
            (
                "imap_listen = \"localhost:143\"",
                "key imap_listen: invalid value \"localhost:143\": expected IP:PORT such as 127.0.0.1:1143 or [::1]:1143, or \"off\"",
            ),
            (
                "imap = 3",
                "key imap: invalid value 3: expected a [imap] section",
            ),
            (
                "[imap]\ndefault_mailboxes = { Sent = \"Outbox\" }",
                "key imap.default_mailboxes: invalid value \"Outbox\": expected a special-use attribute: one of \\All \\Archive \\Drafts \\Flagged \\Junk \\Sent \\Trash",
            ),
            (
                "[imap]\ndefault_mailboxes = { INBOX = \"Sent\" }",
                "key imap.default_mailboxes: invalid value \"INBOX\": INBOX always exists and takes no special-use attribute",
            ),
            (
                "[lmtp]\nlocal_domains = [\"a b\"]",
                "key lmtp.local_domains: invalid value \"a b\": expected a list of domains such as [\"example.org\", \"example.net\"]",
            ),
            (
                "log_level = \"info,=[\"",
                "key log_level: invalid value \"info,=[\":",
            ),
            (
                "[limits]\nstore_reader_cache_bytes = 1023",
                "key limits.store_reader_cache_bytes: invalid value 1023: expected a whole number of bytes of at least 1024, e.g. 262144",
            ),
            (
                "[limits]\nstore_reader_cache_bytes = 1073741825",
                "key limits.store_reader_cache_bytes: invalid value 1073741825: expected at most 1073741824 (1 GiB), e.g. 262144",
            ),
            (
                "worker_blocking_threads_max = 0",
                "key worker_blocking_threads_max: invalid value 0: expected a whole number of at least 1, e.g. 16",
            ),
            (
                "worker_blocking_threads_max = 513",
                "key worker_blocking_threads_max: invalid value 513: expected at most 512, e.g. 16",
            ),
            (
                "worker_answer_timeout = \"500ms\"",
                "key worker_answer_timeout: invalid value \"500ms\":",
            ),
        ];
        for (text, expected) in cases {
            let message = apply_text(text).unwrap_err();
            assert!(
                message.starts_with(expected),
                "{text:?}\n got: {message}\nwant: {expected}"
            );
            assert!(!message.contains('\n'), "{text:?}: {message}");
        }
    }

    #[test]
    fn store_reader_cache_at_bound() {
        let settings = apply_text("[limits]\nstore_reader_cache_bytes = 1024").unwrap();
        assert_eq!(settings.server.limits.store_reader_cache_bytes, 1024);
        let options = roost_server::store_options(&settings.server.limits);
        assert_eq!(options.reader_cache_bytes, 1024);
        assert_eq!(default_settings().server.limits.store_reader_cache_bytes, 256 * 1024);
        let settings = apply_text("[limits]\nstore_reader_cache_bytes = 1073741824").unwrap();
        assert_eq!(settings.server.limits.store_reader_cache_bytes, 1 << 30);
    }

    #[test]
    fn worker_limits_at_bounds() {
        let mut settings = default_settings();
        assert_eq!(settings.worker_blocking_threads_max, 16);
        assert_eq!(settings.server.workers.answer_timeout, Duration::from_secs(30));

        let table: toml::Table = "worker_blocking_threads_max = 512\nworker_answer_timeout = \"1s\"".parse().unwrap();
        apply_table(&mut settings, &table, Path::new(".")).unwrap();
        assert_eq!(settings.worker_blocking_threads_max, 512);
        assert_eq!(settings.server.workers.answer_timeout, Duration::from_secs(1));

        let table: toml::Table = "worker_blocking_threads_max = 1".parse().unwrap();
        apply_table(&mut settings, &table, Path::new(".")).unwrap();
        assert_eq!(settings.worker_blocking_threads_max, 1);
    }

    #[test]
    fn unknown_keys_list_valid_keys() {
        let message = apply_text("[limits]\nline_bytes = 5").unwrap_err();
        assert_eq!(
            message,
            "unknown key limits.line_bytes: valid keys in [limits] are line_bytes_max, literal_bytes_max_unauthenticated, message_bytes_max, command_bytes_max, mailbox_name_bytes_max, mailbox_depth_max, mime_depth_max, mime_parts_max, login_failures_max, lmtp_recipients_max, mailboxes_per_account_max, store_reader_cache_bytes"
        );

        let message = apply_text("datadir = \"x\"").unwrap_err();
        assert_eq!(
            message,
            "unknown key datadir: valid top-level keys are data_dir, imap_listen, imaps_listen, lmtp_listen, trusted_networks, shutdown_grace, log_level, metrics_listen, workers, worker_connections_max, worker_blocking_threads_max, worker_answer_timeout, [imap], [lmtp], [tls], [limits], [governor], [groups]"
        );
    }

    #[test]
    fn cross_key_rules() {
        let message =
            apply_text("[limits]\ncommand_bytes_max = 2048\nline_bytes_max = 4096").unwrap_err();
        assert!(
            message
                .starts_with("key limits.command_bytes_max: invalid value 2048: must be at least"),
            "{message}"
        );

        let message = apply_text("imap_listen = \"127.0.0.1:2424\"").unwrap_err();
        assert!(message.contains("imap_listen and lmtp_listen"), "{message}");

        assert!(apply_text("imap_listen = \"127.0.0.1:0\"\nlmtp_listen = \"127.0.0.1:0\"").is_ok());
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    fn apply(text: &str) -> Result<Settings, String> {
        let mut settings = default_settings();
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        apply_table(&mut settings, &table, Path::new("/etc/roost"))?;
        check_consistency(&settings.server)?;
        Ok(settings)
    }

    #[test]
    fn tls_section_applies() {
        let settings = apply(
            "imaps_listen = \"127.0.0.1:993\"\ntrusted_networks = [\"10.0.0.0/8\"]\n[tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"/k.pem\"\ntimeout_handshake = \"5s\"",
        )
        .unwrap();
        let config = settings.server;
        assert_eq!(config.imaps_listen, Some("127.0.0.1:993".parse().unwrap()));
        assert_eq!(config.trusted_networks, vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(config.tls.settings.cert_path, Some(PathBuf::from("/etc/roost/tls/cert.pem")));
        assert_eq!(config.tls.settings.key_path, Some(PathBuf::from("/k.pem")));
        assert_eq!(config.tls.timeout_handshake, Duration::from_secs(5));
    }

    #[test]
    fn tls_errors_name_key_and_fix() {
        let cases = [
            (
                "trusted_networks = [\"10.0.0.0/33\"]",
                "key trusted_networks: invalid value \"10.0.0.0/33\": prefix length \"33\" is not a number from 0 to 32",
            ),
            (
                "[tls]\ncert_file = \"a.pem\"",
                "keys tls.cert_file and tls.key_file: set both, or neither to use a generated self-signed certificate",
            ),
            (
                "[tls]\nincoming_bytes_max = 100",
                "key tls.incoming_bytes_max: invalid value 100: expected a whole number of bytes of at least 18437, e.g. 83973",
            ),
            (
                "imaps_listen = \"127.0.0.1:2424\"",
                "keys imaps_listen and lmtp_listen: both are 127.0.0.1:2424; give each listener its own address or port",
            ),
            ("[tls]\ncertificate = \"x\"", "unknown key tls.certificate: valid keys in [tls] are cert_file, key_file, timeout_handshake, incoming_bytes_max"),
        ];
        for (text, expected) in cases {
            assert_eq!(apply(text).unwrap_err(), expected, "config {text:?}");
        }
    }
}

#[cfg(test)]
mod mailbox_limit_tests {
    use super::*;

    #[test]
    fn mailbox_limit_covers_default_mailboxes() {
        let mut settings = default_settings();
        let table: toml::Table = "[limits]\nmailboxes_per_account_max = 5".parse().unwrap();
        apply_table(&mut settings, &table, Path::new("/")).unwrap();
        assert_eq!(
            check_consistency(&settings.server).unwrap_err(),
            "key limits.mailboxes_per_account_max: invalid value 5: must be at least 6, the INBOX plus imap.default_mailboxes"
        );

        let table: toml::Table = "[limits]\nmailboxes_per_account_max = 6".parse().unwrap();
        apply_table(&mut settings, &table, Path::new("/")).unwrap();
        assert!(check_consistency(&settings.server).is_ok());
        assert_eq!(settings.server.limits.mailboxes_per_account_max, 6);
    }
}
