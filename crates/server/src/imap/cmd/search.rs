//! SEARCH and UID SEARCH (RFC 3501 and RFC 9051 section 6.4.4), with
//! ESEARCH results (RFC 4731) and the saved result `$` (RFC 5182).
//!
//! The saved result is kept as UIDs in the session's selected-mailbox
//! state, so it names the same messages after an expunge and goes away
//! with SELECT, EXAMINE, CLOSE and UNSELECT, as RFC 5182 section 2.1
//! requires.
//!
//! The criteria are first compiled: strings are decoded from the client's
//! charset and folded to lower case, and sequence sets are resolved against
//! the session's view. Then every message is tested, and only what the
//! criteria need is read from the store. Flags, sizes and dates come from
//! the message records, which are newer than the view after a STORE.
//! Header and body text come from the message itself, with MIME transfer
//! encodings, charsets and encoded-words undone.

use std::cell::OnceCell;
use std::ops::RangeInclusive;
use std::sync::Arc;

use roost_mime::Derived;
use roost_proto::extended::{ExtendedSearch, SearchReturnOptions};
use roost_proto::response::rev2::{EsearchData, encode_esearch};
use roost_proto::sequence::compact;
use roost_proto::types::core::{AString, Charset, Tag, Vec1};
use roost_proto::types::sequence::SequenceSet;
use roost_proto::types::datetime::NaiveDate;
use roost_proto::types::search::SearchKey;
use roost_store::{Flags, MessageRecord, Snapshot, system_flag};

use super::{Outcome, bad, no, ok};
use crate::imap::flags::has_keyword;
use crate::imap::output::Output;
use crate::imap::sequence::resolve_clamped_ranges;
use crate::imap::session::Session;

/// Messages read from the store per batch.
const BATCH_MESSAGES: usize = 64;

/// Charsets named in the BADCHARSET response to an unknown charset.
const ADVERTISED_CHARSETS: &str = "US-ASCII UTF-8";

