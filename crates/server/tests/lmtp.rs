//! LMTP end to end: `lmtp::serve` on a loopback port with a real SQLite
//! store and passwd-file in a temporary directory, driven over real
//! sockets with raw command lines and with Python's `smtplib.LMTP`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roost_auth::UserDb;
use roost_server::config::{Config, ImapConfig, Limits, LmtpConfig};
use roost_server::delivery::{Deliverer, DeliveryError, deliver_local};
use roost_server::lmtp;
use roost_store::MailStore;
use roost_store::sqlite::SqliteStore;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Upper bound on any single wait in these tests, so a broken server fails
/// a test instead of hanging it.
const WAIT_MAX: Duration = Duration::from_secs(20);

fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        imap_listen: None,
        lmtp_listen: None,
        imaps_listen: None,
        trusted_networks: roost_server::config::Network::loopback(),
        tls: roost_server::config::TlsConfig {
            settings: roost_server::tls::TlsSettings { cert_path: None, key_path: None },
            timeout_handshake: Duration::from_secs(10),
            incoming_bytes_max: 84_357,
        },
        shutdown_grace: Duration::from_secs(5),
        imap: ImapConfig {
            idle_keepalive: Duration::from_secs(120),
            timeout_authenticated: Duration::from_secs(1800),
            timeout_unauthenticated: Duration::from_secs(60),
            default_mailboxes: vec![("Sent".into(), "\\Sent".into()), ("Trash".into(), "\\Trash".into())],
        },
        lmtp: LmtpConfig { local_domains: vec!["example.org".into()], hostname: "mx.test".into() },
        limits: Limits {
            line_bytes_max: 200,
            literal_bytes_max_unauthenticated: 8192,
            message_bytes_max: 1000,
            command_bytes_max: 65536,
            mailbox_name_bytes_max: 1024,
            mailbox_depth_max: 32,
            mime_depth_max: 20,
            mime_parts_max: 10_000,
            login_failures_max: 3,
            lmtp_recipients_max: 3,
            mailboxes_per_account_max: 100,
            store_reader_cache_bytes: 256 * 1024,
        },
        governor: roost_server::config::GovernorConfig::with_capacity(100, 100),
        metrics_listen: None,
        workers: roost_server::config::WorkersConfig::single_process(),
    }
}

/// A running LMTP listener and what it stores into.
struct Server {
    address: SocketAddr,
    store: Arc<SqliteStore>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    dir: tempfile::TempDir,
}

/// Starts a server whose users are alice, bob and carol.
async fn start(adjust: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "alice:{PLAIN}a\nbob:{PLAIN}b\ncarol:{PLAIN}c\n").unwrap();
    let mut config = config(dir.path());
    adjust(&mut config);

    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let users = Arc::new(UserDb::open(dir.path()).unwrap());
    let deliverer = Arc::new(Deliverer::new(store.clone(), users, &config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, receiver) = watch::channel(false);
    let task = tokio::spawn(lmtp::serve(listener, deliverer, Arc::new(config), receiver));
    Server { address, store, shutdown, task, dir }
}

/// Returns the raw bytes of every message in `user`'s INBOX, in UID order.
async fn inbox(store: &dyn MailStore, user: &str) -> Vec<Vec<u8>> {
    let account = store.account(user, &[]).await.unwrap();
    let inbox = store.mailbox(account, "INBOX").await.unwrap().unwrap();
    let snapshot = store.snapshot(inbox.id).await.unwrap();
    let uids: Vec<u32> = snapshot.messages.iter().map(|entry| entry.uid).collect();
    let mut raws = Vec::new();
    for record in store.messages(inbox.id, &uids).await.unwrap() {
        raws.push(store.read_raw(record.blob).await.unwrap().to_vec());
    }
    raws
}

/// A raw LMTP client.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).await.unwrap();
        let mut client = Client { reader: BufReader::new(stream) };
        assert_eq!(client.reply().await, "220 mx.test LMTP Roost ready\r\n");
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads one reply, all of its lines, as text.
    async fn reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT_MAX, self.reader.read_line(&mut line)).await.expect("reply timed out").unwrap();
            assert!(read > 0, "connection closed after {text:?}");
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    }

    /// Sends `command` and returns its reply.
    async fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Asserts that the server closes the connection without sending more.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT_MAX, self.reader.read_to_end(&mut rest)).await.expect("close timed out").unwrap();
        assert_eq!(String::from_utf8_lossy(&rest), "");
    }

    /// Sends LHLO and MAIL and checks their replies.
    async fn begin(&mut self) {
        assert!(self.command("LHLO client.test").await.starts_with("250-mx.test\r\n"));
        assert_eq!(self.command("MAIL FROM:<sender@remote.example>").await, "250 2.1.0 Sender OK\r\n");
    }
}

