//! IMAP4rev2 (RFC 9051) over real sockets, next to IMAP4rev1 on the same
//! mailboxes: ENABLE, the rev2 forms of SELECT, SEARCH, LIST and STATUS,
//! and the extensions rev2 folds in, each also usable by a rev1 session:
//! ESEARCH (RFC 4731), SEARCHRES (RFC 5182), LIST-EXTENDED (RFC 5258),
//! LIST-STATUS (RFC 5819), SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154),
//! BINARY (RFC 3516), STATUS=SIZE (RFC 8438), UTF8=ACCEPT (RFC 6855) and
//! APPENDLIMIT (RFC 7889). Where an RFC gives an example, the test follows
//! it.

mod common;

use common::{RawConnection, TestServer, message};

/// Appends `raw` to `mailbox` with a non-synchronising literal.
fn append(connection: &mut RawConnection, mailbox: &str, raw: &[u8]) {
    let mut command = format!("AP APPEND {mailbox} {{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(raw);
    command.extend_from_slice(b"\r\n");
    connection.send(&command);
    let reply = connection.read_tagged("AP");
    assert!(reply.last().unwrap().starts_with("AP OK"), "{reply:?}");
}

/// Logs in and enables IMAP4rev2.
fn rev2_session(server: &TestServer) -> RawConnection {
    let mut connection = RawConnection::login(server.imap);
    let reply = connection.command("E1", "ENABLE IMAP4rev2");
    assert_eq!(reply, ["* ENABLED IMAP4rev2", "E1 OK ENABLE completed"]);
    connection
}

/// Returns the untagged lines of a reply.
fn untagged(reply: &[String]) -> Vec<&str> {
    reply.iter().filter(|line| line.starts_with("* ")).map(String::as_str).collect()
}

fn tagged(reply: &[String]) -> &str {
    reply.last().unwrap()
}

/// Puts five messages into INBOX, flags 2 and 4 `\Seen` and 5 `\Deleted`.
fn fill_inbox(connection: &mut RawConnection) {
    for subject in ["one", "two", "three", "four", "five"] {
        append(connection, "INBOX", &message(subject, "body text"));
    }
    connection.command("F0", "SELECT INBOX");
    let reply = connection.command("F1", "STORE 2,4 +FLAGS.SILENT (\\Seen)");
    assert!(tagged(&reply).starts_with("F1 OK"), "{reply:?}");
    let reply = connection.command("F2", "STORE 5 +FLAGS.SILENT (\\Deleted)");
    assert!(tagged(&reply).starts_with("F2 OK"), "{reply:?}");
    connection.command("F3", "UNSELECT");
}

#[test]
fn capability_lists_rev2_and_extensions() {
    let server = TestServer::start();
    let (mut connection, greeting) = RawConnection::connect(server.imap);
    assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 "), "{greeting}");
    let reply = connection.command("C1", "CAPABILITY");
    let line = &reply[0];
    for name in [
        "ESEARCH",
        "SEARCHRES",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "SPECIAL-USE",
        "CREATE-SPECIAL-USE",
        "BINARY",
        "STATUS=SIZE",
        "UTF8=ACCEPT",
        "LITERAL+",
        "APPENDLIMIT=52428800",
    ] {
        assert!(line.split(' ').any(|word| word == name), "{name} missing from {line}");
    }
    assert!(!line.contains("LITERAL-"), "{line}");
}

#[test]
fn enable_lists_only_new_extensions() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    let again = connection.command("E2", "ENABLE IMAP4rev2 UTF8=ACCEPT X-UNKNOWN");
    assert_eq!(again, ["* ENABLED UTF8=ACCEPT", "E2 OK ENABLE completed"]);
    let third = connection.command("E3", "ENABLE utf8=accept imap4rev2");
    assert_eq!(third, ["* ENABLED", "E3 OK ENABLE completed"]);

    let mut utf8_only = RawConnection::login(server.imap);
    let reply = utf8_only.command("U1", "ENABLE UTF8=ACCEPT");
    assert_eq!(reply, ["* ENABLED UTF8=ACCEPT", "U1 OK ENABLE completed"]);
}

#[test]
fn enable_rejected_before_login() {
    let server = TestServer::start();
    let (mut connection, _) = RawConnection::connect(server.imap);
    let reply = connection.command("E1", "ENABLE IMAP4rev2");
    assert!(tagged(&reply).starts_with("E1 BAD"), "{reply:?}");
}

