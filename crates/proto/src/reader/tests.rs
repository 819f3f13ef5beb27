use imap_types::{auth::AuthenticateData, core::Tag, response::Code};

use super::*;

/// Small limits so that cases at and past each limit stay readable.
fn limits() -> ReaderLimits {
    ReaderLimits {
        line_bytes_max: 64,
        literal_bytes_max: 16,
        append_literal_bytes_max: 100,
        command_bytes_max: 128,
    }
}

/// Feeds `chunks` one after the other and collects every event, draining
/// the reader after each chunk as the server does.
fn read_chunks(chunks: &[&[u8]], mode: ReadMode, limits: &ReaderLimits) -> Vec<ReadEvent> {
    let mut reader = CommandReader::new();
    let mut events = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        while let Some(event) = reader.next(mode, limits) {
            events.push(event);
        }
    }
    events
}

/// Checks that `input` gives `expected` when fed whole, split in two at every
/// offset, and one byte at a time.
fn check(input: &[u8], mode: ReadMode, limits: &ReaderLimits, expected: &[ReadEvent]) {
    let whole = read_chunks(&[input], mode, limits);
    assert_eq!(
        whole,
        expected,
        "fed whole: {:?}",
        String::from_utf8_lossy(input)
    );

    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let events = read_chunks(&[first, second], mode, limits);
        assert_eq!(
            events,
            expected,
            "split at {split}: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let events = read_chunks(&bytes, mode, limits);
    assert_eq!(
        events,
        expected,
        "fed bytewise: {:?}",
        String::from_utf8_lossy(input)
    );
}

fn command(bytes: &[u8]) -> ReadEvent {
    let (remainder, command) = CommandCodec::new()
        .decode(bytes)
        .expect("test command is valid");
    assert!(remainder.is_empty());
    ReadEvent::Command(command.into_static())
}

fn continuation(length: u32) -> ReadEvent {
    ReadEvent::ContinuationNeeded { length }
}

fn rejected(tag: Option<&str>, code: Option<Code<'static>>, text: &str, close: bool) -> ReadEvent {
    ReadEvent::Rejected {
        tag: tag.map(|tag| Tag::try_from(tag.to_owned()).unwrap()),
        kind: StatusKind::Bad,
        code,
        text: text.to_owned(),
        close,
    }
}

/// Returns `tag SELECT <name>\r\n` padded with the mailbox name to exactly
/// `length` bytes.
fn select_line(tag: &str, length: usize) -> Vec<u8> {
    let prefix = format!("{tag} SELECT ");
    let name_length = length - prefix.len() - 2;
    let mut line = prefix.into_bytes();
    line.extend(std::iter::repeat_n(b'm', name_length));
    line.extend_from_slice(b"\r\n");
    line
}

#[test]
fn reader_new_allocates_nothing() {
    let reader = CommandReader::new();
    assert_eq!(reader.input.capacity(), 0);
    assert_eq!(reader.command.capacity(), 0);
    assert!(reader.is_idle());
}

#[test]
fn reader_single_and_pipelined_commands() {
    let limits = limits();
    check(
        b"a1 NOOP\r\n",
        ReadMode::Command,
        &limits,
        &[command(b"a1 NOOP\r\n")],
    );
    check(
        b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOGOUT\r\n",
        ReadMode::Command,
        &limits,
        &[
            command(b"a1 NOOP\r\n"),
            command(b"a2 CAPABILITY\r\n"),
            command(b"a3 LOGOUT\r\n"),
        ],
    );
}

#[test]
fn reader_synchronising_literals() {
    let input = b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[continuation(5), continuation(6), command(input)],
    );
}

#[test]
fn reader_non_synchronising_literals() {
    let input = b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\na2 NOOP\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[
            command(b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"),
            command(b"a2 NOOP\r\n"),
        ],
    );
}

#[test]
fn reader_literal_containing_command_bytes() {
    // The literal's bytes look like a command and must stay a password.
    let input = b"a1 LOGIN alice {10}\r\na LOGOUT\r\n\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[continuation(10), command(input)],
    );
}

#[test]
fn reader_synchronising_literal_at_limit() {
    let input = b"a1 LOGIN alice {16}\r\n0123456789abcdef\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[continuation(16), command(input)],
    );
}

#[test]
fn reader_synchronising_literal_past_limit() {
    // The client sends no literal after the BAD, so the next line is a
    // command again.
    let input = b"a1 LOGIN alice {17}\r\na2 NOOP\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Literal is larger than 16 bytes",
                false,
            ),
            command(b"a2 NOOP\r\n"),
        ],
    );
}