const LHLO_REPLY: &str = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n";

#[tokio::test]
async fn raw_session_delivers_exact_bytes() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;

    assert_eq!(client.command("LHLO client.test").await, LHLO_REPLY);
    assert_eq!(client.command("MAIL FROM:<sender@remote.example> BODY=8BITMIME SIZE=100").await, "250 2.1.0 Sender OK\r\n");
    assert_eq!(client.command("RCPT TO:<alice@example.org>").await, "250 2.1.5 <alice@example.org> Recipient OK\r\n");
    assert_eq!(client.command("RCPT TO:<nobody@example.org>").await, "550 5.1.1 <nobody@example.org> User unknown\r\n");
    assert_eq!(client.command("RCPT TO:<bob@elsewhere.example>").await, "550 5.1.2 <bob@elsewhere.example> Domain is not local\r\n");
    assert_eq!(client.command("RCPT TO:<bob>").await, "250 2.1.5 <bob> Recipient OK\r\n");
    assert_eq!(client.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");

    // Dot-stuffed lines, a bare LF line ending and 8-bit text.
    client.send("Subject: test\r\n\r\n..leading dot\nbare LF\r\n...\r\nK\u{f6}ln\r\n.\r\n".as_bytes()).await;
    assert_eq!(client.reply().await, "250 2.0.0 <alice@example.org> Delivered\r\n");
    assert_eq!(client.reply().await, "250 2.0.0 <bob> Delivered\r\n");
    assert_eq!(client.command("QUIT").await, "221 2.0.0 mx.test Closing connection\r\n");
    client.expect_closed().await;

    let expected = "Subject: test\r\n\r\n.leading dot\r\nbare LF\r\n..\r\nK\u{f6}ln\r\n".as_bytes().to_vec();
    assert_eq!(inbox(server.store.as_ref(), "alice").await, vec![expected.clone()]);
    assert_eq!(inbox(server.store.as_ref(), "bob").await, vec![expected]);
}

#[tokio::test]
async fn recipient_resolves_case_and_detail() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;
    client.begin().await;

    // An empty name before the delimiter names nobody.
    assert_eq!(client.command("RCPT TO:<+alice>").await, "550 5.1.1 <+alice> User unknown\r\n");
    assert_eq!(client.command("RCPT TO:<Alice@example.org>").await, "250 2.1.5 <Alice@example.org> Recipient OK\r\n");
    assert_eq!(client.command("RCPT TO:<bob+lists@example.org>").await, "250 2.1.5 <bob+lists@example.org> Recipient OK\r\n");
    assert_eq!(client.command("RCPT TO:<CAROL+x+y>").await, "250 2.1.5 <CAROL+x+y> Recipient OK\r\n");
    assert_eq!(client.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    client.send(b"x\r\n.\r\n").await;
    for address in ["Alice@example.org", "bob+lists@example.org", "CAROL+x+y"] {
        assert_eq!(client.reply().await, format!("250 2.0.0 <{address}> Delivered\r\n"));
    }

    for user in ["alice", "bob", "carol"] {
        assert_eq!(inbox(server.store.as_ref(), user).await, vec![b"x\r\n".to_vec()], "user {user}");
    }
}

#[tokio::test]
async fn delivery_creates_default_mailboxes() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;
    client.send(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<carol>\r\nDATA\r\nx\r\n.\r\n").await;
    for _ in 0..4 {
        client.reply().await;
    }
    assert_eq!(client.reply().await, "250 2.0.0 <carol> Delivered\r\n");

    let account = server.store.account("carol", &[]).await.unwrap();
    let names: Vec<String> = server.store.mailboxes(account).await.unwrap().into_iter().map(|mailbox| mailbox.name).collect();
    assert_eq!(names, ["INBOX", "Sent", "Trash"]);
}