#[test]
fn select_without_recent_in_rev2() {
    let server = TestServer::start();
    let mut rev1 = RawConnection::login(server.imap);
    append(&mut rev1, "INBOX", &message("new", "unseen"));
    let mut rev2 = rev2_session(&server);

    // The rev2 session claims no \Recent, so the rev1 session still can.
    let reply = rev2.command("S1", "SELECT INBOX");
    let lines = untagged(&reply);
    assert!(!lines.iter().any(|line| line.ends_with(" RECENT")), "{lines:?}");
    assert!(!lines.iter().any(|line| line.contains("[UNSEEN ")), "{lines:?}");
    assert!(lines.contains(&"* 1 EXISTS"), "{lines:?}");
    assert!(lines.contains(&"* LIST (\\HasNoChildren) \"/\" INBOX"), "{lines:?}");
    assert_eq!(tagged(&reply), "S1 OK [READ-WRITE] SELECT completed");
    let fetched = rev2.command("S2", "FETCH 1 FLAGS");
    assert_eq!(fetched[0], "* 1 FETCH (FLAGS ())");

    let reply = rev1.command("S3", "SELECT INBOX");
    let lines = untagged(&reply);
    assert!(lines.contains(&"* 1 RECENT"), "{lines:?}");
    assert!(lines.contains(&"* OK [UNSEEN 1] First unseen message"), "{lines:?}");
    assert!(!lines.iter().any(|line| line.starts_with("* LIST")), "{lines:?}");
    let fetched = rev1.command("S4", "FETCH 1 FLAGS");
    assert_eq!(fetched[0], "* 1 FETCH (FLAGS (\\Recent))");

    // A new message reaches the rev2 session as EXISTS without RECENT.
    append(&mut rev1, "INBOX", &message("later", "second"));
    let reply = rev2.command("S5", "NOOP");
    assert_eq!(reply, ["* 2 EXISTS", "S5 OK NOOP completed"]);

    // Selecting again closes the previous mailbox with OK [CLOSED] in rev2
    // only, before any response about the new one.
    let reply = rev2.command("S6", "EXAMINE Sent");
    assert_eq!(reply[0], "* OK [CLOSED] Previous mailbox is now closed");
    let reply = rev1.command("S7", "EXAMINE Sent");
    assert!(!reply.iter().any(|line| line.contains("[CLOSED]")), "{reply:?}");
    let reply = rev2.command("S8", "SELECT Nonexistent");
    assert_eq!(reply[0], "* OK [CLOSED] Previous mailbox is now closed");
    assert_eq!(reply[1], "S8 NO [NONEXISTENT] No such mailbox");
}

#[test]
fn select_list_attributes_rev2() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    assert!(tagged(&connection.command("M1", "CREATE Sent/2024")).starts_with("M1 OK"));

    // RFC 9051 section 6.3.1: SELECT and EXAMINE send a LIST response for
    // the mailbox, with accurate attributes.
    let reply = connection.command("S1", "SELECT Sent");
    assert!(untagged(&reply).contains(&"* LIST (\\HasChildren \\Sent) \"/\" Sent"), "{reply:?}");
    let reply = connection.command("S2", "EXAMINE Sent/2024");
    assert!(untagged(&reply).contains(&"* LIST (\\HasNoChildren) \"/\" Sent/2024"), "{reply:?}");
    let reply = connection.command("S3", "EXAMINE \"inbox\"");
    assert!(untagged(&reply).contains(&"* LIST (\\HasNoChildren) \"/\" INBOX"), "{reply:?}");

    // An IMAP4rev1 session gets no LIST response from SELECT.
    let mut rev1 = RawConnection::login(server.imap);
    let reply = rev1.command("S4", "SELECT Sent");
    assert!(!reply.iter().any(|line| line.starts_with("* LIST")), "{reply:?}");
}

#[test]
fn rename_sends_oldname_in_rev2() {
    let server = TestServer::start();
    let mut rev2 = rev2_session(&server);
    for name in ["Projects", "Projects/Alpha", "Projects/Alpha/Notes", "\"Entwürfe\""] {
        assert!(tagged(&rev2.command("M1", &format!("CREATE {name}"))).starts_with("M1 OK"), "{name}");
    }

    // Each renamed mailbox, the ones below the named one included, comes
    // with its new name and OLDNAME set to the name it had.
    let reply = rev2.command("R1", "RENAME Projects Done");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasChildren) \"/\" Done (\"OLDNAME\" (Projects))",
            "* LIST (\\HasChildren) \"/\" Done/Alpha (\"OLDNAME\" (Projects/Alpha))",
            "* LIST (\\HasNoChildren) \"/\" Done/Alpha/Notes (\"OLDNAME\" (Projects/Alpha/Notes))",
            "R1 OK RENAME completed",
        ]
    );

    // Names are UTF-8 in both places, and special-use attributes stay.
    let reply = rev2.command("R2", "RENAME \"Entwürfe\" \"Alte Entwürfe\"");
    assert_eq!(
        reply,
        ["* LIST (\\HasNoChildren) \"/\" \"Alte Entwürfe\" (\"OLDNAME\" (\"Entwürfe\"))", "R2 OK RENAME completed"]
    );
    let reply = rev2.command("R3", "RENAME Sent Outbox");
    assert_eq!(reply, ["* LIST (\\HasNoChildren \\Sent) \"/\" Outbox (\"OLDNAME\" (Sent))", "R3 OK RENAME completed"]);

    // Renaming INBOX moves its messages and leaves INBOX in place, so no
    // mailbox changed its name.
    let reply = rev2.command("R4", "RENAME INBOX Old");
    assert_eq!(reply, ["R4 OK RENAME completed"]);

    // A failed RENAME sends no LIST.
    let reply = rev2.command("R5", "RENAME Missing Elsewhere");
    assert_eq!(untagged(&reply).len(), 0, "{reply:?}");
    assert!(tagged(&reply).starts_with("R5 NO"), "{reply:?}");

    // An IMAP4rev1 session gets only the tagged response.
    let mut rev1 = RawConnection::login(server.imap);
    let reply = rev1.command("R6", "RENAME Done Finished");
    assert_eq!(reply, ["R6 OK RENAME completed"]);
}

