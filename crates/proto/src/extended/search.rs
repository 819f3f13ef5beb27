//! SEARCH with RETURN options (ESEARCH, RFC 4731; SAVE, RFC 5182) and with
//! `$`, the saved result, among its criteria.
//!
//! `$` is found by walking the criteria with the arity of each search key,
//! because the same byte is a string after SUBJECT and a sequence set where
//! a key is expected. Each `$` is replaced by `1` for imap-codec, and the
//! walk records which sequence-set keys, in textual order, were `$`. The
//! parsed key tree lists its sequence-set keys in the same order, which
//! maps the marks back onto it.

use std::ops::Range;

use imap_types::{command::CommandBody, core::Charset, search::SearchKey, sequence::SequenceSet};

use super::{ExtendedCommand, ParseResult, decode_piece, quote_for_error, scan::Scanner};

/// A SEARCH or UID SEARCH command in an extended form.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedSearch {
    /// Whether this is UID SEARCH, so results are UIDs.
    pub uid: bool,
    /// The CHARSET argument, if given.
    pub charset: Option<Charset<'static>>,
    /// The search criteria, ANDed.
    pub criteria: Criteria,
    /// The RETURN options, or `None` for a command without RETURN, which gets
    /// a plain SEARCH response.
    pub return_options: Option<SearchReturnOptions>,
}

/// The result options of `SEARCH RETURN (...)`. `RETURN ()` parses as
/// `all` alone, as RFC 4731 defines it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturnOptions {
    /// `MIN`: the lowest matching number.
    pub min: bool,
    /// `MAX`: the highest matching number.
    pub max: bool,
    /// `ALL`: every matching number, as a sequence set.
    pub all: bool,
    /// `COUNT`: how many messages match.
    pub count: bool,
    /// `SAVE` (RFC 5182): keep the result for `$`. When SAVE is the only
    /// option, RFC 5182 has the server send no ESEARCH response.
    pub save: bool,
}

/// Search criteria that may contain `$`, the saved search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criteria {
    /// A key tree without `$`.
    Key(SearchKey<'static>),
    /// `$` or `UID $`: the messages of the saved result.
    SavedResult,
    /// `NOT` of criteria that contain `$`.
    Not(Box<Criteria>),
    /// `OR` of criteria of which at least one contains `$`.
    Or(Box<Criteria>, Box<Criteria>),
    /// Criteria that all must match, at least one of which contains `$`.
    And(Vec<Criteria>),
}

impl Criteria {
    /// Converts to a plain key tree, with `saved_uids`, the saved result as
    /// UIDs, in place of `$`. `None` means an empty or missing saved
    /// result, which matches no message (RFC 5182 section 2.1).
    ///
    /// `$` and `UID $` both become `UID saved_uids`: a saved result names
    /// messages, and UIDs keep naming the same ones after an expunge.
    pub fn into_search_key(self, saved_uids: Option<&SequenceSet>) -> SearchKey<'static> {
        match self {
            Criteria::Key(key) => key,
            Criteria::SavedResult => match saved_uids {
                Some(set) => SearchKey::Uid(set.clone()),
                None => SearchKey::Not(Box::new(SearchKey::All)),
            },
            Criteria::Not(inner) => SearchKey::Not(Box::new(inner.into_search_key(saved_uids))),
            Criteria::Or(left, right) => SearchKey::Or(
                Box::new(left.into_search_key(saved_uids)),
                Box::new(right.into_search_key(saved_uids)),
            ),
            Criteria::And(all) => {
                let keys: Vec<SearchKey<'static>> = all
                    .into_iter()
                    .map(|criteria| criteria.into_search_key(saved_uids))
                    .collect();
                SearchKey::And(keys.try_into().expect("And criteria are never empty"))
            }
        }
    }

    /// Returns whether the criteria use `$`.
    pub fn uses_saved_result(&self) -> bool {
        !matches!(self, Criteria::Key(_))
    }
}

/// Maximum nesting of search keys, the same as imap-codec's, so the walk
/// never recurses deeper than imap-codec would.
const SEARCH_KEY_DEPTH_MAX: usize = 9;

