use imap_codec::{CommandCodec, decode::Decoder};
use imap_types::{
    IntoStatic,
    command::{Command, CommandBody},
    core::Tag,
    fetch::{MacroOrMessageDataItemNames, MessageDataItemName},
    mailbox::{ListMailbox, Mailbox},
    response::{Code, StatusKind},
    search::SearchKey,
    sequence::SequenceSet,
    status::StatusDataItemName,
};

use super::*;
use crate::reader::{CommandReader, ReadEvent, ReadMode, ReaderLimits, ReaderOptions};

fn limits() -> ReaderLimits {
    ReaderLimits {
        line_bytes_max: 256,
        literal_bytes_max: 64,
        append_literal_bytes_max: 64,
        command_bytes_max: 512,
    }
}

fn read_chunks(chunks: &[&[u8]], options: &ReaderOptions) -> Vec<ReadEvent> {
    let mut reader = CommandReader::new();
    reader.set_options(options.clone());
    let mut events = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        while let Some(event) = reader.next(ReadMode::Command, &limits()) {
            events.push(event);
        }
    }
    events
}

/// Feeds `input` whole and split in two at every offset, and returns the
/// events of the whole feed after checking that every split gives them.
fn read_with(input: &[u8], options: &ReaderOptions) -> Vec<ReadEvent> {
    let whole = read_chunks(&[input], options);
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let events = read_chunks(&[first, second], options);
        assert_eq!(
            events,
            whole,
            "split at {split}: {:?}",
            String::from_utf8_lossy(input)
        );
    }
    whole
}

fn read(input: &[u8]) -> Vec<ReadEvent> {
    read_with(input, &ReaderOptions::default())
}

/// Reads one command without literals and returns its extended form.
fn extended(input: &[u8]) -> ExtendedCommand {
    let events = read(input);
    let [ReadEvent::Extended { tag, command }] = events.as_slice() else {
        panic!("{:?} gave {events:?}", String::from_utf8_lossy(input));
    };
    let expected_tag = input.split(|&byte| byte == b' ').next().unwrap();
    assert_eq!(tag.inner().as_bytes(), expected_tag);
    command.clone()
}

fn rejected_text(input: &[u8]) -> String {
    let events = read(input);
    let [
        ReadEvent::Rejected {
            text, close: false, ..
        },
    ] = events.as_slice()
    else {
        panic!("{:?} gave {events:?}", String::from_utf8_lossy(input));
    };
    text.clone()
}

fn search(input: &[u8]) -> ExtendedSearch {
    match extended(input) {
        ExtendedCommand::Search(search) => search,
        other => panic!("{other:?}"),
    }
}

fn list(input: &[u8]) -> ExtendedList {
    match extended(input) {
        ExtendedCommand::List(list) => list,
        other => panic!("{other:?}"),
    }
}

/// Decodes `t SEARCH criteria` with imap-codec and returns its keys as one
/// key, the way [`Criteria::Key`] contains them.
fn keys(criteria: &str) -> SearchKey<'static> {
    let command = format!("t SEARCH {criteria}\r\n");
    let (_, command) = CommandCodec::new().decode(command.as_bytes()).unwrap();
    let CommandBody::Search { criteria, .. } = command.body.into_static() else {
        unreachable!()
    };
    let mut keys = criteria.into_inner();
    match keys.len() {
        1 => keys.pop().unwrap(),
        _ => SearchKey::And(keys.try_into().unwrap()),
    }
}

/// Returns the name a mailbox value encodes, whatever its wire form.
fn mailbox_bytes(mailbox: &Mailbox<'_>) -> Vec<u8> {
    match mailbox {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(other) => other.as_ref().to_vec(),
    }
}

/// Returns the pattern a LIST pattern value encodes, whatever its wire
/// form.
fn pattern_bytes(pattern: &ListMailbox<'_>) -> Vec<u8> {
    match pattern {
        ListMailbox::Token(token) => token.as_ref().to_vec(),
        ListMailbox::String(string) => string.as_ref().to_vec(),
    }
}

