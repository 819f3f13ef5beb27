//! RFC 3501 conformance of the commands on messages in a selected mailbox
//! (SEARCH, FETCH, STORE, COPY, MOVE, EXPUNGE, IDLE), over real sockets.
//! Also the updates that two or three sessions on one mailbox send each
//! other (RFC 3501 section 7.4.1).

mod common;

use common::{RawConnection, TestServer, lines, message};
use roost_testkit::client::{Client, Reply};

fn assert_ok(reply: &Reply) {
    assert!(reply.is_ok(), "{}", reply.tagged);
}

fn assert_tagged(reply: &Reply, status_and_code: &str) {
    let rest = reply.tagged.split_once(' ').map(|(_, rest)| rest).unwrap_or("");
    assert!(rest.starts_with(status_and_code), "expected {status_and_code}: {}", reply.tagged);
}

fn run(client: &mut Client, command: &str) -> Reply {
    client.command(command).unwrap()
}

/// Returns the single untagged line of a reply, failing otherwise.
fn only_line(reply: &Reply) -> String {
    let untagged = lines(reply);
    assert_eq!(untagged.len(), 1, "{untagged:?}");
    untagged.into_iter().next().unwrap()
}

/// Message 2: an RFC 2047 subject and a quoted-printable body.
const ENCODED: &str = "From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\nDate: Sun, 15 Jan 2023 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 au lait\r\n";

/// Message 3: a multipart with a text part, a base64 part and an
/// attached message.
const MULTIPART: &str = "From: Carol <carol@example.org>\r\nTo: alice@example.org\r\nCc: dave@example.org\r\nBcc: erin@example.org\r\nSubject: parts\r\nDate: Tue, 1 Mar 2022 08:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part text\r\n--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IHBocmFzZQ==\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: Eve <eve@example.org>\r\nSubject: inner subject\r\n\r\ninner body text\r\n--outer--\r\n";

/// Message 4: an ISO-8859-1 body sent as 8-bit.
fn latin1_message() -> Vec<u8> {
    let mut raw = b"From: Frank <frank@example.org>\r\nTo: alice@example.org\r\nSubject: latin\r\nDate: Wed, 1 Jun 2022 10:00:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHerr M".to_vec();
    raw.push(0xFC);
    raw.extend_from_slice(b"ller kommt\r\n");
    raw
}

/// Appends four varied messages with fixed internal dates, using LITERAL+.
fn fill_mailbox(server: &TestServer) {
    let mut connection = RawConnection::login(server.imap);
    let messages: [(&str, &str, Vec<u8>); 4] = [
        ("(\\Answered)", "01-Jan-2020 00:00:00 +0000", message("alpha", "plain body words")),
        ("(\\Flagged $Work)", "15-Jan-2023 12:00:00 +0000", ENCODED.as_bytes().to_vec()),
        ("(\\Draft)", "01-Mar-2022 08:00:00 +0000", MULTIPART.as_bytes().to_vec()),
        ("(\\Seen \\Deleted)", "01-Jun-2022 10:00:00 +0200", latin1_message()),
    ];
    for (index, (flags, date, raw)) in messages.iter().enumerate() {
        let tag = format!("f{index}");
        connection.send(format!("{tag} APPEND INBOX {flags} \"{date}\" {{{}+}}\r\n", raw.len()).as_bytes());
        connection.send(raw);
        connection.send(b"\r\n");
        let reply = connection.read_tagged(&tag);
        assert!(reply.last().unwrap().starts_with(&format!("{tag} OK")), "{reply:?}");
    }
}

/// Returns the flags of the FLAGS item in a FETCH line, sorted, because
/// the order of flags in a list carries no meaning.
fn flags_in(line: &str) -> Vec<String> {
    let start = line.find("FLAGS (").unwrap_or_else(|| panic!("no FLAGS in {line:?}")) + "FLAGS (".len();
    let end = start + line[start..].find(')').unwrap();
    let mut flags: Vec<String> = line[start..end].split_whitespace().map(str::to_owned).collect();
    flags.sort();
    flags
}

