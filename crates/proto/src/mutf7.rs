//! Modified UTF-7, the encoding of international mailbox names on the wire
//! (RFC 3501 section 5.1.3).
//!
//! Printable ASCII other than `&` stands for itself, `&` is written `&-`,
//! and every other run of characters is written as `&`, the UTF-16BE bytes
//! in base64 with `,` in place of `/` and no padding, then `-`. The decoder
//! accepts only the canonical form, so that each name has exactly one
//! encoding and two spellings cannot name two different mailboxes.
//!
//! This module has no notion of mailbox storage or hierarchy delimiters.

/// Error for a string that is not valid canonical modified UTF-7. Offsets are byte
/// offsets in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mutf7Error {
    /// A character outside printable ASCII appears unencoded.
    #[error("character {character:?} at offset {offset} must be base64-encoded")]
    UnencodedCharacter { offset: usize, character: char },
    /// A `&` has no closing `-`.
    #[error("shift sequence at offset {offset} is missing its closing '-'")]
    Unterminated { offset: usize },
    /// A shift sequence contains a character outside the base64 alphabet, or a
    /// length that is not whole UTF-16 code units.
    #[error("shift sequence at offset {offset} is not valid modified base64")]
    InvalidBase64 { offset: usize },
    /// A shift sequence decodes to an unpaired UTF-16 surrogate.
    #[error("shift sequence at offset {offset} contains an unpaired UTF-16 surrogate")]
    InvalidUtf16 { offset: usize },
    /// The input is valid but not in the one canonical form.
    #[error("shift sequence at offset {offset} is not canonical: {reason}")]
    NotCanonical { offset: usize, reason: &'static str },
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a mailbox name in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    let mut pending_units: Vec<u16> = Vec::new();
    for character in name.chars() {
        if is_direct(character) {
            flush_shift_sequence(&mut encoded, &mut pending_units);
            encoded.push(character);
            if character == '&' {
                encoded.push('-');
            }
        } else {
            let mut buffer = [0u16; 2];
            pending_units.extend_from_slice(character.encode_utf16(&mut buffer));
        }
    }
    flush_shift_sequence(&mut encoded, &mut pending_units);
    encoded
}

/// Decodes a modified UTF-7 mailbox name, rejecting any form other than the
/// canonical one that [`encode`] produces.
pub fn decode(encoded: &str) -> Result<String, Mutf7Error> {
    let bytes = encoded.as_bytes();
    let mut decoded = String::with_capacity(encoded.len());
    let mut last_shift_end = None;
    let mut offset = 0;
    while offset < bytes.len() {
        let byte = bytes[offset];
        if byte != b'&' {
            if !(0x20..=0x7e).contains(&byte) {
                let character = encoded[offset..].chars().next().unwrap_or('\u{fffd}');
                return Err(Mutf7Error::UnencodedCharacter { offset, character });
            }
            decoded.push(char::from(byte));
            offset += 1;
            continue;
        }

        let Some(length) = bytes[offset + 1..].iter().position(|&byte| byte == b'-') else {
            return Err(Mutf7Error::Unterminated { offset });
        };
        let base64 = &bytes[offset + 1..offset + 1 + length];
        let end = offset + length + 2;
        if base64.is_empty() {
            decoded.push('&');
            offset = end;
            continue;
        }
        if last_shift_end == Some(offset) {
            let reason = "it directly follows another shift sequence";
            return Err(Mutf7Error::NotCanonical { offset, reason });
        }
        decode_shift_sequence(base64, offset, &mut decoded)?;
        last_shift_end = Some(end);
        offset = end;
    }
    Ok(decoded)
}

/// Returns whether a character is written as itself.
fn is_direct(character: char) -> bool {
    (' '..='~').contains(&character)
}

/// Writes the collected UTF-16 units as one shift sequence.
fn flush_shift_sequence(encoded: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    encoded.push('&');
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for unit in units.drain(..) {
        bits = (bits << 16) | u32::from(unit);
        bit_count += 16;
        while bit_count >= 6 {
            bit_count -= 6;
            encoded.push(char::from(ALPHABET[((bits >> bit_count) & 0x3f) as usize]));
        }
    }
    if bit_count > 0 {
        encoded.push(char::from(
            ALPHABET[((bits << (6 - bit_count)) & 0x3f) as usize],
        ));
    }
    encoded.push('-');
}