fn options(names: &[&str]) -> SearchReturnOptions {
    let mut options = SearchReturnOptions::default();
    for name in names {
        match *name {
            "MIN" => options.min = true,
            "MAX" => options.max = true,
            "ALL" => options.all = true,
            "COUNT" => options.count = true,
            "SAVE" => options.save = true,
            _ => unreachable!(),
        }
    }
    options
}

#[test]
fn esearch_return_options() {
    // RFC 4731 section 3.1 and RFC 9051 section 6.4.4.
    let cases: &[(&[u8], bool, &[&str], &str)] = &[
        (
            b"A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
            false,
            &["MIN", "COUNT"],
            "FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        ),
        (
            b"A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
            false,
            &["ALL"],
            "FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        ),
        (
            b"A285 UID SEARCH RETURN (MIN MAX) 1:5000\r\n",
            true,
            &["MIN", "MAX"],
            "1:5000",
        ),
        (
            b"A286 search return (all count min max save) unseen\r\n",
            false,
            &["ALL", "COUNT", "MIN", "MAX", "SAVE"],
            "UNSEEN",
        ),
    ];
    for (input, uid, names, criteria) in cases {
        let search = search(input);
        assert_eq!(search.uid, *uid);
        assert_eq!(search.return_options, Some(options(names)));
        assert_eq!(search.criteria, Criteria::Key(keys(criteria)));
        assert_eq!(search.charset, None);
    }
}

#[test]
fn esearch_charset_and_literal() {
    let input = b"a1 SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT {5}\r\nHallo\r\n";
    let events = read(input);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], ReadEvent::ContinuationNeeded { length: 5 });
    let ReadEvent::Extended {
        command: ExtendedCommand::Search(search),
        ..
    } = &events[1]
    else {
        panic!("{events:?}");
    };
    assert_eq!(search.charset.as_ref().unwrap().as_ref(), "UTF-8");
    let SearchKey::Subject(subject) = search.criteria.clone().into_search_key(None) else {
        panic!("{search:?}");
    };
    assert_eq!(subject.as_ref(), b"Hallo");
}