/// Returns `flags` sorted, for comparison with [`flags_in`].
fn sorted(flags: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = flags.iter().map(|flag| (*flag).to_owned()).collect();
    flags.sort();
    flags
}

fn selected_client(server: &TestServer) -> Client {
    fill_mailbox(server);
    let mut client = server.login();
    assert_ok(&run(&mut client, "SELECT INBOX"));
    client
}

#[test]
fn search_every_key() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let cases: &[(&str, &str)] = &[
        ("ALL", "1 2 3 4"),
        ("ANSWERED", "1"),
        ("UNANSWERED", "2 3 4"),
        ("DELETED", "4"),
        ("UNDELETED", "1 2 3"),
        ("DRAFT", "3"),
        ("UNDRAFT", "1 2 4"),
        ("FLAGGED", "2"),
        ("UNFLAGGED", "1 3 4"),
        ("SEEN", "4"),
        ("UNSEEN", "1 2 3"),
        ("KEYWORD $Work", "2"),
        ("UNKEYWORD $Work", "1 3 4"),
        ("KEYWORD $Other", ""),
        ("RECENT", "1 2 3 4"),
        ("NEW", "1 2 3"),
        ("OLD", ""),
        ("BEFORE 15-Jan-2023", "1 3 4"),
        ("ON 15-Jan-2023", "2"),
        ("SINCE 1-Mar-2022", "2 3 4"),
        ("SENTBEFORE 1-Jan-2000", "1"),
        ("SENTON 1-Mar-2022", "3"),
        ("SENTSINCE 1-Jun-2022", "2 4"),
        ("LARGER 500", "3"),
        ("SMALLER 230", "4"),
        ("FROM carol", "3"),
        ("FROM EXAMPLE.ORG", "1 2 3 4"),
        ("TO bob@example.org", "1"),
        ("CC dave", "3"),
        ("BCC erin", "3"),
        ("SUBJECT alpha", "1"),
        ("HEADER Message-ID alpha@", "1"),
        ("HEADER Cc \"\"", "3"),
        ("BODY \"plain body\"", "1"),
        ("BODY alpha", ""),
        ("TEXT alpha", "1"),
        ("TEXT \"first part\"", "3"),
        ("1:2", "1 2"),
        ("2,4", "2 4"),
        ("3:*", "3 4"),
        ("UID 2:3", "2 3"),
        ("UID 4:*", "4"),
        ("NOT SEEN", "1 2 3"),
        ("OR ANSWERED DRAFT", "1 3"),
        ("OR (FLAGGED SUBJECT nothing) NOT OR DELETED DRAFT", "1 2"),
        ("NOT (OR 1 2)", "3 4"),
        ("(UNSEEN UNDELETED) SMALLER 500", "1 2"),
        ("DRAFT FROM carol TO alice", "3"),
    ];
    for (criteria, expected) in cases {
        let reply = run(&mut client, &format!("SEARCH {criteria}"));
        assert_ok(&reply);
        let want = if expected.is_empty() { "* SEARCH".to_owned() } else { format!("* SEARCH {expected}") };
        assert_eq!(only_line(&reply), want, "SEARCH {criteria}");
    }
}

#[test]
fn search_sizes_match_rfc822_size() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let reply = run(&mut client, "FETCH 1:4 RFC822.SIZE");
    let sizes: Vec<u64> = lines(&reply)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().trim_end_matches(')').parse().unwrap())
        .collect();
    for (index, size) in sizes.iter().enumerate() {
        let reply = run(&mut client, &format!("SEARCH LARGER {} SMALLER {}", size - 1, size + 1));
        assert_eq!(only_line(&reply), format!("* SEARCH {}", index + 1), "sizes {sizes:?}");
    }
}

