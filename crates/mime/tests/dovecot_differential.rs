//! Differential test against Dovecot 2.3: every corpus message, with CRLF
//! line ends, is appended to a throwaway Dovecot, and its ENVELOPE, BODY,
//! BODYSTRUCTURE, RFC822.SIZE, top-level HEADER, TEXT and HEADER.FIELDS,
//! and each part's BODY[n], MIME, HEADER and TEXT are compared with what
//! roost-mime derives from the same bytes.
//!
//! Values are compared after parsing, so a quoted string and a literal with
//! the same content are equal. Accepted differences are listed in
//! `ACCEPTED` with the reason; any other difference fails the test.

use roost_mime::{Derived, Limits, Section, SectionText, derive, section};
use roost_testkit::client::Client;
use roost_testkit::corpus::{self, CorpusMessage};
use roost_testkit::dovecot::{Dovecot, RFC_DEPARTURES};
use roost_testkit::value::{Value, fetch_items, parse_value, show};

/// A difference from Dovecot that is kept on purpose: (corpus message,
/// FETCH item, reason). `RFC_DEPARTURES` adds the ones both differential
/// tests share.
const ACCEPTED: &[(&str, &str, &str)] = &[(
    "edge/eight-bit",
    "ENVELOPE",
    "header bytes that are not UTF-8 become U+FFFD, because the rendered ENVELOPE is a Rust \
     string; Dovecot sends the raw bytes in a literal. Both are valid IMAP literals.",
)];
/// Parts compared per message; the corpus stays far below this.
const PARTS_PER_MESSAGE_MAX: usize = 200;

fn fields_text() -> SectionText {
    SectionText::HeaderFields(vec!["FROM".into(), "SUBJECT".into(), "X-MISSING".into()])
}

fn fetch(client: &mut Client, sequence: usize, items: &str) -> Vec<(String, Value)> {
    let reply = client.command(&format!("FETCH {sequence} ({items})")).expect("FETCH");
    assert!(reply.is_ok(), "FETCH {sequence} ({items}) failed: {}", reply.tagged);
    reply.untagged.iter().filter(|r| r.windows(7).any(|w| w == b" FETCH ")).flat_map(|r| fetch_items(r)).collect()
}

fn item<'a>(pairs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn ours(text: &str) -> Value {
    parse_value(text.as_bytes(), 0).map(|(v, _)| v).unwrap_or(Value::Atom(b"UNPARSABLE".to_vec()))
}

/// Maps a NIL section result to an empty string, because Dovecot may send
/// an empty result either way. A missing item stays missing.
fn section_value(value: Option<&Value>) -> Option<Value> {
    match value {
        Some(Value::Nil) => Some(Value::Str(Vec::new())),
        other => other.cloned(),
    }
}

struct Tally {
    compared: usize,
    passed: usize,
    accepted: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, message: &str, item: &str, ours: &Value, theirs: Option<&Value>) {
        self.compared += 1;
        if Some(ours) == theirs {
            self.passed += 1;
            return;
        }
        let item_kind = item.split(' ').next().unwrap_or(item);
        if ACCEPTED.iter().chain(RFC_DEPARTURES).any(|(name, kind, _)| *name == message && *kind == item_kind) {
            self.accepted += 1;
            return;
        }
        let theirs = theirs.map_or("(missing)".to_owned(), show);
        self.failures.push(format!("{message} {item}:\n  roost:   {}\n  dovecot: {theirs}", show(ours)));
    }
}

fn compare_message(client: &mut Client, sequence: usize, message: &CorpusMessage, tally: &mut Tally) {
    let raw = message.crlf();
    let derived: Derived = derive(&raw, &Limits { depth_max: 64, parts_max: 10_000 });
    let name = &message.name;

    let pairs = fetch(client, sequence, "ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE");
    tally.check(name, "ENVELOPE", &ours(derived.envelope()), item(&pairs, "ENVELOPE"));
    tally.check(name, "BODYSTRUCTURE", &ours(derived.bodystructure()), item(&pairs, "BODYSTRUCTURE"));
    tally.check(name, "BODY", &ours(derived.body()), item(&pairs, "BODY"));
    let size = Value::Atom(raw.len().to_string().into_bytes());
    tally.check(name, "RFC822.SIZE", &size, item(&pairs, "RFC822.SIZE"));

    let pairs = fetch(client, sequence, "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (FROM SUBJECT X-MISSING)]");
    let top_sections = [
        ("BODY[HEADER]", SectionText::Header),
        ("BODY[TEXT]", SectionText::Text),
        ("BODY[HEADER.FIELDS (FROM SUBJECT X-MISSING)]", fields_text()),
    ];
    for (key, text) in top_sections {
        let bytes = section(&raw, &derived, &Section { part: Vec::new(), text });
        let theirs = section_value(item(&pairs, key));
        tally.check(name, key, &Value::Str(bytes.into_owned()), theirs.as_ref());
    }

    for part in derived.part_numbers().into_iter().take(PARTS_PER_MESSAGE_MAX) {
        let number = part.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let pairs = fetch(client, sequence, &format!("BODY.PEEK[{number}] BODY.PEEK[{number}.MIME]"));
        let body = section(&raw, &derived, &Section { part: part.clone(), text: SectionText::Full });
        let mime = section(&raw, &derived, &Section { part: part.clone(), text: SectionText::Mime });
        let theirs_body = section_value(item(&pairs, &format!("BODY[{number}]")));
        let theirs_mime = section_value(item(&pairs, &format!("BODY[{number}.MIME]")));
        tally.check(name, &format!("BODY[{number}]"), &Value::Str(body.into_owned()), theirs_body.as_ref());
        tally.check(name, &format!("BODY[{number}.MIME]"), &Value::Str(mime.into_owned()), theirs_mime.as_ref());

        // HEADER and TEXT of a part name the message inside a
        // message/rfc822 part and are empty for any other part.
        let pairs = fetch(client, sequence, &format!("BODY.PEEK[{number}.HEADER] BODY.PEEK[{number}.TEXT]"));
        for (suffix, text) in [("HEADER", SectionText::Header), ("TEXT", SectionText::Text)] {
            let key = format!("BODY[{number}.{suffix}]");
            let bytes = section(&raw, &derived, &Section { part: part.clone(), text });
            let theirs = section_value(item(&pairs, &key));
            tally.check(name, &key, &Value::Str(bytes.into_owned()), theirs.as_ref());
        }
    }
}

