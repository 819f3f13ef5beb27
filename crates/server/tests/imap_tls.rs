//! IMAP over TLS end to end against an in-process server: implicit TLS,
//! STARTTLS with LOGINDISABLED and PRIVACYREQUIRED for untrusted clients,
//! plaintext injected behind STARTTLS, certificate reload and old TLS
//! versions.
//!
//! The client is a blocking rustls client on a std socket, so each step
//! reads exact response lines. Untrusted clients bind their socket to
//! 127.0.0.2 while the server trusts only 127.0.0.1/32.

mod common;
mod tls_support;

use roost_server::{tls, transport};

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, TestServer, USER, message};
use roost_server::config::Network;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};

/// How long a client waits for one response line or handshake step.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The address the untrusted clients connect from.
const UNTRUSTED_ADDRESS: [u8; 4] = [127, 0, 0, 2];

/// `AUTHENTICATE PLAIN` credentials for alice: base64 of
/// `\0alice\0wonderland` (RFC 4616).
const PLAIN_RESPONSE: &str = "AGFsaWNlAHdvbmRlcmxhbmQ=";

/// The bytes of a client connection, before or after TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

/// An IMAP client connection that reads one response line at a time.
struct Connection {
    reader: BufReader<Stream>,
}

impl Connection {
    /// Connects in cleartext, from `local` when given. Returns the
    /// connection and the greeting line.
    fn connect_plain(address: SocketAddr, local: Option<IpAddr>) -> (Connection, String) {
        let socket = tcp_connect(address, local);
        let mut connection = Connection { reader: BufReader::new(Stream::Plain(socket)) };
        let greeting = connection.read_line().expect("server closed before its greeting");
        (connection, greeting)
    }

    /// Connects with implicit TLS, trusting exactly `trusted`. Returns the
    /// connection and the greeting line.
    fn connect_tls(address: SocketAddr, trusted: &[CertificateDer<'static>]) -> (Connection, String) {
        let socket = tcp_connect(address, None);
        let stream = handshake(socket, client_config(trusted)).expect("TLS handshake failed");
        let mut connection = Connection { reader: BufReader::new(Stream::Tls(Box::new(stream))) };
        let greeting = connection.read_line().expect("server closed before its greeting");
        (connection, greeting)
    }

    /// Sends STARTTLS, checks the tagged OK and runs the handshake.
    fn start_tls(self, tag: &str, trusted: &[CertificateDer<'static>]) -> Connection {
        let mut connection = self;
        let reply = connection.command(tag, "STARTTLS");
        assert_eq!(reply.len(), 1, "STARTTLS sent untagged responses: {reply:?}");
        assert!(reply[0].starts_with(&format!("{tag} OK")), "{reply:?}");
        connection.upgrade(trusted).expect("TLS handshake after STARTTLS failed")
    }

    /// Runs the TLS handshake on a cleartext connection whose STARTTLS got
    /// its tagged OK. Fails the test if the server sent anything in cleartext
    /// after its STARTTLS reply.
    fn upgrade(self, trusted: &[CertificateDer<'static>]) -> std::io::Result<Connection> {
        assert!(
            self.reader.buffer().is_empty(),
            "cleartext after the STARTTLS reply: {:?}",
            String::from_utf8_lossy(self.reader.buffer())
        );
        let Stream::Plain(socket) = self.reader.into_inner() else {
            panic!("STARTTLS on a connection that already uses TLS");
        };
        let stream = handshake(socket, client_config(trusted))?;
        Ok(Connection { reader: BufReader::new(Stream::Tls(Box::new(stream))) })
    }

    fn tls(&self) -> &ClientConnection {
        match self.reader.get_ref() {
            Stream::Tls(stream) => &stream.conn,
            Stream::Plain(_) => panic!("the connection does not use TLS"),
        }
    }

    /// Returns the SHA-256 fingerprint of the certificate the server presented.
    fn presented_fingerprint(&self) -> String {
        let certificates = self.tls().peer_certificates().expect("server presented no certificate");
        tls::certificate::fingerprint_sha256(&certificates[0])
    }

    fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
    }

    /// Reads one line without its CRLF, or `None` when the server closed
    /// the connection. Panics on a read timeout.
    fn read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(String::from_utf8_lossy(&line).trim_end_matches("\r\n").to_owned()),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(err) => panic!("reading a response line failed: {err}"),
        }
    }

