//! A Roost server started in-process on loopback ports chosen by the OS,
//! with its own data folder, for tests that talk to it over real sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roost_auth::{Secret, UserDb};
use roost_server::config::{Config, ImapConfig, Limits, LmtpConfig};
use roost_testkit::client::{Client, ClientLimits};

pub struct TestServer {
    pub imap: SocketAddr,
    pub lmtp: SocketAddr,
    pub data_dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<roost_server::Running>,
    _dir: tempfile::TempDir,
}

pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";

/// The limits the tests run with: the documented defaults, except where a
/// test passes its own.
pub fn default_limits() -> Limits {
    Limits {
        line_bytes_max: 65536,
        literal_bytes_max_unauthenticated: 8192,
        message_bytes_max: 52_428_800,
        command_bytes_max: 1_048_576,
        mailbox_name_bytes_max: 1024,
        mailbox_depth_max: 32,
        mime_depth_max: 32,
        login_failures_max: 3,
        lmtp_recipients_max: 100,
    }
}

pub fn test_config(data_dir: PathBuf, limits: Limits) -> Config {
    Config {
        data_dir,
        imap_listen: Some("127.0.0.1:0".parse().unwrap()),
        lmtp_listen: Some("127.0.0.1:0".parse().unwrap()),
        shutdown_grace: Duration::from_secs(5),
        imap: ImapConfig {
            idle_keepalive: Duration::from_secs(120),
            timeout_authenticated: Duration::from_secs(1800),
            timeout_unauthenticated: Duration::from_secs(60),
            default_mailboxes: vec![
                ("Drafts".to_owned(), "\\Drafts".to_owned()),
                ("Sent".to_owned(), "\\Sent".to_owned()),
                ("Trash".to_owned(), "\\Trash".to_owned()),
            ],
        },
        lmtp: LmtpConfig { local_domains: Vec::new(), hostname: "roost.test".to_owned() },
        limits,
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts a server whose config `adjust` may change, with one user.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let users = UserDb::open(&data_dir).unwrap();
        users.add(USER, &Secret::new(PASSWORD.to_owned())).unwrap();
        users.add("bob", &Secret::new("builder".to_owned())).unwrap();
        let mut config = test_config(data_dir.clone(), default_limits());
        adjust(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let running = runtime.block_on(roost_server::start(config)).unwrap();
        TestServer {
            imap: running.imap_address.unwrap(),
            lmtp: running.lmtp_address.unwrap(),
            data_dir,
            runtime: Some(runtime),
            running: Some(running),
            _dir: dir,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.imap, ClientLimits::for_tests()).unwrap()
    }

    pub fn login(&self) -> Client {
        let mut client = self.connect();
        client.login(USER, PASSWORD).unwrap();
        client
    }

    /// Stops the server as SIGTERM would.
    pub fn stop(&mut self) {
        if let (Some(runtime), Some(running)) = (self.runtime.as_ref(), self.running.take()) {
            runtime.block_on(running.stop());
        }
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

/// The untagged responses of a reply as text, for assertions.
pub fn lines(reply: &roost_testkit::client::Reply) -> Vec<String> {
    reply.untagged.iter().map(|line| String::from_utf8_lossy(line).into_owned()).collect()
}

/// A small real message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