#[test]
fn reader_non_synchronising_literal_at_limit() {
    let input = b"a1 LOGIN alice {16+}\r\n0123456789abcdef\r\n";
    check(input, ReadMode::Command, &limits(), &[command(input)]);
}

#[test]
fn reader_non_synchronising_literal_past_limit() {
    // 17 bytes of literal whose content is a LOGOUT command: the bytes are
    // skipped, the rest of the line is dropped, and only then is the BAD
    // returned.
    let input = b"a1 LOGIN alice {17+}\r\na LOGOUT\r\nxxxxxxx {3+}\r\nabc\r\na2 NOOP\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Literal is larger than 16 bytes",
                false,
            ),
            command(b"a2 NOOP\r\n"),
        ],
    );
}

#[test]
fn reader_non_synchronising_literal_skip_limit() {
    // Skipping is bounded by the larger literal limit (100 here): at the
    // bound the bytes are skipped, one past it the connection closes.
    let mut input = b"a1 LOGIN alice {100+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100));
    input.extend_from_slice(b"\r\na2 NOOP\r\n");
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Literal is larger than 16 bytes",
                false,
            ),
            command(b"a2 NOOP\r\n"),
        ],
    );

    let input = b"a1 LOGIN alice {101+}\r\na2 NOOP\r\n";
    check(
        input,
        ReadMode::Command,
        &limits(),
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Non-synchronising literal is larger than 100 bytes",
            true,
        )],
    );
}

#[test]
fn reader_literal_length_overflowing_u32() {
    check(
        b"a1 LOGIN alice {99999999999}\r\na2 NOOP\r\n",
        ReadMode::Command,
        &limits(),
        &[
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Literal is larger than 16 bytes",
                false,
            ),
            command(b"a2 NOOP\r\n"),
        ],
    );
    check(
        b"a1 LOGIN alice {99999999999+}\r\nxxxx",
        ReadMode::Command,
        &limits(),
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Non-synchronising literal is larger than 100 bytes",
            true,
        )],
    );
}

#[test]
fn reader_line_at_limit() {
    let line = select_line("a1", 64);
    assert_eq!(line.len(), 64);
    check(&line, ReadMode::Command, &limits(), &[command(&line)]);
}

#[test]
fn reader_line_past_limit_closes() {
    let mut input = select_line("a1", 65);
    input.extend_from_slice(b"a2 NOOP\r\n");
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Line is longer than 64 bytes",
            true,
        )],
    );
}

#[test]
fn reader_line_past_limit_without_line_feed() {
    // The rejection comes once 64 bytes are buffered, before any line end.
    let events = read_chunks(&[&[b'x'; 64]], ReadMode::Command, &limits());
    assert_eq!(
        events,
        [rejected(
            None,
            Some(Code::TooBig),
            "Line is longer than 64 bytes",
            true
        )]
    );

    let events = read_chunks(&[&[b'x'; 63]], ReadMode::Command, &limits());
    assert!(events.is_empty());
}

#[test]
fn reader_command_at_limit() {
    // Two 64-byte pieces: a line with a literal announcement and the literal
    // plus final line, 128 bytes in all.
    let mut input = b"a1 LOGIN ".to_vec();
    input.extend(std::iter::repeat_n(b'u', 49));
    input.extend_from_slice(b" {2}\r\n");
    assert_eq!(input.len(), 64);
    input.extend_from_slice(b"pw\r\n");
    let mut limits = limits();
    limits.command_bytes_max = input.len();
    check(
        &input,
        ReadMode::Command,
        &limits,
        &[continuation(2), command(&input)],
    );

    limits.command_bytes_max = input.len() - 1;
    check(
        &input,
        ReadMode::Command,
        &limits,
        &[
            continuation(2),
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Command is larger than 67 bytes",
                false,
            ),
        ],
    );
}

#[test]
fn reader_command_literal_past_command_limit() {
    // Each literal is within its limit, but together they are not.
    let mut limits = limits();
    limits.command_bytes_max = 30;
    check(
        b"a1 LOGIN {16}\r\n",
        ReadMode::Command,
        &limits,
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Command is larger than 30 bytes",
            false,
        )],
    );
}

#[test]
fn reader_append_message_at_limit() {
    let mut input = b"a1 APPEND INBOX (\\Seen) {100}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 100));
    input.extend_from_slice(b"\r\n");
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[continuation(100), command(&input)],
    );
}

