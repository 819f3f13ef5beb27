//! The part tree: byte offsets of each part's header and body in the raw
//! message, built from mail-parser's parse. It owns the tree's byte form in
//! the store and the lookup of an IMAP part number.

use mail_parser::{Message, MessageParser, PartType};

use crate::DecodeError;

/// One MIME part. Offsets index the raw message the tree was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub header_start: u32,
    pub body_start: u32,
    pub body_end: u32,
    /// LF count of the body, the line count BODYSTRUCTURE reports.
    pub lines: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A single part, or a part below the depth limit kept opaque.
    Leaf,
    Multipart(Vec<Part>),
    /// A message/rfc822 part and the message it contains.
    Message(Box<Part>),
}

impl Part {
    pub fn header_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.header_start, self.body_start)
    }

    pub fn body_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.body_start, self.body_end)
    }

    pub fn body_size(&self) -> u32 {
        self.body_end - self.body_start
    }

    /// Finds the part an IMAP part number names (RFC 3501 section 6.4.5).
    /// Each number steps into a message/rfc822 part's message first; a
    /// part that is not multipart has only part 1, itself.
    pub fn find(&self, numbers: &[u32]) -> Option<&Part> {
        let mut current = self;
        for &number in numbers {
            if let Kind::Message(inner) = &current.kind {
                current = inner;
            }
            current = match &current.kind {
                Kind::Multipart(children) => children.get((number as usize).checked_sub(1)?)?,
                _ if number == 1 => current,
                _ => return None,
            };
        }
        Some(current)
    }
}

/// Returns `raw[start..end]`, or an empty slice when the offsets do not fit
/// `raw` (a tree decoded from the store paired with other bytes).
fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    raw.get(start as usize..end as usize).unwrap_or_default()
}

/// Builds the tree of `raw`. Parts deeper than `depth_max` become leaves.
pub(crate) fn build(raw: &[u8], depth_max: usize) -> Part {
    let whole = whole_message(raw);
    let parsed = std::panic::catch_unwind(|| MessageParser::new().parse(raw));
    let Ok(Some(message)) = parsed else {
        return whole;
    };
    let mut root = map_part(raw, &message, 0, 0, depth_max).unwrap_or(whole);
    // The root spans the whole message even when the parser stopped early.
    root.header_start = 0;
    if (root.body_end as usize) < raw.len() && !matches!(root.kind, Kind::Multipart(_)) {
        root.body_end = raw.len() as u32;
        root.lines = count_lines(root.body_bytes(raw));
    }
    if let Kind::Multipart(_) = root.kind {
        root.body_end = raw.len() as u32;
        root.lines = count_lines(root.body_bytes(raw));
    }
    root
}

/// A message that could not be parsed: header up to the first empty line,
/// the rest is a text body.
fn whole_message(raw: &[u8]) -> Part {
    let body_start = header_end(raw);
    let mut part = Part {
        header_start: 0,
        body_start: body_start as u32,
        body_end: raw.len() as u32,
        lines: 0,
        kind: Kind::Leaf,
    };
    part.lines = count_lines(part.body_bytes(raw));
    part
}

/// Returns the offset just after the empty line that ends the header, or
/// the length when there is none.
pub(crate) fn header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    while pos < raw.len() {
        let line_end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..line_end];
        if line == b"\n" || line == b"\r\n" {
            return line_end;
        }
        pos = line_end;
    }
    raw.len()
}

fn count_lines(bytes: &[u8]) -> u32 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u32
}

fn map_part(raw: &[u8], message: &Message<'_>, id: usize, depth: usize, depth_max: usize) -> Option<Part> {
    let source = message.parts.get(id)?;
    let header_start = source.offset_header.min(raw.len() as u32);
    let body_start = source.offset_body.clamp(header_start, raw.len() as u32);
    let body_end = source.offset_end.clamp(body_start, raw.len() as u32);
    let mut part = Part { header_start, body_start, body_end, lines: 0, kind: Kind::Leaf };
    part.lines = count_lines(part.body_bytes(raw));
    if depth >= depth_max {
        return Some(part);
    }
    match &source.body {
        PartType::Multipart(ids) => {
            let children = ids
                .iter()
                .filter_map(|&child| map_part(raw, message, child as usize, depth + 1, depth_max))
                .collect();
            part.kind = Kind::Multipart(children);
        }
        // A message/rfc822 part under a transfer encoding was decoded and
        // parsed apart from `raw`, so its offsets do not index `raw`; it
        // stays a leaf, as Dovecot does not look inside it either.
        PartType::Message(inner) if source.encoding == mail_parser::Encoding::None => {
            if let Some(inner_part) = map_part(raw, inner, 0, depth + 1, depth_max) {
                part.kind = Kind::Message(Box::new(inner_part));
            }
        }
        _ => {}
    }
    Some(part)
}

/// Appends the tree in pre-order: four u32 offsets/counts, a kind byte,
/// and for a multipart its child count.
pub(crate) fn encode(part: &Part, out: &mut Vec<u8>) {
    for value in [part.header_start, part.body_start, part.body_end, part.lines] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    match &part.kind {
        Kind::Leaf => out.push(0),
        Kind::Multipart(children) => {
            out.push(1);
            out.extend_from_slice(&(children.len() as u32).to_le_bytes());
            for child in children {
                encode(child, out);
            }
        }
        Kind::Message(inner) => {
            out.push(2);
            encode(inner, out);
        }
    }
}

/// Nesting in stored trees is bounded so that a corrupt record cannot
/// exhaust the stack. Trees are built with a much smaller depth limit.
const DECODE_DEPTH_MAX: usize = 512;

pub(crate) fn decode(input: &mut &[u8], depth: usize) -> Result<Part, DecodeError> {
    if depth > DECODE_DEPTH_MAX {
        return Err(DecodeError::TooDeep);
    }
    let header_start = read_u32(input)?;
    let body_start = read_u32(input)?;
    let body_end = read_u32(input)?;
    let lines = read_u32(input)?;
    if !(header_start <= body_start && body_start <= body_end) {
        return Err(DecodeError::Invalid("part offsets out of order"));
    }
    let kind = match read_u8(input)? {
        0 => Kind::Leaf,
        1 => {
            let count = read_u32(input)? as usize;
            // Each part takes at least 17 bytes, which bounds the count.
            if count > input.len() / 17 {
                return Err(DecodeError::Truncated);
            }
            let mut children = Vec::with_capacity(count);
            for _ in 0..count {
                children.push(decode(input, depth + 1)?);
            }
            Kind::Multipart(children)
        }
        2 => Kind::Message(Box::new(decode(input, depth + 1)?)),
        _ => return Err(DecodeError::Invalid("unknown part kind")),
    };
    Ok(Part { header_start, body_start, body_end, lines, kind })
}

pub(crate) fn read_u8(input: &mut &[u8]) -> Result<u8, DecodeError> {
    let (&first, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(first)
}

pub(crate) fn read_u32(input: &mut &[u8]) -> Result<u32, DecodeError> {
    let bytes = read_bytes(input, 4)?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
}

pub(crate) fn read_bytes<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < len {
        return Err(DecodeError::Truncated);
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}
