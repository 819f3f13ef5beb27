//! A Roost server started in this test process on loopback ports the OS
//! picks, with numbered users, and helpers that run the roost-bench binary
//! against it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use roost_auth::UserDb;
use roost_server::config::{
    Config, GovernorConfig, ImapConfig, Limits, LmtpConfig, Network, TlsConfig, WorkersConfig,
};
use roost_server::tls::TlsSettings;

pub struct TestServer {
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub lmtp: SocketAddr,
    pub data_dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<roost_server::Running>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with users user1..userN whose passwords are
    /// pass1..passN.
    pub fn start(users: u64) -> TestServer {
        TestServer::start_with(users, |_| {})
    }

    /// Starts a server whose config `adjust` may change.
    pub fn start_with(users: u64, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let lines: String = (1..=users)
            .map(|n| format!("user{n}:{{PLAIN}}pass{n}::::::\n"))
            .collect();
        TestServer::start_with_users(&lines, adjust)
    }

    /// Starts a server with the users of the passwd-file lines `users`.
    pub fn start_with_users(users: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        UserDb::open(&data_dir).unwrap().import(users).unwrap();

        let mut config = config(data_dir.clone());
        adjust(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime.block_on(roost_server::start(config)).unwrap();
        TestServer {
            imap: running.imap_address.unwrap(),
            imaps: running.imaps_address.unwrap(),
            lmtp: running.lmtp_address.unwrap(),
            data_dir,
            runtime: Some(runtime),
            running: Some(running),
            _dir: dir,
        }
    }

    /// Stops the server as SIGTERM would: sessions get `* BYE`.
    pub fn stop(&mut self) {
        if let (Some(runtime), Some(running)) = (self.runtime.as_ref(), self.running.take()) {
            runtime.block_on(running.stop());
        }
    }

    pub fn certificate(&self) -> PathBuf {
        self.data_dir.join("tls").join("certificate.pem")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn config(data_dir: PathBuf) -> Config {
    let mut governor = GovernorConfig::with_capacity(10_000, 1_000);
    governor.policy.login_penalty_base = Duration::ZERO;
    Config {
        data_dir,
        imap_listen: Some("127.0.0.1:0".parse().unwrap()),
        lmtp_listen: Some("127.0.0.1:0".parse().unwrap()),
        imaps_listen: Some("127.0.0.1:0".parse().unwrap()),
        trusted_networks: Network::loopback(),
        tls: TlsConfig {
            settings: TlsSettings {
                cert_path: None,
                key_path: None,
            },
            timeout_handshake: Duration::from_secs(10),
            incoming_bytes_max: 84_357,
        },
        shutdown_grace: Duration::from_secs(5),
        imap: ImapConfig {
            idle_keepalive: Duration::from_secs(120),
            timeout_authenticated: Duration::from_secs(1800),
            timeout_unauthenticated: Duration::from_secs(60),
            default_mailboxes: Vec::new(),
        },
        lmtp: LmtpConfig {
            local_domains: Vec::new(),
            hostname: "roost.test".to_owned(),
        },
        limits: Limits {
            line_bytes_max: 65536,
            literal_bytes_max_unauthenticated: 8192,
            message_bytes_max: 52_428_800,
            command_bytes_max: 1_048_576,
            mailbox_name_bytes_max: 1024,
            mailbox_depth_max: 32,
            mime_depth_max: 32,
            mime_parts_max: 10_000,
            login_failures_max: 3,
            lmtp_recipients_max: 100,
            mailboxes_per_account_max: 10_000,
            store_reader_cache_bytes: 256 * 1024,
        },
        governor,
        metrics_listen: None,
        workers: WorkersConfig::single_process(),
    }
}

/// Runs roost-bench with `args` and returns its output; the JSON report
/// goes to `json`.
pub fn run_bench(args: &[String], json: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"));
    command.args(args).arg("--json").arg(json);
    command.output().expect("starting roost-bench failed")
}

/// Reads the JSON report.
pub fn read_report(json: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(json)
        .unwrap_or_else(|err| panic!("reading {}: {err}", json.display()));
    serde_json::from_str(&text).unwrap()
}

/// Formats a failed run's output for an assertion message.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}