#[test]
fn search_decodes_encodings() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.command("l", &format!("LOGIN {} {}", common::USER, common::PASSWORD));
    connection.command("s", "SELECT INBOX");

    // An RFC 2047 subject, matched decoded, case-insensitively.
    let subject = "Grüße aus köln".as_bytes();
    connection.send(format!("a SEARCH CHARSET UTF-8 SUBJECT {{{}}}\r\n", subject.len()).as_bytes());
    assert!(connection.read_line().unwrap().starts_with('+'));
    connection.send(subject);
    connection.send(b"\r\n");
    assert_eq!(connection.read_tagged("a"), vec!["* SEARCH 2".to_owned(), "a OK SEARCH completed".to_owned()]);

    // A quoted-printable body, matched decoded.
    let body = "café".as_bytes();
    connection.send(format!("b SEARCH CHARSET UTF-8 BODY {{{}+}}\r\n", body.len()).as_bytes());
    connection.send(body);
    connection.send(b"\r\n");
    assert_eq!(connection.read_tagged("b"), vec!["* SEARCH 2".to_owned(), "b OK SEARCH completed".to_owned()]);

    // An ISO-8859-1 search string in an 8-bit literal finds the
    // ISO-8859-1 body.
    connection.send(b"c SEARCH CHARSET ISO-8859-1 BODY {6}\r\n");
    assert!(connection.read_line().unwrap().starts_with('+'));
    connection.send(b"M\xFCller\r\n");
    assert_eq!(connection.read_tagged("c"), vec!["* SEARCH 4".to_owned(), "c OK SEARCH completed".to_owned()]);

    // A base64 text part is searched decoded. The base64 part of message
    // 3 is application/octet-stream, which is not text, so it is not
    // searched (Dovecot 2.3.19 does not match it either).
    let text = "From: g@example.org\r\nSubject: b64\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nZ2VoZWltZXIgdGV4dA==\r\n";
    assert!(client.append("INBOX", text.as_bytes()).unwrap().is_ok());
    let reply = run(&mut client, "SEARCH BODY \"geheimer text\"");
    assert_eq!(lines(&reply)[0], "* SEARCH 5");
    let reply = run(&mut client, "SEARCH BODY \"secret phrase\"");
    assert_eq!(only_line(&reply), "* SEARCH");

    let reply = run(&mut client, "SEARCH CHARSET X-UNKNOWN BODY x");
    assert_tagged(&reply, "NO [BADCHARSET");
    let reply = run(&mut client, "UID SEARCH ALL");
    assert_eq!(only_line(&reply), "* SEARCH 1 2 3 4 5");
}

#[test]
fn fetch_sections_of_multipart() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let cases: &[(&str, &str)] = &[
        ("BODY.PEEK[1]", "BODY[1] {15}\r\nfirst part text"),
        ("BODY.PEEK[1.MIME]", "BODY[1.MIME] {43}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"),
        ("BODY.PEEK[2]", "BODY[2] {20}\r\nc2VjcmV0IHBocmFzZQ=="),
        ("BODY.PEEK[3.HEADER]", "BODY[3.HEADER] {55}\r\nFrom: Eve <eve@example.org>\r\nSubject: inner subject\r\n\r\n"),
        ("BODY.PEEK[3.TEXT]", "BODY[3.TEXT] {15}\r\ninner body text"),
        ("BODY.PEEK[3.1]", "BODY[3.1] {15}\r\ninner body text"),
        ("BODY.PEEK[3.HEADER.FIELDS (SUBJECT)]", "BODY[3.HEADER.FIELDS (SUBJECT)] {26}\r\nSubject: inner subject\r\n\r\n"),
        ("BODY.PEEK[HEADER.FIELDS (Subject From)]", "BODY[HEADER.FIELDS (SUBJECT FROM)] {51}\r\nFrom: Carol <carol@example.org>\r\nSubject: parts\r\n\r\n"),
        ("BODY.PEEK[]<0.4>", "BODY[]<0> {4}\r\nFrom"),
        ("BODY.PEEK[1]<6.4>", "BODY[1]<6> {4}\r\npart"),
    ];
    for (item, expected) in cases {
        let reply = run(&mut client, &format!("FETCH 3 ({item})"));
        assert_ok(&reply);
        let line = only_line(&reply);
        let want = format!("* 3 FETCH ({expected})");
        assert!(line == want || line.eq_ignore_ascii_case(&want), "FETCH 3 ({item}): {line:?} != {want:?}");
    }

    // A partial fetch past the end, and a part that does not exist, give
    // empty strings (Dovecot 2.3.19 sends the same).
    let reply = run(&mut client, "FETCH 3 (BODY.PEEK[1]<100.4>)");
    assert_eq!(only_line(&reply), "* 3 FETCH (BODY[1]<100> {0}\r\n)");
    let reply = run(&mut client, "FETCH 3 (BODY.PEEK[4])");
    assert_eq!(only_line(&reply), "* 3 FETCH (BODY[4] {0}\r\n)");

    let reply = run(&mut client, "FETCH 3 (BODY.PEEK[HEADER.FIELDS.NOT (From To Cc Bcc Date MIME-Version Content-Type)])");
    let line = only_line(&reply);
    assert!(line.ends_with("{18}\r\nSubject: parts\r\n\r\n)"), "{line:?}");
    let reply = run(&mut client, "FETCH 3 (BODY.PEEK[TEXT])");
    let line = only_line(&reply);
    assert!(line.contains("}\r\npreamble\r\n--outer\r\n"), "{line:?}");
    assert!(line.ends_with("--outer--\r\n)"), "{line:?}");
}