#[test]
fn search_results_by_session_kind() {
    let server = TestServer::start();
    let mut rev1 = RawConnection::login(server.imap);
    fill_inbox(&mut rev1);
    let mut rev2 = rev2_session(&server);
    rev1.command("S0", "SELECT INBOX");
    rev2.command("S0", "SELECT INBOX");

    assert_eq!(rev1.command("A1", "SEARCH UNSEEN"), ["* SEARCH 1 3 5", "A1 OK SEARCH completed"]);
    assert_eq!(rev2.command("A1", "SEARCH UNSEEN"), ["* ESEARCH (TAG \"A1\") ALL 1,3,5", "A1 OK SEARCH completed"]);
    let uids = rev2.command("A2", "UID SEARCH SEEN");
    assert_eq!(uids, ["* ESEARCH (TAG \"A2\") UID ALL 2,4", "A2 OK UID SEARCH completed"]);
    // Nothing matched: ESEARCH with no data (RFC 9051 section 7.3.4).
    assert_eq!(rev2.command("A3", "SEARCH FLAGGED"), ["* ESEARCH (TAG \"A3\")", "A3 OK SEARCH completed"]);
    assert_eq!(rev1.command("A3", "SEARCH FLAGGED"), ["* SEARCH", "A3 OK SEARCH completed"]);
}

#[test]
fn search_recent_keys_removed_in_rev2() {
    // RFC 9051 drops RECENT, NEW and OLD from the search-key grammar along
    // with \Recent, so a rev2 session gets BAD. A rev1 session keeps them.
    let server = TestServer::start();
    let mut rev1 = RawConnection::login(server.imap);
    fill_inbox(&mut rev1);
    let mut rev2 = rev2_session(&server);
    rev1.command("S0", "SELECT INBOX");
    rev2.command("S0", "SELECT INBOX");

    // fill_inbox's SELECT already claimed \Recent for every message.
    assert_eq!(rev1.command("R1", "SEARCH OLD"), ["* SEARCH 1 2 3 4 5", "R1 OK SEARCH completed"]);
    assert_eq!(rev1.command("R2", "SEARCH NEW"), ["* SEARCH", "R2 OK SEARCH completed"]);
    assert_eq!(rev1.command("R3", "SEARCH NOT RECENT SEEN"), ["* SEARCH 2 4", "R3 OK SEARCH completed"]);

    let cases = [
        ("B1", "SEARCH RECENT", "RECENT"),
        ("B2", "SEARCH NEW", "NEW"),
        ("B3", "UID SEARCH OLD", "OLD"),
        ("B4", "SEARCH SEEN OR FLAGGED NOT RECENT", "RECENT"),
        ("B5", "SEARCH RETURN (COUNT) NEW", "NEW"),
    ];
    for (tag, command, key) in cases {
        let reply = rev2.command(tag, command);
        assert_eq!(reply, [format!("{tag} BAD SEARCH key {key} is not valid after ENABLE IMAP4rev2")], "{command}");
    }
    let reply = rev2.command("B6", "SEARCH SEEN");
    assert_eq!(reply, ["* ESEARCH (TAG \"B6\") ALL 2,4", "B6 OK SEARCH completed"]);
}

#[test]
fn search_return_options_rfc4731() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    fill_inbox(&mut connection);
    connection.command("S0", "SELECT INBOX");

    // RFC 4731 section 3.1, with this mailbox's numbers.
    let reply = connection.command("A282", "SEARCH RETURN (MIN COUNT) UNSEEN");
    assert_eq!(reply, ["* ESEARCH (TAG \"A282\") MIN 1 COUNT 3", "A282 OK SEARCH completed"]);
    let reply = connection.command("A283", "SEARCH RETURN () UNSEEN");
    assert_eq!(reply, ["* ESEARCH (TAG \"A283\") ALL 1,3,5", "A283 OK SEARCH completed"]);
    let reply = connection.command("A284", "SEARCH RETURN (MIN) FLAGGED");
    assert_eq!(reply, ["* ESEARCH (TAG \"A284\")", "A284 OK SEARCH completed"]);
    let reply = connection.command("A285", "UID SEARCH RETURN (MIN MAX) 1:5");
    assert_eq!(reply, ["* ESEARCH (TAG \"A285\") UID MIN 1 MAX 5", "A285 OK UID SEARCH completed"]);
    let reply = connection.command("A286", "SEARCH RETURN (MIN MAX COUNT ALL) ALL");
    assert_eq!(reply, ["* ESEARCH (TAG \"A286\") MIN 1 MAX 5 COUNT 5 ALL 1:5", "A286 OK SEARCH completed"]);
    let reply = connection.command("A287", "SEARCH RETURN (COUNT) FLAGGED");
    assert_eq!(reply, ["* ESEARCH (TAG \"A287\") COUNT 0", "A287 OK SEARCH completed"]);
    let reply = connection.command("A288", "SEARCH RETURN (BOGUS) ALL");
    assert!(tagged(&reply).starts_with("A288 BAD"), "{reply:?}");
}

