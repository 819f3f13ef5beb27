//! Invalid and hostile input over a real socket: every line gets a BAD or
//! NO (or a BYE where the stream cannot be resynchronised), the server
//! never panics, and the session keeps answering afterwards.

mod common;

use std::time::{Duration, Instant};

use common::{RawConnection, TestServer, message};

/// Sends `input` and returns the lines up to the tagged reply of a NOOP
/// sent after it, which proves the session still runs.
fn send_then_noop(connection: &mut RawConnection, input: &[u8]) -> Vec<String> {
    connection.send(input);
    connection.send(b"zz NOOP\r\n");
    connection.read_tagged("zz")
}

#[test]
fn invalid_lines_get_bad_and_session_continues() {
    let server = TestServer::start();
    let mut client = server.login();
    assert!(client.append("INBOX", &message("one", "x")).unwrap().is_ok());
    let mut connection = RawConnection::login(server.imap);
    connection.command("s", "SELECT INBOX");

    let cases: &[&[u8]] = &[
        b"\r\n",
        b"   \r\n",
        b"a\r\n",
        b"a NONSENSE\r\n",
        b"* NOOP\r\n",
        b"+ NOOP\r\n",
        b"a NOOP extra\r\n",
        b"a FETCH 0 FLAGS\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        b"a FETCH 99999 FLAGS\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20]\r\n",
        b"a FETCH 1 BODY[]<4294967295.4294967295>\r\n",
        b"a FETCH 1:4294967295 FLAGS\r\n",
        b"a UID FETCH 4294967295:* FLAGS\r\n",
        b"a STORE 1 +FLAGS (\\Nonexistent)\r\n",
        b"a STORE 1 FLAGS (\\Recent)\r\n",
        b"a SEARCH ((((((((((((((((((((ALL))))))))))))))))))))\r\n",
        b"a SEARCH NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT ALL\r\n",
        b"a SEARCH LARGER 99999999999999999999\r\n",
        b"a SEARCH BEFORE 31-Feb-2020\r\n",
        b"a SELECT \"unterminated\r\n",
        b"a SELECT \"\\q\"\r\n",
        b"a CREATE \"\"\r\n",
        b"a CREATE /\r\n",
        b"a CREATE a//b\r\n",
        b"a CREATE &Jjo\r\n",
        b"a CREATE &AAA-\r\n",
        b"a LIST \"\" \"\\x00\"\r\n",
        b"a NOOP\x00\r\n",
        b"a\x00b NOOP\r\n",
        b"a SEARCH SUBJECT \xff\xfe\r\n",
        b"a SEARCH CHARSET UTF-8 SUBJECT \"\xc3\x28\"\r\n",
        b"a APPEND INBOX (\\Seen) \"99-Xyz-2020 99:99:99 +9999\" {3+}\r\nabc\r\n",
        b"a APPEND INBOX ~{3+}\r\nabc\r\n",
        b"a COPY 1:* \"\"\r\n",
        b"a MOVE 1 INBOX\r\n",
        b"a ID (\"a\")\r\n",
        b"a ENABLE\r\n",
        b"a AUTHENTICATE PLAIN\r\n",
        b"a LOGIN a b\r\n",
        b"a IDLE extra\r\n",
        b"DONE\r\n",
        b"a UID\r\n",
        b"a UID NOOP\r\n",
        b"a SEARCH {99999999999999}\r\n",
        b"a NOOP {x}\r\n",
    ];
    for input in cases {
        let lines = send_then_noop(&mut connection, input);
        let shown = String::from_utf8_lossy(input);
        assert!(lines.last().unwrap().starts_with("zz OK"), "{shown:?} broke the session: {lines:?}");
        for line in &lines[..lines.len() - 1] {
            assert!(!line.starts_with("* BYE"), "{shown:?} closed the session: {lines:?}");
        }
    }

    // The message is unharmed and still the only one.
    let reply = connection.command("f", "FETCH 1:* (UID RFC822.SIZE)");
    assert!(reply.last().unwrap().starts_with("f OK"), "{reply:?}");
}

#[test]
fn bare_line_feeds_are_answered() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(b"a NOOP\n");
    let reply = connection.read_tagged("a");
    assert!(reply.last().unwrap().starts_with("a "), "{reply:?}");
    let reply = connection.command("b", "NOOP");
    assert_eq!(reply, vec!["b OK NOOP completed".to_owned()]);
}

#[test]
fn byte_at_a_time_command_works() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    for byte in format!("a LOGIN {} {}\r\n", common::USER, common::PASSWORD).bytes() {
        connection.send(&[byte]);
    }
    let reply = connection.read_tagged("a");
    assert!(reply.last().unwrap().starts_with("a OK"), "{reply:?}");
}

#[test]
fn pipelined_commands_answered_in_order() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    let mut batch = Vec::new();
    for index in 0..50 {
        batch.extend_from_slice(format!("p{index} NOOP\r\n").as_bytes());
    }
    connection.send(&batch);
    for index in 0..50 {
        let reply = connection.read_tagged(&format!("p{index}"));
        assert_eq!(reply, vec![format!("p{index} OK NOOP completed")]);
    }
}

/// A small deterministic generator (xorshift64), so a failure can be
/// reproduced from the seed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Lines built from command words, IMAP syntax characters and random
/// bytes. Each stays under the default line limit and has no literal
/// announcement at its end, so the stream stays in step.
#[test]
fn random_lines_never_break_session() {
    const LINES: usize = 400;
    const TIME_LIMIT: Duration = Duration::from_secs(60);
    let words: &[&[u8]] = &[
        b"FETCH", b"STORE", b"SEARCH", b"UID", b"SELECT", b"LIST", b"STATUS", b"COPY", b"MOVE", b"EXPUNGE", b"BODY[",
        b"]", b"(", b")", b"\"", b"\\", b"*", b"%", b"1:*", b"<0.1>", b"FLAGS", b"HEADER.FIELDS", b"NOT", b"OR", b"{",
        b"}", b"~", b"+", b"INBOX", b"&", b"-", b" ", b" ", b" ",
    ];
    let server = TestServer::start();
    let mut client = server.login();
    assert!(client.append("INBOX", &message("one", "x")).unwrap().is_ok());
    let mut connection = RawConnection::login(server.imap);
    connection.command("s", "SELECT INBOX");

    let mut random = Xorshift(0x5eed_1234_abcd_9876);
    let started = Instant::now();
    for index in 0..LINES {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let mut line = format!("r{index} ").into_bytes();
        let parts = 1 + random.next() % 12;
        for _ in 0..parts {
            if random.next() % 4 == 0 {
                let byte = (random.next() % 256) as u8;
                if byte != b'\n' && byte != b'\r' {
                    line.push(byte);
                }
            } else {
                line.extend_from_slice(words[(random.next() as usize) % words.len()]);
            }
        }
        // A trailing `{n}` or `{n+}` would announce a literal.
        if line.ends_with(b"}") {
            line.push(b'x');
        }
        line.extend_from_slice(b"\r\n");
        let lines = send_then_noop(&mut connection, &line);
        let shown = String::from_utf8_lossy(&line);
        assert!(lines.last().unwrap().starts_with("zz OK"), "{shown:?} broke the session: {lines:?}");
    }
}
