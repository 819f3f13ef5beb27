//! The DATA body decoder: finds the end-of-data line, removes dot-stuffing
//! (RFC 5321 section 4.5.2), turns bare LF into CRLF and caps the message
//! size while the bytes arrive.
//!
//! It works on whatever chunks the connection reads, so a line may be split
//! anywhere. It does not depend on sockets, recipients or the store.

/// The decoder's position within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineState {
    /// At the first byte of a line.
    Start,
    /// After a `.` that began a line.
    Dot,
    /// After `.` and CR at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
    /// After a CR inside a line, which is held back until the next byte
    /// shows whether it ends the line.
    Cr,
}

/// Decodes one DATA transfer into the message bytes.
#[derive(Debug)]
pub struct DataDecoder {
    state: LineState,
    message: Vec<u8>,
    /// The largest message kept, in bytes after decoding.
    message_bytes_max: usize,
    /// Set once the message has grown past `message_bytes_max`; the rest of
    /// the transfer is then read and dropped.
    too_big: bool,
    /// Decoded bytes so far, also those dropped, for the log.
    size: u64,
}

/// A finished DATA transfer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The message with CRLF line endings.
    Message(Vec<u8>),
    /// The message was larger than the limit and was dropped. `size` is
    /// its whole decoded size in bytes.
    TooBig { size: u64 },
}

impl DataDecoder {
    pub fn new(message_bytes_max: usize) -> Self {
        DataDecoder { state: LineState::Start, message: Vec::new(), message_bytes_max, too_big: false, size: 0 }
    }

