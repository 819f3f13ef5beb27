//! RFC 3501 conformance of the commands valid in any state, the
//! authentication commands and the mailbox commands, over real sockets:
//! each tagged result, and the untagged data exactly where the RFC fixes
//! it. Message commands are in `imap_messages.rs`.

mod common;

use common::{PASSWORD, RawConnection, TestServer, USER, lines, message};
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

/// Returns the LIST or LSUB lines of a reply, sorted so that tests do not
/// depend on the order of the listing.
fn listing(reply: &Reply) -> Vec<String> {
    let mut listed = lines(reply);
    listed.sort();
    listed
}

#[test]
fn capability_in_every_state() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, "CAPABILITY");
    assert_ok(&reply);
    let before = lines(&reply);
    assert_eq!(before.len(), 1, "{before:?}");
    for name in ["IMAP4rev1", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID", "ENABLE"] {
        assert!(before[0].split(' ').any(|word| word.eq_ignore_ascii_case(name)), "{name} missing: {before:?}");
    }

    client.login(USER, PASSWORD).unwrap();
    let reply = run(&mut client, "CAPABILITY");
    let after = lines(&reply)[0].clone();
    for name in ["IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT", "LITERAL+"] {
        assert!(after.split(' ').any(|word| word.eq_ignore_ascii_case(name)), "{name} missing: {after}");
    }
    assert!(!after.contains("AUTH=PLAIN"), "AUTH= is not offered after login: {after}");

    assert_ok(&run(&mut client, "SELECT INBOX"));
    let reply = run(&mut client, "CAPABILITY");
    assert_eq!(lines(&reply), vec![after]);
}

#[test]
fn noop_in_every_state() {
    let server = TestServer::start();
    let mut client = server.connect();
    assert_eq!(run(&mut client, "NOOP").tagged, "t1 OK NOOP completed");
    client.login(USER, PASSWORD).unwrap();
    assert_ok(&run(&mut client, "NOOP"));
    assert_ok(&run(&mut client, "SELECT INBOX"));
    let reply = run(&mut client, "NOOP");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty(), "{:?}", lines(&reply));
}

#[test]
fn logout_sends_bye_then_ok_and_closes() {
    let server = TestServer::start();
    for login in [false, true] {
        let (mut connection, _) = RawConnection::connect(server.imap);
        if login {
            connection.command("l", &format!("LOGIN {USER} {PASSWORD}"));
        }
        connection.send(b"a LOGOUT\r\n");
        let lines = connection.read_to_close();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("* BYE "), "{lines:?}");
        assert!(lines[1].starts_with("a OK "), "{lines:?}");
    }
}

#[test]
fn greeting_lists_capabilities() {
    let server = TestServer::start();
    let (_connection, greeting) = RawConnection::connect(server.imap);
    // Capability names are case-insensitive (RFC 3501 section 9).
    assert!(greeting.to_ascii_uppercase().starts_with("* OK [CAPABILITY IMAP4REV1 "), "{greeting}");
}

#[test]
fn login_bad_password_is_authenticationfailed() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, "LOGIN alice wrong");
    assert_tagged(&reply, "NO [AUTHENTICATIONFAILED]");
    let reply = run(&mut client, "LOGIN nobody wrong");
    assert_tagged(&reply, "NO [AUTHENTICATIONFAILED]");
    // Still not authenticated.
    assert_tagged(&run(&mut client, "SELECT INBOX"), "BAD");
}

#[test]
fn login_ok_carries_capability() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, &format!("LOGIN {USER} {PASSWORD}"));
    assert!(reply.tagged.to_ascii_uppercase().starts_with("T1 OK [CAPABILITY IMAP4REV1 "), "{}", reply.tagged);
    assert_tagged(&run(&mut client, &format!("LOGIN {USER} {PASSWORD}")), "BAD");
}

#[test]
fn login_failures_max_ends_session() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    for tag in ["a", "b"] {
        let reply = connection.command(tag, "LOGIN alice wrong");
        assert!(reply[0].starts_with(&format!("{tag} NO [AUTHENTICATIONFAILED]")), "{reply:?}");
    }
    connection.send(b"c LOGIN alice wrong\r\n");
    let lines = connection.read_to_close();
    assert!(lines[0].starts_with("c NO [AUTHENTICATIONFAILED]"), "{lines:?}");
    assert!(lines[1].starts_with("* BYE "), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
}

