//! The part tree: byte offsets of each part's header and body in the raw
//! message, found by scanning for boundary lines. It owns the tree's byte form in
//! the store and the lookup of an IMAP part number.

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
    /// Each number after the first steps into a message/rfc822 part's
    /// message; a part that is not multipart has only part 1, itself.
    pub fn find(&self, numbers: &[u32]) -> Option<&Part> {
        let mut current = self;
        for (index, &number) in numbers.iter().enumerate() {
            // At the top, part 1 of a message whose own type is
            // message/rfc822 is its body, as for any single-part message.
            if let (Kind::Message(inner), true) = (&current.kind, index > 0) {
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
///
/// The boundary rules are Dovecot 2.3's, because clients compare part
/// numbers and sizes with it. A boundary line is `--` plus the boundary at
/// the start of a line, with anything after it. The line end before a
/// boundary line belongs to the boundary. A boundary of any enclosing
/// multipart also ends the current part. A multipart whose boundary never
/// appears has no parts.
pub(crate) fn build(raw: &[u8], depth_max: usize, parts_max: usize) -> Part {
    let parser = Parser { raw, depth_max, parts_max, part_count: std::cell::Cell::new(1) };
    let (root, _) = parser.entity(0, &[], 0, false);
    root
}

struct Parser<'a> {
    raw: &'a [u8],
    depth_max: usize,
    /// `Limits::parts_max`.
    parts_max: usize,
    /// Parts created so far, compared with `parts_max`.
    part_count: std::cell::Cell<usize>,
}

/// A boundary line found while scanning.
#[derive(Clone, Copy)]
struct BoundaryLine {
    /// Offset of the first `-`.
    line_start: usize,
    /// Offset just after the line's LF.
    next_line: usize,
    /// Index into the list of open boundaries, innermost last.
    level: usize,
    is_close: bool,
    /// True when the line cut a part's header short.
    in_header: bool,
}

impl Parser<'_> {
    /// Parses the header and body starting at `start`. Returns the part and
    /// the boundary line that ended it, `None` when the message ended.
    fn entity(&self, start: usize, open: &[&[u8]], depth: usize, in_digest: bool) -> (Part, Option<BoundaryLine>) {
        let (body_start, header_cut) = self.header_end(start, open);
        let header = &self.raw[start..body_start];
        let fields = crate::header::fields(header);
        let content_type = crate::header::first(&fields, "content-type")
            .and_then(|value| crate::header::parse_content(value, true));
        let mut part = Part {
            header_start: start as u32,
            body_start: body_start as u32,
            body_end: body_start as u32,
            lines: 0,
            kind: Kind::Leaf,
        };
        if let Some(found) = header_cut {
            let end = self.content_end(start, Some(found)) as u32;
            part.body_start = end;
            part.body_end = end;
            return (part, Some(found));
        }

        let (is_multipart, is_message, is_digest, boundary) = match &content_type {
            Some(ct) => {
                let subtype = ct.subtype.as_deref().unwrap_or_default();
                let boundary = boundary_parameter(&ct.params).filter(|value| !value.is_empty());
                (
                    ct.value.eq_ignore_ascii_case(b"multipart"),
                    ct.value.eq_ignore_ascii_case(b"message") && subtype.eq_ignore_ascii_case(b"rfc822"),
                    subtype.eq_ignore_ascii_case(b"digest"),
                    boundary,
                )
            }
            None => (false, in_digest, false, None),
        };

        let mut close_end = None;
        let ended = if depth >= self.depth_max {
            self.find_boundary(body_start, open)
        } else if is_multipart {
            // Without a boundary no part can start, so the multipart is
            // empty and its body runs to the enclosing boundary.
            let (children, ended) = match boundary {
                Some(boundary) => {
                    let (children, ended, close) = self.multipart(body_start, open, &boundary, depth, is_digest);
                    close_end = close;
                    (children, ended)
                }
                None => (Vec::new(), self.find_boundary(body_start, open)),
            };
            part.kind = Kind::Multipart(children);
            ended
        } else if is_message && self.part_count.get() < self.parts_max {
            self.part_count.set(self.part_count.get() + 1);
            let (inner, ended) = self.entity(body_start, open, depth + 1, false);
            part.kind = Kind::Message(Box::new(inner));
            ended
        } else {
            self.find_boundary(body_start, open)
        };
        // The line end before a boundary line belongs to the boundary, even
        // when it is the empty line that ends the header. A multipart keeps
        // the line end of its own close-delimiter line.
        let mut end = self.content_end(start, ended).max(close_end.unwrap_or(0));
        if let (Kind::Multipart(_) | Kind::Message(_), Some(line)) = (&part.kind, ended) {
            // When the last part's header was cut short by the boundary,
            // Dovecot counts the line end before it in the enclosing
            // multipart or message/rfc822 part.
            if line.in_header {
                end = line.line_start;
            }
        }
        part.body_start = part.body_start.min(end as u32);
        part.body_end = end.max(part.body_start as usize) as u32;
        part.lines = count_lines(part.body_bytes(self.raw));
        (part, ended)
    }

    /// Parses the parts of a multipart body and its epilogue. Returns the
    /// parts, the enclosing boundary line that ended the epilogue, and the
    /// end of the close-delimiter line when there was one.
    fn multipart(
        &self,
        body_start: usize,
        open: &[&[u8]],
        boundary: &[u8],
        depth: usize,
        is_digest: bool,
    ) -> (Vec<Part>, Option<BoundaryLine>, Option<usize>) {
        let mut inner_open = open.to_vec();
        inner_open.push(boundary);
        let own_level = open.len();
        let mut children = Vec::new();
        let mut found = self.find_boundary(body_start, &inner_open);
        loop {
            let Some(line) = found else { return (children, None, None) };
            if line.level != own_level {
                return (children, Some(line), None);
            }
            if line.is_close {
                // The epilogue runs to the next enclosing boundary.
                let ended = self.find_boundary(line.next_line, open);
                return (children, ended, Some(line.next_line));
            }
            if self.part_count.get() >= self.parts_max {
                return (children, self.find_boundary(line.next_line, open), None);
            }
            self.part_count.set(self.part_count.get() + 1);
            let (child, ended) = self.entity(line.next_line, &inner_open, depth + 1, is_digest);
            children.push(child);
            found = ended;
        }
    }

    /// Finds the end of the header starting at `start`: just after the
    /// empty line, or at a boundary line that cuts the header short.
    fn header_end(&self, start: usize, open: &[&[u8]]) -> (usize, Option<BoundaryLine>) {
        let raw = self.raw;
        let mut pos = start;
        while pos < raw.len() {
            if let Some(found) = self.boundary_at(pos, open) {
                return (pos, Some(BoundaryLine { in_header: true, ..found }));
            }
            let next = line_after(raw, pos);
            let line = &raw[pos..next];
            if line == b"\n" || line == b"\r\n" {
                return (next, None);
            }
            pos = next;
        }
        (raw.len(), None)
    }

    /// Returns the first boundary line at or after `pos`, which is at the
    /// start of a line.
    fn find_boundary(&self, mut pos: usize, open: &[&[u8]]) -> Option<BoundaryLine> {
        if open.is_empty() {
            return None;
        }
        while pos < self.raw.len() {
            if let Some(found) = self.boundary_at(pos, open) {
                return Some(found);
            }
            pos = line_after(self.raw, pos);
        }
        None
    }

    /// Checks whether the line at `pos` is a boundary line of any open
    /// multipart. When one boundary is a prefix of another, the longer
    /// match wins.
    fn boundary_at(&self, pos: usize, open: &[&[u8]]) -> Option<BoundaryLine> {
        let rest = self.raw[pos..].strip_prefix(b"--")?;
        let (level, boundary) = open
            .iter()
            .enumerate()
            .filter(|(_, boundary)| rest.starts_with(boundary))
            .max_by_key(|(level, boundary)| (boundary.len(), *level))?;
        let is_close = rest[boundary.len()..].starts_with(b"--");
        Some(BoundaryLine { line_start: pos, next_line: line_after(self.raw, pos), level, is_close, in_header: false })
    }

    /// Returns where content that started at `body_start` ends: before the
    /// line end that precedes the boundary line, or at the end of the
    /// message.
    fn content_end(&self, body_start: usize, ended: Option<BoundaryLine>) -> usize {
        let Some(line) = ended else { return self.raw.len() };
        let mut end = line.line_start;
        if end > body_start && self.raw[end - 1] == b'\n' {
            end -= 1;
            if end > body_start && self.raw[end - 1] == b'\r' {
                end -= 1;
            }
        }
        end.max(body_start)
    }
}

/// Returns the offset after the LF that ends the line at `pos`.
/// The multipart boundary among Content-Type parameters. An RFC 2231
/// extended `boundary*` (`charset'language'percent-encoded`) is decoded,
/// because the parts are delimited by the decoded value. Dovecot 2.3 does
/// not decode it and finds no parts; the differential tests list that.
fn boundary_parameter(params: &[(Vec<u8>, Vec<u8>)]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if let Some((_, value)) = params.iter().find(|(key, _)| key.eq_ignore_ascii_case(b"boundary")) {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let (_, value) = params.iter().find(|(key, _)| key.eq_ignore_ascii_case(b"boundary*"))?;
    // Skip `charset'language'`; a value without both quotes is taken as is.
    let encoded = match value.iter().position(|&b| b == b'\'') {
        Some(first) => {
            let rest = &value[first + 1..];
            let second = rest.iter().position(|&b| b == b'\'')?;
            &rest[second + 1..]
        }
        None => &value[..],
    };
    Some(std::borrow::Cow::Owned(percent_decode(encoded)))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn line_after(raw: &[u8], pos: usize) -> usize {
    raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1)
}

fn count_lines(bytes: &[u8]) -> u32 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u32
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