    /// Decodes bytes of the transfer. Returns how many bytes of `input` were
    /// used and whether the end-of-data line was among them. Bytes after that
    /// line are the next commands, so they are left unused.
    pub fn decode(&mut self, input: &[u8]) -> (usize, bool) {
        let mut index = 0;
        while index < input.len() {
            let byte = input[index];
            match self.state {
                LineState::Start if byte == b'.' => {
                    index += 1;
                    self.state = LineState::Dot;
                }
                LineState::Start => self.state = LineState::Middle,
                LineState::Dot => match byte {
                    b'\r' => {
                        index += 1;
                        self.state = LineState::DotCr;
                    }
                    // A client that writes bare LF ends the data with ".\n".
                    b'\n' => return (index + 1, true),
                    // The leading dot was stuffing: drop it and keep the rest.
                    _ => self.state = LineState::Middle,
                },
                LineState::DotCr => match byte {
                    b'\n' => return (index + 1, true),
                    // The line was ".\r" and more, so the CR is message data.
                    _ => self.state = LineState::Cr,
                },
                LineState::Middle => {
                    let rest = &input[index..];
                    match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                        None => {
                            self.push(rest);
                            index = input.len();
                        }
                        Some(end) => {
                            self.push(&rest[..end]);
                            index += end + 1;
                            if rest[end] == b'\n' {
                                self.push(b"\r\n");
                                self.state = LineState::Start;
                            } else {
                                self.state = LineState::Cr;
                            }
                        }
                    }
                }
                LineState::Cr => match byte {
                    b'\n' => {
                        index += 1;
                        self.push(b"\r\n");
                        self.state = LineState::Start;
                    }
                    // A bare CR is kept as it is; only bare LF is normalised.
                    b'\r' => {
                        index += 1;
                        self.push(b"\r");
                    }
                    _ => {
                        self.push(b"\r");
                        self.state = LineState::Middle;
                    }
                },
            }
        }
        (index, false)
    }

    /// Returns the message once `decode` has reported the end of data.
    pub fn finish(self) -> Decoded {
        if self.too_big { Decoded::TooBig { size: self.size } } else { Decoded::Message(self.message) }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.too_big {
            return;
        }
        let needed = self.message.len() + bytes.len();
        if needed > self.message_bytes_max {
            self.too_big = true;
            self.message = Vec::new();
            return;
        }

        // Grow by doubling as Vec does, but never past the limit, so a
        // message at the limit takes at most the limit in memory.
        if needed > self.message.capacity() {
            let target = needed.max(self.message.capacity() * 2).min(self.message_bytes_max);
            self.message.reserve_exact(target - self.message.len());
        }
        self.message.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split into two chunks at `split`. Returns the result
    /// and the bytes left after the end-of-data line, or `None` if the end
    /// was not found.
    fn decode_split(input: &[u8], split: usize, limit: usize) -> Option<(Decoded, Vec<u8>)> {
        let mut decoder = DataDecoder::new(limit);
        let mut pending = input[..split].to_vec();
        let mut next = Some(&input[split..]);
        loop {
            let (used, ended) = decoder.decode(&pending);
            pending.drain(..used);
            if ended {
                let mut rest = pending;
                rest.extend_from_slice(next.unwrap_or_default());
                return Some((decoder.finish(), rest));
            }
            assert!(pending.is_empty(), "decoder left bytes unused before the end");
            pending.extend_from_slice(next.take()?);
        }
    }

    #[test]
    fn decoding_at_every_split() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b".\r\n", b"", b""),
            (b".\r\nQUIT\r\n", b"", b"QUIT\r\n"),
            (b"Subject: x\r\n\r\nbody\r\n.\r\n", b"Subject: x\r\n\r\nbody\r\n", b""),
            (b"Subject: x\n\nbody\n.\n", b"Subject: x\r\n\r\nbody\r\n", b""),
            (b"..\r\n..dots\r\n.x\r\n.\r\nRSET\r\n", b".\r\n.dots\r\nx\r\n", b"RSET\r\n"),
            (b"a\rb\r\n.\r\n", b"a\rb\r\n", b""),
            (b"a\r\r\nb\r\n.\r\n", b"a\r\r\nb\r\n", b""),
            (b".\rx\r\n.\r\n", b"\rx\r\n", b""),
            (b"line. \r\n .\r\n.\r\n", b"line. \r\n .\r\n", b""),
            (b"mixed\r\nends\nhere\r\n.\r\n", b"mixed\r\nends\r\nhere\r\n", b""),
        ];
        for &(input, message, rest) in cases {
            for split in 0..=input.len() {
                let (decoded, left) = decode_split(input, split, 1 << 20).expect("end of data not found");
                assert_eq!(decoded, Decoded::Message(message.to_vec()), "input {input:?} split at {split}");
                assert_eq!(left, rest, "input {input:?} split at {split}");
            }
        }
    }

    #[test]
    fn end_needs_dot_alone_at_line_start() {
        for input in [&b"text.\r\n"[..], b"x\r\n. \r\n", b"x\r\n.."] {
            assert!(decode_split(input, 0, 1 << 20).is_none(), "input {input:?}");
        }
    }

    #[test]
    fn message_at_limit_is_kept() {
        // "12345678\r\n" is ten bytes after decoding.
        for input in [&b"12345678\r\n.\r\n"[..], b"12345678\n.\n"] {
            let (decoded, _) = decode_split(input, 3, 10).unwrap();
            assert_eq!(decoded, Decoded::Message(b"12345678\r\n".to_vec()));
        }
    }

    #[test]
    fn message_past_limit_is_dropped_to_the_end() {
        // A bare LF counts as CRLF: "123456789\n" decodes to eleven bytes,
        // and "NOOP\r\n" is not part of the message.
        for input in [&b"123456789\r\n.\r\nNOOP\r\n"[..], b"123456789\n.\nNOOP\r\n"] {
            for split in 0..=input.len() {
                let (decoded, rest) = decode_split(input, split, 10).unwrap();
                assert_eq!(decoded, Decoded::TooBig { size: 11 }, "input {input:?} split at {split}");
                assert_eq!(rest, b"NOOP\r\n");
            }
        }
    }

    #[test]
    fn buffer_never_exceeds_limit() {
        let mut decoder = DataDecoder::new(1000);
        for _ in 0..100 {
            decoder.decode(b"123456789");
        }
        assert!(decoder.message.capacity() <= 1000, "capacity {}", decoder.message.capacity());
        assert_eq!(decoder.message.len(), 900);
    }
}