#[test]
fn esearch_invalid_options_rejected() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"a1 SEARCH RETURN (MIN PARTIAL) ALL\r\n",
            "Unknown SEARCH RETURN option PARTIAL",
        ),
        (
            b"a1 SEARCH RETURN MIN ALL\r\n",
            "Expected RETURN (options) after SEARCH",
        ),
        (
            b"a1 SEARCH RETURN (MIN)ALL\r\n",
            "Expected search criteria after RETURN options",
        ),
        (
            b"a1 SEARCH RETURN (MIN) FOO\r\n",
            "Invalid search criteria after RETURN options",
        ),
        (
            b"a1 SEARCH RETURN (MIN)\r\n",
            "Expected search criteria after RETURN options",
        ),
        (
            b"a1 SEARCH RETURN (MIN) LARGER $\r\n",
            "Invalid search criteria",
        ),
    ];
    for (input, text) in cases {
        assert_eq!(
            rejected_text(input),
            *text,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn searchres_in_criteria() {
    // RFC 5182 section 2 and RFC 9051 section 6.4.4.4.
    let saved = search(b"A289 UID SEARCH UID $ SMALLER 4096\r\n");
    assert!(saved.uid);
    assert_eq!(saved.return_options, None);
    assert_eq!(
        saved.criteria,
        Criteria::And(vec![
            Criteria::SavedResult,
            Criteria::Key(SearchKey::Smaller(4096)),
        ])
    );

    let saved = search(b"A290 SEARCH $ NOT DELETED\r\n");
    assert_eq!(
        saved.criteria,
        Criteria::And(vec![
            Criteria::SavedResult,
            Criteria::Key(keys("NOT DELETED"))
        ])
    );

    // `$` alone, nested, and next to a `$` that is a string argument.
    assert_eq!(search(b"a1 SEARCH $\r\n").criteria, Criteria::SavedResult);
    let nested = search(b"a2 SEARCH OR (SUBJECT $ $) NOT 1:3\r\n");
    assert_eq!(
        nested.criteria,
        Criteria::Or(
            Box::new(Criteria::And(vec![
                Criteria::Key(keys("SUBJECT $")),
                Criteria::SavedResult,
            ])),
            Box::new(Criteria::Key(keys("NOT 1:3"))),
        )
    );

    let saved =
        search(b"A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
    assert_eq!(saved.return_options, Some(options(&["SAVE"])));
}

#[test]
fn searchres_resolves_to_uid_key() {
    let criteria = search(b"a1 SEARCH NOT $ SEEN\r\n").criteria;
    let uids = SequenceSet::try_from("4:7,9").unwrap();
    assert_eq!(
        criteria.clone().into_search_key(Some(&uids)),
        keys("NOT UID 4:7,9 SEEN")
    );
    assert_eq!(criteria.into_search_key(None), keys("NOT NOT ALL SEEN"));
}

#[test]
fn searchres_as_sequence_set() {
    // RFC 5182 section 2 examples, and `$` in every command that takes a
    // sequence set.
    let cases: &[(&[u8], &[u8], bool)] = &[
        (
            b"A283 FETCH $ (UID INTERNALDATE FLAGS RFC822.HEADER)\r\n",
            b"A283 FETCH 4:5 (UID INTERNALDATE FLAGS RFC822.HEADER)\r\n",
            false,
        ),
        (
            b"A285 UID STORE $ +FLAGS (\\Seen)\r\n",
            b"A285 UID STORE 4:5 +FLAGS (\\Seen)\r\n",
            true,
        ),
        (
            b"A286 UID COPY $ Trash\r\n",
            b"A286 UID COPY 4:5 Trash\r\n",
            true,
        ),
        (b"A287 MOVE $ Trash\r\n", b"A287 MOVE 4:5 Trash\r\n", false),
        (b"A288 UID EXPUNGE $\r\n", b"A288 UID EXPUNGE 4:5\r\n", true),
        (
            b"a1 copy $ \"Other Messages\"\r\n",
            b"a1 COPY 4:5 \"Other Messages\"\r\n",
            false,
        ),
    ];
    for (input, resolved, uses_uids) in cases {
        let ExtendedCommand::SavedResult(command) = extended(input) else {
            panic!("{:?}", String::from_utf8_lossy(input));
        };
        assert_eq!(command.uses_uids(), *uses_uids);
        let set = SequenceSet::try_from("4:5").unwrap();
        let (_, expected) = CommandCodec::new().decode(resolved).unwrap();
        assert_eq!(command.into_command(set), expected.into_static());
    }

    // The mailbox of COPY may be a literal.
    let events = read(b"a1 COPY $ {5}\r\nTrash\r\n");
    let [
        ReadEvent::ContinuationNeeded { length: 5 },
        ReadEvent::Extended { command, .. },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    let ExtendedCommand::SavedResult(command) = command else {
        panic!("{command:?}");
    };
    let CommandBody::Copy { mailbox, .. } = command.body() else {
        panic!("{command:?}");
    };
    assert_eq!(mailbox_bytes(mailbox), b"Trash");
}

#[test]
fn searchres_invalid_forms_rejected() {
    let cases: &[(&[u8], &str)] = &[
        (b"a1 FETCH $,1 FLAGS\r\n", "Invalid arguments to FETCH"),
        (b"a1 FETCH $:4 FLAGS\r\n", "Invalid arguments to FETCH"),
        (b"a1 FETCH $ NOSUCHITEM\r\n", "Invalid arguments to FETCH"),
        (b"a1 EXPUNGE $\r\n", "Invalid arguments to EXPUNGE"),
        (b"a1 SEARCH LARGER $\r\n", "Invalid arguments to SEARCH"),
        (b"a1 SEARCH UID $,1\r\n", "Invalid arguments to SEARCH"),
    ];
    for (input, text) in cases {
        assert_eq!(
            rejected_text(input),
            *text,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn list_extended_rfc_examples() {
    // RFC 5258 section 5.
    let selection = |subscribed, remote, recursive_match| ListSelection {
        subscribed,
        remote,
        recursive_match,
        special_use: false,
    };
    let children = ListReturnOptions {
        children: true,
        ..ListReturnOptions::default()
    };
    let cases: &[(&[u8], ListSelection, &[&str], ListReturnOptions)] = &[
        (
            b"A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n",
            selection(true, false, false),
            &["*"],
            ListReturnOptions::default(),
        ),
        (
            b"A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n",
            selection(false, false, false),
            &["%"],
            children.clone(),
        ),
        (
            b"A04 LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)\r\n",
            selection(false, true, false),
            &["%"],
            children.clone(),
        ),
        (
            b"A05 LIST (REMOTE SUBSCRIBED) \"\" \"*\"\r\n",
            selection(true, true, false),
            &["*"],
            ListReturnOptions::default(),
        ),
        (
            b"A06 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"\r\n",
            selection(true, false, true),
            &["%"],
            ListReturnOptions::default(),
        ),
        (
            b"BBB LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")\r\n",
            selection(false, false, false),
            &["INBOX", "Drafts", "Sent/%"],
            ListReturnOptions::default(),
        ),
        (
            b"A01 LIST \"\" % RETURN (CHILDREN)\r\n",
            selection(false, false, false),
            &["%"],
            children.clone(),
        ),
        (
            b"a1 list (subscribed) \"\" (% other/*) return (subscribed children)\r\n",
            selection(true, false, false),
            &["%", "other/*"],
            ListReturnOptions {
                subscribed: true,
                children: true,
                ..ListReturnOptions::default()
            },
        ),
    ];
    for (input, selection, patterns, return_options) in cases {
        let list = list(input);
        assert_eq!(
            list.selection,
            *selection,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(mailbox_bytes(&list.reference), b"");
        let actual: Vec<Vec<u8>> = list.patterns.iter().map(pattern_bytes).collect();
        let expected: Vec<Vec<u8>> = patterns
            .iter()
            .map(|pattern| pattern.as_bytes().to_vec())
            .collect();
        assert_eq!(actual, expected);
        assert_eq!(list.return_options, *return_options);
    }
}

#[test]
fn list_status_and_special_use() {
    // RFC 5819 section 5 and RFC 6154 section 5.
    let list_status = list(b"A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))\r\n");
    assert_eq!(
        list_status.return_options.status,
        Some(vec![
            StatusItem::Standard(StatusDataItemName::Messages),
            StatusItem::Standard(StatusDataItemName::Unseen)
        ])
    );

    let with_size = list(b"A02 LIST \"\" % RETURN (STATUS (SIZE DELETED) CHILDREN)\r\n");
    assert_eq!(
        with_size.return_options.status,
        Some(vec![
            StatusItem::Standard(StatusDataItemName::Size),
            StatusItem::Standard(StatusDataItemName::Deleted)
        ])
    );
    assert!(with_size.return_options.children);

    let special_use_return = list(b"t1 LIST \"\" \"%\" RETURN (SPECIAL-USE)\r\n");
    assert!(special_use_return.return_options.special_use);
    let special_use_selection = list(b"t3 LIST (SPECIAL-USE) \"\" \"*\"\r\n");
    assert!(special_use_selection.selection.special_use);
    let recursive = list(b"t4 LIST (SPECIAL-USE RECURSIVEMATCH) \"\" %\r\n");
    assert!(recursive.selection.recursive_match);
}

#[test]
fn list_patterns_as_literals() {
    let input = b"a1 LIST (SUBSCRIBED) {0}\r\n ({3}\r\nabc %)\r\n";
    let events = read(input);
    let [
        ReadEvent::ContinuationNeeded { length: 0 },
        ReadEvent::ContinuationNeeded { length: 3 },
        ReadEvent::Extended {
            command: ExtendedCommand::List(list),
            ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(list.patterns.len(), 2);
    assert_eq!(pattern_bytes(&list.patterns[0]), b"abc");
    assert_eq!(pattern_bytes(&list.patterns[1]), b"%");
    assert_eq!(mailbox_bytes(&list.reference), b"");
}

#[test]
fn list_invalid_forms_rejected() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"a1 LIST (SUBSCRIBED FOO) \"\" *\r\n",
            "Unknown LIST selection option FOO",
        ),
        (
            b"a1 LIST \"\" * RETURN (CHILDREN BAR)\r\n",
            "Unknown LIST return option BAR",
        ),
        (
            b"a1 LIST (RECURSIVEMATCH) \"\" *\r\n",
            "RECURSIVEMATCH requires SUBSCRIBED or SPECIAL-USE",
        ),
        (
            b"a1 LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n",
            "RECURSIVEMATCH requires SUBSCRIBED or SPECIAL-USE",
        ),
        (b"a1 LIST \"\" () \r\n", "Invalid LIST mailbox pattern"),
        (
            b"a1 LIST \"\" (a b\r\n",
            "Expected a space or ) between LIST patterns",
        ),
        (
            b"a1 LIST \"\" * RETURN (STATUS (MESSAGES BOGUS))\r\n",
            "Unknown STATUS item BOGUS",
        ),
        (
            b"a1 LIST \"\" * RETURN (STATUS)\r\n",
            "Expected STATUS (items) in the LIST return options",
        ),
        (b"a1 LIST \"\" * EXTRA\r\n", "Invalid arguments to LIST"),
        (
            b"a1 LIST () \"\" * EXTRA\r\n",
            "Expected RETURN after the LIST patterns",
        ),
    ];
    for (input, text) in cases {
        assert_eq!(
            rejected_text(input),
            *text,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn list_pattern_count_limit() {
    let options = ReaderOptions {
        extended: ExtendedLimits {
            list_patterns_max: 3,
            ..ExtendedLimits::default()
        },
        ..ReaderOptions::default()
    };
    let at_limit = read_with(b"a1 LIST \"\" (a b c)\r\n", &options);
    let [ReadEvent::Extended { .. }] = at_limit.as_slice() else {
        panic!("{at_limit:?}");
    };
    let past_limit = read_with(b"a1 LIST \"\" (a b c d)\r\n", &options);
    let [ReadEvent::Rejected { text, .. }] = past_limit.as_slice() else {
        panic!("{past_limit:?}");
    };
    assert_eq!(text, "LIST has more than 3 mailbox patterns");
}

#[test]
fn create_special_use() {
    // RFC 6154 section 5.3.
    let ExtendedCommand::Create(create) = extended(b"t1 CREATE \"Everything\" (USE (\\All))\r\n")
    else {
        panic!()
    };
    assert_eq!(mailbox_bytes(&create.mailbox), b"Everything");
    assert_eq!(create.special_uses, [SpecialUse::All]);

    let ExtendedCommand::Create(create) =
        extended(b"t2 create Archive/2024 (use (\\sent \\Archive \\Important))\r\n")
    else {
        panic!()
    };
    assert_eq!(
        create.special_uses,
        [
            SpecialUse::Sent,
            SpecialUse::Archive,
            SpecialUse::Other("\\Important".to_owned()),
        ]
    );

    let ExtendedCommand::Create(create) = extended(b"t3 CREATE x (USE ())\r\n") else {
        panic!()
    };
    assert!(create.special_uses.is_empty());
}

#[test]
fn create_invalid_forms_rejected() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"a1 CREATE x (FOO (\\Sent))\r\n",
            "Unknown CREATE parameter FOO",
        ),
        (
            b"a1 CREATE x (USE (Sent))\r\n",
            "Expected CREATE name (USE (attributes))",
        ),
        (
            b"a1 CREATE x (USE \\Sent)\r\n",
            "Expected CREATE name (USE (attributes))",
        ),
        (
            b"a1 CREATE x (USE (\\Sent)) y\r\n",
            "Expected CREATE name (USE (attributes))",
        ),
        (b"a1 CREATE x y\r\n", "Invalid arguments to CREATE"),
    ];
    for (input, text) in cases {
        assert_eq!(
            rejected_text(input),
            *text,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn create_special_use_count_limit() {
    let options = ReaderOptions {
        extended: ExtendedLimits {
            create_special_uses_max: 2,
            ..ExtendedLimits::default()
        },
        ..ReaderOptions::default()
    };
    let at_limit = read_with(b"a1 CREATE x (USE (\\Sent \\Junk))\r\n", &options);
    let [ReadEvent::Extended { .. }] = at_limit.as_slice() else {
        panic!("{at_limit:?}");
    };
    let past_limit = read_with(b"a1 CREATE x (USE (\\Sent \\Junk \\Trash))\r\n", &options);
    let [ReadEvent::Rejected { text, .. }] = past_limit.as_slice() else {
        panic!("{past_limit:?}");
    };
    assert_eq!(text, "CREATE has more than 2 special-use attributes");
}

#[test]
fn plain_commands_stay_commands() {
    // Forms imap-codec parses never come out as extended commands.
    for input in [
        &b"a1 LIST \"\" %\r\n"[..],
        b"a2 SEARCH UNSEEN\r\n",
        b"a3 FETCH 1 FLAGS\r\n",
        b"a4 CREATE x\r\n",
        b"a5 STATUS INBOX (MESSAGES SIZE DELETED)\r\n",
        b"a6 SEARCH SUBJECT $\r\n",
    ] {
        let events = read(input);
        let [ReadEvent::Command(command)] = events.as_slice() else {
            panic!("{:?} gave {events:?}", String::from_utf8_lossy(input));
        };
        let (_, expected) = CommandCodec::new().decode(input).unwrap();
        assert_eq!(*command, expected.into_static());
    }
}

#[test]
fn utf8_quoted_needs_enable() {
    let input = "a1 SELECT \"Entwürfe\"\r\n".as_bytes();
    assert_eq!(
        rejected_text(input),
        "8-bit characters outside literals require ENABLE UTF8=ACCEPT"
    );

    let utf8 = ReaderOptions {
        utf8_accepted: true,
        ..ReaderOptions::default()
    };
    let events = read_with(input, &utf8);
    let [
        ReadEvent::Command(Command {
            body: CommandBody::Select { mailbox, .. },
            ..
        }),
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    let Mailbox::Other(other) = mailbox else {
        panic!("{mailbox:?}");
    };
    assert_eq!(other.as_ref(), "Entwürfe".as_bytes());

    // 8-bit bytes in a literal were always allowed.
    let events = read("a2 SELECT {9}\r\nEntwürfe\r\n".as_bytes());
    let [
        ReadEvent::ContinuationNeeded { length: 9 },
        ReadEvent::Command(_),
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };

    // UTF-8 in extended forms follows the same switch.
    let list = "a3 LIST \"\" (\"Entwürfe/%\" INBOX)\r\n".as_bytes();
    assert_eq!(
        rejected_text(list),
        "8-bit characters outside literals require ENABLE UTF8=ACCEPT"
    );
    let events = read_with(list, &utf8);
    let [ReadEvent::Extended { .. }] = events.as_slice() else {
        panic!("{events:?}");
    };
}

#[test]
fn literal_minus_limit() {
    let options = ReaderOptions {
        non_sync_literal_bytes_max: Some(4),
        ..ReaderOptions::default()
    };
    let at_limit = read_with(b"a1 LOGIN {4+}\r\nuser pass\r\n", &options);
    let [ReadEvent::Command(_)] = at_limit.as_slice() else {
        panic!("{at_limit:?}");
    };

    // Past the limit the literal's bytes are skipped, not read as commands.
    let past_limit = read_with(b"a1 LOGIN {5+}\r\nusers pass\r\na2 NOOP\r\n", &options);
    assert_eq!(
        past_limit,
        [
            ReadEvent::Rejected {
                tag: Some(Tag::try_from("a1").unwrap()),
                kind: StatusKind::Bad,
                code: Some(Code::TooBig),
                text: "Non-synchronising literal is larger than 4 bytes: send it as a synchronising literal"
                    .to_owned(),
                close: false,
            },
            ReadEvent::Command(
                CommandCodec::new()
                    .decode(b"a2 NOOP\r\n")
                    .unwrap()
                    .1
                    .into_static()
            ),
        ]
    );

    // A synchronising literal of the same size is fine.
    let synchronising = read_with(b"a1 LOGIN {5}\r\nusers pass\r\n", &options);
    let [
        ReadEvent::ContinuationNeeded { length: 5 },
        ReadEvent::Command(_),
    ] = synchronising.as_slice()
    else {
        panic!("{synchronising:?}");
    };
    assert_eq!(
        ReaderOptions::LITERAL_MINUS_BYTES_MAX,
        4096,
        "RFC 7888 section 5 fixes the LITERAL- limit"
    );
}

#[test]
fn fetch_item_names_kept() {
    let ExtendedCommand::SavedResult(command) = extended(b"a1 UID FETCH $ (FLAGS UID)\r\n") else {
        panic!()
    };
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = command.body()
    else {
        panic!("{command:?}");
    };
    assert_eq!(
        names,
        &[MessageDataItemName::Flags, MessageDataItemName::Uid]
    );
}

#[test]
fn status_append_limit_item() {
    // RFC 7889 section 3.1, with the item among others, in any case.
    let status = match extended(b"A02 STATUS INBOX (MESSAGES appendlimit UNSEEN)\r\n") {
        ExtendedCommand::Status(status) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status.mailbox, Mailbox::Inbox);
    assert_eq!(
        status.items,
        [
            StatusItem::Standard(StatusDataItemName::Messages),
            StatusItem::AppendLimit,
            StatusItem::Standard(StatusDataItemName::Unseen),
        ]
    );

    let quoted = match extended(b"A03 STATUS \"Sent Items\" (APPENDLIMIT)\r\n") {
        ExtendedCommand::Status(status) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(quoted.mailbox, Mailbox::try_from("Sent Items").unwrap());
    assert_eq!(quoted.items, [StatusItem::AppendLimit]);

    // RFC 7889 section 3.2: the item in the LIST STATUS return option.
    let list_status = list(b"A04 LIST \"\" % RETURN (STATUS (APPENDLIMIT))\r\n");
    assert_eq!(list_status.return_options.status, Some(vec![StatusItem::AppendLimit]));
}

#[test]
fn status_without_append_limit_stays_command() {
    let events = read(b"A01 STATUS INBOX (MESSAGES)\r\n");
    assert!(matches!(events.as_slice(), [ReadEvent::Command(_)]), "{events:?}");
}

#[test]
fn status_invalid_append_limit_forms_rejected() {
    for input in [
        &b"A01 STATUS INBOX (APPENDLIMIT BOGUS)\r\n"[..],
        b"A02 STATUS INBOX APPENDLIMIT\r\n",
        b"A03 STATUS INBOX (APPENDLIMIT) extra\r\n",
        b"A04 STATUS (APPENDLIMIT)\r\n",
    ] {
        let text = rejected_text(input);
        assert_eq!(text, "Invalid arguments to STATUS", "{:?}", String::from_utf8_lossy(input));
    }
    let text = rejected_text(b"A05 LIST \"\" % RETURN (STATUS (APPENDLIMIT BOGUS))\r\n");
    assert_eq!(text, "Unknown STATUS item BOGUS");
}
