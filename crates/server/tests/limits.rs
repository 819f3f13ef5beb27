//! Every IMAP limit in `roost_server::config::Limits`, and the session
//! timeouts, checked through a real socket: a request at exactly the limit
//! works, and one byte, level or attempt past it gets the documented
//! rejection. Limits are set small so that the tests stay fast.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{PASSWORD, RawConnection, TestServer, USER, message};
use roost_server::config::Config;

fn small_limits(config: &mut Config) {
    config.limits.line_bytes_max = 200;
    config.limits.literal_bytes_max_unauthenticated = 64;
    config.limits.message_bytes_max = 1000;
    config.limits.command_bytes_max = 600;
    config.limits.mailbox_name_bytes_max = 20;
    config.limits.mailbox_depth_max = 3;
    config.limits.login_failures_max = 2;
}

fn start_small() -> TestServer {
    TestServer::start_with(small_limits)
}

/// Builds `tag NOOP\r\n` padded through the tag to exactly `total` bytes.
fn noop_line(total: usize) -> Vec<u8> {
    let fixed = " NOOP\r\n".len();
    let tag = "n".repeat(total - fixed);
    format!("{tag} NOOP\r\n").into_bytes()
}

#[test]
fn line_at_limit_is_accepted() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    let line = noop_line(200);
    connection.send(&line);
    let tag = "n".repeat(200 - " NOOP\r\n".len());
    let reply = connection.read_tagged(&tag);
    assert!(reply.last().unwrap().starts_with(&format!("{tag} OK")), "{reply:?}");
}

#[test]
fn line_past_limit_closes_with_toobig() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(&noop_line(201));
    let lines = connection.read_to_close();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(" BAD [TOOBIG]"), "{lines:?}");
    assert!(lines[1].starts_with("* BYE "), "{lines:?}");
}

#[test]
fn line_past_limit_reported_before_line_end() {
    // The server must not wait for a line feed that may never come.
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(&[b'a'; 300]);
    let lines = connection.read_to_close();
    assert!(lines.iter().any(|l| l.contains("BAD [TOOBIG]")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("* BYE "), "{lines:?}");
}

#[test]
fn unauthenticated_literal_at_limit_is_accepted() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(b"a LOGIN {64}\r\n");
    let continuation = connection.read_line().unwrap();
    assert!(continuation.starts_with("+ "), "{continuation}");
    connection.send(&[b'u'; 64]);
    connection.send(b" secret\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a NO [AUTHENTICATIONFAILED]"), "{reply:?}");
}

#[test]
fn unauthenticated_literal_past_limit_is_toobig() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(b"a LOGIN {65}\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "no continuation may precede the rejection: {reply:?}");
    assert!(reply[0].starts_with("a BAD [TOOBIG]"), "{reply:?}");

    // The client must not send the literal, and the session goes on.
    let reply = connection.command("b", "NOOP");
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

#[test]
fn unauthenticated_non_sync_literal_past_limit_closes() {
    // Before login both literal limits are the small one, so an oversized
    // `{n+}` literal is not skipped: the connection closes without reading
    // it, and the LOGOUT inside is never run.
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    let mut literal = b"x LOGOUT\r\n".to_vec();
    literal.resize(65, b'z');
    connection.send(b"a LOGIN {65+}\r\n");
    connection.send(&literal);
    connection.send(b" pw\r\n");
    let lines = connection.read_to_close();
    assert!(lines[0].starts_with("a BAD [TOOBIG]"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("x ") || l.contains("Logging out")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("* BYE "), "{lines:?}");
}

#[test]
fn unauthenticated_non_sync_literal_at_limit_is_read() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    let mut literal = b"x LOGOUT\r\n".to_vec();
    literal.resize(64, b'z');
    connection.send(b"a LOGIN {64+}\r\n");
    connection.send(&literal);
    connection.send(b" pw\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a NO [AUTHENTICATIONFAILED]"), "{reply:?}");
    let reply = connection.command("b", "NOOP");
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

#[test]
fn oversized_non_sync_literal_is_skipped_not_run() {
    // After login a literal outside APPEND is bounded by command_bytes_max
    // (600), but bytes up to message_bytes_max (1000) are skipped so that
    // the stream stays in step. The `x LOGOUT` inside must not run.
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    let mut literal = b"x LOGOUT\r\n".to_vec();
    literal.resize(700, b'z');
    literal.extend_from_slice(b"\r\ny LOGOUT\r\n");
    connection.send(b"a SEARCH SUBJECT {712+}\r\n");
    connection.send(&literal);
    connection.send(b"\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a BAD [TOOBIG]"), "{reply:?}");

    let reply = connection.command("b", "NOOP");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("b OK"), "{reply:?}");
}