#[test]
fn fetch_bodystructure_and_envelope() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let reply = run(&mut client, "FETCH 3 (BODYSTRUCTURE)");
    let line = only_line(&reply).to_ascii_lowercase();
    // The text part has no line end of its own (the CRLF before the
    // boundary belongs to the boundary), so it has 0 lines, as in Dovecot.
    assert!(line.starts_with("* 3 fetch (bodystructure ((\"text\" \"plain\" (\"charset\" \"utf-8\") nil nil \"7bit\" 15 0"), "{line}");
    assert!(line.contains("(\"application\" \"octet-stream\" nil nil nil \"base64\" 20"), "{line}");
    assert!(line.contains("(\"message\" \"rfc822\" nil nil nil \"7bit\" "), "{line}");
    assert!(line.contains("\"mixed\" (\"boundary\" \"outer\")"), "{line}");

    let reply = run(&mut client, "FETCH 1 (ENVELOPE)");
    assert_eq!(
        only_line(&reply),
        "* 1 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"alpha\" ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL \"<alpha@example.org>\"))"
    );
    let reply = run(&mut client, "FETCH 1 (BODY)");
    assert_eq!(only_line(&reply), "* 1 FETCH (BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 1))");
}

#[test]
fn fetch_macros_and_rfc822_items() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let reply = run(&mut client, "FETCH 1 FAST");
    let line = only_line(&reply);
    assert!(line.starts_with("* 1 FETCH (FLAGS (\\Answered \\Recent) INTERNALDATE \" 1-Jan-2020 00:00:00 +0000\" RFC822.SIZE "), "{line}");
    let reply = run(&mut client, "FETCH 1 ALL");
    let line = only_line(&reply);
    assert!(line.contains(" ENVELOPE ("), "{line}");
    let reply = run(&mut client, "FETCH 1 FULL");
    let line = only_line(&reply);
    assert!(line.contains(" ENVELOPE ("), "{line}");
    assert!(line.contains(" BODY ("), "{line}");

    let reply = run(&mut client, "FETCH 1 (RFC822.HEADER)");
    let line = only_line(&reply);
    assert!(line.contains("RFC822.HEADER {"), "{line}");
    assert!(line.ends_with("charset=us-ascii\r\n\r\n)"), "{line}");
    let reply = run(&mut client, "FETCH 1 (RFC822.TEXT)");
    let line = only_line(&reply);
    assert!(line.contains("RFC822.TEXT {18}\r\nplain body words\r\n"), "{line:?}");
    assert_eq!(flags_in(&line), sorted(&["\\Answered", "\\Seen", "\\Recent"]));
    let reply = run(&mut client, "FETCH 2 (RFC822)");
    let line = only_line(&reply);
    assert!(line.contains("RFC822 {"), "{line}");
    assert_eq!(flags_in(&line), sorted(&["\\Flagged", "\\Seen", "\\Recent", "$Work"]));

    let reply = run(&mut client, "UID FETCH 3 (FLAGS)");
    assert_eq!(only_line(&reply), "* 3 FETCH (UID 3 FLAGS (\\Draft \\Recent))");
    let reply = run(&mut client, "UID FETCH 9 (FLAGS)");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty());
    assert_tagged(&run(&mut client, "FETCH 9 (FLAGS)"), "BAD");
}

