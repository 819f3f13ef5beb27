//! Tests of the test harness itself: the IMAP client's limits against a
//! scripted loopback server, and a Dovecot instance's start and stop.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::Duration;

use roost_testkit::client::{Client, ClientLimits};
use roost_testkit::dovecot::Dovecot;

/// Starts a one-connection server on loopback that sends `greeting`, then
/// replies to the first command line with `reply`.
fn scripted_server(greeting: Vec<u8>, reply: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(&greeting).unwrap();
        let mut buffer = [0u8; 256];
        let _ = stream.read(&mut buffer);
        let _ = stream.write_all(&reply);
        // Keep the socket open until the client is done with it.
        let _ = stream.read(&mut buffer);
    });
    address
}

fn limits(response_bytes_max: usize) -> ClientLimits {
    ClientLimits { timeout: Duration::from_secs(5), response_bytes_max, untagged_count_max: 10 }
}

#[test]
fn client_reads_literal_at_limit() {
    // "* 1 FETCH (BODY[] {5}", CRLF, "hello" and ")" make 29 bytes.
    let reply = b"* 1 FETCH (BODY[] {5}\r\nhello)\r\nt1 OK done\r\n".to_vec();
    let address = scripted_server(b"* OK ready\r\n".to_vec(), reply);
    let mut client = Client::connect(address, limits(29)).unwrap();
    let reply = client.command("FETCH 1 BODY[]").unwrap();
    assert!(reply.is_ok());
    assert_eq!(reply.untagged, vec![b"* 1 FETCH (BODY[] {5}\r\nhello)".to_vec()]);
}

#[test]
fn client_rejects_literal_past_limit() {
    let reply = b"* 1 FETCH (BODY[] {5}\r\nhello)\r\nt1 OK done\r\n".to_vec();
    let address = scripted_server(b"* OK ready\r\n".to_vec(), reply);
    let mut client = Client::connect(address, limits(28)).unwrap();
    let error = client.command("FETCH 1 BODY[]").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
}

#[test]
fn client_rejects_too_many_untagged() {
    let reply = "* OK x\r\n".repeat(11).into_bytes();
    let address = scripted_server(b"* OK ready\r\n".to_vec(), reply);
    let mut client = Client::connect(address, limits(1000)).unwrap();
    let error = client.command("NOOP").unwrap_err();
    assert!(error.to_string().contains("untagged"), "{error}");
}

#[test]
fn client_times_out_on_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let limits = ClientLimits { timeout: Duration::from_millis(200), ..limits(1000) };
    let error = Client::connect(address, limits).err().expect("connect must fail without a greeting");
    assert!(
        matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        "{error}"
    );
    drop(listener);
}

#[test]
fn dovecot_starts_serves_and_stops() {
    let dovecot = Dovecot::start().unwrap_or_else(|e| panic!("{e}"));
    let mut client = dovecot.login().expect("login");
    let reply = client.append("INBOX", b"Subject: hi\r\n\r\nbody\r\n").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    let reply = client.command("SELECT INBOX").unwrap();
    assert!(reply.untagged.iter().any(|line| line == b"* 1 EXISTS"), "{:?}", reply.untagged);
    let reply = client.command("FETCH 1 BODY.PEEK[TEXT]").unwrap();
    assert_eq!(reply.untagged, vec![b"* 1 FETCH (BODY[TEXT] {6}\r\nbody\r\n)".to_vec()]);

    let pid = dovecot.master_pid().expect("master pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(client);
    drop(dovecot);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "dovecot master {pid} still runs after drop");
}