/// Base64 of a PLAIN response (RFC 4616) for `authzid`, `user`, `password`.
fn plain(authzid: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}

#[test]
fn authenticate_plain_with_initial_response() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, &format!("AUTHENTICATE PLAIN {}", plain("", USER, PASSWORD)));
    assert_tagged(&reply, "OK [CAPABILITY ");
    assert_ok(&run(&mut client, "SELECT INBOX"));
}

#[test]
fn authenticate_plain_with_continuation() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(b"a AUTHENTICATE PLAIN\r\n");
    let continuation = connection.read_line().unwrap();
    assert!(continuation == "+ " || continuation == "+", "{continuation:?}");
    connection.send(format!("{}\r\n", plain("", USER, PASSWORD)).as_bytes());
    let reply = connection.read_tagged("a");
    assert!(reply.last().unwrap().starts_with("a OK"), "{reply:?}");
}

#[test]
fn authenticate_cancelled_with_star() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(b"a AUTHENTICATE PLAIN\r\n");
    assert!(connection.read_line().unwrap().starts_with('+'));
    connection.send(b"*\r\n");
    let reply = connection.read_tagged("a");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("a BAD"), "{reply:?}");
    // Cancelling is not a failed login, and the session goes on.
    let reply = connection.command("b", &format!("LOGIN {USER} {PASSWORD}"));
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

#[test]
fn authenticate_with_authzid() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, &format!("AUTHENTICATE PLAIN {}", plain("bob", USER, PASSWORD)));
    assert_tagged(&reply, "NO [AUTHORIZATIONFAILED]");
    let reply = run(&mut client, &format!("AUTHENTICATE PLAIN {}", plain(USER, USER, PASSWORD)));
    assert_tagged(&reply, "OK");
}

#[test]
fn authenticate_bad_password_and_mechanism() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, &format!("AUTHENTICATE PLAIN {}", plain("", USER, "nope")));
    assert_tagged(&reply, "NO [AUTHENTICATIONFAILED]");
    let reply = run(&mut client, "AUTHENTICATE CRAM-MD5");
    assert_tagged(&reply, "NO");
    let reply = run(&mut client, "AUTHENTICATE PLAIN bm90IHBsYWlu");
    assert_tagged(&reply, "BAD");
}

#[test]
fn commands_in_wrong_state_are_bad() {
    let server = TestServer::start();
    let mut client = server.connect();
    for command in ["SELECT INBOX", "LIST \"\" *", "CREATE x", "FETCH 1 FLAGS", "EXPUNGE", "IDLE", "NAMESPACE", "STATUS INBOX (MESSAGES)"] {
        let reply = run(&mut client, command);
        assert_tagged(&reply, "BAD");
    }
    client.login(USER, PASSWORD).unwrap();
    for command in ["FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE", "CLOSE", "COPY 1 Trash", "UID FETCH 1 FLAGS", "MOVE 1 Trash", "CHECK", "UNSELECT"] {
        let reply = run(&mut client, command);
        assert_tagged(&reply, "BAD");
    }
    assert_tagged(&run(&mut client, "LOGIN alice wonderland"), "BAD");
    assert_tagged(&run(&mut client, "AUTHENTICATE PLAIN AA=="), "BAD");
}

#[test]
fn namespace_id_enable() {
    let server = TestServer::start();
    let mut client = server.connect();
    let reply = run(&mut client, "ID (\"name\" \"test\" \"version\" \"1\")");
    assert_ok(&reply);
    let id = lines(&reply);
    assert_eq!(id.len(), 1);
    assert!(id[0].starts_with("* ID (\"name\" \"Roost\" \"version\" "), "{id:?}");
    assert_ok(&run(&mut client, "ID NIL"));

    client.login(USER, PASSWORD).unwrap();
    let reply = run(&mut client, "NAMESPACE");
    assert_ok(&reply);
    assert_eq!(lines(&reply), vec!["* NAMESPACE ((\"\" \"/\")) NIL NIL"]);

    let reply = run(&mut client, "ENABLE FOO");
    assert_ok(&reply);
    assert_eq!(lines(&reply), vec!["* ENABLED"]);
}