#[test]
fn saved_result_rfc5182() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    fill_inbox(&mut connection);
    connection.command("S0", "SELECT INBOX");

    // `$` before any SAVE is empty: the command applies to no message.
    assert_eq!(connection.command("B0", "FETCH $ FLAGS"), ["B0 OK FETCH completed"]);

    // SAVE alone returns no ESEARCH (RFC 5182 section 2.4).
    assert_eq!(connection.command("B1", "SEARCH RETURN (SAVE) UNSEEN"), ["B1 OK SEARCH completed"]);
    let reply = connection.command("B2", "FETCH $ (UID)");
    assert_eq!(reply, ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)", "* 5 FETCH (UID 5)", "B2 OK FETCH completed"]);
    let reply = connection.command("B3", "UID SEARCH $ SEEN");
    assert_eq!(reply, ["* SEARCH", "B3 OK UID SEARCH completed"]);
    let reply = connection.command("B4", "SEARCH OR $ 2 NOT DELETED");
    assert_eq!(reply, ["* SEARCH 1 2 3", "B4 OK SEARCH completed"]);
    let reply = connection.command("B5", "UID STORE $ +FLAGS.SILENT (\\Flagged)");
    assert_eq!(reply, ["B5 OK STORE completed"]);
    assert_eq!(connection.command("B6", "SEARCH FLAGGED"), ["* SEARCH 1 3 5", "B6 OK SEARCH completed"]);

    // MIN and MAX without ALL or COUNT save only those two messages.
    let reply = connection.command("B7", "SEARCH RETURN (SAVE MIN MAX) ALL");
    assert_eq!(reply, ["* ESEARCH (TAG \"B7\") MIN 1 MAX 5", "B7 OK SEARCH completed"]);
    assert_eq!(connection.command("B8", "SEARCH $"), ["* SEARCH 1 5", "B8 OK SEARCH completed"]);

    // After an expunge `$` still names the same messages.
    connection.command("B9", "EXPUNGE");
    assert_eq!(connection.command("B10", "UID SEARCH $"), ["* SEARCH 1", "B10 OK UID SEARCH completed"]);

    // A failed SEARCH with SAVE empties `$`.
    let reply = connection.command("B11", "SEARCH RETURN (SAVE) CHARSET X-UNKNOWN SUBJECT x");
    assert!(tagged(&reply).starts_with("B11 NO [BADCHARSET"), "{reply:?}");
    assert_eq!(connection.command("B12", "SEARCH $"), ["* SEARCH", "B12 OK SEARCH completed"]);

    // SELECT resets `$`.
    connection.command("B13", "SEARCH RETURN (SAVE) ALL");
    connection.command("B14", "SELECT INBOX");
    assert_eq!(connection.command("B15", "SEARCH $"), ["* SEARCH", "B15 OK SEARCH completed"]);
}

#[test]
fn saved_result_copy_and_move() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    fill_inbox(&mut connection);
    connection.command("S0", "SELECT INBOX");
    connection.command("C1", "SEARCH RETURN (SAVE) SEEN");
    let reply = connection.command("C2", "COPY $ Trash");
    assert!(tagged(&reply).starts_with("C2 OK [COPYUID "), "{reply:?}");
    let reply = connection.command("C3", "UID MOVE $ Drafts");
    assert!(reply.iter().any(|line| line == "* 2 EXPUNGE"), "{reply:?}");
    assert!(tagged(&reply).starts_with("C3 OK"), "{reply:?}");
    let status = connection.command("C4", "STATUS Trash (MESSAGES)");
    assert_eq!(status[0], "* STATUS Trash (MESSAGES 2)");
    let status = connection.command("C5", "STATUS Drafts (MESSAGES)");
    assert_eq!(status[0], "* STATUS Drafts (MESSAGES 2)");
}

#[test]
fn status_size_and_deleted() {
    let server = TestServer::start();
    let mut rev1 = RawConnection::login(server.imap);
    fill_inbox(&mut rev1);
    let size: usize = ["one", "two", "three", "four", "five"].iter().map(|s| message(s, "body text").len()).sum();

    // fill_inbox selected INBOX, which claimed every message as \Recent.
    let reply = rev1.command("T1", "STATUS INBOX (MESSAGES SIZE DELETED UNSEEN RECENT)");
    assert_eq!(reply[0], format!("* STATUS INBOX (MESSAGES 5 SIZE {size} DELETED 1 UNSEEN 3 RECENT 0)"));

    let mut rev2 = rev2_session(&server);
    let reply = rev2.command("T2", "STATUS INBOX (SIZE DELETED)");
    assert_eq!(reply[0], format!("* STATUS INBOX (SIZE {size} DELETED 1)"));
    let reply = rev2.command("T3", "STATUS INBOX (MESSAGES RECENT)");
    assert!(tagged(&reply).starts_with("T3 BAD"), "{reply:?}");
}

