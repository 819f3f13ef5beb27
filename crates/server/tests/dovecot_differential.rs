//! Differential test of Roost's IMAP server against Dovecot 2.3.
//!
//! The same corpus, with CRLF line ends, is appended over IMAP to a Roost
//! server and to a throwaway Dovecot, both on loopback. Then FETCH
//! ENVELOPE, BODY, BODYSTRUCTURE, RFC822.SIZE and every part's
//! BODY[n.MIME], and a set of SEARCH results, must be equal. Values are
//! compared after parsing, so a quoted string and a literal with the same
//! content are equal. Differences kept on purpose are listed in
//! `RFC_DEPARTURES` with the reason; any other difference fails the test.

mod common;

use common::TestServer;
use roost_testkit::client::Client;
use roost_testkit::corpus::{self, CorpusMessage};
use roost_testkit::dovecot::{Dovecot, RFC_DEPARTURES};
use roost_testkit::value::{Value, fetch_items, show};

/// SEARCH queries whose results must match. They cover flags, sizes,
/// sent dates, address and subject headers (decoded), arbitrary headers and
/// decoded body text.
const SEARCHES: &[&str] = &[
    "ALL",
    "SEEN",
    "UNSEEN",
    "FLAGGED",
    "LARGER 2000",
    "SMALLER 800",
    "SENTBEFORE 1-Jan-2002",
    "SENTSINCE 1-Jan-2002",
    "SENTON 19-Jul-2002",
    "SUBJECT test",
    "SUBJECT \"the\"",
    "FROM barry",
    "FROM example.com",
    "TO python",
    "CC example",
    "HEADER Content-Type multipart",
    "HEADER MIME-Version \"\"",
    "HEADER X-Mailer \"\"",
    "NOT HEADER Message-ID \"\"",
    "BODY hello",
    "BODY \"dummy\"",
    "TEXT attachment",
    "OR SUBJECT hello FROM barry",
    "NOT LARGER 1000",
    "UID 3:10 NOT FLAGGED",
    "1:5 SMALLER 100000",
];

struct Tally {
    compared: usize,
    passed: usize,
    accepted: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, subject: &str, item: &str, roost: Option<&Value>, dovecot: Option<&Value>) {
        self.compared += 1;
        if roost == dovecot {
            self.passed += 1;
            return;
        }
        if RFC_DEPARTURES.iter().any(|(name, kind, _)| *name == subject && *kind == item) {
            self.accepted += 1;
            return;
        }
        let show_option = |value: Option<&Value>| value.map_or("(missing)".to_owned(), show);
        self.failures.push(format!(
            "{subject} {item}:\n  roost:   {}\n  dovecot: {}",
            show_option(roost),
            show_option(dovecot)
        ));
    }
}

fn fetch(client: &mut Client, sequence: usize, items: &str) -> Vec<(String, Value)> {
    let reply = client.command(&format!("FETCH {sequence} ({items})")).expect("FETCH");
    assert!(reply.is_ok(), "FETCH {sequence} ({items}) failed: {}", reply.tagged);
    reply
        .untagged
        .iter()
        .filter(|r| r.windows(7).any(|w| w == b" FETCH "))
        .flat_map(|r| fetch_items(r))
        .collect()
}

fn item<'a>(pairs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Section results: NIL and an empty string mean the same.
fn section(value: Option<&Value>) -> Option<Value> {
    match value {
        Some(Value::Nil) => Some(Value::Str(Vec::new())),
        other => other.cloned(),
    }
}

fn search(client: &mut Client, query: &str) -> Vec<u32> {
    let reply = client.command(&format!("UID SEARCH {query}")).expect("SEARCH");
    assert!(reply.is_ok(), "UID SEARCH {query} failed: {}", reply.tagged);
    let mut uids: Vec<u32> = reply
        .untagged
        .iter()
        .filter_map(|line| line.strip_prefix(b"* SEARCH"))
        .flat_map(|rest| {
            String::from_utf8_lossy(rest).split_whitespace().filter_map(|n| n.parse().ok()).collect::<Vec<u32>>()
        })
        .collect();
    uids.sort_unstable();
    uids
}

fn compare_message(roost: &mut Client, dovecot: &mut Client, sequence: usize, message: &CorpusMessage, tally: &mut Tally) {
    let name = &message.name;
    let items = "ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE";
    let ours = fetch(roost, sequence, items);
    let theirs = fetch(dovecot, sequence, items);
    for key in ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE"] {
        tally.check(name, key, item(&ours, key), item(&theirs, key));
    }

    let derived = roost_mime::derive(&message.crlf(), &roost_mime::Limits { depth_max: 32, parts_max: 10_000 });
    for part in derived.part_numbers() {
        let number = part.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let items = format!("BODY.PEEK[{number}.MIME]");
        let key = format!("BODY[{number}.MIME]");
        let ours = fetch(roost, sequence, &items);
        let theirs = fetch(dovecot, sequence, &items);
        tally.check(name, &key, section(item(&ours, &key)).as_ref(), section(item(&theirs, &key)).as_ref());
    }
}

/// Appends the corpus and flags a few messages the same way on a server.
fn load(client: &mut Client, messages: &[CorpusMessage]) {
    for message in messages {
        let reply = client.append("INBOX", &message.crlf()).expect("APPEND");
        assert!(reply.is_ok(), "APPEND of {} failed: {}", message.name, reply.tagged);
    }
    let reply = client.command("SELECT INBOX").expect("SELECT");
    assert!(reply.is_ok(), "SELECT failed: {}", reply.tagged);
    for command in ["STORE 1:10 +FLAGS.SILENT (\\Seen)", "STORE 5:15 +FLAGS.SILENT (\\Flagged)"] {
        assert!(client.command(command).expect("STORE").is_ok());
    }
}

#[test]
fn server_matches_dovecot() {
    let messages = corpus::load().expect("corpus: run scripts/fetch-corpus");
    let dovecot_server = Dovecot::start().unwrap_or_else(|e| panic!("{e}"));
    let mut dovecot = dovecot_server.login().expect("login to dovecot");
    let server = TestServer::start();
    let mut roost = server.login();

    load(&mut roost, &messages);
    load(&mut dovecot, &messages);

    let mut tally = Tally { compared: 0, passed: 0, accepted: 0, failures: Vec::new() };
    for (index, message) in messages.iter().enumerate() {
        compare_message(&mut roost, &mut dovecot, index + 1, message, &mut tally);
    }
    for query in SEARCHES {
        let ours = Value::List(search(&mut roost, query).iter().map(|n| Value::Atom(n.to_string().into_bytes())).collect());
        let theirs =
            Value::List(search(&mut dovecot, query).iter().map(|n| Value::Atom(n.to_string().into_bytes())).collect());
        tally.check("SEARCH", query, Some(&ours), Some(&theirs));
    }
    eprintln!(
        "server differential: {} of {} values equal, {} accepted differences, {} failures, {} messages",
        tally.passed,
        tally.compared,
        tally.accepted,
        tally.failures.len(),
        messages.len()
    );
    assert!(tally.failures.is_empty(), "{} differences from Dovecot:\n{}", tally.failures.len(), tally.failures.join("\n"));
}