#[test]
fn fetch_body_sets_seen_and_peek_does_not() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let reply = run(&mut client, "FETCH 1 (BODY.PEEK[TEXT])");
    assert!(!only_line(&reply).contains("FLAGS"));
    let reply = run(&mut client, "FETCH 1 (BODY[TEXT])");
    let line = only_line(&reply);
    assert!(line.contains("BODY[TEXT] {18}\r\nplain body words\r\n"), "{line:?}");
    assert_eq!(flags_in(&line), sorted(&["\\Answered", "\\Seen", "\\Recent"]));
    // Already \Seen: no FLAGS the second time.
    let reply = run(&mut client, "FETCH 1 (BODY[TEXT])");
    assert!(!only_line(&reply).contains("FLAGS"), "{:?}", lines(&reply));
}

#[test]
fn store_variants() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    // A new keyword is announced in FLAGS and PERMANENTFLAGS first.
    let reply = run(&mut client, "STORE 1 FLAGS (\\Seen $Label)");
    let untagged = lines(&reply);
    assert!(untagged.iter().any(|l| l.starts_with("* FLAGS (") && l.contains("$Label")), "{untagged:?}");
    let fetch = untagged.last().unwrap();
    assert!(fetch.starts_with("* 1 FETCH (FLAGS ("), "{untagged:?}");
    assert_eq!(flags_in(fetch), sorted(&["\\Seen", "\\Recent", "$Label"]));
    let reply = run(&mut client, "STORE 1 +FLAGS (\\Flagged)");
    assert_eq!(flags_in(&only_line(&reply)), sorted(&["\\Flagged", "\\Seen", "\\Recent", "$Label"]));
    let reply = run(&mut client, "STORE 1 -FLAGS ($Label \\Seen)");
    let fetch = lines(&reply).last().unwrap().clone();
    assert_eq!(flags_in(&fetch), sorted(&["\\Flagged", "\\Recent"]));
    let reply = run(&mut client, "STORE 1:2 +FLAGS.SILENT (\\Deleted)");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty(), "{:?}", lines(&reply));
    let reply = run(&mut client, "UID STORE 2 -FLAGS (\\Deleted)");
    let line = only_line(&reply);
    assert!(line.starts_with("* 2 FETCH ("), "{line}");
    assert!(line.contains("UID 2"), "{line}");
    assert_eq!(flags_in(&line), sorted(&["\\Flagged", "\\Recent", "$Work"]));
    let reply = run(&mut client, "STORE 1 +FLAGS (\\Recent)");
    assert_tagged(&reply, "BAD");
    let reply = run(&mut client, "FETCH 1 FLAGS");
    assert_eq!(flags_in(&only_line(&reply)), sorted(&["\\Flagged", "\\Deleted", "\\Recent"]));
}