#[test]
fn utf8_mailbox_names_side_by_side() {
    let server = TestServer::start();
    let mut rev2 = rev2_session(&server);
    let reply = rev2.command("N1", "CREATE \"Entwürfe/Alt\"");
    assert_eq!(tagged(&reply), "N1 OK CREATE completed");
    let reply = rev2.command("N2", "LIST \"\" \"Entw*\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasChildren) \"/\" \"Entwürfe\"",
            "* LIST (\\HasNoChildren) \"/\" \"Entwürfe/Alt\"",
            "N2 OK LIST completed",
        ]
    );
    let reply = rev2.command("N3", "STATUS \"Entwürfe\" (MESSAGES)");
    assert_eq!(reply[0], "* STATUS \"Entwürfe\" (MESSAGES 0)");
    // In UTF-8 names `&` is an ordinary character.
    assert_eq!(tagged(&rev2.command("N4", "CREATE \"R&D\"")), "N4 OK CREATE completed");

    let mut rev1 = RawConnection::login(server.imap);
    let reply = rev1.command("N5", "LIST \"\" \"Entw*\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasChildren) \"/\" Entw&APw-rfe",
            "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe/Alt",
            "N5 OK LIST completed",
        ]
    );
    let reply = rev1.command("N6", "LIST \"\" R&-D");
    assert_eq!(reply, ["* LIST (\\HasNoChildren) \"/\" R&-D", "N6 OK LIST completed"]);

    let mut utf8 = RawConnection::login(server.imap);
    utf8.command("U1", "ENABLE UTF8=ACCEPT");
    let reply = utf8.command("N7", "SELECT \"Entwürfe/Alt\"");
    assert!(tagged(&reply).starts_with("N7 OK"), "{reply:?}");
}

#[test]
fn list_extended_selection_rfc5258() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    for name in ["Fruit", "Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable", "Vegetable/Broccoli", "Vegetable/Corn"] {
        assert!(tagged(&connection.command("M1", &format!("CREATE {name}"))).starts_with("M1 OK"));
    }
    for name in ["Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"] {
        assert!(tagged(&connection.command("M2", &format!("SUBSCRIBE {name}"))).starts_with("M2 OK"));
    }

    // RFC 5258 section 5, example 2.
    let reply = connection.command("A02", "LIST (SUBSCRIBED) \"\" \"*\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\Subscribed \\HasNoChildren) \"/\" Fruit/Banana",
            "* LIST (\\NonExistent \\Subscribed) \"/\" Fruit/Peach",
            "* LIST (\\Subscribed \\HasChildren) \"/\" Vegetable",
            "* LIST (\\Subscribed \\HasNoChildren) \"/\" Vegetable/Broccoli",
            "A02 OK LIST completed",
        ]
    );

    // Example 3: CHILDREN return option, two patterns in one command.
    let reply = connection.command("A03", "LIST () \"\" (\"Fruit\" \"Tofu\") RETURN (CHILDREN)");
    assert_eq!(
        reply,
        ["* LIST (\\HasChildren) \"/\" Fruit", "* LIST (\\HasNoChildren) \"/\" Tofu", "A03 OK LIST completed"]
    );

    // Example 5: RECURSIVEMATCH lists the parent of a subscribed child.
    let reply = connection.command("A04", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasChildren) \"/\" Fruit (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\Subscribed \\HasChildren) \"/\" Vegetable (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "A04 OK LIST completed",
        ]
    );

    // SUBSCRIBED as a return option marks names without selecting them.
    let reply = connection.command("A05", "LIST \"\" \"Vegetable/%\" RETURN (SUBSCRIBED)");
    assert_eq!(
        reply,
        [
            "* LIST (\\Subscribed \\HasNoChildren) \"/\" Vegetable/Broccoli",
            "* LIST (\\HasNoChildren) \"/\" Vegetable/Corn",
            "A05 OK LIST completed",
        ]
    );
    // REMOTE adds nothing: Roost has no remote mailboxes.
    let reply = connection.command("A06", "LIST (REMOTE) \"\" \"Tofu\"");
    assert_eq!(reply, ["* LIST (\\HasNoChildren) \"/\" Tofu", "A06 OK LIST completed"]);
    let reply = connection.command("A07", "LIST (RECURSIVEMATCH) \"\" \"%\"");
    assert!(tagged(&reply).starts_with("A07 BAD"), "{reply:?}");
}