/// Decodes the base64 between `&` and `-` and appends its characters.
fn decode_shift_sequence(
    base64: &[u8],
    offset: usize,
    decoded: &mut String,
) -> Result<(), Mutf7Error> {
    let mut units = Vec::with_capacity(base64.len() * 6 / 16);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for &symbol in base64 {
        let Some(value) = ALPHABET.iter().position(|&letter| letter == symbol) else {
            return Err(Mutf7Error::InvalidBase64 { offset });
        };
        bits = (bits << 6) | value as u32;
        bit_count += 6;
        if bit_count >= 16 {
            bit_count -= 16;
            units.push((bits >> bit_count) as u16);
            bits &= (1 << bit_count) - 1;
        }
    }

    // The canonical encoding of n units uses the fewest symbols, so fewer
    // than 6 bits are left over, and they are zero.
    if units.is_empty() || bit_count >= 6 {
        return Err(Mutf7Error::InvalidBase64 { offset });
    }
    if bits != 0 {
        let reason = "the unused bits after the last character are not zero";
        return Err(Mutf7Error::NotCanonical { offset, reason });
    }

    for character in char::decode_utf16(units) {
        let Ok(character) = character else {
            return Err(Mutf7Error::InvalidUtf16 { offset });
        };
        if is_direct(character) {
            let reason = "it encodes a printable ASCII character";
            return Err(Mutf7Error::NotCanonical { offset, reason });
        }
        decoded.push(character);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_round_trips() {
        let cases = [
            ("INBOX", "INBOX"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("&", "&-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("😀", "&2D3eAA-"),
            ("a\u{1}b", "a&AAE-b"),
            ("\u{7f}", "&AH8-"),
            ("", ""),
        ];
        for (name, encoded) in cases {
            assert_eq!(encode(name), encoded, "encode {name:?}");
            assert_eq!(decode(encoded).as_deref(), Ok(name), "decode {encoded:?}");
        }
    }

    #[test]
    fn mutf7_round_trips_every_length() {
        // Runs of 1 to 6 non-ASCII characters end at each bit alignment.
        for length in 1..=6 {
            let name: String = std::iter::repeat_n('é', length)
                .chain("x".chars())
                .collect();
            assert_eq!(
                decode(&encode(&name)).as_deref(),
                Ok(name.as_str()),
                "{name:?}"
            );
        }
    }

    #[test]
    fn mutf7_rejects_invalid_forms() {
        let not_canonical = |offset| move |error: &Mutf7Error| matches!(error, Mutf7Error::NotCanonical { offset: found, .. } if *found == offset);
        let cases: &[(&str, Mutf7Error)] = &[
            (
                "ü",
                Mutf7Error::UnencodedCharacter {
                    offset: 0,
                    character: 'ü',
                },
            ),
            (
                "a\tb",
                Mutf7Error::UnencodedCharacter {
                    offset: 1,
                    character: '\t',
                },
            ),
            ("&U,BTFw", Mutf7Error::Unterminated { offset: 0 }),
            ("x&", Mutf7Error::Unterminated { offset: 1 }),
            ("&U,BTF-", Mutf7Error::InvalidBase64 { offset: 0 }),
            ("&Jjo=-", Mutf7Error::InvalidBase64 { offset: 0 }),
            ("&U/BTFw-", Mutf7Error::InvalidBase64 { offset: 0 }),
            ("&APwA-", Mutf7Error::InvalidBase64 { offset: 0 }),
            ("&2D0-", Mutf7Error::InvalidUtf16 { offset: 0 }),
        ];
        for (encoded, expected) in cases {
            assert_eq!(decode(encoded).as_ref(), Err(expected), "{encoded:?}");
        }

        let non_canonical = [
            ("&U,BTFw-&ZeVnLIqe-", 8),
            ("&AGE-", 0),
            ("&ACY-", 0),
            ("&APx-", 0),
        ];
        for (encoded, offset) in non_canonical {
            let result = decode(encoded);
            assert!(
                result.as_ref().is_err_and(not_canonical(offset)),
                "{encoded:?}: {result:?}"
            );
        }
    }
}
