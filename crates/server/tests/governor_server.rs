//! The governor's decisions as clients see them over real sockets:
//! refusals at accept and at login, PROXY headers from trusted balancers,
//! client-ID classes, failed-login penalties, greeting delays, preemption
//! and the metrics and admin views.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestServer, USER};
use roost_governor::{ClassConfig, Rate};
use roost_testkit::client::{Client, ClientLimits};

/// A raw line-based client, for reading exactly what the server sends.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(address: SocketAddr) -> Raw {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { reader: BufReader::new(stream) }
    }

    fn from_stream(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { reader: BufReader::new(stream) }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    fn send(&mut self, text: &str) {
        self.reader.get_mut().write_all(text.as_bytes()).unwrap();
    }

    /// Sends a command and returns the tagged response or a BYE.
    fn command(&mut self, tag: &str, command: &str) -> String {
        self.send(&format!("{tag} {command}\r\n"));
        self.tagged(tag)
    }

    /// Reads up to the response tagged `tag`, or a BYE.
    fn tagged(&mut self, tag: &str) -> String {
        loop {
            let line = self.line();
            if line.is_empty() || line.starts_with(&format!("{tag} ")) || line.starts_with("* BYE") {
                return line;
            }
        }
    }
}

fn scrape(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn preauth_full_refuses_at_greeting() {
    let server = TestServer::start_with(|config| config.governor.policy.max_preauth = 1);
    let mut first = Raw::connect(server.imap);
    assert!(first.line().starts_with("* OK"));
    let mut second = Raw::connect(server.imap);
    let line = second.line();
    assert!(line.starts_with("* BYE [UNAVAILABLE] too many connections are waiting to log in, retry in "), "{line:?}");
    assert_eq!(second.line(), "", "the refused connection is closed");
}

#[test]
fn implicit_tls_refusal_closes_silently() {
    let server = TestServer::start_with(|config| config.governor.policy.max_preauth = 1);
    let _holding = Raw::connect(server.imap);
    let mut stream = TcpStream::connect(server.imaps.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buffer = [0u8; 64];
    let read = stream.read(&mut buffer).unwrap_or(0);
    assert_eq!(read, 0, "nothing may be sent in clear on the TLS port");
}

#[test]
fn capacity_refuses_login_and_keeps_connection() {
    let server = TestServer::start_with(|config| config.governor.policy.max_sessions = 1);
    let _first = server.login();
    let mut second = Raw::connect(server.imap);
    second.line();
    let response = second.command("a1", "LOGIN bob builder");
    assert!(response.starts_with("a1 NO [UNAVAILABLE] no slot is free for this class of client, retry in "), "{response:?}");
    let response = second.command("a2", "NOOP");
    assert!(response.starts_with("a2 OK"), "the connection stays usable: {response:?}");
}

#[test]
fn per_user_max_refuses_with_limit() {
    let server = TestServer::start_with(|config| config.governor.policy.default_class.per_user_max = Some(1));
    let _first = server.login();
    let mut second = Raw::connect(server.imap);
    second.line();
    let response = second.command("a1", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(response.starts_with("a1 NO [LIMIT] too many sessions for this user, retry in "), "{response:?}");
    let response = second.command("a2", "LOGIN bob builder");
    assert!(response.starts_with("a2 OK"), "{response:?}");
}

#[test]
fn priority_login_preempts_idle_session() {
    let server = TestServer::start_with(|config| {
        config.governor.policy.max_sessions = 1;
        let mut staff = ClassConfig::new("staff");
        staff.users = [USER.to_owned()].into();
        staff.priority = 10;
        config.governor.policy.classes = vec![staff];
    });
    let mut bob = Raw::connect(server.imap);
    bob.line();
    assert!(bob.command("b1", "LOGIN bob builder").starts_with("b1 OK"));
    assert!(bob.command("b2", "SELECT INBOX").starts_with("b2 OK"));
    bob.send("b3 IDLE\r\n");
    assert!(bob.line().starts_with("+ "));

    let _alice = server.login();
    let bye = bob.line();
    assert!(
        bye.starts_with("* BYE [UNAVAILABLE] session ended to admit a higher-priority client, retry in "),
        "{bye:?}"
    );
    assert_eq!(bob.line(), "");
}

#[test]
fn append_in_progress_is_not_preempted() {
    let server = TestServer::start_with(|config| {
        config.governor.policy.max_sessions = 1;
        let mut staff = ClassConfig::new("staff");
        staff.users = [USER.to_owned()].into();
        staff.priority = 10;
        config.governor.policy.classes = vec![staff];
    });
    let mut bob = Raw::connect(server.imap);
    bob.line();
    assert!(bob.command("b1", "LOGIN bob builder").starts_with("b1 OK"));
    let message = "Subject: half\r\n\r\nbody\r\n";
    bob.send(&format!("b2 APPEND INBOX {{{}}}\r\n", message.len()));
    assert!(bob.line().starts_with("+ "));
    // Bob is in the middle of APPEND: Alice must be refused, not Bob cut.
    let mut alice = Raw::connect(server.imap);
    alice.line();
    let response = alice.command("a1", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(response.starts_with("a1 NO [UNAVAILABLE]"), "{response:?}");
    bob.send(&format!("{message}\r\n"));
    let response = bob.tagged("b2");
    assert!(response.starts_with("b2 OK"), "the APPEND completes: {response:?}");
}

#[test]
fn trusted_proxy_header_sets_client_address() {
    let server = TestServer::start_with(|config| {
        config.governor.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        config.trusted_networks.push("203.0.113.0/24".parse().unwrap());
        let mut remote = ClassConfig::new("remote");
        remote.networks = vec!["203.0.113.0/24".parse().unwrap()];
        remote.limit = Some(0);
        config.governor.policy.classes = vec![remote];
    });
    // A client the balancer forwards from 203.0.113.9: its class has no
    // slots, so the login is refused by class.
    let mut stream = TcpStream::connect(server.imap).unwrap();
    stream.write_all(b"PROXY TCP4 203.0.113.9 192.0.2.1 51000 143\r\n").unwrap();
    let mut proxied = Raw::from_stream(stream);
    assert!(proxied.line().starts_with("* OK"));
    let response = proxied.command("a1", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(response.starts_with("a1 NO [UNAVAILABLE] all slots for this class of client are in use"), "{response:?}");

    // A health check with PROXY v2 LOCAL counts as the balancer itself.
    let mut stream = TcpStream::connect(server.imap).unwrap();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    stream.write_all(&header).unwrap();
    let mut local = Raw::from_stream(stream);
    assert!(local.line().starts_with("* OK"));
    assert!(local.command("a1", &format!("LOGIN {USER} {PASSWORD}")).starts_with("a1 OK"));

    // A trusted peer without a header is dropped: the close may come as
    // a reset, because the server leaves the bytes it read unanswered.
    let mut bare = Raw::connect(server.imap);
    bare.send("a1 CAPABILITY\r\n");
    let mut buffer = String::new();
    let read = bare.reader.read_line(&mut buffer);
    assert!(matches!(read, Ok(0)) || read.as_ref().is_err_and(|err| err.kind() == std::io::ErrorKind::ConnectionReset), "{read:?} {buffer:?}");
}

#[test]
fn proxy_header_from_untrusted_peer_is_a_command() {
    let server = TestServer::start();
    let mut raw = Raw::connect(server.imap);
    assert!(raw.line().starts_with("* OK"));
    raw.send("PROXY TCP4 203.0.113.9 192.0.2.1 51000 143\r\n");
    let response = raw.line();
    assert!(response.contains("BAD"), "an untrusted peer cannot claim another address: {response:?}");
}

#[test]
fn client_id_selects_class() {
    let server = TestServer::start_with(|config| {
        let mut phones = ClassConfig::new("phones");
        phones.client_ids = vec!["PushProxy".to_owned()];
        phones.limit = Some(0);
        config.governor.policy.classes = vec![phones];
    });
    let mut raw = Raw::connect(server.imap);
    raw.line();
    assert!(raw.command("a1", "ID (\"name\" \"pushproxy\" \"version\" \"1\")").starts_with("a1 OK"));
    let response = raw.command("a2", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(response.starts_with("a2 NO [UNAVAILABLE] all slots for this class of client are in use"), "{response:?}");
    let mut other = Raw::connect(server.imap);
    other.line();
    assert!(other.command("a1", "ID (\"name\" \"Thunderbird\")").starts_with("a1 OK"));
    assert!(other.command("a2", &format!("LOGIN {USER} {PASSWORD}")).starts_with("a2 OK"));
}

#[test]
fn failed_logins_are_delayed() {
    let server = TestServer::start_with(|config| {
        config.governor.policy.login_penalty_base = Duration::from_millis(400);
        config.governor.policy.login_penalty_max = Duration::from_secs(2);
    });
    let mut raw = Raw::connect(server.imap);
    raw.line();
    let start = Instant::now();
    assert!(raw.command("a1", &format!("LOGIN {USER} wrong")).starts_with("a1 NO [AUTHENTICATIONFAILED]"));
    let first = start.elapsed();
    let start = Instant::now();
    assert!(raw.command("a2", &format!("LOGIN {USER} wrong")).starts_with("a2 NO [AUTHENTICATIONFAILED]"));
    let second = start.elapsed();
    assert!(first >= Duration::from_millis(400), "first failure answered after {first:?}");
    assert!(second >= Duration::from_millis(800), "second failure answered after {second:?}");

    // Another user from the same address is not slowed.
    let start = Instant::now();
    let mut bob = Client::connect(server.imap, ClientLimits::for_tests()).unwrap();
    bob.login("bob", "builder").unwrap();
    assert!(start.elapsed() < Duration::from_millis(400), "bob waited {:?}", start.elapsed());
}

#[test]
fn source_rate_delays_greeting() {
    let server = TestServer::start_with(|config| {
        config.governor.policy.default_class.source_rate = Some(Rate { per_second: 2.0, burst: 1 });
        config.governor.policy.greeting_delay_max = Duration::from_secs(2);
    });
    let mut first = Raw::connect(server.imap);
    assert!(first.line().starts_with("* OK"));
    let start = Instant::now();
    let mut second = Raw::connect(server.imap);
    assert!(second.line().starts_with("* OK"));
    assert!(start.elapsed() >= Duration::from_millis(300), "greeting came after {:?}", start.elapsed());
    // Past the largest delay the source is refused outright. The
    // connections open together, so the bucket has no time to refill.
    let mut burst: Vec<Raw> = (0..8).map(|_| Raw::connect(server.imap)).collect();
    let refused: Vec<String> =
        burst.iter_mut().map(|raw| raw.line()).filter(|line| line.starts_with("* BYE")).collect();
    assert!(!refused.is_empty());
    assert!(refused[0].starts_with("* BYE [UNAVAILABLE] reconnecting too fast from this address, retry in "), "{refused:?}");
}

#[test]
fn metrics_and_who_show_sessions() {
    let server = TestServer::start_with(|config| config.metrics_listen = Some("127.0.0.1:0".parse().unwrap()));
    let mut idle = Raw::connect(server.imap);
    idle.line();
    assert!(idle.command("i1", &format!("LOGIN {USER} {PASSWORD}")).starts_with("i1 OK"));
    assert!(idle.command("i2", "SELECT INBOX").starts_with("i2 OK"));
    idle.send("i3 IDLE\r\n");
    assert!(idle.line().starts_with("+ "));
    let _waiting = Raw::connect(server.imap);
    // Let the sessions record their phase.
    std::thread::sleep(Duration::from_millis(300));

    let text = scrape(server.metrics.unwrap());
    assert!(text.contains("roost_sessions{class=\"default\",state=\"idle\"} 1"), "{text}");
    assert!(text.contains("roost_sessions{class=\"default\",state=\"preauth\"} 1"), "{text}");
    assert!(
        text.contains("roost_governor_decisions_total{class=\"default\",decision=\"admit\",reason=\"free_slot\"} 1"),
        "{text}"
    );

    let table = roost_server::admin::request(&server.data_dir, "who").unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("USER"), "{table}");
    assert!(table.contains(USER), "{table}");
    assert!(lines.iter().any(|line| line.contains(USER) && line.contains("idle") && line.contains("127.0.0.1")), "{table}");
    assert!(lines.iter().any(|line| line.starts_with('-') && line.contains("preauth")), "{table}");
}

#[test]
fn passwd_file_groups_select_class() {
    let server = TestServer::start_with(|config| {
        let mut staff = ClassConfig::new("staff");
        staff.groups = ["staff".to_owned()].into();
        staff.limit = Some(0);
        config.governor.policy.classes = vec![staff];
    });
    let users = roost_auth::UserDb::open(&server.data_dir).unwrap();
    users.import("carol:{PLAIN}secret:::::: groups=faculty,staff\ndave:{PLAIN}secret\n").unwrap();
    // The server rereads the passwd-file at most once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut dave = Raw::connect(server.imap);
        dave.line();
        if dave.command("d1", "LOGIN dave secret").starts_with("d1 OK") {
            break;
        }
        assert!(Instant::now() < deadline, "the server never saw the imported users");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut carol = Raw::connect(server.imap);
    carol.line();
    let response = carol.command("a1", "LOGIN carol secret");
    assert!(response.starts_with("a1 NO [UNAVAILABLE] all slots for this class of client are in use"), "{response:?}");
}

#[test]
fn config_groups_select_class() {
    let server = TestServer::start_with(|config| {
        let mut staff = ClassConfig::new("staff");
        staff.groups = ["staff".to_owned()].into();
        staff.limit = Some(0);
        config.governor.policy.classes = vec![staff];
        config.governor.groups.insert("bob".to_owned(), vec!["staff".to_owned()]);
    });
    let mut bob = Raw::connect(server.imap);
    bob.line();
    let response = bob.command("a1", "LOGIN bob builder");
    assert!(response.starts_with("a1 NO [UNAVAILABLE] all slots for this class of client are in use"), "{response:?}");
    let mut alice = Raw::connect(server.imap);
    alice.line();
    assert!(alice.command("a1", &format!("LOGIN {USER} {PASSWORD}")).starts_with("a1 OK"));
}