#[test]
fn list_nonexistent_parent_by_session_kind() {
    let server = TestServer::start();
    let mut rev1 = RawConnection::login(server.imap);
    rev1.command("M1", "CREATE Fruit/Apple");
    rev1.command("M2", "DELETE Fruit");
    let reply = rev1.command("L1", "LIST \"\" Fruit");
    assert_eq!(reply, ["* LIST (\\Noselect \\HasChildren) \"/\" Fruit", "L1 OK LIST completed"]);
    let mut rev2 = rev2_session(&server);
    let reply = rev2.command("L2", "LIST \"\" Fruit");
    assert_eq!(reply, ["* LIST (\\NonExistent) \"/\" Fruit", "L2 OK LIST completed"]);
    let reply = rev2.command("L3", "LIST \"\" Fruit RETURN (CHILDREN)");
    assert_eq!(reply, ["* LIST (\\NonExistent \\HasChildren) \"/\" Fruit", "L3 OK LIST completed"]);
}

#[test]
fn lsub_kept_in_rev2() {
    let server = TestServer::start();
    let mut rev2 = rev2_session(&server);
    assert!(tagged(&rev2.command("M1", "CREATE \"Entwürfe\"")).starts_with("M1 OK"));
    for name in ["\"Entwürfe\"", "Gone/Child"] {
        assert!(tagged(&rev2.command("M2", &format!("SUBSCRIBE {name}"))).starts_with("M2 OK"), "{name}");
    }

    // RFC 9051 deprecates LSUB in favour of LIST (SUBSCRIBED) but does not
    // have a server reject it, and a server that also offers IMAP4rev1
    // has it anyway. So LSUB keeps its RFC 3501 output after ENABLE
    // IMAP4rev2: `\Noselect` rather than `\NonExistent`, and no children
    // attributes. Only the names change to UTF-8, as everywhere in rev2.
    let reply = rev2.command("L1", "LSUB \"\" \"*\"");
    assert_eq!(reply, ["* LSUB () \"/\" \"Entwürfe\"", "* LSUB () \"/\" Gone/Child", "L1 OK LSUB completed"]);
    let reply = rev2.command("L2", "LSUB \"\" \"%\"");
    assert_eq!(reply, ["* LSUB () \"/\" \"Entwürfe\"", "* LSUB (\\Noselect) \"/\" Gone", "L2 OK LSUB completed"]);

    // The rev2 form of the same question.
    let reply = rev2.command("L3", "LIST (SUBSCRIBED) \"\" \"*\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\Subscribed \\HasNoChildren) \"/\" \"Entwürfe\"",
            "* LIST (\\NonExistent \\Subscribed) \"/\" Gone/Child",
            "L3 OK LIST completed",
        ]
    );
}

#[test]
fn list_status_rfc5819() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    fill_inbox(&mut connection);
    connection.command("M1", "CREATE Archive/2024");
    connection.command("M2", "DELETE Archive");
    let reply = connection.command("A01", "LIST \"\" (INBOX Archive*) RETURN (STATUS (MESSAGES UNSEEN))");
    assert_eq!(
        reply,
        [
            "* LIST (\\NonExistent) \"/\" Archive",
            "* LIST (\\HasNoChildren) \"/\" Archive/2024",
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* STATUS Archive/2024 (MESSAGES 0 UNSEEN 0)",
            "* STATUS INBOX (MESSAGES 5 UNSEEN 3)",
            "A01 OK LIST completed",
        ]
    );
}

#[test]
fn special_use_list_and_create() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);

    // RFC 6154 section 5.2: CREATE with USE, then the SPECIAL-USE
    // selection option.
    let reply = connection.command("t1", "CREATE MyArchive (USE (\\Archive))");
    assert_eq!(reply, ["t1 OK CREATE completed"]);
    let reply = connection.command("t2", "LIST (SPECIAL-USE) \"\" \"*\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Archive) \"/\" MyArchive",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
            "t2 OK LIST completed",
        ]
    );
    let reply = connection.command("t3", "LIST \"\" \"Sent\" RETURN (SPECIAL-USE)");
    assert_eq!(reply, ["* LIST (\\HasNoChildren \\Sent) \"/\" Sent", "t3 OK LIST completed"]);

    let reply = connection.command("t4", "CREATE Everything (USE (\\All))");
    assert!(tagged(&reply).starts_with("t4 NO [USEATTR]"), "{reply:?}");
    let reply = connection.command("t5", "CREATE Odd (USE (\\Unheard))");
    assert!(tagged(&reply).starts_with("t5 NO [USEATTR]"), "{reply:?}");
    let reply = connection.command("t6", "CREATE Two (USE (\\Sent \\Junk))");
    assert!(tagged(&reply).starts_with("t6 NO [USEATTR]"), "{reply:?}");
    let reply = connection.command("t7", "LIST \"\" (Everything Odd Two)");
    assert_eq!(reply, ["t7 OK LIST completed"]);
    let reply = connection.command("t8", "CREATE Plain (USE ())");
    assert_eq!(reply, ["t8 OK CREATE completed"]);
    let reply = connection.command("t9", "CREATE MyArchive (USE (\\Archive))");
    assert!(tagged(&reply).starts_with("t9 NO [ALREADYEXISTS]"), "{reply:?}");
}