#[test]
fn create_and_list_hierarchy() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE a/b/c"));
    // A trailing separator only announces that children will follow.
    assert_ok(&run(&mut client, "CREATE d/"));
    assert_tagged(&run(&mut client, "CREATE d"), "NO [ALREADYEXISTS]");
    assert_tagged(&run(&mut client, "CREATE a/b/c"), "NO [ALREADYEXISTS]");
    assert_tagged(&run(&mut client, "CREATE INBOX"), "NO");
    assert_tagged(&run(&mut client, "CREATE inbox"), "NO");

    let reply = run(&mut client, "LIST \"\" *");
    assert_ok(&reply);
    let listed = listing(&reply);
    for expected in [
        "* LIST (\\HasChildren) \"/\" a",
        "* LIST (\\HasChildren) \"/\" a/b",
        "* LIST (\\HasNoChildren) \"/\" a/b/c",
        "* LIST (\\HasNoChildren) \"/\" d",
        "* LIST (\\HasNoChildren) \"/\" INBOX",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
    ] {
        assert!(listed.iter().any(|line| line == expected), "{expected} missing: {listed:?}");
    }
    assert_eq!(listed.len(), 8, "{listed:?}");
}

#[test]
fn list_reference_and_patterns() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE work/2024/q1"));
    assert_ok(&run(&mut client, "CREATE work/2025"));

    let reply = run(&mut client, "LIST \"\" \"\"");
    assert_eq!(lines(&reply), vec!["* LIST (\\Noselect) \"/\" \"\""]);

    let reply = run(&mut client, "LIST \"\" %");
    let top: Vec<String> = listing(&reply);
    assert!(top.iter().any(|l| l.ends_with("\"/\" work")), "{top:?}");
    assert!(!top.iter().any(|l| l.contains("work/")), "{top:?}");

    let reply = run(&mut client, "LIST work/ %");
    assert_eq!(listing(&reply), vec![
        "* LIST (\\HasChildren) \"/\" work/2024".to_owned(),
        "* LIST (\\HasNoChildren) \"/\" work/2025".to_owned(),
    ]);
    let reply = run(&mut client, "LIST work *");
    assert!(listing(&reply).iter().any(|l| l.ends_with("work/2024/q1")), "{:?}", lines(&reply));
    let reply = run(&mut client, "LIST \"\" work/*/q1");
    assert_eq!(lines(&reply), vec!["* LIST (\\HasNoChildren) \"/\" work/2024/q1"]);

    // INBOX matches in any case.
    let reply = run(&mut client, "LIST \"\" inbox");
    assert_eq!(lines(&reply), vec!["* LIST (\\HasNoChildren) \"/\" INBOX"]);
    let reply = run(&mut client, "LIST \"\" nothing*");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty());
}

#[test]
fn list_shows_implied_parent_noselect() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE p/child"));
    assert_ok(&run(&mut client, "DELETE p"));
    let reply = run(&mut client, "LIST \"\" p*");
    assert_eq!(listing(&reply), vec![
        "* LIST (\\HasNoChildren) \"/\" p/child".to_owned(),
        "* LIST (\\Noselect \\HasChildren) \"/\" p".to_owned(),
    ]);
    assert_tagged(&run(&mut client, "SELECT p"), "NO");
}

#[test]
fn modified_utf7_names_round_trip() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE Entw&APw-rfe"));
    let reply = run(&mut client, "LIST \"\" Entw*");
    assert_eq!(lines(&reply), vec!["* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe"]);
    assert_ok(&run(&mut client, "SELECT Entw&APw-rfe"));
    let reply = run(&mut client, "STATUS Entw&APw-rfe (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS Entw&APw-rfe (MESSAGES 0)"]);
    assert_tagged(&run(&mut client, "CREATE Entw&APw"), "BAD");
}

#[test]
fn delete_rules() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_tagged(&run(&mut client, "DELETE INBOX"), "NO");
    assert_tagged(&run(&mut client, "DELETE nothing"), "NO [NONEXISTENT]");
    assert_ok(&run(&mut client, "CREATE parent/child"));
    // A parent with children loses its messages and becomes \Noselect;
    // the children stay (RFC 3501 section 6.3.4).
    assert_ok(&run(&mut client, "DELETE parent"));
    let reply = run(&mut client, "LIST \"\" parent*");
    assert!(lines(&reply).contains(&"* LIST (\\Noselect \\HasChildren) \"/\" parent".to_owned()), "{:?}", lines(&reply));
    assert_tagged(&run(&mut client, "DELETE parent"), "NO");
    assert_ok(&run(&mut client, "DELETE parent/child"));
}