/// Hand-written messages for cases the corpus covers thinly: address
/// syntax, empty and 8-bit fields, extension fields, digests and message
/// parts under a transfer encoding.
const EDGE_CASES: &[(&str, &[u8])] = &[
    ("edge/addresses", b"From: Joe (Joe Comment) <joe@example.com>, (only comment) x@example.com\r\n\
To: \"quoted local\"@example.com, <@route.example,@b.example:r@example.com>, nohost, @nolocal\r\n\
Cc: group one: a@example.com, \"B, b\" <b@example.com>;, after@example.com\r\n\
Bcc: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\n\
Reply-To:\r\n\
Subject:\r\n\r\nbody\r\n"),
    ("edge/eight-bit", b"From: J\xf6rg <j@example.com>\r\nSubject: caf\xe9 \"quoted\" back\\slash\r\n\
In-Reply-To:  <a@b>   <c@d>\r\nMessage-ID:\r\n <folded@id>\r\n\r\nbody\r\n"),
    ("edge/extension-fields", b"Content-Type: multipart/mixed; boundary=b; x-extra=\"1 2\"\r\n\
Content-Language: en, de\r\nContent-Location: http://example.com/x\r\n\
Content-Disposition: inline; creation-date=\"Mon, 1 Jan 2001 00:00:00 +0000\"\r\n\r\n\
--b\r\nContent-Type: text/html; charset=\"UTF-8\"; format=flowed\r\nContent-ID: <id@x>\r\n\
Content-Description: a  description\r\nContent-Language: fr\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\
Content-Transfer-Encoding: Quoted-Printable\r\n\r\n<p>x</p>\r\n\
--b\r\nContent-Type: APPLICATION/Octet-Stream; NAME=\"x.bin\"\r\nContent-Disposition: ATTACHMENT; FILENAME*=utf-8''%C3%A9.bin\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\nepilogue\r\n"),
    ("edge/digest", b"Content-Type: multipart/digest; boundary=d\r\n\r\n\
--d\r\n\r\nSubject: first\r\n\r\none\r\n\
--d\r\nContent-Type: text/plain\r\n\r\nplain\r\n--d--\r\n"),
    ("edge/encoded-message", b"Content-Type: multipart/mixed; boundary=m\r\n\r\n\
--m\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
U3ViamVjdDogaGkNCg0KYm9keQ0K\r\n--m--\r\n"),
    ("edge/no-header-end", b"Subject: only a header\r\nX-Other: value"),
    ("edge/no-body", b"Subject: empty body\r\n\r\n"),
];

#[test]
fn corpus_matches_dovecot() {
    let mut messages = corpus::load().expect("corpus");
    messages.extend(EDGE_CASES.iter().map(|(name, raw)| CorpusMessage { name: (*name).to_owned(), raw: raw.to_vec() }));
    let dovecot = Dovecot::start().unwrap_or_else(|e| panic!("{e}"));
    let mut client = dovecot.login().expect("login to dovecot");

    for message in &messages {
        let reply = client.append("INBOX", &message.crlf()).expect("APPEND");
        assert!(reply.is_ok(), "APPEND of {} failed: {}", message.name, reply.tagged);
    }
    let reply = client.command("SELECT INBOX").expect("SELECT");
    assert!(reply.is_ok(), "SELECT failed: {}", reply.tagged);

    let mut tally = Tally { compared: 0, passed: 0, accepted: 0, failures: Vec::new() };
    for (index, message) in messages.iter().enumerate() {
        compare_message(&mut client, index + 1, message, &mut tally);
    }
    eprintln!(
        "dovecot differential: {} of {} values equal, {} accepted differences, {} failures, {} messages",
        tally.passed,
        tally.compared,
        tally.accepted,
        tally.failures.len(),
        messages.len()
    );
    assert!(tally.failures.is_empty(), "{} differences from Dovecot:\n{}", tally.failures.len(), tally.failures.join("\n"));
}
