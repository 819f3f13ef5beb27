//! The IMAP4rev2 command forms that imap-codec 2.0.0-alpha.10 does not
//! parse, decoded in this one place:
//!
//! - ESEARCH (RFC 4731): `SEARCH RETURN (MIN MAX ALL COUNT) ...`, also
//!   after `UID`. An empty `RETURN ()` means `RETURN (ALL)`.
//! - SEARCHRES (RFC 5182): the `SAVE` return option, and `$`, the saved
//!   search result, as the sequence set of FETCH, STORE, COPY, MOVE, their
//!   UID forms and UID EXPUNGE, and as a search key, alone or nested.
//! - LIST-EXTENDED (RFC 5258) with the SPECIAL-USE options (RFC 6154) and
//!   the STATUS return option (LIST-STATUS, RFC 5819).
//! - CREATE-SPECIAL-USE (RFC 6154): `CREATE name (USE (\Sent))`.
//! - APPENDLIMIT (RFC 7889): the `APPENDLIMIT` item of STATUS and of the
//!   LIST STATUS return option.
//!
//! The reader tries imap-codec first and calls [`parse`] only for a
//! complete command that imap-codec rejected, so every form imap-codec
//! accepts keeps its `Command` type. The parsers here only find the
//! boundaries of each piece. They give each piece to imap-codec inside a
//! small command built for that purpose (for example `t LIST ref pat`),
//! because imap-codec's parsers for astrings, mailboxes, patterns, search
//! keys and STATUS items are private to it. The pieces are copied byte for
//! byte, literals included, so imap-codec validates them exactly as it
//! would in a plain command.
//!
//! `$` is represented in two ways. In FETCH, STORE, COPY, MOVE and UID
//! EXPUNGE it is the whole sequence set, so [`SavedResultCommand`] keeps
//! the imap-codec command and only lets the server take it out with the
//! resolved set filled in. In SEARCH it may appear anywhere in the key
//! tree, so [`Criteria`] keeps imap-types `SearchKey` subtrees that contain
//! no `$` and adds a [`Criteria::SavedResult`] leaf.
//!
//! Character set rules (8-bit text needs UTF8=ACCEPT) and literal size
//! rules stay in the reader. This module has no notion of sessions,
//! mailboxes or storage.

use imap_codec::{CommandCodec, decode::Decoder};
use imap_types::{
    IntoStatic,
    command::{Command, CommandBody},
    core::Tag,
};

mod list;
mod scan;
mod search;
mod status;

#[cfg(test)]
mod tests;

pub use list::{CreateSpecialUse, ExtendedList, ListReturnOptions, ListSelection, SpecialUse};
pub use search::{Criteria, ExtendedSearch, SearchReturnOptions};
pub use status::{ExtendedStatus, StatusItem};

pub(crate) use scan::has_eight_bit_outside_literals;

use scan::Scanner;

/// Limits on the counts that the extended grammar lets a client grow. The
/// command's byte limit bounds them too, but far less tightly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedLimits {
    /// Maximum number of mailbox patterns in one LIST command.
    pub list_patterns_max: usize,
    /// Maximum number of special-use attributes in one CREATE command.
    pub create_special_uses_max: usize,
}

impl Default for ExtendedLimits {
    /// Estimated limits, chosen well above the few patterns and attributes
    /// a mail client sends in one command.
    fn default() -> Self {
        Self {
            list_patterns_max: 32,
            create_special_uses_max: 16,
        }
    }
}

/// A command in one of the extended forms listed in the module
/// documentation.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtendedCommand {
    /// SEARCH or UID SEARCH with RETURN options, `$` in its criteria, or
    /// both.
    Search(ExtendedSearch),
    /// FETCH, STORE, COPY, MOVE, a UID form of them, or UID EXPUNGE, whose
    /// sequence set is `$`.
    SavedResult(SavedResultCommand),
    /// LIST with selection options, several patterns or return options.
    List(ExtendedList),
    /// CREATE with special-use attributes.
    Create(CreateSpecialUse),
    /// STATUS with the APPENDLIMIT item.
    Status(ExtendedStatus),
}

/// A command whose sequence set is `$`, the saved search result
/// (RFC 5182).
///
/// The sequence set inside is a placeholder, so the command is only handed
/// out by [`SavedResultCommand::into_command`] with the real set.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedResultCommand {
    command: Command<'static>,
}

