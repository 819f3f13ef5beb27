//! Mailbox names normalised to Unicode NFC, and sessions whose selected
//! mailbox is renamed or deleted, over real sockets.
//!
//! Dovecot 2.3 (the project's reference on loopback) replies to the next
//! command after either change with BYE. Roost keeps a renamed mailbox
//! selected, because its id survives the rename, and ends a session whose
//! selected mailbox another session deleted with NO [NONEXISTENT] and BYE.

mod common;

use common::{RawConnection, TestServer, message};

/// "é" spelled as "e" and U+0301 COMBINING ACUTE ACCENT, which is not NFC.
const DECOMPOSED: &str = "Caf\u{65}\u{301}";
/// The NFC form of [`DECOMPOSED`].
const COMPOSED: &str = "Caf\u{e9}";

fn rev2_session(server: &TestServer) -> RawConnection {
    let mut connection = RawConnection::login(server.imap);
    let reply = connection.command("E1", "ENABLE IMAP4rev2");
    assert_eq!(reply, ["* ENABLED IMAP4rev2", "E1 OK ENABLE completed"]);
    connection
}

fn append(connection: &mut RawConnection, mailbox: &str, raw: &[u8]) {
    let mut command = format!("AP APPEND {mailbox} {{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(raw);
    command.extend_from_slice(b"\r\n");
    connection.send(&command);
    let reply = connection.read_tagged("AP");
    assert!(reply.last().unwrap().starts_with("AP OK"), "{reply:?}");
}

/// Creates `name` with three messages.
fn create_filled(connection: &mut RawConnection, name: &str) {
    let reply = connection.command("C1", &format!("CREATE {name}"));
    assert_eq!(reply.last().unwrap(), "C1 OK CREATE completed");
    for subject in ["one", "two", "three"] {
        append(connection, name, &message(subject, "body"));
    }
}

fn assert_ok(reply: &[String], tag: &str) {
    assert!(reply.last().unwrap().starts_with(&format!("{tag} OK")), "{reply:?}");
}

#[test]
fn create_normalises_to_nfc() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);

    let reply = connection.command("A1", &format!("CREATE \"{DECOMPOSED}\""));
    assert_eq!(reply, [format!("* LIST (\\HasNoChildren) \"/\" \"{COMPOSED}\" (\"OLDNAME\" (\"{DECOMPOSED}\"))"), "A1 OK CREATE completed".to_owned()]);

    let reply = connection.command("A2", &format!("CREATE \"{COMPOSED}\""));
    assert_eq!(reply.last().unwrap(), "A2 NO [ALREADYEXISTS] Mailbox already exists");

    let reply = connection.command("A3", "LIST \"\" \"Caf*\"");
    assert_eq!(reply, [format!("* LIST (\\HasNoChildren) \"/\" \"{COMPOSED}\""), "A3 OK LIST completed".to_owned()]);

    // A name already in NFC gets no OLDNAME.
    let reply = connection.command("A4", "CREATE Plain");
    assert_eq!(reply, ["A4 OK CREATE completed"]);
}

#[test]
fn select_sends_oldname_for_decomposed() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    assert_ok(&connection.command("A1", &format!("CREATE \"{COMPOSED}\"")), "A1");

    let reply = connection.command("A2", &format!("SELECT \"{DECOMPOSED}\""));
    assert_ok(&reply, "A2");
    let expected = format!("* LIST (\\HasNoChildren) \"/\" \"{COMPOSED}\" (\"OLDNAME\" (\"{DECOMPOSED}\"))");
    assert!(reply.contains(&expected), "{reply:?}");

    let reply = connection.command("A3", &format!("EXAMINE \"{COMPOSED}\""));
    assert!(reply.contains(&format!("* LIST (\\HasNoChildren) \"/\" \"{COMPOSED}\"")), "{reply:?}");
}

#[test]
fn rename_and_delete_send_oldname() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    assert_ok(&connection.command("A1", &format!("CREATE \"{COMPOSED}\"")), "A1");

    let reply = connection.command("A2", &format!("RENAME \"{DECOMPOSED}\" \"{DECOMPOSED}2\""));
    let expected = format!("* LIST (\\HasNoChildren) \"/\" \"{COMPOSED}2\" (\"OLDNAME\" (\"{DECOMPOSED}\"))");
    assert_eq!(reply, [expected, "A2 OK RENAME completed".to_owned()]);

    let reply = connection.command("A3", &format!("DELETE \"{DECOMPOSED}2\""));
    let expected = format!("* LIST (\\NonExistent) \"/\" \"{COMPOSED}2\" (\"OLDNAME\" (\"{DECOMPOSED}2\"))");
    assert_eq!(reply, [expected, "A3 OK DELETE completed".to_owned()]);

    let reply = connection.command("A4", "LIST \"\" \"Caf*\"");
    assert_eq!(reply, ["A4 OK LIST completed"]);
}

#[test]
fn rev1_names_are_normalised_too() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    // Modified UTF-7 for "Cafe" + U+0301, then for "Caf" + U+00E9.
    assert_ok(&connection.command("A1", "CREATE Cafe&AwE-"), "A1");
    let reply = connection.command("A2", "CREATE Caf&AOk-");
    assert_eq!(reply.last().unwrap(), "A2 NO [ALREADYEXISTS] Mailbox already exists");

    let reply = connection.command("A3", "LIST \"\" Caf*");
    assert_eq!(reply, ["* LIST (\\HasNoChildren) \"/\" Caf&AOk-", "A3 OK LIST completed"]);
    assert_ok(&connection.command("A4", "SELECT Cafe&AwE-"), "A4");
}