/// Returns the rejection of a synchronising APPEND message literal over
/// the APPEND limit, which is NO, not BAD.
fn append_too_big(tag: &str, text: &str) -> ReadEvent {
    let ReadEvent::Rejected { tag, code, text, close, .. } = rejected(Some(tag), Some(Code::TooBig), text, false)
    else {
        unreachable!("rejected builds a rejection");
    };
    ReadEvent::Rejected { tag, kind: StatusKind::No, code, text, close }
}

#[test]
fn reader_append_message_past_limit() {
    check(
        b"a1 APPEND INBOX {101}\r\na2 NOOP\r\n",
        ReadMode::Command,
        &limits(),
        &[
            append_too_big("a1", "Literal is larger than 100 bytes"),
            command(b"a2 NOOP\r\n"),
        ],
    );

    // The message literal after a mailbox literal is APPEND's message too.
    check(
        b"a1 APPEND {5}\r\nINBOX (\\Seen) {101}\r\n",
        ReadMode::Command,
        &limits(),
        &[
            continuation(5),
            append_too_big("a1", "Literal is larger than 100 bytes"),
        ],
    );
}

#[test]
fn reader_append_message_length_overflowing_u32() {
    check(
        b"a1 APPEND INBOX {4294967296}\r\n",
        ReadMode::Command,
        &limits(),
        &[append_too_big("a1", "Literal is larger than 100 bytes")],
    );
}

#[test]
fn reader_non_sync_append_message_past_limit_stays_bad() {
    // A non-synchronising message literal is already sent, so the command
    // is a protocol error (RFC 7888 section 4), answered with BAD. Here the
    // literal fits the skip limit, so its bytes are skipped first.
    let mut input = b"a1 APPEND INBOX {101+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 101));
    input.extend_from_slice(b"\r\na2 NOOP\r\n");
    let limits = ReaderLimits {
        literal_bytes_max: 200,
        ..limits()
    };
    check(
        &input,
        ReadMode::Command,
        &limits,
        &[
            rejected(
                Some("a1"),
                Some(Code::TooBig),
                "Literal is larger than 100 bytes",
                false,
            ),
            command(b"a2 NOOP\r\n"),
        ],
    );
}

#[test]
fn reader_append_mailbox_literal_uses_literal_limit() {
    // The mailbox literal is limited like any other literal, the message
    // literal after it by the APPEND limit.
    let mut input = b"a1 APPEND {5}\r\nINBOX {100}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 100));
    input.extend_from_slice(b"\r\n");
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[continuation(5), continuation(100), command(&input)],
    );

    check(
        b"a1 APPEND {17}\r\n",
        ReadMode::Command,
        &limits(),
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Literal is larger than 16 bytes",
            false,
        )],
    );
}

#[test]
fn reader_invalid_commands() {
    let limits = limits();
    let cases: &[(&[u8], Option<&str>, &str)] = &[
        (b"a1 FROB\r\n", Some("a1"), "Unknown command"),
        (b"a1 FETCH\r\n", Some("a1"), "Invalid arguments to FETCH"),
        (
            b"a1 fetch 1 (BODY[\r\n",
            Some("a1"),
            "Invalid arguments to FETCH",
        ),
        (
            b"a1 UID FETCH x FLAGS\r\n",
            Some("a1"),
            "Invalid arguments to UID FETCH",
        ),
        (b"a1 UID FROB 1\r\n", Some("a1"), "Unknown command"),
        (b"a1 NOOP\n", Some("a1"), "Lines must end with CRLF"),
        (b"\r\n", None, "Missing or invalid command tag"),
        (b"a{b NOOP\r\n", None, "Missing or invalid command tag"),
    ];
    for (input, tag, text) in cases {
        let mut input = input.to_vec();
        input.extend_from_slice(b"a9 NOOP\r\n");
        check(
            &input,
            ReadMode::Command,
            &limits,
            &[rejected(*tag, None, text, false), command(b"a9 NOOP\r\n")],
        );
    }
}

#[test]
fn reader_idle_done() {
    let limits = limits();
    check(
        b"DONE\r\n",
        ReadMode::IdleDone,
        &limits,
        &[ReadEvent::IdleDone],
    );
    check(
        b"a1 NOOP\r\nDONE\r\n",
        ReadMode::IdleDone,
        &limits,
        &[
            rejected(None, None, "Expected DONE to end IDLE", false),
            ReadEvent::IdleDone,
        ],
    );
}