#[test]
fn copy_and_move_report_uids() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    let reply = run(&mut client, "COPY 2:3 Trash");
    assert_ok(&reply);
    let validity = reply.tagged.split(' ').nth(3).unwrap().to_owned();
    assert!(reply.tagged.contains(&format!(" OK [COPYUID {validity} 2:3 1:2]")), "{}", reply.tagged);
    let reply = run(&mut client, "UID COPY 4 Trash");
    assert!(reply.tagged.contains(&format!("[COPYUID {validity} 4 3]")), "{}", reply.tagged);
    assert_tagged(&run(&mut client, "COPY 1 nothing"), "NO [TRYCREATE]");

    let reply = run(&mut client, "MOVE 1:2 Sent");
    assert_ok(&reply);
    // Moving message 2 removes the last use of $Work, so a FLAGS update
    // may follow the EXPUNGE responses.
    let moved = lines(&reply);
    assert!(moved[0].starts_with("* OK [COPYUID "), "{moved:?}");
    assert!(moved[0].contains(" 1:2 1:2]"), "{moved:?}");
    assert_eq!(moved[1..3], ["* 2 EXPUNGE".to_owned(), "* 1 EXPUNGE".to_owned()]);
    assert!(moved[3..].iter().all(|l| l.starts_with("* FLAGS (") || l.starts_with("* OK [PERMANENTFLAGS (")), "{moved:?}");
    let reply = run(&mut client, "UID MOVE 4 Sent");
    let moved = lines(&reply);
    assert!(moved[0].contains(" 4 3]"), "{moved:?}");
    assert_eq!(moved[1], "* 2 EXPUNGE");
    let reply = run(&mut client, "UID SEARCH ALL");
    assert_eq!(only_line(&reply), "* SEARCH 3");
}

#[test]
fn expunge_sends_descending_numbers() {
    let server = TestServer::start();
    let mut client = selected_client(&server);
    assert_ok(&run(&mut client, "STORE 1:4 +FLAGS.SILENT (\\Deleted)"));
    assert_ok(&run(&mut client, "STORE 3 -FLAGS.SILENT (\\Deleted)"));
    // UID EXPUNGE removes only the named UIDs that are \Deleted.
    // Expunging message 2 removes the last use of $Work, so a FLAGS
    // update may follow the EXPUNGE responses.
    let reply = run(&mut client, "UID EXPUNGE 1:3");
    let expunged: Vec<String> = lines(&reply).into_iter().filter(|l| l.ends_with(" EXPUNGE")).collect();
    assert_eq!(expunged, vec!["* 2 EXPUNGE", "* 1 EXPUNGE"]);
    let reply = run(&mut client, "EXPUNGE");
    assert_eq!(lines(&reply), vec!["* 2 EXPUNGE"]);
    let reply = run(&mut client, "UID SEARCH ALL");
    assert_eq!(only_line(&reply), "* SEARCH 3");
}

#[test]
fn idle_reports_changes_until_done() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    connection.command("s", "SELECT INBOX");
    connection.send(b"i IDLE\r\n");
    assert!(connection.read_line().unwrap().starts_with("+ "));

    let mut other = server.login();
    assert!(other.append("INBOX", &message("new", "x")).unwrap().is_ok());
    assert_eq!(connection.read_line().unwrap(), "* 1 EXISTS");
    assert_eq!(connection.read_line().unwrap(), "* 1 RECENT");
    assert_ok(&run(&mut other, "SELECT INBOX"));
    assert_ok(&run(&mut other, "STORE 1 +FLAGS (\\Flagged)"));
    assert_eq!(connection.read_line().unwrap(), "* 1 FETCH (FLAGS (\\Flagged \\Recent))");

    connection.send(b"DONE\r\n");
    assert_eq!(connection.read_tagged("i"), vec!["i OK IDLE terminated".to_owned()]);
    let reply = connection.command("n", "NOOP");
    assert_eq!(reply, vec!["n OK NOOP completed".to_owned()]);
}

#[test]
fn idle_rejects_other_input() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    connection.command("s", "SELECT INBOX");
    connection.send(b"i IDLE\r\n");
    assert!(connection.read_line().unwrap().starts_with("+ "));
    connection.send(b"x NOOP\r\n");
    let line = connection.read_line().unwrap();
    assert!(line.starts_with("* BAD") || line.starts_with("i BAD"), "{line}");
}