#[test]
fn special_use_recursivematch_childinfo() {
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    for command in ["CREATE Work", "CREATE Work/Old (USE (\\Archive))", "CREATE Gone/Junk (USE (\\Junk))", "DELETE Gone"] {
        assert!(tagged(&connection.command("M1", command)).starts_with("M1 OK"), "{command}");
    }

    // RECURSIVEMATCH (RFC 5258 section 3) lists a name that matches the
    // pattern when a mailbox below it meets the selection criteria but not
    // the pattern, and CHILDINFO names the criteria met.
    let reply = connection.command("R1", "LIST (SPECIAL-USE RECURSIVEMATCH) \"\" \"%\"");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\NonExistent) \"/\" Gone (\"CHILDINFO\" (\"SPECIAL-USE\"))",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
            "* LIST (\\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SPECIAL-USE\"))",
            "R1 OK LIST completed",
        ]
    );

    // Without RECURSIVEMATCH the parents are not listed.
    let reply = connection.command("R2", "LIST (SPECIAL-USE) \"\" \"%\"");
    assert_eq!(untagged(&reply).len(), 3, "{reply:?}");
    assert!(!reply.iter().any(|line| line.contains("CHILDINFO")), "{reply:?}");

    // A pattern that matches the special-use mailbox itself lists it, so
    // its parent gets no CHILDINFO.
    let reply = connection.command("R3", "LIST (SPECIAL-USE RECURSIVEMATCH) \"\" \"Work*\"");
    assert_eq!(reply, ["* LIST (\\HasNoChildren \\Archive) \"/\" Work/Old", "R3 OK LIST completed"]);

    // With SUBSCRIBED as well, a descendant must meet both criteria, and
    // CHILDINFO names both options.
    let reply = connection.command("R4", "LIST (SUBSCRIBED SPECIAL-USE RECURSIVEMATCH) \"\" \"Work\"");
    assert_eq!(reply, ["R4 OK LIST completed"]);
    assert!(tagged(&connection.command("M2", "SUBSCRIBE Work/Old")).starts_with("M2 OK"));
    let reply = connection.command("R5", "LIST (SUBSCRIBED SPECIAL-USE RECURSIVEMATCH) \"\" \"Work\"");
    assert_eq!(
        reply,
        ["* LIST (\\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\" \"SPECIAL-USE\"))", "R5 OK LIST completed"]
    );
}

#[test]
fn append_literal8() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    let mut raw = b"Subject: binary\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    raw.extend_from_slice(&[0xff, 0x00, 0x01, b'\r', b'\n']);
    let mut command = format!("B1 APPEND INBOX ~{{{}+}}\r\n", raw.len()).into_bytes();
    command.extend_from_slice(&raw);
    command.extend_from_slice(b"\r\n");
    connection.send(&command);
    let reply = connection.read_tagged("B1");
    assert!(tagged(&reply).starts_with("B1 OK [APPENDUID "), "{reply:?}");
    let status = connection.command("B2", "STATUS INBOX (MESSAGES SIZE)");
    assert_eq!(status[0], format!("* STATUS INBOX (MESSAGES 1 SIZE {})", raw.len()));
}

#[test]
fn append_limit_enforced() {
    let server = TestServer::start_with(|config| config.limits.message_bytes_max = 200);
    let (mut connection, greeting) = RawConnection::connect(server.imap);
    assert!(greeting.contains(" APPENDLIMIT=200"), "{greeting}");
    connection.command("L1", &format!("LOGIN {} {}", common::USER, common::PASSWORD));
    let at_limit = vec![b'a'; 200];
    let mut command = b"A1 APPEND INBOX {200+}\r\n".to_vec();
    command.extend_from_slice(&at_limit);
    command.extend_from_slice(b"\r\n");
    connection.send(&command);
    assert!(tagged(&connection.read_tagged("A1")).starts_with("A1 OK"));
    // The literal is refused before its bytes are sent, so the tagged
    // answer comes in place of the continuation request.
    connection.send(b"A2 APPEND INBOX {201}\r\n");
    let reply = connection.read_tagged("A2");
    assert_eq!(reply, ["A2 NO [TOOBIG] Literal is larger than 200 bytes"]);

    // Any other literal over its limit is still a client error, BAD.
    connection.send(b"A3 SEARCH SUBJECT {2000000}\r\n");
    let reply = connection.read_tagged("A3");
    assert_eq!(tagged(&reply), "A3 BAD [TOOBIG] Literal is larger than 1048576 bytes");
}