    /// Reads lines up to and including the one tagged `tag`.
    fn read_tagged(&mut self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let line = self
                .read_line()
                .unwrap_or_else(|| panic!("connection closed before {tag} completed: {lines:?}"));
            let done = line.starts_with(&prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends `tag command` and reads up to its tagged line.
    fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.read_tagged(tag)
    }

    /// Sends CAPABILITY and returns the capability names it lists.
    fn capabilities(&mut self, tag: &str) -> Vec<String> {
        let reply = self.command(tag, "CAPABILITY");
        assert!(reply.last().unwrap().starts_with(&format!("{tag} OK")), "{reply:?}");
        let listed: Vec<&String> = reply.iter().filter(|line| line.starts_with("* CAPABILITY ")).collect();
        assert_eq!(listed.len(), 1, "CAPABILITY reply: {reply:?}");
        listed[0]["* CAPABILITY ".len()..].split(' ').map(str::to_owned).collect()
    }
}

/// Opens a TCP connection to `address`, bound to `local` when given.
fn tcp_connect(address: SocketAddr, local: Option<IpAddr>) -> TcpStream {
    let socket = match local {
        None => TcpStream::connect_timeout(&address, READ_TIMEOUT).unwrap(),
        Some(local) => {
            // std cannot bind a socket before connecting, so tokio's
            // TcpSocket does it on a runtime that lives only for the connect.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let stream = runtime.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(local, 0)).unwrap();
                tokio::time::timeout(READ_TIMEOUT, socket.connect(address)).await.unwrap().unwrap()
            });
            let socket = stream.into_std().unwrap();
            socket.set_nonblocking(false).unwrap();
            socket
        }
    };
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    socket
}

/// Builds a rustls client config that trusts exactly `trusted` and offers
/// ALPN `imap`.
fn client_config(trusted: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut config = tls_support::client_config(trusted);
    config.alpn_protocols = vec![b"imap".to_vec()];
    config
}

/// Runs a client handshake for `localhost` on `socket` to its end.
fn handshake(
    mut socket: TcpStream,
    config: rustls::ClientConfig,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection = ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket)?;
    }
    Ok(StreamOwned::new(connection, socket))
}

