//! Encoders for the responses of the extended commands: ESEARCH
//! (RFC 4731), LIST with extended data items (RFC 5258, RFC 9051) and
//! STATUS with SIZE (RFC 8438) and DELETED (RFC 9051).
//!
//! Mailbox names are written by [`write_mailbox_name`] in the form the
//! session has enabled: UTF-8 in a quoted string after `ENABLE IMAP4rev2`
//! or `ENABLE UTF8=ACCEPT`, modified UTF-7 otherwise.
//!
//! This module has no access to sessions or storage: callers pass the
//! numbers and names.

use std::ops::RangeInclusive;

use imap_types::{core::Tag, status::StatusDataItem};

use super::{write_astring, write_quoted, write_string};
use crate::mutf7;

/// The wire form of mailbox names for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxNameEncoding {
    /// Modified UTF-7 (IMAP4rev1, RFC 3501 section 5.1.3).
    ModifiedUtf7,
    /// UTF-8 in quoted strings (IMAP4rev2, or UTF8=ACCEPT of RFC 6855).
    Utf8,
}

/// Writes a mailbox name as an astring: modified UTF-7, or a quoted UTF-8
/// string. A name with CR, LF or NUL, which no quoted string can hold, is
/// written as a literal in either form.
pub fn write_mailbox_name(out: &mut Vec<u8>, name: &str, encoding: MailboxNameEncoding) {
    match encoding {
        MailboxNameEncoding::ModifiedUtf7 => write_astring(out, mutf7::encode(name).as_bytes()),
        MailboxNameEncoding::Utf8 => {
            if name.is_ascii() {
                write_astring(out, name.as_bytes());
            } else if write_quoted_utf8(out, name).is_err() {
                write_string(out, name.as_bytes());
            }
        }
    }
}

/// Writes `"name"` with `"` and `\` escaped, or nothing and an error if the
/// name contains CR, LF or NUL.
fn write_quoted_utf8(out: &mut Vec<u8>, name: &str) -> Result<(), ()> {
    if name.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0)) {
        return Err(());
    }
    out.push(b'"');
    for byte in name.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
    Ok(())
}

/// The result data of one ESEARCH response. Each field is `None` when its
/// RETURN option was not requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EsearchData<'a> {
    /// Lowest matching number; leave `None` when nothing matched.
    pub min: Option<u32>,
    /// Highest matching number; leave `None` when nothing matched.
    pub max: Option<u32>,
    /// Number of matching messages.
    pub count: Option<u32>,
    /// Matching numbers as sorted, disjoint ranges; leave `None` when
    /// nothing matched, because RFC 4731 forbids an empty ALL.
    pub all: Option<&'a [RangeInclusive<u32>]>,
}

/// Encodes `* ESEARCH (TAG "tag") [UID] [MIN n] [MAX n] [COUNT n] [ALL set]`.
///
/// `uid` is set for UID SEARCH, whose numbers are UIDs.
pub fn encode_esearch(tag: Option<&Tag<'_>>, uid: bool, data: &EsearchData<'_>) -> Vec<u8> {
    let mut out = b"* ESEARCH".to_vec();
    if let Some(tag) = tag {
        out.extend_from_slice(b" (TAG ");
        write_quoted(&mut out, tag.inner().as_bytes()).expect("a tag is 7-bit text");
        out.push(b')');
    }
    if uid {
        out.extend_from_slice(b" UID");
    }
    let numbers = [("MIN", data.min), ("MAX", data.max), ("COUNT", data.count)];
    for (name, value) in numbers {
        if let Some(value) = value {
            out.extend_from_slice(format!(" {name} {value}").as_bytes());
        }
    }
    if let Some(ranges) = data.all.filter(|ranges| !ranges.is_empty()) {
        out.extend_from_slice(b" ALL ");
        write_ranges(&mut out, ranges);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes ranges in the compact sequence-set form, such as `2:4,9`.
fn write_ranges(out: &mut Vec<u8>, ranges: &[RangeInclusive<u32>]) {
    for (index, range) in ranges.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        match range.start() == range.end() {
            true => out.extend_from_slice(range.start().to_string().as_bytes()),
            false => out.extend_from_slice(format!("{}:{}", range.start(), range.end()).as_bytes()),
        }
    }
}

/// An extended data item at the end of a LIST response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListExtendedItem<'a> {
    /// `("CHILDINFO" ("SUBSCRIBED" "SPECIAL-USE"))` (RFC 5258 section 3.5):
    /// a mailbox below this one meets the selection criteria named, and
    /// the client asked for RECURSIVEMATCH.
    ChildInfo(ChildInfoCriteria),
    /// `("OLDNAME" ("name"))` (RFC 9051): the mailbox was renamed, and the
    /// client knew it as `name`.
    OldName(&'a str),
}

/// The selection options a CHILDINFO item names: those whose criteria a
/// descendant of the listed mailbox meets. At least one should be set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildInfoCriteria {
    /// The `SUBSCRIBED` selection option (RFC 5258).
    pub subscribed: bool,
    /// The `SPECIAL-USE` selection option (RFC 6154).
    pub special_use: bool,
}

