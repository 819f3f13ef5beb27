//! MIME analysis of stored messages: the part tree with byte offsets,
//! ENVELOPE, BODY and BODYSTRUCTURE, FETCH section extraction, BINARY
//! sections with their transfer encoding undone, and the decoded header
//! and body text that SEARCH matches against.
//!
//! A message is analysed once, at delivery or APPEND, by [`derive`]; the
//! store keeps [`Derived::encode`]'s bytes next to the message so FETCH
//! never parses again. This crate has no notion of IMAP sessions, sockets
//! or storage. It maps message bytes to strings and byte ranges.
//!
//! Analysis never fails. Malformed mail still gets an ENVELOPE and a
//! BODYSTRUCTURE, shaped as Dovecot 2.3 shapes them, because clients stop
//! showing a mailbox when a FETCH fails. The part tree comes from our own
//! boundary scanner, which follows Dovecot's rules (mail-parser's tree
//! differs from Dovecot on broken boundaries, and part numbers must
//! agree). mail-parser decodes RFC 2047 words and the Date: header.

mod address;
mod binary;
mod header;
mod render;
mod section;
mod tree;

pub use binary::{BinaryError, binary_section};
pub use section::{Section, SectionText, TextLimits, decode_charset, header_values, search_text, section};

/// Bounds on the analysis of one message.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum nesting depth of parts, where the root is depth 0. A part at
    /// this depth is kept as one opaque part, so deeper parts get no part
    /// number of their own. Parsing recurses once per level, so keep this
    /// in the tens.
    pub depth_max: usize,
    /// Maximum number of parts in one message, the root included. Boundary
    /// lines after the last allowed part stay in the enclosing body, so a
    /// message of many empty parts cannot make the tree or BODYSTRUCTURE
    /// grow without bound.
    pub parts_max: usize,
}

/// The stored analysis of one message's MIME structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    root: tree::Part,
    envelope: String,
    bodystructure: String,
    body: String,
    sent_date: Option<i64>,
}

/// A stored [`Derived`] record that cannot be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("derived MIME record has unknown version {0}; expected {FORMAT_VERSION}")]
    UnknownVersion(u8),
    #[error("derived MIME record is truncated")]
    Truncated,
    #[error("derived MIME record is invalid: {0}")]
    Invalid(&'static str),
    #[error("derived MIME record nests parts deeper than the decoder allows")]
    TooDeep,
}

/// Version of the byte form written by [`Derived::encode`].
const FORMAT_VERSION: u8 = 1;

/// Analyses `raw`. Never fails: any byte sequence gives a tree, and
/// mail-parser, used for the Date: header, runs under `catch_unwind`.
pub fn derive(raw: &[u8], limits: &Limits) -> Derived {
    // NOTE: offsets are u32, so a message over 4 GiB is analysed only up
    // to that size. Delivery limits keep messages far below it.
    let raw = &raw[..raw.len().min(u32::MAX as usize)];
    let root = tree::build(raw, limits.depth_max, limits.parts_max);
    let envelope = render::envelope(root.header_bytes(raw));
    let bodystructure = render::body_structure(raw, &root, true);
    let body = render::body_structure(raw, &root, false);
    let sent_date = section::date_header(raw, &root);
    Derived { root, envelope, bodystructure, body, sent_date }
}

impl Derived {
    /// Encodes the record in the versioned byte form the store keeps.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        for text in [&self.envelope, &self.bodystructure, &self.body] {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        match self.sent_date {
            Some(seconds) => {
                out.push(1);
                out.extend_from_slice(&seconds.to_le_bytes());
            }
            None => out.push(0),
        }
        tree::encode(&self.root, &mut out);
        out
    }

    /// Reads a record written by [`Derived::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Derived, DecodeError> {
        let mut input = bytes;
        let version = tree::read_u8(&mut input)?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let mut texts = Vec::with_capacity(3);
        for _ in 0..3 {
            let len = tree::read_u32(&mut input)? as usize;
            let text = tree::read_bytes(&mut input, len)?;
            let text = std::str::from_utf8(text).map_err(|_| DecodeError::Invalid("text is not UTF-8"))?;
            texts.push(text.to_owned());
        }
        let sent_date = match tree::read_u8(&mut input)? {
            0 => None,
            1 => Some(i64::from_le_bytes(
                tree::read_bytes(&mut input, 8)?.try_into().expect("eight bytes"),
            )),
            _ => return Err(DecodeError::Invalid("bad sent-date flag")),
        };
        let root = tree::decode(&mut input, 0)?;
        if !input.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes"));
        }
        let body = texts.pop().expect("three texts");
        let bodystructure = texts.pop().expect("three texts");
        let envelope = texts.pop().expect("three texts");
        Ok(Derived { root, envelope, bodystructure, body, sent_date })
    }

    /// Returns the ENVELOPE value, parenthesised, ready to follow `ENVELOPE `.
    pub fn envelope(&self) -> &str {
        &self.envelope
    }

    /// Returns the BODYSTRUCTURE value with extension data.
    pub fn bodystructure(&self) -> &str {
        &self.bodystructure
    }

    /// Returns the BODY value, which is BODYSTRUCTURE without extension data.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Returns the Date: header as Unix seconds, `None` when absent or unparsable.
    pub fn sent_date(&self) -> Option<i64> {
        self.sent_date
    }

    /// Lists every part number a client can name in `BODY[n]`, in
    /// depth-first order; the top-level message itself is not included.
    pub fn part_numbers(&self) -> Vec<Vec<u32>> {
        // Mirrors `tree::Part::find`: a message/rfc822 part's numbers are
        // those of its message, and a single part has only number 1.
        fn walk(part: &tree::Part, path: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
            let is_message = matches!(part.kind, tree::Kind::Message(_)) && !path.is_empty();
            let content = match &part.kind {
                tree::Kind::Message(inner) if is_message => &**inner,
                _ => part,
            };
            if let tree::Kind::Multipart(children) = &content.kind {
                for (index, child) in children.iter().enumerate() {
                    path.push(index as u32 + 1);
                    out.push(path.clone());
                    walk(child, path, out);
                    path.pop();
                }
            } else if path.is_empty() || is_message {
                path.push(1);
                out.push(path.clone());
                walk(content, path, out);
                path.pop();
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut Vec::new(), &mut out);
        out
    }
}
