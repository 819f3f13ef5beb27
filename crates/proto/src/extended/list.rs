//! LIST-EXTENDED (RFC 5258) with the SPECIAL-USE options (RFC 6154) and
//! LIST-STATUS (RFC 5819), and CREATE with special-use attributes
//! (RFC 6154).
//!
//! Options are matched without regard to case. An option this module does
//! not know is rejected with BAD: RFC 5258 lets a server ignore none of
//! them, because an ignored selection option would widen the result.

use imap_types::{
    command::CommandBody,
    mailbox::{ListMailbox, Mailbox},
};

use super::{
    ExtendedCommand, ExtendedLimits, ParseResult, decode_piece, quote_for_error, scan::Scanner,
    status::{self, StatusItem},
};

/// A LIST command in the extended form.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedList {
    /// Selection options: the mailboxes listed besides those matching the
    /// patterns.
    pub selection: ListSelection,
    /// The reference name.
    pub reference: Mailbox<'static>,
    /// One or more mailbox patterns, in the order sent.
    pub patterns: Vec<ListMailbox<'static>>,
    /// Return options: the data each LIST response carries.
    pub return_options: ListReturnOptions,
}

/// LIST selection options. RFC 5258 has SUBSCRIBED imply the SUBSCRIBED
/// return option; the server applies that rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListSelection {
    /// `SUBSCRIBED`: list subscribed names, existing or not.
    pub subscribed: bool,
    /// `REMOTE`: include mailboxes on other servers (none in Roost).
    pub remote: bool,
    /// `RECURSIVEMATCH`: also list parents of selected mailboxes, with
    /// CHILDINFO. Never set alone: the parser requires a base option.
    pub recursive_match: bool,
    /// `SPECIAL-USE` (RFC 6154): list only mailboxes with a special use.
    pub special_use: bool,
}

/// LIST return options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturnOptions {
    /// `SUBSCRIBED`: add `\Subscribed` to subscribed names.
    pub subscribed: bool,
    /// `CHILDREN`: add `\HasChildren` or `\HasNoChildren`.
    pub children: bool,
    /// `SPECIAL-USE` (RFC 6154): add special-use attributes such as `\Sent`.
    pub special_use: bool,
    /// `STATUS (items)` (RFC 5819): send a STATUS response after each
    /// selectable mailbox's LIST response.
    pub status: Option<Vec<StatusItem>>,
}

/// A CREATE command with special-use attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpecialUse {
    /// The name of the mailbox to create.
    pub mailbox: Mailbox<'static>,
    /// The requested attributes, possibly none (`USE ()`).
    pub special_uses: Vec<SpecialUse>,
}

/// A special-use mailbox attribute (RFC 6154 section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
    /// Any other flag, with its backslash. It is valid syntax, and RFC 6154
    /// has the server reject it with `NO [USEATTR]`.
    Other(String),
}

impl SpecialUse {
    /// Returns the attribute as written on the wire, such as `\Sent`.
    pub fn as_str(&self) -> &str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Other(flag) => flag,
        }
    }

    fn from_flag(flag: &[u8]) -> Self {
        let known = [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ];
        known
            .into_iter()
            .find(|special_use| special_use.as_str().as_bytes().eq_ignore_ascii_case(flag))
            .unwrap_or_else(|| SpecialUse::Other(String::from_utf8_lossy(flag).into_owned()))
    }
}

/// Parses the arguments of LIST; the scanner is just after the name.
pub(super) fn parse_list(scanner: &mut Scanner<'_>, limits: &ExtendedLimits) -> ParseResult {
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let mut extended = false;
    let mut selection = ListSelection::default();
    if scanner.peek() == Some(b'(') {
        selection = parse_selection(scanner)?;
        extended = true;
        scanner
            .expect(b' ')
            .map_err(|_| "Expected a reference name after LIST selection options".to_owned())?;
    }

    let Ok(reference) = scanner.astring() else {
        return invalid_unless(extended, "Invalid LIST reference name");
    };
    if scanner.expect(b' ').is_err() {
        return invalid_unless(
            extended,
            "Expected a mailbox pattern after the reference name",
        );
    }
    let mut patterns = Vec::new();
    if scanner.eat(b'(') {
        extended = true;
        loop {
            if patterns.len() == limits.list_patterns_max {
                return Err(format!(
                    "LIST has more than {} mailbox patterns",
                    limits.list_patterns_max
                ));
            }
            let pattern = scanner
                .list_mailbox()
                .map_err(|_| "Invalid LIST mailbox pattern".to_owned())?;
            patterns.push(pattern);
            if scanner.eat(b')') {
                break;
            }
            scanner
                .expect(b' ')
                .map_err(|_| "Expected a space or ) between LIST patterns".to_owned())?;
        }
    } else {
        let Ok(pattern) = scanner.list_mailbox() else {
            return invalid_unless(extended, "Invalid LIST mailbox pattern");
        };
        patterns.push(pattern);
    }

    let mut return_options = ListReturnOptions::default();
    if scanner.eat(b' ') {
        if !scanner.eat_word("RETURN") {
            return invalid_unless(extended, "Expected RETURN after the LIST patterns");
        }
        return_options = parse_return_options(scanner)?;
        extended = true;
    }
    if !scanner.at_line_end() {
        return invalid_unless(extended, "Unexpected characters after the LIST arguments");
    }
    if !extended {
        return Ok(None);
    }

    let bytes = scanner.bytes();
    let mut decoded_reference = None;
    let mut decoded_patterns = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        let Some(CommandBody::List {
            reference,
            mailbox_wildcard,
        }) = decode_piece(&[b"LIST ", &bytes[reference.clone()], b" ", &bytes[pattern]])
        else {
            return Err("Invalid LIST reference name or mailbox pattern".to_owned());
        };
        decoded_reference = Some(reference);
        decoded_patterns.push(mailbox_wildcard);
    }

    Ok(Some(ExtendedCommand::List(ExtendedList {
        selection,
        reference: decoded_reference.expect("at least one pattern"),
        patterns: decoded_patterns,
        return_options,
    })))
}

