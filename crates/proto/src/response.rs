//! Encoders for the bytes the server writes: strings, flags and literal
//! headers written directly into an output buffer, and thin wrappers over
//! imap-codec's `ResponseCodec` for whole status and data responses.
//!
//! The direct writers exist so the server can stream large FETCH output
//! without building an imap-types value for it first. Each writer picks the
//! simplest wire form that is valid for its input.
//!
//! The responses of the IMAP4rev2 extensions are in [`rev2`].
//!
//! This module has no access to sessions, sockets or storage.

use imap_codec::{ResponseCodec, encode::Encoder};
use imap_types::{
    core::Tag,
    flag::Flag,
    response::{Code, Data, Response, Status, StatusKind},
    utils::indicators::{is_astring_char, is_text_char},
};

pub mod codes;
pub mod rev2;

/// A value that has no valid encoding in the requested form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The bytes cannot appear in a quoted string: a quoted string holds
    /// only 7-bit characters other than NUL, CR and LF.
    #[error("byte {byte:#04x} at offset {offset} cannot appear in a quoted string")]
    Unquotable { offset: usize, byte: u8 },
    /// The text is not a system flag or a keyword atom.
    #[error("invalid flag {0:?}: expected a system flag such as \\Seen or a keyword atom")]
    InvalidFlag(String),
}

/// Writes an astring: an atom when every byte allows it, else a quoted
/// string, else a literal.
pub fn write_astring(out: &mut Vec<u8>, value: &[u8]) {
    let is_atom = !value.is_empty() && value.iter().all(|&byte| is_astring_char(byte));
    if is_atom {
        out.extend_from_slice(value);
    } else {
        write_string(out, value);
    }
}

/// Writes an nstring: `NIL` for `None`, else a quoted string or a literal.
/// A present value is never written as an atom, so the string "NIL" stays
/// distinct from NIL.
pub fn write_nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"NIL"),
        Some(value) => write_string(out, value),
    }
}

/// Writes a string: quoted when every byte allows it, else a literal.
///
/// NOTE: a value containing NUL is written as a literal too, although
/// IMAP4rev1 literals exclude NUL; no other form can carry it without
/// BINARY (RFC 3516), which Roost does not offer.
pub fn write_string(out: &mut Vec<u8>, value: &[u8]) {
    if write_quoted(out, value).is_err() {
        write_literal_header(out, value.len());
        out.extend_from_slice(value);
    }
}