#[test]
fn rename_moves_children() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE old/sub/leaf"));
    assert!(client.append("old/sub", &message("kept", "x")).unwrap().is_ok());
    assert_ok(&run(&mut client, "RENAME old new"));
    let reply = run(&mut client, "LIST \"\" *");
    let listed = listing(&reply).join("\n");
    assert!(listed.contains("\"/\" new/sub/leaf"), "{listed}");
    assert!(!listed.contains("\"/\" old"), "{listed}");
    let reply = run(&mut client, "STATUS new/sub (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS new/sub (MESSAGES 1)"]);

    assert_tagged(&run(&mut client, "RENAME nothing other"), "NO [NONEXISTENT]");
    assert_ok(&run(&mut client, "CREATE taken"));
    assert_tagged(&run(&mut client, "RENAME new taken"), "NO [ALREADYEXISTS]");
}

#[test]
fn rename_inbox_moves_messages() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["one", "two"] {
        assert!(client.append("INBOX", &message(subject, "x")).unwrap().is_ok());
    }
    assert_ok(&run(&mut client, "RENAME INBOX archive"));
    let reply = run(&mut client, "STATUS archive (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS archive (MESSAGES 2)"]);
    let reply = run(&mut client, "STATUS INBOX (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 0)"]);
    let reply = run(&mut client, "LIST \"\" INBOX");
    assert_eq!(lines(&reply).len(), 1);
}

#[test]
fn subscribe_and_lsub() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE top/child"));
    assert_ok(&run(&mut client, "SUBSCRIBE top/child"));
    assert_ok(&run(&mut client, "SUBSCRIBE INBOX"));

    let reply = run(&mut client, "LSUB \"\" *");
    let listed = listing(&reply);
    assert!(listed.contains(&"* LSUB () \"/\" top/child".to_owned()), "{listed:?}");
    assert!(listed.iter().any(|l| l.ends_with("\"/\" INBOX")), "{listed:?}");

    // `%` stops at `top`, which is not subscribed but has a subscribed
    // child: it is listed as \Noselect (RFC 3501 section 6.3.9).
    let reply = run(&mut client, "LSUB \"\" %");
    let listed = listing(&reply);
    assert!(listed.contains(&"* LSUB (\\Noselect) \"/\" top".to_owned()), "{listed:?}");

    assert_ok(&run(&mut client, "UNSUBSCRIBE top/child"));
    let reply = run(&mut client, "LSUB \"\" top*");
    assert!(reply.untagged.is_empty(), "{:?}", lines(&reply));
}

#[test]
fn status_every_item() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["a", "b", "c"] {
        assert!(client.append("INBOX", &message(subject, "x")).unwrap().is_ok());
    }
    let reply = run(&mut client, "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)");
    assert_ok(&reply);
    let status = lines(&reply);
    assert_eq!(status.len(), 1);
    let line = &status[0];
    assert!(line.starts_with("* STATUS INBOX (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY "), "{line}");
    assert!(line.ends_with(" UNSEEN 3)"), "{line}");
    assert_tagged(&run(&mut client, "STATUS nothing (MESSAGES)"), "NO [NONEXISTENT]");

    // On the selected mailbox, too; SELECT took the \Recent flags.
    assert_ok(&run(&mut client, "SELECT INBOX"));
    assert_ok(&run(&mut client, "STORE 1 +FLAGS (\\Seen)"));
    let reply = run(&mut client, "STATUS INBOX (MESSAGES UNSEEN RECENT)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 3 UNSEEN 2 RECENT 0)"]);
}