#[test]
fn deleting_own_selected_mailbox_leaves_it() {
    let server = TestServer::start();
    for rev2 in [false, true] {
        let mut connection = if rev2 { rev2_session(&server) } else { RawConnection::login(server.imap) };
        create_filled(&mut connection, "Doomed");
        assert_ok(&connection.command("A1", "SELECT Doomed"), "A1");

        let reply = connection.command("A2", "DELETE Doomed");
        let expected: Vec<&str> = match rev2 {
            true => vec!["* OK [CLOSED] Deleted mailbox is now closed", "A2 OK DELETE completed"],
            false => vec!["A2 OK DELETE completed"],
        };
        assert_eq!(reply, expected);

        let reply = connection.command("A3", "FETCH 1:* UID");
        assert!(reply.last().unwrap().starts_with("A3 BAD"), "{reply:?}");
        assert_ok(&connection.command("A4", "NOOP"), "A4");
    }
}

#[test]
fn deleted_selected_mailbox_ends_other_session() {
    let server = TestServer::start();
    for command in ["FETCH 1:* (UID FLAGS)", "SEARCH ALL", "NOOP", "STORE 1 +FLAGS (\\Seen)", "UID SEARCH ALL"] {
        let mut deleter = RawConnection::login(server.imap);
        create_filled(&mut deleter, "Shared");
        let mut reader = RawConnection::login(server.imap);
        assert_ok(&reader.command("B1", "SELECT Shared"), "B1");

        assert_ok(&deleter.command("A1", "DELETE Shared"), "A1");
        // Commands that do not use the selected mailbox still run.
        assert_ok(&reader.command("B2", "LIST \"\" *"), "B2");

        reader.send(format!("B3 {command}\r\n").as_bytes());
        let lines = reader.read_to_close();
        assert_eq!(
            lines,
            [
                "B3 NO [NONEXISTENT] Selected mailbox was deleted",
                "* BYE Selected mailbox was deleted; log in again and select another mailbox",
            ],
            "{command}"
        );
    }
}

#[test]
fn closing_deleted_mailbox_succeeds() {
    let server = TestServer::start();
    let mut deleter = RawConnection::login(server.imap);
    create_filled(&mut deleter, "Gone");
    let mut reader = RawConnection::login(server.imap);
    assert_ok(&reader.command("B1", "SELECT Gone"), "B1");
    assert_ok(&deleter.command("A1", "DELETE Gone"), "A1");

    assert_eq!(reader.command("B2", "CLOSE"), ["B2 OK CLOSE completed"]);
    assert_ok(&reader.command("B3", "SELECT INBOX"), "B3");
}

#[test]
fn renamed_selected_mailbox_stays_selected() {
    let server = TestServer::start();
    let mut renamer = rev2_session(&server);
    create_filled(&mut renamer, "Old");
    let mut reader = RawConnection::login(server.imap);
    assert_ok(&reader.command("B1", "SELECT Old"), "B1");
    assert_ok(&renamer.command("A1", "SELECT Old"), "A1");

    let reply = renamer.command("A2", "RENAME Old New");
    assert_eq!(reply, ["* LIST (\\HasNoChildren) \"/\" New (\"OLDNAME\" (Old))", "A2 OK RENAME completed"]);

    for (connection, tag) in [(&mut renamer, "A3"), (&mut reader, "B2")] {
        let reply = connection.command(tag, "UID FETCH 1:* UID");
        assert_eq!(reply.len(), 4, "{reply:?}");
        assert!(reply[0].starts_with("* 1 FETCH (UID 1"), "{reply:?}");
        assert!(reply[2].starts_with("* 3 FETCH (UID 3"), "{reply:?}");
    }

    // A message added under the new name reaches both sessions.
    append(&mut renamer, "New", &message("four", "body"));
    let reply = reader.command("B3", "NOOP");
    assert!(reply.iter().any(|line| line == "* 4 EXISTS"), "{reply:?}");
    let reply = renamer.command("A4", "NOOP");
    assert_ok(&reply, "A4");
    let reply = renamer.command("A5", "FETCH 4 UID");
    assert_eq!(reply.first().unwrap(), "* 4 FETCH (UID 4)");
}

/// A session in IDLE on a mailbox another session deletes gets BYE at once
/// rather than waiting for its next command.
#[test]
fn idle_on_deleted_mailbox_gets_bye() {
    let server = TestServer::start();
    let mut owner = server.login();
    assert!(owner.command("CREATE Doomed").unwrap().is_ok());
    let mut idler = RawConnection::login(server.imap);
    let selected = idler.command("s", "SELECT Doomed");
    assert!(selected.last().is_some_and(|l| l.starts_with("s OK")), "{selected:?}");
    idler.send(b"i IDLE\r\n");
    let continuation = idler.read_line();
    assert!(continuation.as_deref().is_some_and(|l| l.starts_with("+ ")), "{continuation:?}");

    assert!(owner.command("DELETE Doomed").unwrap().is_ok());

    let rest = idler.read_to_close();
    assert!(rest.iter().any(|l| l == "* BYE Selected mailbox was deleted"), "{rest:?}");
}
