//! IMAP sessions over real sockets against an in-process server.

mod common;

use common::{TestServer, lines, message};

#[test]
fn login_select_append_fetch() {
    let server = TestServer::start();
    let mut client = server.login();

    let reply = client.append("INBOX", &message("first", "Hello there")).unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    assert!(reply.tagged.contains("[APPENDUID "), "{}", reply.tagged);

    let reply = client.command("SELECT INBOX").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    assert!(reply.tagged.contains("[READ-WRITE]"));
    let untagged = lines(&reply);
    assert!(untagged.contains(&"* 1 EXISTS".to_owned()), "{untagged:?}");
    assert!(untagged.contains(&"* 1 RECENT".to_owned()), "{untagged:?}");

    let reply = client.command("FETCH 1 (FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[TEXT])").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    let fetched = lines(&reply).join("\n");
    assert!(fetched.contains("FLAGS (\\Recent)"), "{fetched}");
    assert!(fetched.contains("\"first\""), "{fetched}");
    assert!(fetched.contains("Hello there"), "{fetched}");
}

#[test]
fn store_search_copy_move_expunge() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["one", "two", "three"] {
        assert!(client.append("INBOX", &message(subject, subject)).unwrap().is_ok());
    }
    assert!(client.command("SELECT INBOX").unwrap().is_ok());

    let reply = client.command("STORE 2 +FLAGS (\\Flagged $Important)").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    // The new keyword is announced before the FETCH that carries it.
    assert_eq!(lines(&reply), vec![
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted",
        "* 2 FETCH (FLAGS (\\Flagged \\Recent $Important))",
    ]);

    let reply = client.command("SEARCH FLAGGED").unwrap();
    assert_eq!(lines(&reply), vec!["* SEARCH 2"]);
    let reply = client.command("SEARCH SUBJECT three").unwrap();
    assert_eq!(lines(&reply), vec!["* SEARCH 3"]);
    let reply = client.command("UID SEARCH BODY two").unwrap();
    assert_eq!(lines(&reply), vec!["* SEARCH 2"]);

    let reply = client.command("COPY 1:2 Trash").unwrap();
    assert!(reply.tagged.contains("[COPYUID "), "{}", reply.tagged);
    let reply = client.command("MOVE 3 Sent").unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    let moved = lines(&reply);
    assert!(moved.iter().any(|l| l.starts_with("* OK [COPYUID ")), "{moved:?}");
    assert!(moved.contains(&"* 3 EXPUNGE".to_owned()), "{moved:?}");

    assert!(client.command("STORE 1 +FLAGS.SILENT (\\Deleted)").unwrap().is_ok());
    let reply = client.command("EXPUNGE").unwrap();
    assert_eq!(lines(&reply), vec!["* 1 EXPUNGE"]);

    let reply = client.command("STATUS Trash (MESSAGES UNSEEN)").unwrap();
    assert_eq!(lines(&reply), vec!["* STATUS Trash (MESSAGES 2 UNSEEN 2)"]);
}

#[test]
fn two_sessions_see_each_others_changes() {
    let server = TestServer::start();
    let mut first = server.login();
    let mut second = server.login();
    assert!(first.append("INBOX", &message("a", "a")).unwrap().is_ok());
    assert!(first.command("SELECT INBOX").unwrap().is_ok());
    assert!(second.command("SELECT INBOX").unwrap().is_ok());

    assert!(second.append("INBOX", &message("b", "b")).unwrap().is_ok());
    assert!(second.command("STORE 1 +FLAGS (\\Seen)").unwrap().is_ok());

    let reply = first.command("NOOP").unwrap();
    let updates = lines(&reply);
    assert!(updates.contains(&"* 2 EXISTS".to_owned()), "{updates:?}");
    assert!(updates.iter().any(|l| l.starts_with("* 1 FETCH (FLAGS (\\Seen")), "{updates:?}");

    // No EXPUNGE during FETCH: the expunged message keeps its number until NOOP.
    assert!(second.command("STORE 1 +FLAGS (\\Deleted)").unwrap().is_ok());
    assert!(second.command("EXPUNGE").unwrap().is_ok());
    let reply = first.command("FETCH 2 (UID)").unwrap();
    assert!(!lines(&reply).iter().any(|l| l.contains("EXPUNGE")));
    assert!(lines(&reply).iter().any(|l| l.starts_with("* 2 FETCH (UID 2)")), "{:?}", lines(&reply));
    let reply = first.command("NOOP").unwrap();
    assert!(lines(&reply).contains(&"* 1 EXPUNGE".to_owned()), "{:?}", lines(&reply));
}