#[test]
fn select_responses() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["a", "b"] {
        assert!(client.append("INBOX", &message(subject, "x")).unwrap().is_ok());
    }
    let reply = run(&mut client, "SELECT INBOX");
    assert_tagged(&reply, "OK [READ-WRITE]");
    let untagged = lines(&reply);
    assert_eq!(untagged[0], "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
    assert!(untagged.contains(&"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted".to_owned())
        || untagged.iter().any(|l| l.starts_with("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]")), "{untagged:?}");
    assert!(untagged.contains(&"* 2 EXISTS".to_owned()), "{untagged:?}");
    assert!(untagged.contains(&"* 2 RECENT".to_owned()), "{untagged:?}");
    assert!(untagged.iter().any(|l| l.starts_with("* OK [UNSEEN 1]")), "{untagged:?}");
    assert!(untagged.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")), "{untagged:?}");
    assert!(untagged.iter().any(|l| l.starts_with("* OK [UIDNEXT 3]")), "{untagged:?}");

    // A failed SELECT leaves the session with no mailbox selected.
    assert_tagged(&run(&mut client, "SELECT nothing"), "NO [NONEXISTENT]");
    assert_tagged(&run(&mut client, "FETCH 1 FLAGS"), "BAD");
}

#[test]
fn examine_is_read_only() {
    let server = TestServer::start();
    let mut client = server.login();
    assert!(client.append("INBOX", &message("a", "x")).unwrap().is_ok());
    let reply = run(&mut client, "EXAMINE INBOX");
    assert_tagged(&reply, "OK [READ-ONLY]");
    let untagged = lines(&reply);
    assert!(untagged.iter().any(|l| l.starts_with("* OK [PERMANENTFLAGS ()]")), "{untagged:?}");
    assert!(untagged.contains(&"* 1 RECENT".to_owned()), "{untagged:?}");

    let reply = run(&mut client, "FETCH 1 (BODY[TEXT])");
    assert_ok(&reply);
    assert!(!lines(&reply).join("").contains("\\Seen"), "{:?}", lines(&reply));
    assert_tagged(&run(&mut client, "STORE 1 +FLAGS (\\Seen)"), "NO");
    assert_tagged(&run(&mut client, "EXPUNGE"), "NO");
    // The RECENT count is reported, but EXAMINE does not claim \Recent,
    // so this session does not show the flag.
    let reply = run(&mut client, "FETCH 1 FLAGS");
    assert_eq!(lines(&reply), vec!["* 1 FETCH (FLAGS ())"]);

    // EXAMINE does not take \Recent, so a later SELECT still gets it.
    let mut other = server.login();
    let reply = run(&mut other, "SELECT INBOX");
    assert!(lines(&reply).contains(&"* 1 RECENT".to_owned()), "{:?}", lines(&reply));
}

#[test]
fn append_variants() {
    let server = TestServer::start();
    let mut client = server.login();
    let body = message("dated", "x");
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.command("l", &format!("LOGIN {USER} {PASSWORD}"));

    // Flags and date.
    connection.send(format!("a APPEND INBOX (\\Seen $Work) \"05-Mar-2021 10:20:30 +0100\" {{{}}}\r\n", body.len()).as_bytes());
    assert!(connection.read_line().unwrap().starts_with("+ "));
    connection.send(&body);
    connection.send(b"\r\n");
    let reply = connection.read_tagged("a");
    assert!(reply.last().unwrap().starts_with("a OK [APPENDUID "), "{reply:?}");
    let uid_validity: String = reply.last().unwrap().split(' ').nth(3).unwrap().to_owned();
    assert!(reply.last().unwrap().starts_with(&format!("a OK [APPENDUID {uid_validity} 1]")), "{reply:?}");

    // LITERAL+: no continuation request.
    connection.send(format!("b APPEND INBOX {{{}+}}\r\n", body.len()).as_bytes());
    connection.send(&body);
    connection.send(b"\r\n");
    let reply = connection.read_tagged("b");
    assert!(reply.last().unwrap().starts_with(&format!("b OK [APPENDUID {uid_validity} 2]")), "{reply:?}");

    // Missing mailbox: TRYCREATE.
    let reply = client.append("nothing", &body).unwrap();
    assert_tagged(&reply, "NO [TRYCREATE]");

    // Zero-length message.
    let reply = connection.command("c", "APPEND INBOX {0+}\r\n");
    assert!(reply.last().unwrap().starts_with("c NO"), "{reply:?}");

    assert_ok(&run(&mut client, "SELECT INBOX"));
    // A one-digit day is padded with a space (date-day-fixed in RFC 3501).
    let reply = run(&mut client, "FETCH 1 (FLAGS INTERNALDATE)");
    assert_eq!(lines(&reply), vec!["* 1 FETCH (FLAGS (\\Seen \\Recent $Work) INTERNALDATE \" 5-Mar-2021 10:20:30 +0100\")"]);
}

#[test]
fn check_close_unselect() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["a", "b"] {
        assert!(client.append("INBOX", &message(subject, "x")).unwrap().is_ok());
    }
    assert_ok(&run(&mut client, "SELECT INBOX"));
    assert_ok(&run(&mut client, "CHECK"));
    assert_ok(&run(&mut client, "STORE 1 +FLAGS.SILENT (\\Deleted)"));

    // UNSELECT leaves \Deleted messages in place.
    let reply = run(&mut client, "UNSELECT");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty(), "{:?}", lines(&reply));
    let reply = run(&mut client, "STATUS INBOX (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 2)"]);

    // CLOSE removes them without EXPUNGE responses.
    assert_ok(&run(&mut client, "SELECT INBOX"));
    let reply = run(&mut client, "CLOSE");
    assert_ok(&reply);
    assert!(reply.untagged.is_empty(), "{:?}", lines(&reply));
    let reply = run(&mut client, "STATUS INBOX (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 1)"]);
    assert_tagged(&run(&mut client, "CLOSE"), "BAD");
}