/// Returns the certificate the server generated in its data folder.
fn generated_certificate(server: &TestServer) -> CertificateDer<'static> {
    let path = server.data_dir.join("tls").join("certificate.pem");
    CertificateDer::from_pem_file(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// Starts a server that trusts only 127.0.0.1 for cleartext logins.
fn start_trusting_one_address() -> TestServer {
    TestServer::start_with(|config| {
        config.trusted_networks = vec!["127.0.0.1/32".parse::<Network>().unwrap()];
    })
}

/// Returns the capability names of a greeting `* OK [CAPABILITY ...] text`.
fn greeting_capabilities(greeting: &str) -> Vec<String> {
    let start = greeting.find("[CAPABILITY ").unwrap_or_else(|| panic!("no CAPABILITY code: {greeting}"));
    let rest = &greeting[start + "[CAPABILITY ".len()..];
    let end = rest.find(']').unwrap_or_else(|| panic!("unterminated CAPABILITY code: {greeting}"));
    rest[..end].split(' ').map(str::to_owned).collect()
}

fn has(capabilities: &[String], name: &str) -> bool {
    capabilities.iter().any(|listed| listed.eq_ignore_ascii_case(name))
}

fn assert_tagged(reply: &[String], expected_start: &str) {
    let last = reply.last().unwrap();
    assert!(last.starts_with(expected_start), "expected {expected_start}..., got {reply:?}");
}

#[test]
fn implicit_tls_capability_and_login() {
    let server = TestServer::start();
    let certificate = generated_certificate(&server);
    let (mut connection, greeting) = Connection::connect_tls(server.imaps.unwrap(), &[certificate]);

    assert!(greeting.starts_with("* OK "), "{greeting}");
    assert_eq!(connection.tls().alpn_protocol(), Some(&b"imap"[..]), "ALPN protocol");
    assert_eq!(connection.tls().protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(connection.presented_fingerprint(), server.tls_fingerprint());

    let greeted = greeting_capabilities(&greeting);
    let listed = connection.capabilities("c1");
    for capabilities in [&greeted, &listed] {
        assert!(has(capabilities, "IMAP4rev1"), "{capabilities:?}");
        assert!(has(capabilities, "AUTH=PLAIN"), "{capabilities:?}");
        assert!(!has(capabilities, "STARTTLS"), "STARTTLS offered inside TLS: {capabilities:?}");
        assert!(!has(capabilities, "LOGINDISABLED"), "LOGINDISABLED inside TLS: {capabilities:?}");
    }

    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
    let reply = connection.command("s1", "SELECT INBOX");
    assert_tagged(&reply, "s1 OK");
    assert!(reply.contains(&"* 0 EXISTS".to_owned()), "{reply:?}");
    let reply = connection.command("o1", "LOGOUT");
    assert!(reply[0].starts_with("* BYE"), "{reply:?}");
    assert_tagged(&reply, "o1 OK");
    assert_eq!(connection.read_line(), None, "data after LOGOUT");
}

#[test]
fn implicit_tls12_client_logs_in() {
    let server = TestServer::start();
    let certificate = generated_certificate(&server);
    let socket = tcp_connect(server.imaps.unwrap(), None);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = handshake(socket, config).unwrap();
    let mut connection = Connection { reader: BufReader::new(Stream::Tls(Box::new(stream))) };
    assert!(connection.read_line().unwrap().starts_with("* OK "));
    assert_eq!(connection.tls().protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));

    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
}

#[test]
fn untrusted_cleartext_capabilities() {
    let server = start_trusting_one_address();
    let untrusted = Some(IpAddr::from(UNTRUSTED_ADDRESS));
    let (mut connection, greeting) = Connection::connect_plain(server.imap, untrusted);

    let greeted = greeting_capabilities(&greeting);
    let listed = connection.capabilities("c1");
    for capabilities in [&greeted, &listed] {
        assert!(has(capabilities, "STARTTLS"), "{capabilities:?}");
        assert!(has(capabilities, "LOGINDISABLED"), "{capabilities:?}");
    }
    for capabilities in [&greeted, &listed] {
        // RFC 4616 (Security Considerations): PLAIN should not be
        // advertised without TLS, and this server rejects it here anyway.
        assert!(
            !capabilities.iter().any(|name| name.to_ascii_uppercase().starts_with("AUTH=")),
            "AUTH=PLAIN is advertised before TLS to a client outside trusted_networks, next to \
             LOGINDISABLED, although AUTHENTICATE gets NO [PRIVACYREQUIRED]; the capability list \
             must drop AUTH= while login is disabled: {capabilities:?}"
        );
    }
}

#[test]
fn untrusted_cleartext_login_rejected() {
    let server = start_trusting_one_address();
    let untrusted = Some(IpAddr::from(UNTRUSTED_ADDRESS));
    let (mut connection, _) = Connection::connect_plain(server.imap, untrusted);

    // More refusals than login_failures_max (3): they are not failed
    // logins, so the connection stays open for STARTTLS.
    let attempts = [
        format!("LOGIN {USER} {PASSWORD}"),
        format!("LOGIN {USER} wrong-password"),
        "AUTHENTICATE PLAIN".to_owned(),
        format!("AUTHENTICATE PLAIN {PLAIN_RESPONSE}"),
    ];
    for (index, attempt) in attempts.iter().enumerate() {
        let tag = format!("p{index}");
        let reply = connection.command(&tag, attempt);
        assert_eq!(reply.len(), 1, "{attempt}: {reply:?}");
        assert!(
            reply[0].starts_with(&format!("{tag} NO [PRIVACYREQUIRED]")),
            "{attempt}: expected NO [PRIVACYREQUIRED] (RFC 3501 section 6.2.3, RFC 5530), got {reply:?}"
        );
    }
    let reply = connection.command("s1", "SELECT INBOX");
    assert!(!reply.last().unwrap().starts_with("s1 OK"), "SELECT before login: {reply:?}");

    let certificate = generated_certificate(&server);
    let mut connection = connection.start_tls("t1", &[certificate]);
    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
}

#[test]
fn starttls_enables_login() {
    let server = start_trusting_one_address();
    let certificate = generated_certificate(&server);
    let untrusted = Some(IpAddr::from(UNTRUSTED_ADDRESS));
    let (connection, _) = Connection::connect_plain(server.imap, untrusted);

    let mut connection = connection.start_tls("t1", std::slice::from_ref(&certificate));
    assert_eq!(connection.tls().alpn_protocol(), Some(&b"imap"[..]), "ALPN protocol");
    assert_eq!(connection.presented_fingerprint(), server.tls_fingerprint());
    // RFC 3501 section 6.2.1: the client must ask for capabilities again,
    // because they change with TLS.
    let capabilities = connection.capabilities("c1");
    assert!(has(&capabilities, "AUTH=PLAIN"), "{capabilities:?}");
    assert!(!has(&capabilities, "STARTTLS"), "{capabilities:?}");
    assert!(!has(&capabilities, "LOGINDISABLED"), "{capabilities:?}");

    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
    let reply = connection.command("s1", "SELECT INBOX");
    assert_tagged(&reply, "s1 OK");

    // AUTHENTICATE PLAIN with SASL-IR (RFC 4959) works after STARTTLS too.
    let (connection, _) = Connection::connect_plain(server.imap, untrusted);
    let mut connection = connection.start_tls("t2", &[certificate]);
    let reply = connection.command("a1", &format!("AUTHENTICATE PLAIN {PLAIN_RESPONSE}"));
    assert_tagged(&reply, "a1 OK");
}

#[test]
fn authenticate_continuation_after_starttls() {
    let server = start_trusting_one_address();
    let certificate = generated_certificate(&server);
    let (connection, _) = Connection::connect_plain(server.imap, Some(IpAddr::from(UNTRUSTED_ADDRESS)));
    let mut connection = connection.start_tls("t1", &[certificate]);

    connection.send(b"a1 AUTHENTICATE PLAIN\r\n");
    let continuation = connection.read_line().unwrap();
    assert!(continuation.starts_with("+"), "expected a continuation request, got {continuation:?}");
    connection.send(format!("{PLAIN_RESPONSE}\r\n").as_bytes());
    let reply = connection.read_tagged("a1");
    assert_tagged(&reply, "a1 OK");
}

#[test]
fn pipelined_command_after_starttls_discarded() {
    let server = start_trusting_one_address();
    let certificate = generated_certificate(&server);
    let (mut connection, _) = Connection::connect_plain(server.imap, Some(IpAddr::from(UNTRUSTED_ADDRESS)));

    // One write: a man in the middle could append the LOGIN to the
    // client's STARTTLS, and it must not run inside the TLS session.
    connection.send(format!("a STARTTLS\r\nb LOGIN {USER} {PASSWORD}\r\n").as_bytes());
    let reply = connection.read_line().unwrap();
    assert!(reply.starts_with("a OK"), "{reply}");
    let mut connection = connection.upgrade(&[certificate]).unwrap();

    connection.send(b"c NOOP\r\n");
    let next = connection.read_line().unwrap();
    assert!(next.starts_with("c OK"), "first line after the handshake is not the NOOP reply: {next}");
    let reply = connection.command("d", "SELECT INBOX");
    assert!(
        !reply.iter().any(|line| line.starts_with("b ")),
        "the pipelined LOGIN was answered: {reply:?}"
    );
    assert!(
        reply.last().unwrap().starts_with("d BAD") || reply.last().unwrap().starts_with("d NO"),
        "SELECT succeeded, so the pipelined LOGIN ran: {reply:?}"
    );
    let capabilities = connection.capabilities("e");
    assert!(has(&capabilities, "AUTH=PLAIN"), "not in the not-authenticated state: {capabilities:?}");
}

#[test]
fn starttls_inside_tls_rejected() {
    let server = start_trusting_one_address();
    let certificate = generated_certificate(&server);

    let (connection, _) = Connection::connect_plain(server.imap, Some(IpAddr::from(UNTRUSTED_ADDRESS)));
    let mut connection = connection.start_tls("t1", std::slice::from_ref(&certificate));
    let reply = connection.command("t2", "STARTTLS");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert_tagged(&reply, "t2 BAD");
    let reply = connection.command("n1", "NOOP");
    assert_tagged(&reply, "n1 OK");

    let (mut connection, _) = Connection::connect_tls(server.imaps.unwrap(), &[certificate]);
    let reply = connection.command("t3", "STARTTLS");
    assert_tagged(&reply, "t3 BAD");
    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
}

#[test]
fn trusted_client_logs_in_cleartext() {
    let server = start_trusting_one_address();
    let (mut connection, greeting) = Connection::connect_plain(server.imap, Some(IpAddr::from([127, 0, 0, 1])));

    let greeted = greeting_capabilities(&greeting);
    let listed = connection.capabilities("c1");
    for capabilities in [&greeted, &listed] {
        assert!(has(capabilities, "STARTTLS"), "{capabilities:?}");
        assert!(has(capabilities, "AUTH=PLAIN"), "{capabilities:?}");
        assert!(!has(capabilities, "LOGINDISABLED"), "{capabilities:?}");
    }
    let reply = connection.command("l1", &format!("LOGIN {USER} {PASSWORD}"));
    assert_tagged(&reply, "l1 OK");
}

/// Replaces the certificate and key files with a new pair made in `dir`.
/// Returns the new certificate.
fn replace_certificate(dir: &Path, certificate: &Path, key: &Path, name: &str) -> CertificateDer<'static> {
    let (new_certificate, new_key, der) = tls_support::write_certificate(dir, name);
    fs::rename(new_key, key).unwrap();
    fs::rename(new_certificate, certificate).unwrap();
    der
}