/// Writes a quoted string, escaping `"` and `\`. Writes nothing and returns
/// an error if a byte cannot appear in a quoted string.
pub fn write_quoted(out: &mut Vec<u8>, value: &[u8]) -> Result<(), EncodeError> {
    if let Some(offset) = value.iter().position(|&byte| !is_text_char(byte)) {
        return Err(EncodeError::Unquotable {
            offset,
            byte: value[offset],
        });
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    for &byte in value {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
    Ok(())
}

/// Writes the `{length}\r\n` header of a synchronising literal; the caller
/// writes the `length` bytes after it.
pub fn write_literal_header(out: &mut Vec<u8>, length: usize) {
    out.push(b'{');
    out.extend_from_slice(length.to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
}

/// Writes a flag such as `\Seen` or a keyword such as `$Forwarded`. Writes
/// nothing and returns an error if `flag` is not valid flag syntax.
pub fn write_flag(out: &mut Vec<u8>, flag: &str) -> Result<(), EncodeError> {
    if Flag::try_from(flag).is_err() {
        return Err(EncodeError::InvalidFlag(flag.to_owned()));
    }
    out.extend_from_slice(flag.as_bytes());
    Ok(())
}

/// Encodes a status response: `tag kind [code] text` when `tag` is set, or
/// the untagged `* kind [code] text`.
///
/// Characters that response text cannot hold (CR, LF, NUL and non-ASCII)
/// become `?`, and empty text is replaced, so the result is always a valid
/// response line.
pub fn encode_status(
    tag: Option<&Tag<'_>>,
    kind: StatusKind,
    code: Option<Code<'_>>,
    text: &str,
) -> Vec<u8> {
    let text = sanitize_text(text, code.is_some(), default_text(kind));
    let status = Status::new(tag.cloned(), kind, code, text.as_str())
        .expect("sanitized text is valid response text");
    ResponseCodec::new()
        .encode(&Response::Status(status))
        .dump()
}

/// Encodes `* BYE [code] text`, sent before the server closes a connection.
pub fn encode_bye(code: Option<Code<'_>>, text: &str) -> Vec<u8> {
    let text = sanitize_text(text, code.is_some(), "Closing connection");
    let status = Status::bye(code, text.as_str()).expect("sanitized text is valid response text");
    ResponseCodec::new()
        .encode(&Response::Status(status))
        .dump()
}

/// Encodes a `+ text` continuation request, sent after a synchronising
/// literal was accepted or as an IDLE acknowledgement.
pub fn encode_continuation(text: &str) -> Vec<u8> {
    let text = sanitize_text(text, true, "Ready");
    let mut out = Vec::with_capacity(text.len() + 4);
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// Encodes an untagged data response such as `* 3 EXISTS`.
///
/// NOTE: the response is cloned before encoding, because imap-codec encodes
/// only whole `Response` values. Large FETCH bodies should be written with
/// the direct writers instead.
pub fn encode_data(data: &Data<'_>) -> Vec<u8> {
    ResponseCodec::new()
        .encode(&Response::Data(data.clone()))
        .dump()
}

fn default_text(kind: StatusKind) -> &'static str {
    match kind {
        StatusKind::Ok => "Completed",
        StatusKind::No => "Failed",
        StatusKind::Bad => "Invalid command",
    }
}

/// Makes `text` valid response text. Without a response code, a leading `[`
/// would be read as the start of one, so it is replaced as well.
fn sanitize_text(text: &str, has_code: bool, fallback: &str) -> String {
    let mut sanitized: String = text
        .chars()
        .map(|character| match u8::try_from(character) {
            Ok(byte) if is_text_char(byte) => character,
            _ => '?',
        })
        .collect();
    if !has_code && sanitized.starts_with('[') {
        sanitized.replace_range(..1, "(");
    }
    if sanitized.is_empty() {
        sanitized.push_str(fallback);
    }
    sanitized
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn astring_picks_form() {
        let cases: &[(&[u8], &str)] = &[
            (b"INBOX", "INBOX"),
            (b"a]b", "a]b"),
            (b"", "\"\""),
            (b"two words", "\"two words\""),
            (b"q\"uote\\", "\"q\\\"uote\\\\\""),
            (b"wild*", "\"wild*\""),
            (b"line\r\nbreak", "{11}\r\nline\r\nbreak"),
            ("Entwürfe".as_bytes(), "{9}\r\nEntwürfe"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                written(|out| write_astring(out, value)),
                *expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn nstring_never_atom() {
        assert_eq!(written(|out| write_nstring(out, None)), "NIL");
        assert_eq!(written(|out| write_nstring(out, Some(b"NIL"))), "\"NIL\"");
        assert_eq!(
            written(|out| write_nstring(out, Some(b"a\nb"))),
            "{3}\r\na\nb"
        );
    }

    #[test]
    fn quoted_rejects_eight_bit() {
        let mut out = Vec::new();
        let result = write_quoted(&mut out, "é".as_bytes());
        assert_eq!(
            result,
            Err(EncodeError::Unquotable {
                offset: 0,
                byte: 0xc3
            })
        );
        assert!(out.is_empty());
        assert_eq!(
            write_quoted(&mut out, b"\0"),
            Err(EncodeError::Unquotable { offset: 0, byte: 0 })
        );
    }

    #[test]
    fn literal_header_and_flags() {
        assert_eq!(written(|out| write_literal_header(out, 0)), "{0}\r\n");
        assert_eq!(written(|out| write_literal_header(out, 4096)), "{4096}\r\n");
        assert_eq!(written(|out| write_flag(out, "\\Seen").unwrap()), "\\Seen");
        assert_eq!(
            written(|out| write_flag(out, "$Forwarded").unwrap()),
            "$Forwarded"
        );

        let mut out = Vec::new();
        assert!(write_flag(&mut out, "two words").is_err());
        assert!(write_flag(&mut out, "").is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn status_encoding() {
        let tag = Tag::try_from("a1").unwrap();
        let uid_next = Code::UidNext(NonZeroU32::new(4).unwrap());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                encode_status(Some(&tag), StatusKind::Ok, None, "LOGIN completed"),
                "a1 OK LOGIN completed\r\n",
            ),
            (
                encode_status(None, StatusKind::Ok, Some(uid_next), "Predicted next UID"),
                "* OK [UIDNEXT 4] Predicted next UID\r\n",
            ),
            (
                encode_status(Some(&tag), StatusKind::Bad, Some(Code::TooBig), "Too big"),
                "a1 BAD [TOOBIG] Too big\r\n",
            ),
            (
                encode_status(Some(&tag), StatusKind::No, None, ""),
                "a1 NO Failed\r\n",
            ),
            (
                encode_status(Some(&tag), StatusKind::No, None, "bad\r\nline é"),
                "a1 NO bad??line ?\r\n",
            ),
            (
                encode_status(Some(&tag), StatusKind::No, None, "[x] y"),
                "a1 NO (x] y\r\n",
            ),
            (
                encode_bye(None, "Server shutting down"),
                "* BYE Server shutting down\r\n",
            ),
            (
                encode_continuation("Ready for literal"),
                "+ Ready for literal\r\n",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(String::from_utf8_lossy(&bytes), expected);
        }
    }

    #[test]
    fn data_encoding() {
        let cases: Vec<(Data<'static>, &str)> = vec![
            (Data::Exists(3), "* 3 EXISTS\r\n"),
            (Data::expunge(2).unwrap(), "* 2 EXPUNGE\r\n"),
            (
                Data::Search(vec![
                    NonZeroU32::new(2).unwrap(),
                    NonZeroU32::new(5).unwrap(),
                ]),
                "* SEARCH 2 5\r\n",
            ),
        ];
        for (data, expected) in cases {
            assert_eq!(String::from_utf8_lossy(&encode_data(&data)), expected);
        }
    }
}
