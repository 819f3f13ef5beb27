//! STATUS items with the APPENDLIMIT item of RFC 7889 section 3, which
//! imap-codec does not parse, in the STATUS command and in the STATUS
//! return option of LIST (RFC 5819).
//!
//! Each item other than APPENDLIMIT is decoded by imap-codec's STATUS
//! grammar, one item at a time, so the items keep the order the client
//! sent them in and the response can follow that order.

use imap_types::{command::CommandBody, mailbox::Mailbox, status::StatusDataItemName};

use super::{ExtendedCommand, ParseResult, decode_piece, quote_for_error, scan::Scanner};

/// One requested STATUS item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusItem {
    /// An item imap-codec parses, such as MESSAGES or SIZE.
    Standard(StatusDataItemName),
    /// APPENDLIMIT (RFC 7889 section 3): the largest message APPEND
    /// accepts into the mailbox.
    AppendLimit,
}

/// A STATUS command whose item list contains APPENDLIMIT.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedStatus {
    /// The mailbox whose status is requested.
    pub mailbox: Mailbox<'static>,
    /// The items, in the order sent.
    pub items: Vec<StatusItem>,
}

/// Parses the arguments of STATUS, with the scanner just after the name.
/// Returns `Ok(None)` for a STATUS without APPENDLIMIT, which imap-codec
/// has already judged.
pub(super) fn parse_status(scanner: &mut Scanner<'_>) -> ParseResult {
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let Ok(mailbox) = scanner.astring() else {
        return Ok(None);
    };
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let Ok(items) = parse_items(scanner) else {
        return Ok(None);
    };
    if !scanner.at_line_end() || !items.contains(&StatusItem::AppendLimit) {
        return Ok(None);
    }

    // MESSAGES replaces the item list, so imap-codec checks the name.
    let bytes = scanner.bytes();
    let Some(CommandBody::Status { mailbox, .. }) =
        decode_piece(&[b"STATUS ", &bytes[mailbox], b" (MESSAGES)"])
    else {
        return Err("Invalid STATUS mailbox name".to_owned());
    };
    Ok(Some(ExtendedCommand::Status(ExtendedStatus { mailbox, items })))
}

/// Parses `(item ...)`, a non-empty list of STATUS items, at the scanner.
/// Returns the BAD text for an item list that is not valid.
pub(super) fn parse_items(scanner: &mut Scanner<'_>) -> Result<Vec<StatusItem>, String> {
    let invalid = || "Expected STATUS items as a list of atoms in parentheses".to_owned();
    scanner.expect(b'(').map_err(|_| invalid())?;
    let mut items = Vec::new();
    loop {
        let atom = scanner.atom().map_err(|_| invalid())?;
        items.push(parse_item(atom)?);
        if scanner.eat(b')') {
            break;
        }
        scanner.expect(b' ').map_err(|_| invalid())?;
    }
    Ok(items)
}

fn parse_item(atom: &[u8]) -> Result<StatusItem, String> {
    if atom.eq_ignore_ascii_case(b"APPENDLIMIT") {
        return Ok(StatusItem::AppendLimit);
    }
    match decode_piece(&[b"STATUS x (", atom, b")"]) {
        Some(CommandBody::Status { item_names, .. }) if item_names.len() == 1 => {
            Ok(StatusItem::Standard(item_names[0].clone()))
        }
        _ => Err(format!("Unknown STATUS item {}", quote_for_error(atom))),
    }
}