#[test]
fn reader_authenticate_data() {
    let limits = limits();
    check(
        b"dGVzdA==\r\n",
        ReadMode::AuthenticateData,
        &limits,
        &[ReadEvent::AuthenticateData(AuthenticateData::r#continue(
            b"test".to_vec(),
        ))],
    );
    check(
        b"*\r\n",
        ReadMode::AuthenticateData,
        &limits,
        &[ReadEvent::AuthenticateData(AuthenticateData::Cancel)],
    );
    check(
        b"!!\r\n",
        ReadMode::AuthenticateData,
        &limits,
        &[rejected(
            None,
            None,
            "Invalid base64 in authentication response",
            false,
        )],
    );
}

#[test]
fn reader_mode_switch_between_commands() {
    // IDLE and its DONE arrive in one read; the server switches modes after
    // the IDLE command.
    let limits = limits();
    let mut reader = CommandReader::new();
    reader.feed(b"a1 IDLE\r\nDONE\r\na2 NOOP\r\n");
    assert_eq!(
        reader.next(ReadMode::Command, &limits),
        Some(command(b"a1 IDLE\r\n"))
    );
    assert_eq!(
        reader.next(ReadMode::IdleDone, &limits),
        Some(ReadEvent::IdleDone)
    );
    assert_eq!(
        reader.next(ReadMode::Command, &limits),
        Some(command(b"a2 NOOP\r\n"))
    );
    assert_eq!(reader.next(ReadMode::Command, &limits), None);
}

#[test]
fn reader_closed_returns_nothing_more() {
    let limits = limits();
    let mut reader = CommandReader::new();
    reader.feed(&[b'x'; 64]);
    assert!(matches!(
        reader.next(ReadMode::Command, &limits),
        Some(ReadEvent::Rejected { close: true, .. })
    ));
    reader.feed(b"\r\na1 NOOP\r\n");
    assert_eq!(reader.next(ReadMode::Command, &limits), None);
}

#[test]
fn reader_idle_and_release_buffers() {
    let limits = limits();
    let mut reader = CommandReader::new();
    reader.feed(b"a1 LOGIN {5}\r\nal");
    assert_eq!(
        reader.next(ReadMode::Command, &limits),
        Some(continuation(5))
    );
    assert_eq!(reader.next(ReadMode::Command, &limits), None);
    assert!(!reader.is_idle());

    // Releasing buffers mid-command keeps the partial command.
    reader.release_buffers();
    reader.feed(b"ice pw\r\n");
    assert_eq!(
        reader.next(ReadMode::Command, &limits),
        Some(command(b"a1 LOGIN {5}\r\nalice pw\r\n"))
    );
    assert_eq!(reader.next(ReadMode::Command, &limits), None);
    assert!(reader.is_idle());

    reader.release_buffers();
    assert_eq!(reader.input.capacity(), 0);
    assert_eq!(reader.command.capacity(), 0);
}

#[test]
fn reader_deep_search_nesting_rejected() {
    // Nested parentheses up to the line limit must give a BAD, not a stack
    // overflow.
    let mut limits = limits();
    limits.line_bytes_max = 8192;
    limits.command_bytes_max = 8192;
    let depth = 4000;
    let mut input = b"a1 SEARCH ".to_vec();
    input.extend(std::iter::repeat_n(b'(', depth));
    input.extend_from_slice(b"ALL");
    input.extend(std::iter::repeat_n(b')', depth));
    input.extend_from_slice(b"\r\n");
    let events = read_chunks(&[&input], ReadMode::Command, &limits);
    assert_eq!(
        events,
        [rejected(
            Some("a1"),
            None,
            "Invalid arguments to SEARCH",
            false
        )]
    );
}

#[test]
fn reader_idle_session_footprint() {
    // A million idle sessions each hold one reader, so its inline size is
    // part of the per-session cost.
    assert!(
        std::mem::size_of::<CommandReader>() <= 96,
        "{}",
        std::mem::size_of::<CommandReader>()
    );
}

#[test]
fn reader_append_mailbox_literal_with_line_feed() {
    // A line feed inside an earlier literal must not confuse where the
    // message literal's line starts.
    let mut input = b"a1 APPEND {3}\r\na\nb {20}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 20));
    input.extend_from_slice(b"\r\n");
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[continuation(3), continuation(20), command(&input)],
    );
}

