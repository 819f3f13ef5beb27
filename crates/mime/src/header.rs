//! Raw header fields: splitting a header block into fields, unfolding, and
//! the Content-* grammar (type, parameters with RFC 2231 continuations).
//! It works on the bytes of one header block and never sees the part tree.

/// One header field as it appears in the message.
pub(crate) struct Field<'a> {
    pub name: &'a [u8],
    /// The value after the colon, folding and the final line end included.
    pub value: &'a [u8],
}

/// Splits a header block into fields. A line without a colon that does not
/// continue a field is skipped, as Dovecot's header parser does.
pub(crate) fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let line_end = match block[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos + i + 1,
            None => block.len(),
        };
        let line = &block[pos..line_end];
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                let start = last.value.as_ptr() as usize - block.as_ptr() as usize;
                last.value = &block[start..line_end];
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = trim_end(&line[..colon]);
            if !name.is_empty() {
                out.push(Field { name, value: &block[pos + colon + 1..line_end] });
            }
        }
        pos = line_end;
    }
    out
}

/// Returns the first field called `name`, compared without case.
pub(crate) fn first<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes())).map(|f| f.value)
}

/// Returns the last field called `name`, compared without case. Dovecot
/// uses the last occurrence of every Content-* field but Content-Type.
pub(crate) fn last<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a [u8]> {
    fields.iter().rev().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes())).map(|f| f.value)
}

/// Unfolds a value as Dovecot 2.3 renders ENVELOPE strings. Blanks after
/// the colon are dropped, CR and LF are removed, a TAB that starts a
/// continuation line becomes a space, and trailing whitespace is trimmed.
/// The blanks of a continuation line stay, so `Message-ID:` followed by a
/// folded ` <id>` gives ` <id>`.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let blanks = value.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let value = &value[blanks..];
    let mut unfolded = Vec::with_capacity(value.len());
    for (index, &b) in value.iter().enumerate() {
        match b {
            b'\r' | b'\n' => {}
            b'\t' if index > 0 && value[index - 1] == b'\n' => unfolded.push(b' '),
            _ => unfolded.push(b),
        }
    }
    trim_end(&unfolded).to_vec()
}

fn trim_end(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., last] = bytes {
        if !is_lwsp(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

pub(crate) fn is_lwsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 2045 tspecials plus whitespace and controls end a token.
fn is_token_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// A cursor over a structured header value that skips whitespace and
/// comments the way RFC 5322 CFWS allows.
pub(crate) struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// The text of the most recent comment skipped, for addresses whose
    /// display name is given only as a comment.
    pub last_comment: Option<Vec<u8>>,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0, last_comment: None }
    }

    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Skips whitespace and nested comments. An unterminated comment runs
    /// to the end of the value.
    pub fn skip_cfws(&mut self) {
        while let Some(b) = self.peek() {
            if is_lwsp(b) {
                self.pos += 1;
            } else if b == b'(' {
                let comment = self.comment();
                self.last_comment = Some(comment);
            } else {
                break;
            }
        }
    }

    fn comment(&mut self) -> Vec<u8> {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    if depth > 0 {
                        text.push(b);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    text.push(b);
                }
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        text.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => text.push(b),
            }
        }
        text
    }

    /// Reads a MIME token (RFC 2045), empty if none is here.
    pub fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_token_byte) {
            self.pos += 1;
        }
        &self.data[start..self.pos]
    }

    /// Reads a quoted string at the cursor and returns it without quotes and
    /// escapes, or `None` when it is not terminated (the cursor is then at
    /// the end of the value).
    pub fn quoted_string(&mut self) -> Option<Vec<u8>> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    if let Some(next) = self.peek() {
                        self.pos += 1;
                        out.push(next);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        None
    }
}