#[tokio::test]
async fn pipelined_session_in_one_write() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;

    client
        .send(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nfirst\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n")
        .await;
    let mut replies = String::new();
    for _ in 0..10 {
        replies.push_str(&client.reply().await);
    }
    let expected = format!(
        "{LHLO_REPLY}250 2.1.0 Sender OK\r\n250 2.1.5 <alice> Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
         250 2.0.0 <alice> Delivered\r\n250 2.1.0 Sender OK\r\n250 2.1.5 <alice> Recipient OK\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 <alice> Delivered\r\n221 2.0.0 mx.test Closing connection\r\n"
    );
    assert_eq!(replies, expected);
    client.expect_closed().await;
    assert_eq!(inbox(server.store.as_ref(), "alice").await, vec![b"first\r\n".to_vec(), b"second\r\n".to_vec()]);
}

#[tokio::test]
async fn message_size_at_limit_and_past() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;

    // 998 bytes and CRLF: exactly the 1000-byte limit.
    let at_limit = format!("{}\r\n", "a".repeat(998));
    client.begin().await;
    assert_eq!(client.command("RCPT TO:<alice>").await, "250 2.1.5 <alice> Recipient OK\r\n");
    assert_eq!(client.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    client.send(format!("{at_limit}.\r\n").as_bytes()).await;
    assert_eq!(client.reply().await, "250 2.0.0 <alice> Delivered\r\n");

    // One byte more, to two recipients: one rejection each.
    let past_limit = format!("{}\r\n", "a".repeat(999));
    assert_eq!(client.command("MAIL FROM:<>").await, "250 2.1.0 Sender OK\r\n");
    assert_eq!(client.command("RCPT TO:<alice>").await, "250 2.1.5 <alice> Recipient OK\r\n");
    assert_eq!(client.command("RCPT TO:<bob>").await, "250 2.1.5 <bob> Recipient OK\r\n");
    assert_eq!(client.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    client.send(format!("{past_limit}.\r\n").as_bytes()).await;
    assert_eq!(client.reply().await, "552 5.3.4 <alice> Message too big\r\n");
    assert_eq!(client.reply().await, "552 5.3.4 <bob> Message too big\r\n");
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK\r\n");

    // The declared size is checked against the same limit.
    assert_eq!(client.command("MAIL FROM:<> SIZE=1000").await, "250 2.1.0 Sender OK\r\n");
    assert_eq!(client.command("RSET").await, "250 2.0.0 OK\r\n");
    assert_eq!(client.command("MAIL FROM:<> SIZE=1001").await, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");

    assert_eq!(inbox(server.store.as_ref(), "alice").await, vec![at_limit.into_bytes()]);
    assert_eq!(inbox(server.store.as_ref(), "bob").await, Vec::<Vec<u8>>::new());
}

#[tokio::test]
async fn recipients_at_limit_and_past() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;
    client.begin().await;

    for user in ["alice", "bob", "carol"] {
        assert_eq!(client.command(&format!("RCPT TO:<{user}>")).await, format!("250 2.1.5 <{user}> Recipient OK\r\n"));
    }
    assert_eq!(client.command("RCPT TO:<alice>").await, "452 4.5.3 Too many recipients\r\n");
    assert_eq!(client.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    client.send(b"hello\r\n.\r\n").await;
    for user in ["alice", "bob", "carol"] {
        assert_eq!(client.reply().await, format!("250 2.0.0 <{user}> Delivered\r\n"));
    }
}

#[tokio::test]
async fn line_length_at_limit_and_past() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;

    // "NOOP " and 195 bytes: exactly the 200-byte line limit.
    assert_eq!(client.command(&format!("NOOP {}", "x".repeat(195))).await, "250 2.0.0 OK\r\n");
    assert_eq!(client.command(&format!("NOOP {}", "x".repeat(196))).await, "500 5.5.2 Line too long\r\n");

    // A line far longer than the input buffer is dropped as it arrives.
    assert_eq!(client.command(&format!("NOOP {}", "x".repeat(100_000))).await, "500 5.5.2 Line too long\r\n");
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK\r\n");
}

#[tokio::test]
async fn smtp_greetings_are_rejected() {
    let server = start(|_| {}).await;
    let mut client = Client::connect(server.address).await;
    assert_eq!(client.command("EHLO client.test").await, "500 5.5.1 LMTP requires LHLO\r\n");
    assert_eq!(client.command("HELO client.test").await, "500 5.5.1 LMTP requires LHLO\r\n");
    assert_eq!(client.command("MAIL FROM:<>").await, "503 5.5.1 Send LHLO first\r\n");
    assert_eq!(client.command("VRFY alice").await, "252 2.5.0 Cannot verify users, send RCPT instead\r\n");
    assert_eq!(client.command("STARTTLS").await, "500 5.5.2 Unknown command\r\n");
}

#[tokio::test]
async fn idle_connection_times_out() {
    let server = start(|config| config.imap.timeout_unauthenticated = Duration::from_millis(200)).await;
    let mut client = Client::connect(server.address).await;
    assert_eq!(client.reply().await, "421 4.4.2 mx.test Timeout, closing connection\r\n");
    client.expect_closed().await;
}

#[tokio::test]
async fn shutdown_lets_data_transfer_finish() {
    let server = start(|_| {}).await;
    let mut transfer = Client::connect(server.address).await;
    transfer.begin().await;
    assert_eq!(transfer.command("RCPT TO:<alice>").await, "250 2.1.5 <alice> Recipient OK\r\n");
    assert_eq!(transfer.command("DATA").await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    transfer.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    let mut idle = Client::connect(server.address).await;

    // The idle session's 421 shows that shutdown has reached the sessions.
    server.shutdown.send(true).unwrap();
    assert_eq!(idle.reply().await, "421 4.3.2 mx.test Service shutting down\r\n");
    idle.expect_closed().await;

    transfer.send(b"second half\r\n.\r\n").await;
    assert_eq!(transfer.reply().await, "250 2.0.0 <alice> Delivered\r\n");
    assert_eq!(transfer.reply().await, "421 4.3.2 mx.test Service shutting down\r\n");
    transfer.expect_closed().await;
    tokio::time::timeout(WAIT_MAX, server.task).await.expect("serve did not return").unwrap();
    assert!(TcpStream::connect(server.address).await.is_err(), "listener still accepts after shutdown");

    // Reopening the store from disk shows the delivery is durable.
    drop(server.store);
    let reopened = SqliteStore::open(server.dir.path()).unwrap();
    assert_eq!(inbox(&reopened, "alice").await, vec![b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n".to_vec()]);
}

#[tokio::test]
async fn dropped_shutdown_sender_stops_server() {
    let server = start(|_| {}).await;
    let mut idle = Client::connect(server.address).await;

    // Nothing can flip a watch whose sender is gone, so serve treats the
    // drop as shutdown rather than running forever.
    drop(server.shutdown);
    assert_eq!(idle.reply().await, "421 4.3.2 mx.test Service shutting down\r\n");
    idle.expect_closed().await;
    tokio::time::timeout(WAIT_MAX, server.task).await.expect("serve did not return").unwrap();
}

#[tokio::test]
async fn python_lmtp_client() {
    let server = start(|_| {}).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lmtp_client.py");

    let output = tokio::time::timeout(
        WAIT_MAX,
        tokio::process::Command::new("python3").arg(&script).arg(server.address.port().to_string()).output(),
    )
    .await
    .expect("python3 timed out")
    .expect("failed to run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "client failed\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));

    // The script prints the bytes it expects the store to hold, as hex.
    let expected: Vec<u8> = (0..stdout.trim().len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&stdout.trim()[index..index + 2], 16).unwrap())
        .collect();
    assert!(expected.starts_with(b"From: "), "unexpected script output {stdout:?}");
    assert_eq!(inbox(server.store.as_ref(), "alice").await, vec![expected.clone()]);
    assert_eq!(inbox(server.store.as_ref(), "bob").await, vec![expected]);
}

#[tokio::test]
async fn deliver_local_shares_running_store() {
    let server = start(|_| {}).await;
    let config = config(server.dir.path());

    deliver_local(&config, "alice", b"Subject: local\n\nbody\n".to_vec()).await.unwrap();
    let error = deliver_local(&config, "nobody", b"x\r\n".to_vec()).await.unwrap_err();
    assert!(matches!(error.downcast_ref::<DeliveryError>(), Some(DeliveryError::UnknownUser(_))), "{error:#}");
    let error = deliver_local(&config, "alice", vec![b'a'; 1001]).await.unwrap_err();
    assert!(matches!(error.downcast_ref::<DeliveryError>(), Some(DeliveryError::TooBig { size: 1001, max: 1000 })), "{error:#}");

    assert_eq!(inbox(server.store.as_ref(), "alice").await, vec![b"Subject: local\r\n\r\nbody\r\n".to_vec()]);
}