/// Parses the arguments of SEARCH; the scanner is just after the name.
pub(super) fn parse(scanner: &mut Scanner<'_>, uid: bool) -> ParseResult {
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let return_options = match scanner.eat_word("RETURN") {
        true => Some(parse_return_options(scanner)?),
        false => None,
    };
    let criteria_start = scanner.position();

    let mut walk = Walk::default();
    if scanner.eat_word("CHARSET") {
        if scanner.expect(b' ').is_err() || scanner.astring().is_err() {
            return Ok(None);
        }
        if scanner.expect(b' ').is_err() {
            return Ok(None);
        }
    }
    if walk.criteria(scanner).is_err() || !scanner.at_line_end() {
        return match return_options {
            Some(_) => Err("Invalid search criteria after RETURN options".to_owned()),
            None => Ok(None),
        };
    }
    if return_options.is_none() && walk.saved_spans.is_empty() {
        return Ok(None);
    }

    let bytes = scanner.bytes();
    let rest = replace_saved_results(
        &bytes[criteria_start..bytes.len() - 2],
        &walk,
        criteria_start,
    );
    let Some(CommandBody::Search {
        charset, criteria, ..
    }) = decode_piece(&[b"SEARCH ", &rest])
    else {
        return Err("Invalid search criteria".to_owned());
    };

    // The walk and imap-codec must agree on which tokens are sequence-set
    // keys, or the marks would land on the wrong keys.
    let keys = criteria.into_inner();
    let key_count: usize = keys.iter().map(sequence_set_key_count).sum();
    if key_count != walk.marks.len() {
        return Err("Invalid search criteria".to_owned());
    }
    let mut marks = walk.marks.as_slice();
    let mut converted = Vec::with_capacity(keys.len());
    for key in keys {
        converted.push(mark_saved_results(key, &mut marks));
    }
    let criteria = match converted.len() {
        1 => converted.pop().expect("one element"),
        _ if converted
            .iter()
            .all(|criteria| !criteria.uses_saved_result()) =>
        {
            let keys: Vec<SearchKey<'static>> = converted
                .into_iter()
                .map(|criteria| criteria.into_search_key(None))
                .collect();
            Criteria::Key(SearchKey::And(
                keys.try_into().expect("criteria are never empty"),
            ))
        }
        _ => Criteria::And(converted),
    };

    Ok(Some(ExtendedCommand::Search(ExtendedSearch {
        uid,
        charset,
        criteria,
        return_options,
    })))
}

/// Parses ` (option option ...) ` after RETURN, with its trailing space.
fn parse_return_options(scanner: &mut Scanner<'_>) -> Result<SearchReturnOptions, String> {
    let invalid = || "Expected RETURN (options) after SEARCH".to_owned();
    scanner.expect(b' ').map_err(|_| invalid())?;
    scanner.expect(b'(').map_err(|_| invalid())?;
    let mut options = SearchReturnOptions::default();
    let mut any = false;
    while !scanner.eat(b')') {
        if any {
            scanner.expect(b' ').map_err(|_| invalid())?;
        }
        let option = scanner.atom().map_err(|_| invalid())?;
        match option.to_ascii_uppercase().as_slice() {
            b"MIN" => options.min = true,
            b"MAX" => options.max = true,
            b"ALL" => options.all = true,
            b"COUNT" => options.count = true,
            b"SAVE" => options.save = true,
            _ => {
                return Err(format!(
                    "Unknown SEARCH RETURN option {}",
                    quote_for_error(option)
                ));
            }
        }
        any = true;
    }
    if !any {
        options.all = true;
    }
    scanner
        .expect(b' ')
        .map_err(|_| "Expected search criteria after RETURN options".to_owned())?;
    Ok(options)
}

/// The findings of a walk over search criteria.
#[derive(Debug, Default)]
struct Walk {
    /// For each sequence-set key, in textual order, whether it is `$`.
    marks: Vec<bool>,
    /// Byte ranges of the `$` keys in the command.
    saved_spans: Vec<Range<usize>>,
}

impl Walk {
    /// Walks `key *(SP key)`.
    fn criteria(&mut self, scanner: &mut Scanner<'_>) -> Result<(), ()> {
        self.key(scanner, SEARCH_KEY_DEPTH_MAX)?;
        while scanner.eat(b' ') {
            self.key(scanner, SEARCH_KEY_DEPTH_MAX)?;
        }
        Ok(())
    }

