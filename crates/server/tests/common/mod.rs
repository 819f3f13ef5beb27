//! A Roost server started in-process on loopback ports chosen by the OS,
//! with its own data folder, for tests that talk to it over real sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roost_auth::{Secret, UserDb};
use roost_server::config::{Config, GovernorConfig, ImapConfig, Limits, LmtpConfig, Network, TlsConfig};
use roost_server::tls::TlsSettings;
use roost_testkit::client::{Client, ClientLimits};

pub struct TestServer {
    pub imap: SocketAddr,
    pub lmtp: SocketAddr,
    /// The implicit-TLS listener, when the config keeps it on.
    pub imaps: Option<SocketAddr>,
    /// The metrics listener, when the config turns it on.
    pub metrics: Option<SocketAddr>,
    pub data_dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<roost_server::Running>,
    _dir: tempfile::TempDir,
}

pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";

/// Returns the limits the tests run with: the documented defaults, except where a
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
                mime_parts_max: 10_000,
        login_failures_max: 3,
        lmtp_recipients_max: 100,
        mailboxes_per_account_max: 10_000,
        store_reader_cache_bytes: 256 * 1024,
    }
}

pub fn test_config(data_dir: PathBuf, limits: Limits) -> Config {
    Config {
        data_dir,
        imap_listen: Some("127.0.0.1:0".parse().unwrap()),
        lmtp_listen: Some("127.0.0.1:0".parse().unwrap()),
        imaps_listen: Some("127.0.0.1:0".parse().unwrap()),
        trusted_networks: Network::loopback(),
        tls: TlsConfig {
            settings: TlsSettings { cert_path: None, key_path: None },
            timeout_handshake: Duration::from_secs(10),
            incoming_bytes_max: 84_357,
        },
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
        governor: test_governor(),
        metrics_listen: None,
        workers: roost_server::config::WorkersConfig::single_process(),
    }
}

/// Returns a governor with room for every test and no failed-login delay,
/// so tests of other features run at full speed.
pub fn test_governor() -> GovernorConfig {
    let mut governor = GovernorConfig::with_capacity(10_000, 1_000);
    governor.policy.login_penalty_base = Duration::ZERO;
    governor
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
            imaps: running.imaps_address,
            metrics: running.metrics_address,
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

    /// Rereads the TLS certificate, as SIGHUP does.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        let (Some(runtime), Some(running)) = (self.runtime.as_ref(), self.running.as_ref()) else {
            anyhow::bail!("server is stopped");
        };
        runtime.block_on(running.reload_tls())
    }

    /// Returns the certificate new TLS sessions get, as a SHA-256 fingerprint.
    pub fn tls_fingerprint(&self) -> String {
        self.running.as_ref().map(|running| running.tls_fingerprint()).unwrap_or_default()
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

/// Returns the untagged responses of a reply as text, for assertions.
pub fn lines(reply: &roost_testkit::client::Reply) -> Vec<String> {
    reply.untagged.iter().map(|line| String::from_utf8_lossy(line).into_owned()).collect()
}

/// Builds a small real message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A connection that sends exact bytes and reads response lines, for tests
/// that need partial lines, literals or invalid input the client would not
/// send. Reads fail after a timeout, so a hung server fails the test.
pub struct RawConnection {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

/// How long a raw connection waits for one response line.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl RawConnection {
    /// Connects and returns the greeting line along with the connection.
    pub fn connect(address: SocketAddr) -> (RawConnection, String) {
        let stream = std::net::TcpStream::connect_timeout(&address, RAW_READ_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(RAW_READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(RAW_READ_TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut connection = RawConnection { reader: std::io::BufReader::new(stream), writer };
        let greeting = connection.read_line().expect("server closed before its greeting");
        (connection, greeting)
    }

    /// Connects and logs in with LOGIN.
    pub fn login(address: SocketAddr) -> RawConnection {
        let (mut connection, _) = RawConnection::connect(address);
        connection.send(format!("L1 LOGIN {USER} {PASSWORD}\r\n").as_bytes());
        let reply = connection.read_tagged("L1");
        assert!(reply.last().unwrap().starts_with("L1 OK"), "{reply:?}");
        connection
    }

    /// Writes `bytes`. A connection the server already closed is not an
    /// error here: the next read returns what the server sent before.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::{ErrorKind, Write};
        match self.writer.write_all(bytes) {
            Ok(()) => {}
            Err(err) if matches!(err.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
            Err(err) => panic!("writing to the server failed: {err}"),
        }
    }

    /// Reads one line without its CRLF, or `None` when the server closed
    /// the connection. Panics on a read timeout.
    pub fn read_line(&mut self) -> Option<String> {
        use std::io::BufRead;
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                Some(text.trim_end_matches("\r\n").trim_end_matches('\n').to_owned())
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(err) => panic!("reading a response line failed: {err}"),
        }
    }

    /// Reads lines up to and including the one tagged `tag`. Panics if the
    /// server closes the connection first.
    pub fn read_tagged(&mut self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().unwrap_or_else(|| panic!("connection closed before {tag} completed: {lines:?}"));
            let done = line.starts_with(&prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends `tag command` and reads up to its tagged line.
    pub fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.read_tagged(tag)
    }

    /// Reads lines until the server closes the connection and returns them.
    pub fn read_to_close(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.read_line() {
            lines.push(line);
        }
        lines
    }
}