#[test]
fn reader_line_past_limit_in_discarded_command() {
    // The tag of a command already being discarded is kept for the close.
    let mut input = b"a1 LOGIN alice {17+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 17));
    input.extend(std::iter::repeat_n(b'y', 64));
    check(
        &input,
        ReadMode::Command,
        &limits(),
        &[rejected(
            Some("a1"),
            Some(Code::TooBig),
            "Line is longer than 64 bytes",
            true,
        )],
    );
}

/// Small deterministic generator (xorshift64) so the random test needs no
/// extra crate and every run sees the same inputs.
struct Xorshift(u64);

impl Xorshift {
    fn next_below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

#[test]
fn reader_random_input_keeps_invariants() {
    // Random mixes of IMAP fragments, fed in random chunks and read in
    // random modes, must never panic and must keep memory within the
    // limits. The loop is bounded: 3000 inputs of at most 40 fragments.
    const FRAGMENTS: &[&[u8]] = &[
        b"a1 ",
        b"LOGIN ",
        b"APPEND INBOX ",
        b"UID ",
        b"FETCH 1:* (BODY[]<0.5>)",
        b"SEARCH (OR ",
        b"{5}\r\n",
        b"{3+}\r\n",
        b"{0}\r\n",
        b"{70+}\r\n",
        b"{99999999999+}\r\n",
        b"{17}\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"(",
        b")",
        b"\"",
        b"\\",
        b"*",
        b"DONE",
        b"a LOGOUT\r\n",
        b"NOOP\r\n",
        b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        b"\0",
        b"\xff",
        b"}",
        b"{",
    ];
    let limits = limits();
    let modes = [
        ReadMode::Command,
        ReadMode::IdleDone,
        ReadMode::AuthenticateData,
    ];
    let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);

    for _ in 0..3000 {
        let mut input = Vec::new();
        for _ in 0..random.next_below(40) {
            input.extend_from_slice(FRAGMENTS[random.next_below(FRAGMENTS.len())]);
        }

        let mut reader = CommandReader::new();
        let mut closed = false;
        let mut rest = input.as_slice();
        while !rest.is_empty() {
            let (chunk, remaining) = rest.split_at(1 + random.next_below(rest.len()));
            rest = remaining;
            reader.feed(chunk);
            loop {
                let mode = modes[random.next_below(modes.len())];
                let Some(event) = reader.next(mode, &limits) else {
                    break;
                };
                assert!(!closed, "event after close for {input:?}: {event:?}");
                match event {
                    ReadEvent::Rejected { close: true, .. } => closed = true,
                    ReadEvent::ContinuationNeeded { length } => {
                        assert!(length as usize <= limits.append_literal_bytes_max)
                    }
                    _ => {}
                }
            }
            let unread = reader.input.len() - reader.input_start;
            assert!(
                unread < limits.line_bytes_max,
                "{unread} unread bytes for {input:?}"
            );
            let command_max = limits.command_bytes_max + limits.append_literal_bytes_max;
            assert!(
                reader.command.len() <= command_max,
                "command buffer for {input:?}"
            );
        }
    }
}

#[test]
fn take_buffered_returns_unread_bytes() {
    let limits = ReaderLimits {
        line_bytes_max: 1024,
        literal_bytes_max: 1024,
        append_literal_bytes_max: 1024,
        command_bytes_max: 4096,
    };
    let mut reader = CommandReader::new();
    reader.feed(b"a STARTTLS\r\nb LOGIN x y\r\nc NO");
    assert!(matches!(reader.next(ReadMode::Command, &limits), Some(ReadEvent::Command(_))));
    assert_eq!(reader.take_buffered(), b"b LOGIN x y\r\nc NO");
    assert!(reader.is_idle());
    assert!(reader.next(ReadMode::Command, &limits).is_none());
}

/// A small deterministic generator (SplitMix64) for the random-input test,
/// so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..bound`, or 0 when `bound` is 0.
    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 { 0 } else { (self.next() % bound as u64) as usize }
    }
}