#[test]
fn oversized_sync_literal_gets_no_continuation() {
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    connection.send(b"a SEARCH SUBJECT {1001}\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a BAD [TOOBIG]"), "{reply:?}");
    // The server never requests the literal, so whatever the client sends
    // next is read as a command. Here that is a plain NOOP.
    let reply = connection.command("b", "NOOP");
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

/// Sends APPEND with a literal of `size` bytes, synchronising unless
/// `non_sync` is set, and returns the reply lines.
fn append_sized(connection: &mut RawConnection, tag: &str, size: usize, non_sync: bool) -> Vec<String> {
    let mut body = message("sized", "");
    assert!(body.len() <= size);
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\r\n");
    let plus = if non_sync { "+" } else { "" };
    connection.send(format!("{tag} APPEND INBOX {{{size}{plus}}}\r\n").as_bytes());
    if !non_sync {
        let continuation = connection.read_line().unwrap();
        if !continuation.starts_with("+ ") {
            return vec![continuation];
        }
    }
    connection.send(&body);
    connection.send(b"\r\n");
    connection.read_tagged(tag)
}

#[test]
fn append_at_message_limit_is_stored() {
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    let reply = append_sized(&mut connection, "a", 1000, false);
    assert!(reply.last().unwrap().starts_with("a OK [APPENDUID "), "{reply:?}");
    let reply = append_sized(&mut connection, "b", 1000, true);
    assert!(reply.last().unwrap().starts_with("b OK [APPENDUID "), "{reply:?}");
    let reply = connection.command("c", "STATUS INBOX (MESSAGES)");
    assert!(reply[0].contains("MESSAGES 2"), "{reply:?}");
}

#[test]
fn append_past_message_limit_is_toobig() {
    // RFC 7889 section 4: an APPEND over the upload limit gets a tagged
    // NO [TOOBIG], sent in place of the continuation request.
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    let reply = append_sized(&mut connection, "a", 1001, false);
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a NO [TOOBIG]"), "{reply:?}");

    let reply = connection.command("c", "STATUS INBOX (MESSAGES)");
    assert_eq!(reply[0], "* STATUS INBOX (MESSAGES 0)");
}

#[test]
fn non_sync_append_past_message_limit_closes() {
    // The literal is larger than every literal limit. Staying in step
    // would mean skipping more bytes than the server ever accepts, so it
    // closes the connection instead, without running the LOGOUT inside.
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    let mut literal = b"x LOGOUT\r\n".to_vec();
    literal.resize(1001, b'z');
    connection.send(b"b APPEND INBOX {1001+}\r\n");
    connection.send(&literal);
    connection.send(b"\r\n");
    let lines = connection.read_to_close();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("b BAD [TOOBIG]"), "{lines:?}");
    assert!(lines[1].starts_with("* BYE "), "{lines:?}");

    let mut client = server.login();
    let reply = client.command("STATUS INBOX (MESSAGES)").unwrap();
    assert_eq!(common::lines(&reply), vec!["* STATUS INBOX (MESSAGES 0)"]);
}

/// Sends a SEARCH whose line, literal and final CRLF add up to `total`
/// bytes, and returns the reply lines.
fn search_of_size(connection: &mut RawConnection, tag: &str, total: usize) -> Vec<String> {
    let probe = format!("{tag} SEARCH SUBJECT {{000}}\r\n");
    let literal_len = total - probe.len() - 2;
    let line = format!("{tag} SEARCH SUBJECT {{{literal_len:03}}}\r\n");
    assert_eq!(line.len(), probe.len());
    connection.send(line.as_bytes());
    let continuation = connection.read_line().unwrap();
    if !continuation.starts_with("+ ") {
        return vec![continuation];
    }
    connection.send(&vec![b'q'; literal_len]);
    connection.send(b"\r\n");
    connection.read_tagged(tag)
}

#[test]
fn command_at_limit_is_run() {
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    assert!(connection.command("s", "SELECT INBOX").last().unwrap().starts_with("s OK"));
    let reply = search_of_size(&mut connection, "a", 600);
    assert_eq!(reply, vec!["* SEARCH".to_owned(), "a OK SEARCH completed".to_owned()]);
}