#[test]
fn recent_goes_to_one_session() {
    let server = TestServer::start();
    let mut sessions: Vec<Client> = (0..3).map(|_| server.login()).collect();
    for session in &mut sessions {
        assert_ok(&run(session, "SELECT INBOX"));
    }
    let mut writer = server.login();
    assert!(writer.append("INBOX", &message("one", "x")).unwrap().is_ok());

    let mut holders = 0;
    for session in &mut sessions {
        let reply = run(session, "NOOP");
        let untagged = lines(&reply);
        assert!(untagged.contains(&"* 1 EXISTS".to_owned()), "{untagged:?}");
        let reply = run(session, "FETCH 1 FLAGS");
        if only_line(&reply).contains("\\Recent") {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

#[test]
fn expunge_waits_during_fetch_store_search() {
    let server = TestServer::start();
    fill_mailbox(&server);
    let mut first = server.login();
    let mut second = server.login();
    let mut third = server.login();
    for session in [&mut first, &mut second, &mut third] {
        assert_ok(&run(session, "SELECT INBOX"));
    }
    // Message 4 is \Deleted too, so UID EXPUNGE names only message 1.
    assert_ok(&run(&mut second, "STORE 1 +FLAGS.SILENT (\\Deleted)"));
    assert_ok(&run(&mut second, "UID EXPUNGE 1"));

    // FETCH, STORE and SEARCH keep the old numbers and send no EXPUNGE,
    // though FETCH may report the new flags.
    let reply = run(&mut first, "FETCH 2 (UID)");
    assert!(!lines(&reply).iter().any(|l| l.contains("EXPUNGE")), "{:?}", lines(&reply));
    assert!(lines(&reply).contains(&"* 2 FETCH (UID 2)".to_owned()), "{:?}", lines(&reply));
    let reply = run(&mut first, "STORE 2 +FLAGS (\\Seen)");
    assert!(!lines(&reply).iter().any(|l| l.contains("EXPUNGE")), "{:?}", lines(&reply));
    let fetch = lines(&reply).into_iter().find(|l| l.starts_with("* 2 FETCH (FLAGS (")).unwrap();
    assert_eq!(flags_in(&fetch), sorted(&["\\Flagged", "\\Seen", "\\Recent", "$Work"]));
    let reply = run(&mut first, "SEARCH SEEN");
    assert!(!lines(&reply).iter().any(|l| l.contains("EXPUNGE")), "{:?}", lines(&reply));
    assert!(lines(&reply).contains(&"* SEARCH 2 4".to_owned()), "{:?}", lines(&reply));

    // NOOP delivers the EXPUNGE, and the numbers shift.
    let reply = run(&mut first, "NOOP");
    assert!(lines(&reply).contains(&"* 1 EXPUNGE".to_owned()), "{:?}", lines(&reply));
    let reply = run(&mut first, "FETCH 1 (UID)");
    assert_eq!(only_line(&reply), "* 1 FETCH (UID 2)");

    // The third session saw nothing yet; UID FETCH may report the
    // expunge, after which its numbers agree with the others.
    let reply = run(&mut third, "UID FETCH 2 (FLAGS)");
    // The FETCH result uses the numbers from before the EXPUNGE, which the
    // dispatcher sends after it.
    let untagged = lines(&reply);
    assert!(untagged[0].starts_with("* 2 FETCH (UID 2 "), "{untagged:?}");
    assert_eq!(untagged[1], "* 1 EXPUNGE", "{untagged:?}");
    let reply = run(&mut third, "FETCH 1:* (UID)");
    assert_eq!(lines(&reply), vec!["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)"]);
}

#[test]
fn idle_reports_expunge_from_other_session() {
    let server = TestServer::start();
    fill_mailbox(&server);
    let mut connection = RawConnection::login(server.imap);
    connection.command("s", "SELECT INBOX");
    connection.send(b"i IDLE\r\n");
    assert!(connection.read_line().unwrap().starts_with("+ "));

    // Message 4 is the only \Deleted one.
    let mut other = server.login();
    assert_ok(&run(&mut other, "SELECT INBOX"));
    assert_ok(&run(&mut other, "EXPUNGE"));
    assert_eq!(connection.read_line().unwrap(), "* 4 EXPUNGE");

    connection.send(b"DONE\r\n");
    assert_eq!(connection.read_tagged("i"), vec!["i OK IDLE terminated".to_owned()]);
    let reply = connection.command("f", "FETCH 1:* (UID)");
    assert_eq!(reply.len(), 4, "{reply:?}");
}