/// The fields of one LIST response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListData<'a> {
    /// Attributes with their backslash, such as `\HasChildren`, `\Sent`.
    pub attributes: &'a [&'a str],
    /// The hierarchy delimiter, or `None` for a flat namespace (`NIL`).
    pub delimiter: Option<char>,
    /// The mailbox name, in Unicode.
    pub name: &'a str,
    /// Extended data items; none writes no list.
    pub extended_items: &'a [ListExtendedItem<'a>],
}

/// Encodes `* LIST (attributes) "delimiter" name [(extended items)]`.
///
/// NOTE: attributes are written as given; the caller passes only valid
/// flag text such as `\Noselect`.
pub fn encode_list(data: &ListData<'_>, encoding: MailboxNameEncoding) -> Vec<u8> {
    let mut out = b"* LIST (".to_vec();
    out.extend_from_slice(data.attributes.join(" ").as_bytes());
    out.extend_from_slice(b") ");
    match data.delimiter {
        Some(delimiter) => {
            let mut buffer = [0u8; 4];
            let delimiter = delimiter.encode_utf8(&mut buffer);
            if write_quoted(&mut out, delimiter.as_bytes()).is_err() {
                out.extend_from_slice(b"NIL");
            }
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    write_mailbox_name(&mut out, data.name, encoding);

    if !data.extended_items.is_empty() {
        out.extend_from_slice(b" (");
        for (index, item) in data.extended_items.iter().enumerate() {
            if index > 0 {
                out.push(b' ');
            }
            match item {
                ListExtendedItem::ChildInfo(criteria) => write_child_info(&mut out, *criteria),
                ListExtendedItem::OldName(old_name) => {
                    out.extend_from_slice(b"\"OLDNAME\" (");
                    write_mailbox_name(&mut out, old_name, encoding);
                    out.push(b')');
                }
            }
        }
        out.push(b')');
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes `"CHILDINFO" ("SUBSCRIBED" "SPECIAL-USE")` with the options set
/// in `criteria`, in that order.
fn write_child_info(out: &mut Vec<u8>, criteria: ChildInfoCriteria) {
    out.extend_from_slice(b"\"CHILDINFO\" (");
    let options = [("SUBSCRIBED", criteria.subscribed), ("SPECIAL-USE", criteria.special_use)];
    let named = options.iter().filter(|(_, set)| *set).map(|(option, _)| format!("\"{option}\""));
    out.extend_from_slice(named.collect::<Vec<_>>().join(" ").as_bytes());
    out.push(b')');
}

/// One value of a STATUS response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusValue {
    /// A value imap-types models, such as MESSAGES or SIZE.
    Standard(StatusDataItem),
    /// APPENDLIMIT (RFC 7889 section 3): the largest message, in bytes,
    /// that APPEND accepts into the mailbox, or `None` for `NIL`, sent for
    /// a mailbox without a limit of its own.
    AppendLimit(Option<u64>),
}

impl From<StatusDataItem> for StatusValue {
    fn from(item: StatusDataItem) -> Self {
        StatusValue::Standard(item)
    }
}

/// Encodes `* STATUS name (item value ...)`, including SIZE, DELETED and
/// APPENDLIMIT.
pub fn encode_status_data(
    name: &str,
    items: &[StatusValue],
    encoding: MailboxNameEncoding,
) -> Vec<u8> {
    let mut out = b"* STATUS ".to_vec();
    write_mailbox_name(&mut out, name, encoding);
    out.extend_from_slice(b" (");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        let item = match item {
            StatusValue::Standard(item) => item,
            StatusValue::AppendLimit(Some(bytes)) => {
                out.extend_from_slice(format!("APPENDLIMIT {bytes}").as_bytes());
                continue;
            }
            StatusValue::AppendLimit(None) => {
                out.extend_from_slice(b"APPENDLIMIT NIL");
                continue;
            }
        };
        let text = match item {
            StatusDataItem::Messages(count) => format!("MESSAGES {count}"),
            StatusDataItem::Recent(count) => format!("RECENT {count}"),
            StatusDataItem::UidNext(uid) => format!("UIDNEXT {uid}"),
            StatusDataItem::UidValidity(validity) => format!("UIDVALIDITY {validity}"),
            StatusDataItem::Unseen(count) => format!("UNSEEN {count}"),
            StatusDataItem::Deleted(count) => format!("DELETED {count}"),
            StatusDataItem::DeletedStorage(bytes) => format!("DELETED-STORAGE {bytes}"),
            StatusDataItem::Size(bytes) => format!("SIZE {bytes}"),
        };
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b")\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn esearch_rfc_examples() {
        // RFC 4731 section 3.1 and RFC 9051 section 6.4.4.
        let tag = |text: &str| Tag::try_from(text.to_owned()).unwrap();
        let min_count = EsearchData {
            min: Some(2),
            count: Some(3),
            ..EsearchData::default()
        };
        assert_eq!(
            text(encode_esearch(Some(&tag("A282")), false, &min_count)),
            "* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\r\n"
        );

        let ranges = [2..=2, 10..=11];
        let all = EsearchData {
            all: Some(&ranges),
            ..EsearchData::default()
        };
        assert_eq!(
            text(encode_esearch(Some(&tag("A283")), false, &all)),
            "* ESEARCH (TAG \"A283\") ALL 2,10:11\r\n"
        );

        let min_max = EsearchData {
            min: Some(7),
            max: Some(3800),
            ..EsearchData::default()
        };
        assert_eq!(
            text(encode_esearch(Some(&tag("A285")), true, &min_max)),
            "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n"
        );

        // Nothing matched: no MIN, MAX or ALL, and COUNT 0 if requested.
        let nothing = EsearchData {
            count: Some(0),
            all: Some(&[]),
            ..EsearchData::default()
        };
        assert_eq!(
            text(encode_esearch(Some(&tag("A284")), false, &nothing)),
            "* ESEARCH (TAG \"A284\") COUNT 0\r\n"
        );
    }

    #[test]
    fn esearch_all_fields_in_order() {
        let tag = Tag::try_from("a1").unwrap();
        let ranges = [2..=4, 9..=9];
        let data = EsearchData {
            min: Some(2),
            max: Some(9),
            count: Some(5),
            all: Some(&ranges),
        };
        assert_eq!(
            text(encode_esearch(Some(&tag), true, &data)),
            "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 COUNT 5 ALL 2:4,9\r\n"
        );
        assert_eq!(
            text(encode_esearch(None, false, &EsearchData::default())),
            "* ESEARCH\r\n"
        );
    }

    #[test]
    fn mailbox_name_by_encoding() {
        let cases: &[(&str, MailboxNameEncoding, &str)] = &[
            ("INBOX", MailboxNameEncoding::ModifiedUtf7, "INBOX"),
            ("INBOX", MailboxNameEncoding::Utf8, "INBOX"),
            (
                "Entwürfe",
                MailboxNameEncoding::ModifiedUtf7,
                "Entw&APw-rfe",
            ),
            ("Entwürfe", MailboxNameEncoding::Utf8, "\"Entwürfe\""),
            ("a \"b\" ü", MailboxNameEncoding::Utf8, "\"a \\\"b\\\" ü\""),
            (
                "two words",
                MailboxNameEncoding::ModifiedUtf7,
                "\"two words\"",
            ),
            ("ü\r\n", MailboxNameEncoding::Utf8, "{4}\r\nü\r\n"),
        ];
        for (name, encoding, expected) in cases {
            let mut out = Vec::new();
            write_mailbox_name(&mut out, name, *encoding);
            assert_eq!(text(out), *expected, "{name:?} {encoding:?}");
        }
    }

    #[test]
    fn list_extended_items() {
        // RFC 5258 section 5, example 6, and RFC 9051 section 6.3.9.
        let child_info = ListData {
            attributes: &[],
            delimiter: Some('/'),
            name: "Foo",
            extended_items: &[ListExtendedItem::ChildInfo(ChildInfoCriteria { subscribed: true, special_use: false })],
        };
        assert_eq!(
            text(encode_list(&child_info, MailboxNameEncoding::ModifiedUtf7)),
            "* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );

        let old_name = ListData {
            attributes: &["\\Subscribed"],
            delimiter: Some('/'),
            name: "Neu",
            extended_items: &[
                ListExtendedItem::OldName("Alt/Entwürfe"),
                ListExtendedItem::ChildInfo(ChildInfoCriteria { subscribed: true, special_use: false }),
            ],
        };
        assert_eq!(
            text(encode_list(&old_name, MailboxNameEncoding::Utf8)),
            "* LIST (\\Subscribed) \"/\" Neu (\"OLDNAME\" (\"Alt/Entwürfe\") \"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        assert_eq!(
            text(encode_list(&old_name, MailboxNameEncoding::ModifiedUtf7)),
            "* LIST (\\Subscribed) \"/\" Neu (\"OLDNAME\" (Alt/Entw&APw-rfe) \"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );

        // CHILDINFO for the SPECIAL-USE selection option, alone and with
        // SUBSCRIBED.
        let special_use = ListData {
            attributes: &["\\NonExistent"],
            delimiter: Some('/'),
            name: "Projects",
            extended_items: &[ListExtendedItem::ChildInfo(ChildInfoCriteria { subscribed: false, special_use: true })],
        };
        assert_eq!(
            text(encode_list(&special_use, MailboxNameEncoding::Utf8)),
            "* LIST (\\NonExistent) \"/\" Projects (\"CHILDINFO\" (\"SPECIAL-USE\"))\r\n"
        );
        let both = ListData {
            extended_items: &[ListExtendedItem::ChildInfo(ChildInfoCriteria { subscribed: true, special_use: true })],
            ..special_use
        };
        assert_eq!(
            text(encode_list(&both, MailboxNameEncoding::Utf8)),
            "* LIST (\\NonExistent) \"/\" Projects (\"CHILDINFO\" (\"SUBSCRIBED\" \"SPECIAL-USE\"))\r\n"
        );

        let plain = ListData {
            attributes: &["\\HasNoChildren", "\\Sent"],
            delimiter: None,
            name: "Sent",
            extended_items: &[],
        };
        assert_eq!(
            text(encode_list(&plain, MailboxNameEncoding::Utf8)),
            "* LIST (\\HasNoChildren \\Sent) NIL Sent\r\n"
        );
    }

    #[test]
    fn status_with_size_and_deleted() {
        // RFC 8438 section 3 and RFC 5819 section 5.
        let items = [
            StatusDataItem::Messages(8),
            StatusDataItem::Size(44421),
            StatusDataItem::UidNext(NonZeroU32::new(242344).unwrap()),
            StatusDataItem::Deleted(1),
        ]
        .map(StatusValue::from);
        assert_eq!(
            text(encode_status_data(
                "frop",
                &items,
                MailboxNameEncoding::ModifiedUtf7
            )),
            "* STATUS frop (MESSAGES 8 SIZE 44421 UIDNEXT 242344 DELETED 1)\r\n"
        );
        let items = [StatusDataItem::Messages(17), StatusDataItem::Unseen(16)].map(StatusValue::from);
        assert_eq!(
            text(encode_status_data(
                "Gelöscht",
                &items,
                MailboxNameEncoding::Utf8
            )),
            "* STATUS \"Gelöscht\" (MESSAGES 17 UNSEEN 16)\r\n"
        );

        // RFC 7889 section 3.1, and NIL for a mailbox without a limit.
        let items = [StatusValue::AppendLimit(Some(257890))];
        assert_eq!(
            text(encode_status_data("INBOX", &items, MailboxNameEncoding::ModifiedUtf7)),
            "* STATUS INBOX (APPENDLIMIT 257890)\r\n"
        );
        let items = [
            StatusValue::Standard(StatusDataItem::Messages(2)),
            StatusValue::AppendLimit(None),
        ];
        assert_eq!(
            text(encode_status_data("INBOX", &items, MailboxNameEncoding::ModifiedUtf7)),
            "* STATUS INBOX (MESSAGES 2 APPENDLIMIT NIL)\r\n"
        );
    }
}
