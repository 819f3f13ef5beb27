//! A cursor over the bytes of one complete, framed command, which finds
//! where each token starts and ends without interpreting it.
//!
//! The extended parsers use it to split a command into pieces and hand each
//! piece to imap-codec. It therefore only needs token boundaries: a quoted
//! string ends at its closing unescaped `"`, a literal `{n}`/`{n+}` ends
//! after its `n` bytes, and an atom ends at the first byte that cannot be in
//! one. Whether a piece is valid is imap-codec's decision.

use std::ops::Range;

use imap_types::utils::indicators::{is_astring_char, is_atom_char, is_list_char};

/// A token that did not end where the grammar needs it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError;

pub(crate) type ScanResult<T> = Result<T, ScanError>;

#[derive(Debug, Clone)]
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    /// Consumes `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.position += 1;
        }
        found
    }

    pub(crate) fn expect(&mut self, byte: u8) -> ScanResult<()> {
        match self.eat(byte) {
            true => Ok(()),
            false => Err(ScanError),
        }
    }

    /// Returns whether only the final CRLF is left.
    pub(crate) fn at_line_end(&self) -> bool {
        &self.bytes[self.position..] == b"\r\n"
    }

    /// Consumes a command tag: astring characters other than `+`.
    pub(crate) fn tag(&mut self) -> ScanResult<&'a [u8]> {
        let range = self.run(|byte| is_astring_char(byte) && byte != b'+')?;
        Ok(&self.bytes[range])
    }

    /// Consumes an atom and returns it; an empty atom is an error.
    pub(crate) fn atom(&mut self) -> ScanResult<&'a [u8]> {
        let range = self.run(is_atom_char)?;
        Ok(&self.bytes[range])
    }

    /// Consumes an atom if the next bytes form one that equals `word`,
    /// ignoring case.
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        let mut lookahead = self.clone();
        match lookahead.atom() {
            Ok(atom) if atom.eq_ignore_ascii_case(word.as_bytes()) => {
                *self = lookahead;
                true
            }
            _ => false,
        }
    }

    /// Consumes a flag such as `\Sent`, returning it with its backslash.
    pub(crate) fn flag(&mut self) -> ScanResult<&'a [u8]> {
        let start = self.position;
        self.expect(b'\\')?;
        self.atom()?;
        Ok(&self.bytes[start..self.position])
    }

    /// Consumes an astring (atom, quoted string or literal) and returns its
    /// span, including quotes and literal announcement.
    pub(crate) fn astring(&mut self) -> ScanResult<Range<usize>> {
        self.string_or(is_astring_char)
    }

    /// Consumes a list-mailbox (RFC 3501): a string, or a run of list-chars,
    /// which add the wildcards `%` and `*` to the astring characters.
    pub(crate) fn list_mailbox(&mut self) -> ScanResult<Range<usize>> {
        self.string_or(is_list_char)
    }

    /// Consumes a search key argument of any kind: a string or a run of
    /// bytes up to the next space or parenthesis.
    pub(crate) fn argument(&mut self) -> ScanResult<Range<usize>> {
        self.string_or(|byte| !matches!(byte, b' ' | b'(' | b')' | b'\r' | b'\n'))
    }

    fn string_or(&mut self, is_plain: fn(u8) -> bool) -> ScanResult<Range<usize>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => self.run(is_plain),
        }
    }

    fn run(&mut self, accepts: impl Fn(u8) -> bool) -> ScanResult<Range<usize>> {
        let start = self.position;
        let length = self.bytes[start..]
            .iter()
            .take_while(|&&byte| accepts(byte))
            .count();
        if length == 0 {
            return Err(ScanError);
        }
        self.position += length;
        Ok(start..self.position)
    }

    fn quoted(&mut self) -> ScanResult<Range<usize>> {
        let start = self.position;
        self.position += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(start..self.position);
                }
                Some(b'\\') => self.position += 2,
                Some(b'\r' | b'\n') | None => return Err(ScanError),
                Some(_) => self.position += 1,
            }
        }
    }

    fn literal(&mut self) -> ScanResult<Range<usize>> {
        let start = self.position;
        self.position += 1;
        let digits = self.run(|byte| byte.is_ascii_digit())?;
        let length: usize = std::str::from_utf8(&self.bytes[digits])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or(ScanError)?;
        self.eat(b'+');
        self.expect(b'}')?;
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        let end = self.position.checked_add(length).ok_or(ScanError)?;
        if end > self.bytes.len() {
            return Err(ScanError);
        }
        self.position = end;
        Ok(start..end)
    }
}

/// Returns whether a byte outside literals in `command` is not 7-bit
/// ASCII. The command must be complete and framed, so every literal
/// announcement is followed by its bytes.
pub(crate) fn has_eight_bit_outside_literals(command: &[u8]) -> bool {
    let mut scanner = Scanner::new(command);
    while let Some(byte) = scanner.peek() {
        if byte >= 0x80 {
            return true;
        }
        if byte == b'{' && scanner.clone().literal().is_ok() {
            // `{n}` followed by CRLF can only end a line, because a quoted
            // string cannot hold CR or LF. That is where the reader finds
            // announcements, so the bytes skipped here are its literals.
            let _ = scanner.literal();
            continue;
        }
        scanner.position += 1;
    }
    false
}