#[test]
fn subscription_outlives_mailbox() {
    // RFC 3501 section 6.3.6: the server must not remove a name from the
    // subscription list on its own, even when the mailbox is deleted.
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE gone"));
    assert_ok(&run(&mut client, "SUBSCRIBE gone"));
    assert_ok(&run(&mut client, "DELETE gone"));
    let reply = run(&mut client, "LSUB \"\" gone");
    assert_eq!(lines(&reply).len(), 1, "{:?}", lines(&reply));
    assert!(lines(&reply)[0].ends_with("\"/\" gone"), "{:?}", lines(&reply));
}

#[test]
fn login_with_literals_and_quoting() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    connection.send(format!("a LOGIN {{{}}}\r\n", USER.len()).as_bytes());
    assert!(connection.read_line().unwrap().starts_with('+'));
    connection.send(format!("{USER} {{{}+}}\r\n{PASSWORD}\r\n", PASSWORD.len()).as_bytes());
    let reply = connection.read_tagged("a");
    assert!(reply.last().unwrap().starts_with("a OK"), "{reply:?}");

    let (mut connection, _) = RawConnection::connect(server.imap);
    let reply = connection.command("b", &format!("LOGIN \"{USER}\" \"{PASSWORD}\""));
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");
}

#[test]
fn append_and_copy_to_selected_mailbox_announce_exists() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "SELECT INBOX"));
    let reply = client.append("INBOX", &message("self", "x")).unwrap();
    assert_ok(&reply);
    assert!(lines(&reply).contains(&"* 1 EXISTS".to_owned()), "{:?}", lines(&reply));
    let reply = run(&mut client, "COPY 1 INBOX");
    assert_ok(&reply);
    assert!(lines(&reply).contains(&"* 2 EXISTS".to_owned()), "{:?}", lines(&reply));
    let reply = run(&mut client, "STATUS INBOX (MESSAGES UIDNEXT)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 2 UIDNEXT 3)"]);
}

#[test]
fn close_after_examine_keeps_deleted() {
    let server = TestServer::start();
    let mut client = server.login();
    assert!(client.append("INBOX", &message("a", "x")).unwrap().is_ok());
    assert_ok(&run(&mut client, "SELECT INBOX"));
    assert_ok(&run(&mut client, "STORE 1 +FLAGS.SILENT (\\Deleted)"));
    assert_ok(&run(&mut client, "EXAMINE INBOX"));
    assert_ok(&run(&mut client, "CLOSE"));
    let reply = run(&mut client, "STATUS INBOX (MESSAGES)");
    assert_eq!(lines(&reply), vec!["* STATUS INBOX (MESSAGES 1)"]);
}

#[test]
fn list_special_use_and_children_after_changes() {
    let server = TestServer::start();
    let mut client = server.login();
    assert_ok(&run(&mut client, "CREATE Trash/old"));
    let reply = run(&mut client, "LIST \"\" Trash");
    assert_eq!(lines(&reply), vec!["* LIST (\\HasChildren \\Trash) \"/\" Trash"]);
    assert_ok(&run(&mut client, "DELETE Trash/old"));
    let reply = run(&mut client, "LIST \"\" Trash");
    assert_eq!(lines(&reply), vec!["* LIST (\\HasNoChildren \\Trash) \"/\" Trash"]);
}