impl SavedResultCommand {
    /// Returns the command. Its sequence set is a placeholder: read the
    /// other arguments only.
    pub fn body(&self) -> &CommandBody<'static> {
        &self.command.body
    }

    /// Returns whether the sequence set is read as UIDs: true for the UID
    /// forms, false for FETCH, STORE, COPY and MOVE.
    pub fn uses_uids(&self) -> bool {
        match &self.command.body {
            CommandBody::Fetch { uid, .. }
            | CommandBody::Store { uid, .. }
            | CommandBody::Copy { uid, .. }
            | CommandBody::Move { uid, .. } => *uid,
            _ => true,
        }
    }

    /// Returns the command with `set`, the saved result in the numbering
    /// [`Self::uses_uids`] names, in place of `$`. An empty saved result has
    /// no sequence set form, so the server handles that case itself: the
    /// command then applies to no message and succeeds.
    pub fn into_command(self, set: imap_types::sequence::SequenceSet) -> Command<'static> {
        let mut command = self.command;
        match &mut command.body {
            CommandBody::Fetch { sequence_set, .. }
            | CommandBody::Store { sequence_set, .. }
            | CommandBody::Copy { sequence_set, .. }
            | CommandBody::Move { sequence_set, .. }
            | CommandBody::ExpungeUid { sequence_set } => *sequence_set = set,
            _ => unreachable!("only commands with a sequence set are built"),
        }
        command
    }
}

/// Result of [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// The command is not in an extended form; imap-codec's rejection
    /// is returned.
    NotExtended,
    /// A valid extended command.
    Command(Tag<'static>, ExtendedCommand),
    /// An extended form with an invalid part, with the text for the BAD
    /// response.
    Invalid(String),
}

/// Parses a complete command, with its final CRLF, in one of the extended
/// forms.
pub(crate) fn parse(command: &[u8], limits: &ExtendedLimits) -> Parsed {
    let mut scanner = Scanner::new(command);
    let Ok(tag_bytes) = scanner.tag() else {
        return Parsed::NotExtended;
    };
    let Ok(tag) = Tag::try_from(tag_bytes).map(IntoStatic::into_static) else {
        return Parsed::NotExtended;
    };
    if scanner.expect(b' ').is_err() {
        return Parsed::NotExtended;
    }
    let Ok(name) = scanner.atom() else {
        return Parsed::NotExtended;
    };
    let name = name.to_ascii_uppercase();

    let result = match name.as_slice() {
        b"SEARCH" => search::parse(&mut scanner, false),
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" => parse_saved_result(&mut scanner),
        b"LIST" => list::parse_list(&mut scanner, limits),
        b"CREATE" => list::parse_create(&mut scanner, limits),
        b"STATUS" => status::parse_status(&mut scanner),
        b"UID" => parse_uid(&mut scanner),
        _ => Ok(None),
    };
    match result {
        Ok(Some(command)) => Parsed::Command(tag, command),
        Ok(None) => Parsed::NotExtended,
        Err(text) => Parsed::Invalid(text),
    }
}

/// Outcome of one extended parser: `Ok(None)` when the command is not in
/// its extended form, `Err` with the BAD text when it is but is invalid.
type ParseResult = Result<Option<ExtendedCommand>, String>;

fn parse_uid(scanner: &mut Scanner<'_>) -> ParseResult {
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let Ok(name) = scanner.atom() else {
        return Ok(None);
    };
    match name.to_ascii_uppercase().as_slice() {
        b"SEARCH" => search::parse(scanner, true),
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" | b"EXPUNGE" => parse_saved_result(scanner),
        _ => Ok(None),
    }
}

/// Parses a command whose first argument is the sequence set, when that
/// set is `$`. The scanner is just after the command name.
fn parse_saved_result(scanner: &mut Scanner<'_>) -> ParseResult {
    let bytes = scanner.bytes();
    let set_start = scanner.position() + 1;
    if scanner.expect(b' ').is_err() || !scanner.eat(b'$') {
        return Ok(None);
    }
    if !(scanner.peek() == Some(b' ') || scanner.at_line_end()) {
        return Ok(None);
    }

    // `1` replaces `$`, so imap-codec checks the other arguments.
    let mut placeholder = bytes[..set_start].to_vec();
    placeholder.push(b'1');
    placeholder.extend_from_slice(&bytes[set_start + 1..]);
    match CommandCodec::new().decode(&placeholder) {
        Ok(([], command)) => Ok(Some(ExtendedCommand::SavedResult(SavedResultCommand {
            command: command.into_static(),
        }))),
        _ => Ok(None),
    }
}

/// Decodes `t ` + `parts` + CRLF with imap-codec and returns the body: the
/// way the extended parsers reach imap-codec's parsers for the pieces of a
/// command.
fn decode_piece(parts: &[&[u8]]) -> Option<CommandBody<'static>> {
    let mut command = b"t ".to_vec();
    for part in parts {
        command.extend_from_slice(part);
    }
    command.extend_from_slice(b"\r\n");
    match CommandCodec::new().decode(&command) {
        Ok(([], command)) => Some(command.body.into_static()),
        _ => None,
    }
}

/// Returns `bytes` as text for a BAD response, cut to a length that keeps
/// the response line short.
fn quote_for_error(bytes: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 40;
    let shown = &bytes[..bytes.len().min(SHOWN_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if bytes.len() > SHOWN_BYTES_MAX {
        text.push_str("...");
    }
    text
}