/// A parsed Content-Type or Content-Disposition value.
pub(crate) struct ContentValue {
    /// The type, or for Content-Disposition the disposition.
    pub value: Vec<u8>,
    /// The subtype, for Content-Type only. `None` when the slash is missing.
    pub subtype: Option<Vec<u8>>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Parses `type/subtype; key=value; ...`. With `with_subtype` false, parses
/// a disposition (`inline; filename=x`). Returns `None` when the value is
/// invalid: no leading token, no subtype, or something other than `;`
/// after it. A malformed parameter ends the list but keeps the parameters
/// before it, as Dovecot does.
pub(crate) fn parse_content(value: &[u8], with_subtype: bool) -> Option<ContentValue> {
    let mut cursor = Cursor::new(value);
    cursor.skip_cfws();
    let main = cursor.token().to_vec();
    if main.is_empty() {
        return None;
    }
    cursor.skip_cfws();
    let mut subtype = None;
    if with_subtype {
        if cursor.peek() != Some(b'/') {
            return None;
        }
        cursor.pos += 1;
        cursor.skip_cfws();
        let sub = cursor.token();
        if sub.is_empty() {
            return None;
        }
        subtype = Some(sub.to_vec());
        cursor.skip_cfws();
    }
    if !(cursor.at_end() || cursor.peek() == Some(b';')) {
        return None;
    }
    let params = merge_rfc2231(parse_params(&mut cursor));
    Some(ContentValue { value: main, subtype, params })
}

/// Reads `; key=value` pairs until the value ends or a pair is malformed.
fn parse_params(cursor: &mut Cursor<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut params = Vec::new();
    loop {
        cursor.skip_cfws();
        if cursor.peek() != Some(b';') {
            break;
        }
        while cursor.peek() == Some(b';') {
            cursor.pos += 1;
            cursor.skip_cfws();
        }
        let key = cursor.token().to_vec();
        if key.is_empty() {
            break;
        }
        cursor.skip_cfws();
        if cursor.peek() != Some(b'=') {
            break;
        }
        cursor.pos += 1;
        cursor.skip_cfws();
        let value = if cursor.peek() == Some(b'"') {
            match cursor.quoted_string() {
                Some(value) => value,
                // An unterminated quoted string makes the parameter invalid.
                None => break,
            }
        } else {
            // An unquoted value is a token, so `a(b).pdf` gives `a`.
            let token = cursor.token();
            if token.is_empty() {
                break;
            }
            token.to_vec()
        };
        params.push((key, value));
    }
    params
}

/// Joins RFC 2231 continuations (`name*0`, `name*1*`, ...) into one
/// parameter. When any section is extended (`*` after the number), the
/// result is named `name*` and keeps the `charset'lang'` prefix and
/// percent-encoding, because BODYSTRUCTURE passes parameters through
/// undecoded.
fn merge_rfc2231(params: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    struct Section {
        base: Vec<u8>,
        number: u32,
        extended: bool,
        value: Vec<u8>,
    }
    let mut plain = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for (key, value) in params {
        match split_section(&key) {
            Some((base, number, extended)) => {
                sections.push(Section { base: base.to_vec(), number, extended, value })
            }
            None => plain.push((key, value)),
        }
    }
    if sections.is_empty() {
        return plain;
    }
    // Names compare without case, but the first spelling is kept, as
    // Dovecot keeps it.
    sections.sort_by(|a, b| {
        a.base.to_ascii_lowercase().cmp(&b.base.to_ascii_lowercase()).then(a.number.cmp(&b.number))
    });
    let mut index = 0;
    while index < sections.len() {
        let base = sections[index].base.clone();
        let mut joined = Vec::new();
        let mut extended = false;
        let mut expected = 0;
        while index < sections.len() && sections[index].base.eq_ignore_ascii_case(&base) {
            let section = &sections[index];
            if section.number == expected {
                extended |= section.extended;
                joined.extend_from_slice(&section.value);
                expected += 1;
            }
            index += 1;
        }
        let mut key = base;
        if extended {
            key.push(b'*');
        }
        plain.push((key, joined));
    }
    plain
}

/// Splits `name*3*` into (`name`, 3, true) and `name*3` into (`name`, 3,
/// false). A bare `name*` is section 0, extended.
fn split_section(key: &[u8]) -> Option<(&[u8], u32, bool)> {
    let star = key.iter().position(|&b| b == b'*')?;
    let (base, rest) = (&key[..star], &key[star + 1..]);
    if rest.is_empty() {
        return Some((base, 0, true));
    }
    let (digits, extended) = match rest.strip_suffix(b"*") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 6 {
        return None;
    }
    let number = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((base, number, extended))
}