#[test]
fn status_append_limit_rfc7889() {
    // RFC 7889 section 3: APPENDLIMIT is a STATUS item and a LIST STATUS
    // return item, in rev1 and rev2 sessions alike. Roost has one limit
    // for every mailbox, the one in the capability.
    let server = TestServer::start_with(|config| config.limits.message_bytes_max = 257890);
    let mut rev1 = RawConnection::login(server.imap);
    let reply = rev1.command("S1", "STATUS INBOX (APPENDLIMIT)");
    assert_eq!(reply, ["* STATUS INBOX (APPENDLIMIT 257890)", "S1 OK STATUS completed"]);

    let mut rev2 = rev2_session(&server);
    let reply = rev2.command("S2", "STATUS inbox (MESSAGES APPENDLIMIT UIDNEXT)");
    assert_eq!(
        reply,
        ["* STATUS INBOX (MESSAGES 0 APPENDLIMIT 257890 UIDNEXT 1)", "S2 OK STATUS completed"]
    );

    let reply = rev2.command("L1", "LIST \"\" (INBOX Drafts) RETURN (STATUS (APPENDLIMIT MESSAGES))");
    assert_eq!(
        reply,
        [
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* STATUS Drafts (APPENDLIMIT 257890 MESSAGES 0)",
            "* STATUS INBOX (APPENDLIMIT 257890 MESSAGES 0)",
            "L1 OK LIST completed",
        ]
    );

    let reply = rev2.command("S3", "STATUS Missing (APPENDLIMIT)");
    assert!(tagged(&reply).starts_with("S3 NO [NONEXISTENT]"), "{reply:?}");
    let reply = rev2.command("S4", "STATUS INBOX (APPENDLIMIT NONSENSE)");
    assert_eq!(reply, ["S4 BAD Invalid arguments to STATUS"]);
}

/// A message whose part 1 is base64 with a NUL byte, part 2
/// quoted-printable text and part 3 in an encoding RFC 2045 does not
/// define.
const BINARY_MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=x\r\n\r\n\
--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAP8BAg==\r\n\
--x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n\
--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-unheard\r\n\r\nzzz\r\n\
--x--\r\n";

#[test]
fn fetch_binary_rfc3516() {
    let server = TestServer::start();
    let mut connection = RawConnection::login(server.imap);
    append(&mut connection, "INBOX", BINARY_MESSAGE);
    connection.command("S0", "SELECT INBOX");

    // Decoded content with a NUL byte comes as a literal8.
    connection.send(b"F1 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n");
    assert_eq!(connection.read_line().unwrap(), "* 1 FETCH (BINARY[1] ~{4}");
    let rest = connection.read_tagged("F1");
    assert_eq!(rest[0].as_bytes(), b"\x00\xef\xbf\xbd\x01\x02 BINARY.SIZE[1] 4)");
    assert_eq!(rest[1], "F1 OK FETCH completed");

    let reply = connection.command("F2", "FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])");
    assert_eq!(reply[0], "* 1 FETCH (BINARY[2] {5}");
    assert_eq!(reply[1], "café BINARY.SIZE[2] 5)");
    let reply = connection.command("F3", "FETCH 1 (BINARY.PEEK[2]<1.4>)");
    assert_eq!(reply[0], "* 1 FETCH (BINARY[2]<1> {4}");
    assert_eq!(reply[1], "afé)");

    // PEEK keeps \Seen unset; BINARY sets it.
    assert_eq!(connection.command("F4", "FETCH 1 FLAGS")[0], "* 1 FETCH (FLAGS (\\Recent))");
    let reply = connection.command("F5", "FETCH 1 BINARY[2]");
    assert!(reply.iter().any(|line| line.contains("\\Seen")), "{reply:?}");

    let reply = connection.command("F6", "FETCH 1 BINARY.SIZE[3]");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(tagged(&reply).starts_with("F6 NO [UNKNOWN-CTE] "), "{reply:?}");
}

#[test]
fn binary_unknown_encoding_keeps_unseen() {
    // A BINARY fetch that ends in NO [UNKNOWN-CTE] sends nothing for that
    // message, so \Seen stays unset on it. A message before it in the same
    // command was sent and gets \Seen.
    let server = TestServer::start();
    let mut connection = rev2_session(&server);
    append(&mut connection, "INBOX", &message("plain", "body text"));
    append(&mut connection, "INBOX", BINARY_MESSAGE);
    append(&mut connection, "INBOX", &message("after", "body text"));
    connection.command("S1", "SELECT INBOX");

    let reply = connection.command("F1", "FETCH 2 BINARY[3]");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(tagged(&reply).starts_with("F1 NO [UNKNOWN-CTE] "), "{reply:?}");
    let flags = connection.command("F2", "FETCH 2 FLAGS");
    assert_eq!(flags[0], "* 2 FETCH (FLAGS ())");

    let reply = connection.command("F3", "FETCH 1:3 BINARY[3]");
    assert!(tagged(&reply).starts_with("F3 NO [UNKNOWN-CTE] "), "{reply:?}");
    assert!(reply[0].starts_with("* 1 FETCH (FLAGS (\\Seen) BINARY[3] "), "{reply:?}");
    assert!(!reply.iter().any(|line| line.starts_with("* 2 ") || line.starts_with("* 3 ")), "{reply:?}");
    let flags = connection.command("F4", "FETCH 1:3 FLAGS");
    assert_eq!(
        flags,
        [
            "* 1 FETCH (FLAGS (\\Seen))",
            "* 2 FETCH (FLAGS ())",
            "* 3 FETCH (FLAGS ())",
            "F4 OK FETCH completed",
        ]
    );
}