/// A compiled search criterion.
enum Key {
    All,
    /// Ascending, disjoint ranges of indexes into the view.
    Indexes(Vec<std::ops::Range<usize>>),
    System(u8, bool),
    Keyword(String, bool),
    Recent(bool),
    New,
    Header(String, String),
    Body(String),
    Text(String),
    Date(DateField, DateTest, chrono::NaiveDate),
    Larger(u64),
    Smaller(u64),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

#[derive(Clone, Copy)]
enum DateField {
    Internal,
    Sent,
}

#[derive(Clone, Copy)]
enum DateTest {
    Before,
    On,
    Since,
}

/// The data testing a key needs beyond the view.
#[derive(Default, Clone, Copy)]
struct Needs {
    record: bool,
    raw: bool,
}

/// Runs SEARCH or UID SEARCH in the RFC 3501 syntax. An IMAP4rev2 session
/// gets the result as ESEARCH with ALL (RFC 9051 section 6.4.4), a rev1
/// session as a SEARCH response.
pub async fn search(
    session: &mut Session,
    tag: &Tag<'static>,
    charset: Option<Charset<'static>>,
    criteria: Vec1<SearchKey<'static>>,
    uid: bool,
    out: &mut Output,
) -> Outcome {
    let form = match session.enabled.imap4rev2 {
        true => ResultForm::Esearch(SearchReturnOptions { all: true, ..SearchReturnOptions::default() }),
        false => ResultForm::Search,
    };
    run_search(session, tag, charset, criteria.as_ref(), uid, form, out).await
}

/// Runs SEARCH with RETURN options (ESEARCH, RFC 4731; SAVE, RFC 5182)
/// or with `$`, the saved result, in its criteria.
pub async fn search_extended(session: &mut Session, tag: &Tag<'static>, command: ExtendedSearch, out: &mut Output) -> Outcome {
    let saved = session.selected().and_then(|selected| selected.saved_search.as_deref().cloned());
    let key = command.criteria.into_search_key(saved.as_ref());
    let form = match command.return_options {
        Some(options) => ResultForm::Esearch(options),
        None if session.enabled.imap4rev2 => {
            ResultForm::Esearch(SearchReturnOptions { all: true, ..SearchReturnOptions::default() })
        }
        None => ResultForm::Search,
    };
    run_search(session, tag, command.charset, std::slice::from_ref(&key), command.uid, form, out).await
}

/// The response form of a SEARCH result.
#[derive(Clone, Copy)]
enum ResultForm {
    /// `* SEARCH 2 5 9` (RFC 3501).
    Search,
    /// `* ESEARCH (TAG "t") ...` with the requested data, and the result
    /// saved for `$` if SAVE is among the options.
    Esearch(SearchReturnOptions),
}

/// One matching message.
#[derive(Clone, Copy)]
struct Match {
    sequence_number: u32,
    uid: u32,
}

async fn run_search(
    session: &mut Session,
    tag: &Tag<'static>,
    charset: Option<Charset<'static>>,
    criteria: &[SearchKey<'static>],
    uid: bool,
    form: ResultForm,
    out: &mut Output,
) -> Outcome {
    let save = matches!(form, ResultForm::Esearch(options) if options.save);
    let matches = match evaluate(session, charset, criteria).await {
        Ok(matches) => matches,
        Err(outcome) => {
            // A failed SEARCH with SAVE leaves `$` empty (RFC 5182
            // section 2.1), so a later command using it touches nothing.
            if save && let Some(selected) = session.selected_mut() {
                selected.saved_search = None;
            }
            return outcome;
        }
    };
    let number = |found: &Match| if uid { found.uid } else { found.sequence_number };

    let options = match form {
        ResultForm::Search => {
            let mut line = String::from("SEARCH");
            for found in &matches {
                line.push(' ');
                line.push_str(&number(found).to_string());
            }
            out.untagged(&line);
            return ok(format!("{} completed", if uid { "UID SEARCH" } else { "SEARCH" }));
        }
        ResultForm::Esearch(options) => options,
    };

    if options.save {
        let saved = saved_messages(&matches, options);
        let uids: Vec<u32> = saved.iter().map(|found| found.uid).collect();
        if let Some(selected) = session.selected_mut() {
            selected.saved_search = uid_set(&uids).map(Box::new);
        }
    }
    // SAVE alone asks for no ESEARCH response (RFC 5182 section 2.4).
    let only_save = options.save && !(options.min || options.max || options.all || options.count);
    if !only_save {
        let numbers: Vec<u32> = matches.iter().map(number).collect();
        let ranges = ranges(&numbers);
        let data = EsearchData {
            min: numbers.first().copied().filter(|_| options.min),
            max: numbers.last().copied().filter(|_| options.max),
            count: options.count.then_some(numbers.len() as u32),
            all: options.all.then_some(ranges.as_slice()),
        };
        out.raw(&encode_esearch(Some(tag), uid, &data));
    }
    ok(format!("{} completed", if uid { "UID SEARCH" } else { "SEARCH" }))
}

/// Returns the messages SAVE keeps: all matches, except that MIN or MAX
/// without ALL or COUNT saves only the lowest and highest match
/// (RFC 5182 section 2.4).
fn saved_messages(matches: &[Match], options: SearchReturnOptions) -> Vec<Match> {
    if options.all || options.count || !(options.min || options.max) {
        return matches.to_vec();
    }
    let mut saved = Vec::new();
    if let (true, Some(first)) = (options.min, matches.first()) {
        saved.push(*first);
    }
    if let (true, Some(last)) = (options.max, matches.last()) {
        if saved.first().is_none_or(|first| first.uid != last.uid) {
            saved.push(*last);
        }
    }
    saved
}

/// Groups ascending numbers into ranges, such as `2:4,9`.
fn ranges(numbers: &[u32]) -> Vec<RangeInclusive<u32>> {
    let mut ranges: Vec<RangeInclusive<u32>> = Vec::new();
    for &number in numbers {
        match ranges.last_mut() {
            Some(last) if last.end().checked_add(1) == Some(number) => *last = *last.start()..=number,
            _ => ranges.push(number..=number),
        }
    }
    ranges
}

/// Returns ascending UIDs as a sequence set, or `None` for none.
pub fn uid_set(uids: &[u32]) -> Option<SequenceSet> {
    if uids.is_empty() {
        return None;
    }
    SequenceSet::try_from(compact(uids).as_str()).ok()
}

/// Tests every message of the selected mailbox against `criteria`, ANDed.
async fn evaluate(
    session: &mut Session,
    charset: Option<Charset<'static>>,
    criteria: &[SearchKey<'static>],
) -> Result<Vec<Match>, Outcome> {
    let ctx = Arc::clone(&session.ctx);
    let Some(selected) = session.selected() else { return Err(bad("No mailbox selected")) };
    let charset = charset.map(|c| charset_name(&c)).unwrap_or_else(|| "US-ASCII".to_owned());
    let compiler = Compiler { view: &selected.view, charset: &charset, imap4rev2: session.enabled.imap4rev2 };
    let keys: Result<Vec<Key>, CompileError> = criteria.iter().map(|key| compiler.compile(key)).collect();
    let key = match keys {
        Ok(keys) => Key::And(keys),
        Err(CompileError::BadCharset) => {
            return Err(no(
                Some(&format!("BADCHARSET ({ADVERTISED_CHARSETS})")),
                format!("Charset {charset} is not supported"),
            ));
        }
        Err(CompileError::Undecodable) => return Err(bad(format!("Search string is not valid {charset}"))),
        Err(CompileError::RemovedInRev2(name)) => {
            return Err(bad(format!("SEARCH key {name} is not valid after ENABLE IMAP4rev2")));
        }
    };
    let needs = key.needs();
    let view = Arc::clone(&selected.view);
    let recent = selected.recent.clone();
    let mailbox = selected.id;
    let mime_limits = ctx.config.limits.mime();

    let mut matches: Vec<Match> = Vec::new();
    for (batch_index, batch) in view.messages.chunks(BATCH_MESSAGES).enumerate() {
        let base = batch_index * BATCH_MESSAGES;
        let records: Vec<Option<MessageRecord>> = if needs.record || needs.raw {
            let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
            let loaded = match ctx.store.messages(mailbox, &uids).await {
                Ok(loaded) => loaded,
                Err(err) => return Err(super::store_failure(session, err)),
            };
            let mut by_uid = loaded.into_iter().peekable();
            uids.iter()
                .map(|&uid| if by_uid.peek().is_some_and(|r| r.uid == uid) { by_uid.next() } else { None })
                .collect()
        } else {
            vec![None; batch.len()]
        };
        for (offset, entry) in batch.iter().enumerate() {
            let index = base + offset;
            let record = records[offset].as_ref();
            if (needs.record || needs.raw) && record.is_none() {
                // Expunged since the view was taken: it matches nothing.
                continue;
            }
            let raw = match (needs.raw, record) {
                (true, Some(record)) => match ctx.store.read_raw(record.blob).await {
                    Ok(raw) => Some(raw),
                    Err(err) => return Err(super::store_failure(session, err)),
                },
                _ => None,
            };
            let message = Candidate {
                index,
                flags: record.map_or(&entry.flags, |r| &r.flags),
                recent: recent.binary_search(&entry.uid).is_ok(),
                record,
                raw: raw.as_deref(),
                derived: OnceCell::new(),
                text: OnceCell::new(),
                mime_limits: mime_limits.clone(),
                text_bytes_max: ctx.config.limits.message_bytes_max,
            };
            if key.matches(&message) {
                matches.push(Match { sequence_number: index as u32 + 1, uid: entry.uid });
            }
        }
    }
    Ok(matches)
}

fn charset_name(charset: &Charset<'_>) -> String {
    match charset {
        Charset::Atom(atom) => atom.as_ref().to_owned(),
        Charset::Quoted(quoted) => quoted.inner().to_owned(),
    }
}

enum CompileError {
    BadCharset,
    Undecodable,
    /// A key RFC 3501 defines and RFC 9051 removed from the `search-key`
    /// grammar along with `\Recent`, so it is a syntax error in rev2.
    RemovedInRev2(&'static str),
}

struct Compiler<'a> {
    view: &'a Snapshot,
    charset: &'a str,
    /// Whether the session enabled IMAP4rev2, which has no RECENT, NEW or
    /// OLD key.
    imap4rev2: bool,
}

impl Compiler<'_> {
    fn text(&self, value: &AString<'_>) -> Result<String, CompileError> {
        let bytes = value.as_ref();
        let decoded = match roost_mime::decode_charset(bytes, self.charset) {
            Some(decoded) => decoded,
            None if is_known_charset(self.charset) => return Err(CompileError::Undecodable),
            None => return Err(CompileError::BadCharset),
        };
        Ok(decoded.to_lowercase())
    }

    fn compile(&self, key: &SearchKey<'_>) -> Result<Key, CompileError> {
        use SearchKey as S;
        Ok(match key {
            S::And(keys) => Key::And(keys.as_ref().iter().map(|k| self.compile(k)).collect::<Result<_, _>>()?),
            S::SequenceSet(set) => Key::Indexes(resolve_clamped_ranges(self.view, set, false)),
            S::Uid(set) => Key::Indexes(resolve_clamped_ranges(self.view, set, true)),
            S::All => Key::All,
            S::Answered => Key::System(system_flag::ANSWERED, true),
            S::Unanswered => Key::System(system_flag::ANSWERED, false),
            S::Deleted => Key::System(system_flag::DELETED, true),
            S::Undeleted => Key::System(system_flag::DELETED, false),
            S::Draft => Key::System(system_flag::DRAFT, true),
            S::Undraft => Key::System(system_flag::DRAFT, false),
            S::Flagged => Key::System(system_flag::FLAGGED, true),
            S::Unflagged => Key::System(system_flag::FLAGGED, false),
            S::Seen => Key::System(system_flag::SEEN, true),
            S::Unseen => Key::System(system_flag::SEEN, false),
            S::Keyword(atom) => Key::Keyword(atom.as_ref().to_owned(), true),
            S::Unkeyword(atom) => Key::Keyword(atom.as_ref().to_owned(), false),
            S::Recent | S::Old | S::New if self.imap4rev2 => return Err(removed_in_rev2(key)),
            S::Recent => Key::Recent(true),
            S::Old => Key::Recent(false),
            S::New => Key::New,
            S::Bcc(value) => Key::Header("bcc".to_owned(), self.text(value)?),
            S::Cc(value) => Key::Header("cc".to_owned(), self.text(value)?),
            S::From(value) => Key::Header("from".to_owned(), self.text(value)?),
            S::To(value) => Key::Header("to".to_owned(), self.text(value)?),
            S::Subject(value) => Key::Header("subject".to_owned(), self.text(value)?),
            S::Header(name, value) => {
                Key::Header(String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase(), self.text(value)?)
            }
            S::Body(value) => Key::Body(self.text(value)?),
            S::Text(value) => Key::Text(self.text(value)?),
            S::Before(date) => Key::Date(DateField::Internal, DateTest::Before, naive(date)),
            S::On(date) => Key::Date(DateField::Internal, DateTest::On, naive(date)),
            S::Since(date) => Key::Date(DateField::Internal, DateTest::Since, naive(date)),
            S::SentBefore(date) => Key::Date(DateField::Sent, DateTest::Before, naive(date)),
            S::SentOn(date) => Key::Date(DateField::Sent, DateTest::On, naive(date)),
            S::SentSince(date) => Key::Date(DateField::Sent, DateTest::Since, naive(date)),
            S::Larger(size) => Key::Larger(u64::from(*size)),
            S::Smaller(size) => Key::Smaller(u64::from(*size)),
            S::Not(inner) => Key::Not(Box::new(self.compile(inner)?)),
            S::Or(left, right) => Key::Or(Box::new(self.compile(left)?), Box::new(self.compile(right)?)),
            #[allow(unreachable_patterns)]
            _ => Key::All,
        })
    }
}

fn removed_in_rev2(key: &SearchKey<'_>) -> CompileError {
    let name = match key {
        SearchKey::Recent => "RECENT",
        SearchKey::Old => "OLD",
        _ => "NEW",
    };
    CompileError::RemovedInRev2(name)
}

fn is_known_charset(charset: &str) -> bool {
    roost_mime::decode_charset(b"", charset).is_some()
}

fn naive(date: &NaiveDate) -> chrono::NaiveDate {
    *date.as_ref()
}

/// One message being tested, with its data loaded as the criteria need.
struct Candidate<'a> {
    index: usize,
    flags: &'a Flags,
    recent: bool,
    record: Option<&'a MessageRecord>,
    raw: Option<&'a [u8]>,
    derived: OnceCell<Derived>,
    /// Decoded, lower-cased text of the message's text parts.
    text: OnceCell<String>,
    mime_limits: roost_mime::Limits,
    /// Bound on the decoded body text kept for one message.
    text_bytes_max: usize,
}

impl Candidate<'_> {
    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            let stored = self.record.map(|r| Derived::decode(&r.derived));
            match stored {
                Some(Ok(derived)) => derived,
                _ => roost_mime::derive(self.raw.unwrap_or_default(), &self.mime_limits),
            }
        })
    }

    fn header_contains(&self, name: &str, needle: &str) -> bool {
        let raw = self.raw.unwrap_or_default();
        roost_mime::header_values(raw, self.derived(), name)
            .iter()
            .any(|value| value.to_lowercase().contains(needle))
    }

    fn body_text(&self) -> &str {
        self.text.get_or_init(|| {
            let raw = self.raw.unwrap_or_default();
            roost_mime::search_text(raw, self.derived(), &roost_mime::TextLimits { bytes_max: self.text_bytes_max }).to_lowercase()
        })
    }

    /// Checks whether the undecoded body, MIME part headers included, contains
    /// `needle`. TEXT covers "the header or body of the message"
    /// (RFC 3501 section 6.4.4), and a part's header is in the body.
    fn raw_body_contains(&self, needle: &str) -> bool {
        let raw = self.raw.unwrap_or_default();
        let body = roost_mime::section(raw, self.derived(), &roost_mime::Section {
            part: Vec::new(),
            text: roost_mime::SectionText::Text,
        });
        String::from_utf8_lossy(&body).to_lowercase().contains(needle)
    }

    fn header_text_contains(&self, needle: &str) -> bool {
        let raw = self.raw.unwrap_or_default();
        let header = roost_mime::section(raw, self.derived(), &roost_mime::Section {
            part: Vec::new(),
            text: roost_mime::SectionText::Header,
        });
        if String::from_utf8_lossy(&header).to_lowercase().contains(needle) {
            return true;
        }
        ["subject", "from", "to", "cc", "bcc"].iter().any(|name| self.header_contains(name, needle))
    }
}