/// Builds random client input from command fragments, literal
/// announcements, nesting and random bytes.
fn random_client_input(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"a1 NOOP\r\n",
        b"a2 LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
        b"a3 APPEND INBOX (\\Seen) {40}\r\n",
        b"a4 APPEND INBOX {4294967295}\r\n",
        b"a5 APPEND INBOX {99999999999999999999+}\r\n",
        b"a6 SELECT {0}\r\n\r\n",
        b"a7 SEARCH RETURN (MIN MAX SAVE) OR (NOT (UID $)) 1:*,5\r\n",
        b"a8 UID SEARCH ((((((((((((((((ALL))))))))))))))))\r\n",
        b"a9 LIST (SUBSCRIBED REMOTE) \"\" (\"*\" \"%\" {1}\r\nx) RETURN (STATUS (MESSAGES))\r\n",
        b"b1 CREATE box (USE (\\Drafts \\Sent))\r\n",
        b"b2 STATUS INBOX (APPENDLIMIT SIZE)\r\n",
        b"b3 FETCH $ (BODY.PEEK[1.2.HEADER.FIELDS (A B)]<0.4294967295>)\r\n",
        b"b4 COPY 4294967295:0,* \"&AGE-\"\r\n",
        b"b5 ENABLE UTF8=ACCEPT IMAP4rev2\r\n",
        b"DONE\r\n",
        b"*\r\n",
        b"dGVzdA==\r\n",
        b"\"caf\xc3\xa9\"",
        b"{3}\r\n",
        b"{2+}\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"\0",
        b" ",
        b"(",
        b")",
    ];
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(24) {
        match rng.below(8) {
            0 => {
                for _ in 0..rng.below(48) {
                    input.push(rng.next() as u8);
                }
            }
            1 => {
                // Nesting and a long line, near the line limit.
                let open = rng.below(80);
                input.extend_from_slice(b"c1 SEARCH ");
                input.extend(std::iter::repeat_n(b'(', open));
                input.extend_from_slice(b"ALL");
                input.extend(std::iter::repeat_n(b')', open));
                input.extend_from_slice(b"\r\n");
            }
            _ => input.extend_from_slice(PIECES[rng.below(PIECES.len())]),
        }
    }
    input
}

#[test]
fn reader_random_extended_forms_and_options() {
    const SEED: u64 = 0x2ead_e2ed_0000_0001;
    const CASES: usize = 3000;
    let time_max = std::time::Duration::from_secs(20);
    let started = std::time::Instant::now();
    // The small limits reject most random input early, so half the cases
    // run under limits that let whole commands through.
    let roomy = ReaderLimits {
        line_bytes_max: 1024,
        literal_bytes_max: 64,
        append_literal_bytes_max: 256,
        command_bytes_max: 2048,
    };
    let modes = [ReadMode::Command, ReadMode::IdleDone, ReadMode::AuthenticateData];
    let mut rng = Rng(SEED);
    let mut commands = 0;
    let mut closed = 0;

    for case in 0..CASES {
        if started.elapsed() > time_max {
            break;
        }
        let input = random_client_input(&mut rng);
        let limits = if rng.below(2) == 0 { limits() } else { roomy.clone() };
        let mut reader = CommandReader::new();
        if rng.below(2) == 0 {
            reader.set_options(ReaderOptions {
                utf8_accepted: true,
                non_sync_literal_bytes_max: Some(8),
                extended: ExtendedLimits { list_patterns_max: 2, create_special_uses_max: 1 },
            });
        }

        let context = format!("case {case} of seed {SEED:#x}, input {:?}", String::from_utf8_lossy(&input));
        let mut rest = input.as_slice();
        let mut events = 0;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(1 + rng.below(rest.len().min(32)));
            rest = tail;
            reader.feed(chunk);
            while let Some(event) = reader.next(modes[rng.below(modes.len())], &limits) {
                events += 1;
                commands += usize::from(matches!(event, ReadEvent::Command(_) | ReadEvent::Extended { .. }));
                if let ReadEvent::Rejected { text, close, .. } = &event {
                    assert!(!text.is_empty(), "{context}: rejection without text");
                    closed += usize::from(*close);
                }
            }
            // Between calls the reader keeps less than one line of unread
            // input and at most one command within its limits.
            let unread = reader.input.len() - reader.input_start;
            assert!(unread < limits.line_bytes_max, "{context}: {unread} unread bytes kept");
            let command_max = limits.command_bytes_max + limits.append_literal_bytes_max;
            assert!(reader.command.len() <= command_max, "{context}: command of {} bytes kept", reader.command.len());
        }
        // Each event needs at least one input byte, so a reader cannot
        // produce events without end.
        assert!(events <= input.len(), "{context}: {events} events");
        reader.release_buffers();
    }
    assert!(commands > CASES / 10, "only {commands} random inputs decoded as a command");
    assert!(closed > 0, "no random input closed the connection");
}