#[test]
fn command_past_limit_is_toobig() {
    let server = start_small();
    let mut connection = RawConnection::login(server.imap);
    assert!(connection.command("s", "SELECT INBOX").last().unwrap().starts_with("s OK"));
    let reply = search_of_size(&mut connection, "a", 601);
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a BAD [TOOBIG]"), "{reply:?}");
    let reply = connection.command("b", "NOOP");
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

#[test]
fn mailbox_name_length_limit() {
    let server = start_small();
    let mut client = server.login();
    let at_limit = "n".repeat(20);
    let reply = client.command(&format!("CREATE {at_limit}")).unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);

    let past_limit = "n".repeat(21);
    let reply = client.command(&format!("CREATE {past_limit}")).unwrap();
    assert!(reply.tagged.contains(" NO [LIMIT]"), "{}", reply.tagged);
    let reply = client.command(&format!("SELECT {past_limit}")).unwrap();
    assert!(reply.tagged.contains(" NO [LIMIT]"), "{}", reply.tagged);
}

#[test]
fn mailbox_name_length_counts_utf8_bytes() {
    // Each `ü` is two bytes of UTF-8 and five of modified UTF-7 on the
    // wire (`&APw-`); the limit counts the UTF-8 form.
    let server = start_small();
    let mut client = server.login();
    let reply = client.command(&format!("CREATE {}", "&APwA,AD8APwA,AD8APwA,AD8APw-")).unwrap();
    assert!(reply.is_ok(), "ten ü are 20 bytes: {}", reply.tagged);
    let reply = client.command(&format!("CREATE a{}", "&APwA,AD8APwA,AD8APwA,AD8APw-")).unwrap();
    assert!(reply.tagged.contains(" NO [LIMIT]"), "{}", reply.tagged);
}

#[test]
fn mailbox_depth_limit() {
    let server = start_small();
    let mut client = server.login();
    let reply = client.command("CREATE a/b/c").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    let reply = client.command("CREATE a/b/c/d").unwrap();
    assert!(reply.tagged.contains(" NO [LIMIT]"), "{}", reply.tagged);
    let reply = client.command("RENAME a/b/c x/y/z/w").unwrap();
    assert!(reply.tagged.contains(" NO [LIMIT]"), "{}", reply.tagged);
}

/// Builds a message whose multiparts nest `levels` deep around one text
/// part.
fn nested_message(levels: usize) -> Vec<u8> {
    let mut body = "Content-Type: text/plain\r\n\r\ninnermost text\r\n".to_owned();
    for level in (0..levels).rev() {
        let boundary = format!("b{level}");
        body = format!(
            "Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n{body}--{boundary}--\r\n"
        );
    }
    format!("From: a@example.org\r\nSubject: nested\r\nMIME-Version: 1.0\r\n{body}").into_bytes()
}

#[test]
fn mime_depth_limit() {
    let server = TestServer::start_with(|config| config.limits.mime_depth_max = 3);
    let mut client = server.login();
    // Three multipart levels put the text part at depth 3: it is a leaf
    // either way, so the whole structure is visible.
    assert!(client.append("INBOX", &nested_message(3)).unwrap().is_ok());
    // Four levels put the innermost multipart at depth 3, which is parsed
    // no further and appears as a single opaque part.
    assert!(client.append("INBOX", &nested_message(4)).unwrap().is_ok());
    assert!(client.command("SELECT INBOX").unwrap().is_ok());

    let reply = client.command("FETCH 1 (BODY.PEEK[1.1.1])").unwrap();
    let fetched = common::lines(&reply).join("\n");
    assert!(fetched.contains("innermost text"), "{fetched}");

    let reply = client.command("FETCH 2 (BODYSTRUCTURE)").unwrap();
    let structure = common::lines(&reply).join("\n");
    assert!(structure.contains("((((\"multipart\" \"mixed\" (\"boundary\" \"b3\")"), "{structure}");
    assert!(!structure.contains("\"plain\""), "{structure}");
    // Part 1 of a part that is not a multipart is the part itself
    // (RFC 3501 section 6.4.5), so the opaque part's raw body comes back,
    // its boundary lines included.
    let reply = client.command("FETCH 2 (BODY.PEEK[1.1.1.1])").unwrap();
    let fetched = common::lines(&reply).join("\n");
    assert!(fetched.contains("--b3\r\nContent-Type: text/plain"), "{fetched}");
}