#[test]
fn reload_switches_certificate_keeps_sessions() {
    let certificates = tempfile::tempdir().unwrap();
    let (certificate_path, key_path, old) = tls_support::write_certificate(certificates.path(), "old");
    let server = TestServer::start_with(|config| {
        config.tls.settings = tls::TlsSettings {
            cert_path: Some(certificate_path.clone()),
            key_path: Some(key_path.clone()),
        };
    });
    let old_fingerprint = server.tls_fingerprint();

    let (mut open, _) = Connection::connect_tls(server.imaps.unwrap(), std::slice::from_ref(&old));
    assert_eq!(open.presented_fingerprint(), old_fingerprint);
    assert_tagged(&open.command("l1", &format!("LOGIN {USER} {PASSWORD}")), "l1 OK");
    assert_tagged(&open.command("s1", "SELECT INBOX"), "s1 OK");

    let new = replace_certificate(certificates.path(), &certificate_path, &key_path, "new");
    server.reload_tls().unwrap();
    let new_fingerprint = server.tls_fingerprint();
    assert_ne!(new_fingerprint, old_fingerprint);

    let both = [old.clone(), new.clone()];
    let (mut fresh, _) = Connection::connect_tls(server.imaps.unwrap(), &both);
    assert_eq!(fresh.presented_fingerprint(), new_fingerprint, "implicit TLS after the reload");
    assert_tagged(&fresh.command("l2", &format!("LOGIN {USER} {PASSWORD}")), "l2 OK");
    let (plain, _) = Connection::connect_plain(server.imap, None);
    let upgraded = plain.start_tls("t1", &both);
    assert_eq!(upgraded.presented_fingerprint(), new_fingerprint, "STARTTLS after the reload");

    // A client that trusts only the old certificate is now rejected.
    let socket = tcp_connect(server.imaps.unwrap(), None);
    assert!(handshake(socket, client_config(&[old])).is_err(), "old certificate still served");

    // The session opened before the reload keeps working on its keys.
    let appended = message("after-reload", "Appended after the certificate reload.");
    open.send(format!("a1 APPEND INBOX {{{}+}}\r\n", appended.len()).as_bytes());
    open.send(&appended);
    open.send(b"\r\n");
    assert_tagged(&open.read_tagged("a1"), "a1 OK");
    let reply = open.command("f1", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert_tagged(&reply, "f1 OK");
    assert!(reply.iter().any(|line| line.contains("after-reload")), "{reply:?}");
}

#[test]
fn failed_reload_keeps_certificate() {
    let certificates = tempfile::tempdir().unwrap();
    let (certificate_path, key_path, old) = tls_support::write_certificate(certificates.path(), "old");
    let server = TestServer::start_with(|config| {
        config.tls.settings = tls::TlsSettings {
            cert_path: Some(certificate_path.clone()),
            key_path: Some(key_path.clone()),
        };
    });
    let old_fingerprint = server.tls_fingerprint();
    let (mut open, _) = Connection::connect_tls(server.imaps.unwrap(), std::slice::from_ref(&old));
    assert_tagged(&open.command("l1", &format!("LOGIN {USER} {PASSWORD}")), "l1 OK");

    // Half a PEM file, as an interrupted copy leaves it.
    let text = fs::read_to_string(&certificate_path).unwrap();
    fs::write(&certificate_path, &text[..text.len() / 2]).unwrap();
    let err = server.reload_tls().expect_err("reload of a truncated certificate succeeded");
    let message = format!("{err:#}");
    assert!(
        message.contains(&certificate_path.display().to_string()),
        "reload error does not name the file: {message}"
    );
    assert_eq!(server.tls_fingerprint(), old_fingerprint);

    let (mut fresh, _) = Connection::connect_tls(server.imaps.unwrap(), std::slice::from_ref(&old));
    assert_eq!(fresh.presented_fingerprint(), old_fingerprint);
    assert_tagged(&fresh.command("l2", &format!("LOGIN {USER} {PASSWORD}")), "l2 OK");
    assert_tagged(&open.command("n1", "NOOP"), "n1 OK");
}

/// A TLS 1.1 ClientHello (legacy version 0x0302, no supported_versions
/// extension) for `localhost`, with two CBC cipher suites of that era.
fn tls11_client_hello() -> Vec<u8> {
    let host = b"localhost";
    let mut extensions = Vec::new();
    // server_name (RFC 6066 section 3): one host_name entry.
    let entry_len = 3 + host.len() as u16;
    extensions.extend_from_slice(&[0x00, 0x00]);
    extensions.extend_from_slice(&(entry_len + 2).to_be_bytes());
    extensions.extend_from_slice(&entry_len.to_be_bytes());
    extensions.push(0);
    extensions.extend_from_slice(&(host.len() as u16).to_be_bytes());
    extensions.extend_from_slice(host);
    // supported_groups (RFC 8422): secp256r1 and x25519.
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d]);
    // ec_point_formats (RFC 8422): uncompressed only.
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);

    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x02]);
    hello.extend_from_slice(&[0x42; 32]);
    hello.push(0);
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA and TLS_RSA_WITH_AES_256_CBC_SHA.
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x35]);
    hello.extend_from_slice(&[0x01, 0x00]);
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);

    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a TLS 1.1 ClientHello and checks that the server replies with a