    fn key(&mut self, scanner: &mut Scanner<'_>, depth: usize) -> Result<(), ()> {
        if depth == 0 {
            return Err(());
        }
        if scanner.eat(b'(') {
            self.key(scanner, depth - 1)?;
            while scanner.eat(b' ') {
                self.key(scanner, depth - 1)?;
            }
            return scanner.expect(b')').map_err(|_| ());
        }

        let word_span = scanner.argument().map_err(|_| ())?;
        let word = scanner.bytes()[word_span.clone()].to_ascii_uppercase();
        match word.as_slice() {
            b"ALL" | b"ANSWERED" | b"DELETED" | b"DRAFT" | b"FLAGGED" | b"NEW" | b"OLD"
            | b"RECENT" | b"SEEN" | b"UNANSWERED" | b"UNDELETED" | b"UNDRAFT" | b"UNFLAGGED"
            | b"UNSEEN" => Ok(()),
            b"BCC" | b"BODY" | b"CC" | b"FROM" | b"SUBJECT" | b"TEXT" | b"TO" | b"BEFORE"
            | b"ON" | b"SINCE" | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" | b"KEYWORD"
            | b"UNKEYWORD" | b"LARGER" | b"SMALLER" => self.arguments(scanner, 1),
            b"HEADER" => self.arguments(scanner, 2),
            b"NOT" => {
                scanner.expect(b' ').map_err(|_| ())?;
                self.key(scanner, depth - 1)
            }
            b"OR" => {
                scanner.expect(b' ').map_err(|_| ())?;
                self.key(scanner, depth - 1)?;
                scanner.expect(b' ').map_err(|_| ())?;
                self.key(scanner, depth - 1)
            }
            b"UID" => {
                scanner.expect(b' ').map_err(|_| ())?;
                let set_span = scanner.argument().map_err(|_| ())?;
                self.sequence_set(scanner, set_span);
                Ok(())
            }
            [b'0'..=b'9' | b'*' | b'$', ..] => {
                self.sequence_set(scanner, word_span);
                Ok(())
            }
            _ => Err(()),
        }
    }

    fn arguments(&mut self, scanner: &mut Scanner<'_>, count: usize) -> Result<(), ()> {
        for _ in 0..count {
            scanner.expect(b' ').map_err(|_| ())?;
            scanner.argument().map_err(|_| ())?;
        }
        Ok(())
    }

    fn sequence_set(&mut self, scanner: &Scanner<'_>, span: Range<usize>) {
        let is_saved = &scanner.bytes()[span.clone()] == b"$";
        if is_saved {
            self.saved_spans.push(span);
        }
        self.marks.push(is_saved);
    }
}

/// Returns `criteria`, which starts at `offset` in the command, with each
/// `$` key replaced by `1`.
fn replace_saved_results(criteria: &[u8], walk: &Walk, offset: usize) -> Vec<u8> {
    let mut replaced = criteria.to_vec();
    for span in &walk.saved_spans {
        replaced[span.start - offset] = b'1';
    }
    replaced
}

/// Converts a key tree whose sequence-set keys line up with the first
/// `marks`, consuming those marks. A subtree without a marked key stays a
/// plain [`Criteria::Key`].
fn mark_saved_results(key: SearchKey<'static>, marks: &mut &[bool]) -> Criteria {
    let count = sequence_set_key_count(&key);
    let (own, rest) = marks.split_at(count.min(marks.len()));
    if !own.iter().any(|&is_saved| is_saved) {
        *marks = rest;
        return Criteria::Key(key);
    }
    match key {
        SearchKey::SequenceSet(_) | SearchKey::Uid(_) => {
            *marks = rest;
            Criteria::SavedResult
        }
        SearchKey::Not(inner) => Criteria::Not(Box::new(mark_saved_results(*inner, marks))),
        SearchKey::Or(left, right) => {
            let left = mark_saved_results(*left, marks);
            let right = mark_saved_results(*right, marks);
            Criteria::Or(Box::new(left), Box::new(right))
        }
        SearchKey::And(all) => Criteria::And(
            all.into_inner()
                .into_iter()
                .map(|key| mark_saved_results(key, marks))
                .collect(),
        ),
        other => {
            *marks = rest;
            Criteria::Key(other)
        }
    }
}

fn sequence_set_key_count(key: &SearchKey<'_>) -> usize {
    match key {
        SearchKey::SequenceSet(_) | SearchKey::Uid(_) => 1,
        SearchKey::Not(inner) => sequence_set_key_count(inner),
        SearchKey::Or(left, right) => sequence_set_key_count(left) + sequence_set_key_count(right),
        SearchKey::And(all) => all.as_ref().iter().map(sequence_set_key_count).sum(),
        _ => 0,
    }
}
