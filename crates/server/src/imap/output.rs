//! The bytes a session sends, built in a buffer that exists only while a
//! command runs.
//!
//! Handlers append responses to an [`Output`]; the session writes it to the
//! socket after the command, or earlier when a handler calls
//! [`Output::flush_if_large`] while streaming a large FETCH. Nothing here is
//! kept while the session waits.

use std::fmt::Write as _;

use crate::transport::Transport;

/// Size at which a handler that produces much output writes it out before
/// going on, so a FETCH of many large messages does not build one huge buffer.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// The response buffer of one command.
#[derive(Default)]
pub struct Output {
    pub buf: Vec<u8>,
}

/// The result kinds of a tagged or untagged status response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

impl Output {
    pub fn new() -> Self {
        Output { buf: Vec::new() }
    }

    /// Appends one complete line; `line` must not contain CR or LF.
    pub fn line(&mut self, line: &str) {
        debug_assert!(!line.contains(['\r', '\n']), "response line contains a line break: {line:?}");
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Appends an untagged response: `* TEXT`.
    pub fn untagged(&mut self, text: &str) {
        self.buf.extend_from_slice(b"* ");
        self.line(text);
    }

    /// Appends a status response with an optional response code, tagged or
    /// untagged (`tag` of `None` gives `*`).
    pub fn status(&mut self, tag: Option<&str>, status: Status, code: Option<&str>, text: &str) {
        let mut line = String::with_capacity(32 + text.len());
        line.push_str(tag.unwrap_or("*"));
        line.push(' ');
        line.push_str(status.as_str());
        if let Some(code) = code {
            let _ = write!(line, " [{code}]");
        }
        line.push(' ');
        line.push_str(text);
        self.line(&line);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes everything buffered so far and clears the buffer, keeping its
    /// capacity for the rest of the command.
    pub async fn flush(&mut self, writer: &mut Transport) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            writer.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes the buffer out once it passes [`FLUSH_BYTES`].
    pub async fn flush_if_large(&mut self, writer: &mut Transport) -> std::io::Result<()> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush(writer).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_with_code() {
        let mut out = Output::new();
        out.status(Some("a1"), Status::No, Some("NONEXISTENT"), "No such mailbox");
        assert_eq!(out.buf, b"a1 NO [NONEXISTENT] No such mailbox\r\n");
    }
}