#[test]
fn login_failures_below_limit_allow_login() {
    let server = start_small();
    let mut client = server.connect();
    let reply = client.command("LOGIN alice wrong").unwrap();
    assert!(reply.tagged.contains(" NO [AUTHENTICATIONFAILED]"), "{}", reply.tagged);
    client.login(USER, PASSWORD).unwrap();
}

#[test]
fn login_failures_at_limit_close() {
    let server = start_small();
    let (mut connection, _) = RawConnection::connect(server.imap);
    let reply = connection.command("a", "LOGIN alice wrong");
    assert!(reply[0].starts_with("a NO [AUTHENTICATIONFAILED]"), "{reply:?}");
    connection.send(b"b AUTHENTICATE PLAIN AGFsaWNlAHdyb25n\r\n");
    let lines = connection.read_to_close();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("b NO [AUTHENTICATIONFAILED]"), "{lines:?}");
    assert!(lines[1].starts_with("* BYE "), "{lines:?}");
}

#[test]
fn unauthenticated_timeout_says_bye() {
    let server = TestServer::start_with(|config| config.imap.timeout_unauthenticated = Duration::from_secs(1));
    let (mut connection, _) = RawConnection::connect(server.imap);
    let lines = connection.read_to_close();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("* BYE "), "{lines:?}");
}

#[test]
fn authenticated_timeout_says_bye() {
    let server = TestServer::start_with(|config| {
        config.imap.timeout_unauthenticated = Duration::from_secs(60);
        config.imap.timeout_authenticated = Duration::from_secs(2);
    });
    let mut connection = RawConnection::login(server.imap);
    assert!(connection.command("s", "SELECT INBOX").last().unwrap().starts_with("s OK"));
    let lines = connection.read_to_close();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("* BYE "), "{lines:?}");
}

#[test]
fn authenticated_session_outlives_unauthenticated_timeout() {
    let server = TestServer::start_with(|config| {
        config.imap.timeout_unauthenticated = Duration::from_secs(1);
        config.imap.timeout_authenticated = Duration::from_secs(60);
    });
    let mut connection = RawConnection::login(server.imap);
    std::thread::sleep(Duration::from_secs(3));
    let reply = connection.command("a", "NOOP");
    assert_eq!(reply, vec!["a OK NOOP completed".to_owned()]);
}

#[test]
fn idle_keepalive_sent_while_idling() {
    let server = TestServer::start_with(|config| {
        config.imap.idle_keepalive = Duration::from_secs(1);
        config.imap.timeout_authenticated = Duration::from_secs(2);
    });
    let mut connection = RawConnection::login(server.imap);
    assert!(connection.command("s", "SELECT INBOX").last().unwrap().starts_with("s OK"));
    connection.send(b"i IDLE\r\n");
    assert!(connection.read_line().unwrap().starts_with("+ "));
    // IDLE is not inactivity: the two-second logout timeout must not end
    // it, and at least two keepalives arrive in the meantime.
    for _ in 0..3 {
        assert_eq!(connection.read_line().unwrap(), "* OK Still here");
    }
    connection.send(b"DONE\r\n");
    let reply = connection.read_tagged("i");
    assert!(reply.last().unwrap().starts_with("i OK"), "{reply:?}");
}

/// Collects every event and span field that the server logs, in one
/// process-wide buffer, so tests can search the log for secrets.
struct CapturedLog {
    text: Mutex<String>,
}

/// Bytes of log text kept; later output is dropped so a long run cannot
/// exhaust memory.
const CAPTURED_LOG_BYTES_MAX: usize = 8 << 20;

impl CapturedLog {
    fn install() -> Arc<CapturedLog> {
        static LOG: OnceLock<Arc<CapturedLog>> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = Arc::new(CapturedLog { text: Mutex::new(String::new()) });
            let subscriber = LogSubscriber { log: Arc::clone(&log), next_span: std::sync::atomic::AtomicU64::new(1) };
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber is installed");
            log
        })
        .clone()
    }

    fn append(&self, text: &str) {
        let mut log = self.text.lock().unwrap();
        if log.len() + text.len() <= CAPTURED_LOG_BYTES_MAX {
            log.push_str(text);
            log.push('\n');
        }
    }

    fn contents(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

struct LogSubscriber {
    log: Arc<CapturedLog>,
    next_span: std::sync::atomic::AtomicU64,
}

struct FieldWriter<'a>(&'a mut String);