/// fatal alert and closes.
fn assert_tls11_rejected(mut socket: TcpStream, listener: &str) {
    socket.write_all(&tls11_client_hello()).unwrap();
    let mut reply = Vec::new();
    let read = socket.read_to_end(&mut reply);
    let closed = match &read {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "{listener}: connection not closed after the alert: {read:?}, got {reply:?}");
    assert!(reply.len() >= 7, "{listener}: reply too short for an alert: {reply:?}");
    assert_eq!(reply[0], 21, "{listener}: expected an alert record, got {reply:?}");
    assert_eq!(reply[5], 2, "{listener}: alert is not fatal: {reply:?}");
    // NOTE: RFC 8446 section 4.2.1 requires protocol_version (70). rustls
    // 0.23 sends handshake_failure (40) instead, both to this hello and to
    // OpenSSL 3.0's TLS 1.1 client, and neither sends the
    // signature_algorithms extension. Either alert counts as a refusal.
    assert!(
        reply[6] == 70 || reply[6] == 40,
        "{listener}: alert is neither protocol_version nor handshake_failure: {reply:?}"
    );
}

#[test]
fn tls11_client_refused() {
    let server = start_trusting_one_address();

    let socket = tcp_connect(server.imaps.unwrap(), None);
    assert_tls11_rejected(socket, "implicit TLS");

    let (mut connection, _) = Connection::connect_plain(server.imap, Some(IpAddr::from(UNTRUSTED_ADDRESS)));
    let reply = connection.command("t1", "STARTTLS");
    assert_tagged(&reply, "t1 OK");
    assert!(connection.reader.buffer().is_empty());
    let Stream::Plain(socket) = connection.reader.into_inner() else { unreachable!() };
    assert_tls11_rejected(socket, "STARTTLS");
}

#[test]
fn foreign_alpn_rejected() {
    let server = TestServer::start();
    let certificate = generated_certificate(&server);
    let mut config = tls_support::client_config(&[certificate]);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tcp_connect(server.imaps.unwrap(), None);
    let err = handshake(socket, config).expect_err("handshake with ALPN http/1.1 succeeded");
    assert!(err.to_string().to_ascii_lowercase().contains("alpn") || err.to_string().contains("NoApplicationProtocol"), "{err}");
}
