//! A small blocking IMAP client for tests, over a plain `TcpStream`.
//! It reads literals by their announced length and fails on a read
//! timeout, so a hung server fails a test instead of hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bounds on what the client accepts from a server.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Read and write timeout of the socket.
    pub timeout: Duration,
    /// Maximum size of one response in bytes, literals and the CRLF after
    /// each literal announcement included, the final CRLF not.
    pub response_bytes_max: usize,
    /// Maximum number of untagged responses before a tagged one.
    pub untagged_count_max: usize,
}

impl ClientLimits {
    /// Limits suited to the test corpus: 10 s timeout, 64 MiB responses.
    pub fn for_tests() -> Self {
        ClientLimits {
            timeout: Duration::from_secs(10),
            response_bytes_max: 64 << 20,
            untagged_count_max: 100_000,
        }
    }
}

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Each untagged response, literals inline, without the final CRLF.
    pub untagged: Vec<Vec<u8>>,
    /// The tagged completion line, without the final CRLF.
    pub tagged: String,
}

impl Reply {
    /// Returns true when the tagged line reports OK.
    pub fn is_ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    limits: ClientLimits,
    tag_counter: u32,
}

impl Client {
    /// Connects and reads the greeting.
    pub fn connect(address: SocketAddr, limits: ClientLimits) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&address, limits.timeout)?;
        stream.set_read_timeout(Some(limits.timeout))?;
        stream.set_write_timeout(Some(limits.timeout))?;
        let writer = stream.try_clone()?;
        let mut client = Client { reader: BufReader::new(stream), writer, limits, tag_counter: 0 };
        let greeting = client.read_response()?;
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            return Err(invalid(format!("unexpected greeting: {}", String::from_utf8_lossy(&greeting))));
        }
        Ok(client)
    }

    /// Logs in with LOGIN. Fails unless the server replies OK.
    pub fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        let reply = self.command(&format!("LOGIN {} {}", quote(user), quote(password)))?;
        if !reply.is_ok() {
            return Err(invalid(format!("LOGIN failed: {}", reply.tagged)));
        }
        Ok(())
    }

    /// Sends `command` with a fresh tag and reads up to its tagged reply.
    pub fn command(&mut self, command: &str) -> io::Result<Reply> {
        let tag = self.next_tag();
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        self.read_until_tagged(&tag)
    }

    /// Appends `message` to `mailbox` with a synchronising literal.
    pub fn append(&mut self, mailbox: &str, message: &[u8]) -> io::Result<Reply> {
        let tag = self.next_tag();
        let line = format!("{tag} APPEND {} {{{}}}\r\n", quote(mailbox), message.len());
        self.writer.write_all(line.as_bytes())?;
        let continuation = self.read_response()?;
        if !continuation.starts_with(b"+") {
            let text = String::from_utf8_lossy(&continuation).into_owned();
            return Ok(Reply { untagged: Vec::new(), tagged: text });
        }
        self.writer.write_all(message)?;
        self.writer.write_all(b"\r\n")?;
        self.read_until_tagged(&tag)
    }

    fn next_tag(&mut self) -> String {
        self.tag_counter += 1;
        format!("t{}", self.tag_counter)
    }

    fn read_until_tagged(&mut self, tag: &str) -> io::Result<Reply> {
        let prefix = format!("{tag} ");
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response()?;
            if response.starts_with(prefix.as_bytes()) {
                let tagged = String::from_utf8_lossy(&response).into_owned();
                return Ok(Reply { untagged, tagged });
            }
            if untagged.len() >= self.limits.untagged_count_max {
                return Err(invalid(format!(
                    "more than {} untagged responses before the tagged one",
                    self.limits.untagged_count_max
                )));
            }
            untagged.push(response);
        }
    }

    /// Reads one response: a line, and when it ends in `{n}`, the n
    /// literal bytes and the rest of the response after them. The size
    /// checked against the limit is that of the returned bytes.
    fn read_response(&mut self) -> io::Result<Vec<u8>> {
        let max = self.limits.response_bytes_max;
        let mut response = Vec::new();
        loop {
            let room = max.saturating_sub(response.len());
            let mut line = Vec::new();
            let read = (&mut self.reader).take(room as u64 + 2).read_until(b'\n', &mut line)?;
            if read == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
            }
            if !line.ends_with(b"\r\n") || line.len() - 2 > room {
                return Err(invalid(format!("response longer than {max} bytes or not ended by CRLF")));
            }
            line.truncate(line.len() - 2);
            let literal_len = literal_length(&line);
            response.extend_from_slice(&line);
            let Some(len) = literal_len else { return Ok(response) };
            if response.len() + 2 + len > max {
                return Err(invalid(format!("literal of {len} bytes exceeds the response limit of {max} bytes")));
            }
            response.extend_from_slice(b"\r\n");
            let start = response.len();
            response.resize(start + len, 0);
            self.reader.read_exact(&mut response[start..])?;
        }
    }
}

/// Returns n when `line` ends with a literal announcement `{n}`.
fn literal_length(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_length_parses_announcement() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_length(b"* OK done"), None);
        assert_eq!(literal_length(b"* x {}"), None);
    }
}