impl tracing::field::Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl tracing::Subscriber for LogSubscriber {
    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = format!("span {}", span.metadata().name());
        span.record(&mut FieldWriter(&mut text));
        self.log.append(&text);
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    fn record(&self, _span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = "record".to_owned();
        values.record(&mut FieldWriter(&mut text));
        self.log.append(&text);
    }

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut FieldWriter(&mut text));
        self.log.append(&text);
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

#[test]
fn passwords_never_logged() {
    let log = CapturedLog::install();
    let server = TestServer::start();
    let wrong = "Wrong-Pa55word-Marker";
    let (mut connection, _) = RawConnection::connect(server.imap);

    let reply = connection.command("a", &format!("LOGIN {USER} {wrong}"));
    assert!(reply[0].starts_with("a NO"), "{reply:?}");
    // AUTHENTICATE PLAIN with "\0alice\0Wrong-Pa55word-Marker2".
    let reply = connection.command("b", "AUTHENTICATE PLAIN AGFsaWNlAFdyb25nLVBhNTV3b3JkLU1hcmtlcjI=");
    assert!(reply[0].starts_with("b NO"), "{reply:?}");
    let reply = connection.command("c", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(reply.last().unwrap().starts_with("c OK"), "{reply:?}");
    let reply = connection.command("d", "LOGOUT");
    assert!(reply.last().unwrap().starts_with("d OK"), "{reply:?}");
    drop(server);

    let text = log.contents();
    assert!(text.contains("login failed"), "the log must record the failures: {text}");
    assert!(text.contains("logged in"), "the log must record the login: {text}");
    for secret in [wrong, "Wrong-Pa55word-Marker2", PASSWORD, "AGFsaWNlAFdyb25nLVBhNTV3b3JkLU1hcmtlcjI="] {
        assert!(!text.contains(secret), "the log contains {secret}: {text}");
    }
}

#[test]
fn secret_debug_is_redacted() {
    let secret = roost_auth::Secret::new(PASSWORD.to_owned());
    assert!(!format!("{secret:?}").contains(PASSWORD));
    assert!(!format!("{secret}").contains(PASSWORD));
}

/// INBOX and the three default mailboxes count, so a limit of five leaves
/// room for exactly one more.
#[test]
fn mailboxes_per_account_at_and_past_limit() {
    let server = TestServer::start_with(|config| config.limits.mailboxes_per_account_max = 5);
    let mut client = server.login();

    let at_limit = client.command("CREATE Fifth").unwrap();
    assert!(at_limit.is_ok(), "{}", at_limit.tagged);

    let past_limit = client.command("CREATE Sixth").unwrap();
    assert!(past_limit.tagged.contains(" NO [LIMIT] "), "{}", past_limit.tagged);
    let listed = client.command("LIST \"\" Sixth").unwrap();
    assert!(listed.untagged.is_empty(), "the rejected mailbox exists: {:?}", listed.untagged);

    let rename_past = client.command("RENAME Fifth a/b").unwrap();
    assert!(rename_past.tagged.contains(" NO [LIMIT] "), "{}", rename_past.tagged);
}

/// `mime_parts_max` reaches the analysis APPEND stores: with the root and
/// two parts allowed, a third part gets no part number.
#[test]
fn mime_parts_at_and_past_limit() {
    let server = TestServer::start_with(|config| config.limits.mime_parts_max = 3);
    let mut client = server.login();
    let two_parts = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n";
    let three_parts =
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b\r\n\r\nthree\r\n--b--\r\n";
    assert!(client.append("INBOX", two_parts).unwrap().is_ok());
    assert!(client.append("INBOX", three_parts).unwrap().is_ok());
    assert!(client.command("SELECT INBOX").unwrap().is_ok());

    let at_limit = client.command("FETCH 1 (BODY.PEEK[2])").unwrap();
    assert!(at_limit.untagged[0].ends_with(b"BODY[2] {3}\r\ntwo)"), "{:?}", String::from_utf8_lossy(&at_limit.untagged[0]));

    let past_limit = client.command("FETCH 2 (BODY.PEEK[3] BODYSTRUCTURE)").unwrap();
    let text = String::from_utf8_lossy(&past_limit.untagged[0]).into_owned();
    assert!(text.contains("BODY[3] {0}"), "{text}");
    assert_eq!(text.matches("\"text\" \"plain\"").count(), 2, "{text}");
}