fn invalid_unless(extended: bool, text: &str) -> ParseResult {
    match extended {
        true => Err(text.to_owned()),
        false => Ok(None),
    }
}

/// Parses `(option ...)`, which may be empty.
fn parse_selection(scanner: &mut Scanner<'_>) -> Result<ListSelection, String> {
    let mut selection = ListSelection::default();
    for option in parenthesized_atoms(scanner, "LIST selection options")? {
        match option.to_ascii_uppercase().as_slice() {
            b"SUBSCRIBED" => selection.subscribed = true,
            b"REMOTE" => selection.remote = true,
            b"RECURSIVEMATCH" => selection.recursive_match = true,
            b"SPECIAL-USE" => selection.special_use = true,
            _ => {
                return Err(format!(
                    "Unknown LIST selection option {}",
                    quote_for_error(option)
                ));
            }
        }
    }

    // RFC 5258 section 3: RECURSIVEMATCH needs an option that selects
    // mailboxes for it to recurse from.
    let has_base_option = selection.subscribed || selection.special_use;
    if selection.recursive_match && !has_base_option {
        return Err("RECURSIVEMATCH requires SUBSCRIBED or SPECIAL-USE".to_owned());
    }
    Ok(selection)
}

/// Parses ` (option ...)` after RETURN.
fn parse_return_options(scanner: &mut Scanner<'_>) -> Result<ListReturnOptions, String> {
    let invalid = || "Expected RETURN (options) after the LIST patterns".to_owned();
    scanner.expect(b' ').map_err(|_| invalid())?;
    scanner.expect(b'(').map_err(|_| invalid())?;
    let mut options = ListReturnOptions::default();
    let mut first = true;
    while !scanner.eat(b')') {
        if !first {
            scanner.expect(b' ').map_err(|_| invalid())?;
        }
        first = false;
        let option = scanner.atom().map_err(|_| invalid())?;
        match option.to_ascii_uppercase().as_slice() {
            b"SUBSCRIBED" => options.subscribed = true,
            b"CHILDREN" => options.children = true,
            b"SPECIAL-USE" => options.special_use = true,
            b"STATUS" => options.status = Some(parse_status_items(scanner)?),
            _ => {
                return Err(format!(
                    "Unknown LIST return option {}",
                    quote_for_error(option)
                ));
            }
        }
    }
    Ok(options)
}

/// Parses ` (item ...)` after the STATUS return option.
fn parse_status_items(scanner: &mut Scanner<'_>) -> Result<Vec<StatusItem>, String> {
    scanner
        .expect(b' ')
        .map_err(|_| "Expected STATUS (items) in the LIST return options".to_owned())?;
    status::parse_items(scanner)
}

/// Parses `(atom atom ...)`, which may be empty, and returns the atoms.
fn parenthesized_atoms<'a>(scanner: &mut Scanner<'a>, what: &str) -> Result<Vec<&'a [u8]>, String> {
    let invalid = || format!("Expected {what} as a list of atoms in parentheses");
    scanner.expect(b'(').map_err(|_| invalid())?;
    let mut atoms = Vec::new();
    while !scanner.eat(b')') {
        if !atoms.is_empty() {
            scanner.expect(b' ').map_err(|_| invalid())?;
        }
        atoms.push(scanner.atom().map_err(|_| invalid())?);
    }
    Ok(atoms)
}

/// Parses the arguments of CREATE; the scanner is just after the name.
pub(super) fn parse_create(scanner: &mut Scanner<'_>, limits: &ExtendedLimits) -> ParseResult {
    if scanner.expect(b' ').is_err() {
        return Ok(None);
    }
    let Ok(name) = scanner.astring() else {
        return Ok(None);
    };
    if !scanner.eat(b' ') || !scanner.eat(b'(') {
        return Ok(None);
    }

    let invalid = || "Expected CREATE name (USE (attributes))".to_owned();
    let mut special_uses = Vec::new();
    let mut first = true;
    while !scanner.eat(b')') {
        if !first {
            scanner.expect(b' ').map_err(|_| invalid())?;
        }
        first = false;
        let parameter = scanner.atom().map_err(|_| invalid())?;
        if !parameter.eq_ignore_ascii_case(b"USE") {
            return Err(format!(
                "Unknown CREATE parameter {}",
                quote_for_error(parameter)
            ));
        }
        scanner.expect(b' ').map_err(|_| invalid())?;
        scanner.expect(b'(').map_err(|_| invalid())?;
        let mut first_flag = true;
        while !scanner.eat(b')') {
            if !first_flag {
                scanner.expect(b' ').map_err(|_| invalid())?;
            }
            first_flag = false;
            if special_uses.len() == limits.create_special_uses_max {
                return Err(format!(
                    "CREATE has more than {} special-use attributes",
                    limits.create_special_uses_max
                ));
            }
            let flag = scanner.flag().map_err(|_| invalid())?;
            special_uses.push(SpecialUse::from_flag(flag));
        }
    }
    if !scanner.at_line_end() {
        return Err(invalid());
    }

    let name = &scanner.bytes()[name];
    let Some(CommandBody::Create { mailbox }) = decode_piece(&[b"CREATE ", name]) else {
        return Err("Invalid mailbox name in CREATE".to_owned());
    };
    Ok(Some(ExtendedCommand::Create(CreateSpecialUse {
        mailbox,
        special_uses,
    })))
}