impl Key {
    fn needs(&self) -> Needs {
        match self {
            Key::Header(..) | Key::Body(_) | Key::Text(_) | Key::Date(DateField::Sent, ..) => {
                Needs { record: true, raw: true }
            }
            // Flags come from the record too: the view may be older than
            // the last STORE, because SEARCH may not announce expunges.
            Key::Date(DateField::Internal, ..)
            | Key::Larger(_)
            | Key::Smaller(_)
            | Key::System(..)
            | Key::Keyword(..)
            | Key::New => Needs { record: true, raw: false },
            Key::Not(inner) => inner.needs(),
            Key::Or(left, right) => left.needs().union(right.needs()),
            Key::And(keys) => keys.iter().fold(Needs::default(), |acc, key| acc.union(key.needs())),
            _ => Needs::default(),
        }
    }

    fn matches(&self, message: &Candidate<'_>) -> bool {
        match self {
            Key::All => true,
            Key::Indexes(ranges) => {
                let next = ranges.partition_point(|range| range.end <= message.index);
                ranges.get(next).is_some_and(|range| range.contains(&message.index))
            }
            Key::System(bit, set) => (message.flags.system & bit != 0) == *set,
            Key::Keyword(keyword, set) => has_keyword(message.flags, keyword) == *set,
            Key::Recent(recent) => message.recent == *recent,
            Key::New => message.recent && message.flags.system & system_flag::SEEN == 0,
            Key::Header(name, needle) => message.header_contains(name, needle),
            Key::Body(needle) => message.body_text().contains(needle.as_str()),
            Key::Text(needle) => {
                message.header_text_contains(needle)
                    || message.body_text().contains(needle.as_str())
                    || message.raw_body_contains(needle)
            }
            Key::Date(field, test, date) => {
                let day = match field {
                    DateField::Internal => message.record.map(|r| internal_day(r.internal_date)),
                    // A message without a readable Date: header counts as sent
                    // at the Unix epoch, as Dovecot 2.3 treats it, so it is
                    // "before" any date a client names.
                    DateField::Sent => utc_day(message.derived().sent_date().unwrap_or(0)),
                };
                let Some(day) = day else { return false };
                match test {
                    DateTest::Before => day < *date,
                    DateTest::On => day == *date,
                    DateTest::Since => day >= *date,
                }
            }
            Key::Larger(size) => message.record.is_some_and(|r| r.size > *size),
            Key::Smaller(size) => message.record.is_some_and(|r| r.size < *size),
            Key::Not(inner) => !inner.matches(message),
            Key::Or(left, right) => left.matches(message) || right.matches(message),
            Key::And(keys) => keys.iter().all(|key| key.matches(message)),
        }
    }
}

impl Needs {
    fn union(self, other: Needs) -> Needs {
        Needs { record: self.record || other.record, raw: self.raw || other.raw }
    }
}

/// Returns the calendar day of INTERNALDATE in the offset it was given in, which
/// is how RFC 3501 compares dates ("disregarding time and timezone").
fn internal_day(date: roost_store::InternalDate) -> chrono::NaiveDate {
    let seconds = date.unix_seconds + i64::from(date.offset_minutes) * 60;
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default().date_naive()
}

fn utc_day(unix_seconds: i64) -> Option<chrono::NaiveDate> {
    chrono::DateTime::from_timestamp(unix_seconds, 0).map(|t| t.date_naive())
}
