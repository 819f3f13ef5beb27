//! BINARY sections (RFC 3516): a part's content with its
//! Content-Transfer-Encoding undone, for FETCH BINARY[...] and
//! BINARY.SIZE[...].
//!
//! Only single parts are decoded. A multipart or message/rfc822 part may
//! only be 7bit, 8bit or binary (RFC 2045 section 6.4), so its bytes are
//! returned as they are, as is the whole message for `BINARY[]`. This
//! module does not know how the server writes the result (literal or
//! literal8).

use std::borrow::Cow;

use crate::Derived;
use crate::header;
use crate::section::{decode_base64, decode_quoted_printable};
use crate::tree::Kind;

/// A failure to decode a BINARY section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one RFC 2045 defines,
    /// with the encoding as written. The server returns NO [UNKNOWN-CTE].
    UnknownEncoding(String),
}

/// Returns the decoded content of the part `part` names in `raw`, which
/// must be the message `derived` was made from. An empty `part` is the
/// whole message, undecoded. A part that does not exist gives an empty
/// result, as for BODY[].
pub fn binary_section<'a>(raw: &'a [u8], derived: &Derived, part: &[u32]) -> Result<Cow<'a, [u8]>, BinaryError> {
    if part.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    let Some(found) = derived.root.find(part) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let body = found.body_bytes(raw);
    if !matches!(found.kind, Kind::Leaf) {
        return Ok(Cow::Borrowed(body));
    }
    let fields = header::fields(found.header_bytes(raw));
    let encoding = header::last(&fields, "content-transfer-encoding").map(header::unfold).unwrap_or_default();
    let encoding = String::from_utf8_lossy(&encoding).trim().to_ascii_lowercase();
    match encoding.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Cow::Borrowed(body)),
        "base64" => Ok(Cow::Owned(decode_base64(body))),
        "quoted-printable" => Ok(Cow::Owned(decode_quoted_printable(body))),
        _ => Err(BinaryError::UnknownEncoding(encoding)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, derive};

    fn decode(raw: &[u8], part: &[u32]) -> Result<Vec<u8>, BinaryError> {
        let derived = derive(raw, &Limits { depth_max: 8, parts_max: 10_000 });
        binary_section(raw, &derived, part).map(Cow::into_owned)
    }

    const MULTIPART: &[u8] = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAP8BAg==\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--b--\r\n";

    #[test]
    fn transfer_encodings_undone() {
        assert_eq!(decode(MULTIPART, &[1]).unwrap(), [0x00, 0xff, 0x01, 0x02]);
        assert_eq!(decode(MULTIPART, &[2]).unwrap(), "café au lait".as_bytes());
        assert_eq!(decode(MULTIPART, &[4]).unwrap(), b"plain");
    }

    #[test]
    fn unknown_encoding_rejected() {
        assert_eq!(decode(MULTIPART, &[3]), Err(BinaryError::UnknownEncoding("x-uuencode".to_owned())));
    }

    #[test]
    fn whole_message_and_missing_part() {
        assert_eq!(decode(MULTIPART, &[]).unwrap(), MULTIPART);
        assert_eq!(decode(MULTIPART, &[9]).unwrap(), b"");
    }

    #[test]
    fn single_part_message_is_part_one() {
        let raw = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n";
        assert_eq!(decode(raw, &[1]).unwrap(), b"hello");
    }
}
