//! Streaming command decoder: turns the bytes a client sends into commands,
//! IDLE `DONE` lines and AUTHENTICATE data lines, enforcing the size limits
//! the caller passes in.
//!
//! The reader frames input into lines and literals itself and hands only a
//! complete command to imap-codec. Framing first means a rejected command is
//! dropped whole: literal bytes are never scanned for commands, so a literal
//! that contains `a LOGOUT\r\n` cannot be mistaken for one. The framing rules
//! follow imap-codec's `Fragmentizer`, but the reader does not use that
//! type. The `Fragmentizer` fixes its size limit at construction, while ours
//! change per command. It also cannot report an over-long line before the
//! line ends, and it keeps the bytes of a rejected literal up to its limit,
//! where the reader keeps none.
//!
//! Limit policy:
//! - A line longer than `line_bytes_max` ends the connection (`close: true`),
//!   reported as soon as the limit is passed, without waiting for the line
//!   end. The rest of such a line may announce a literal, so skipping to the
//!   next line end could read literal bytes as commands.
//! - A synchronising literal `{n}` over its limit is rejected at once, in
//!   place of the continuation request. The client does not send the
//!   literal without one, so the command ends there. APPEND's message
//!   literal gets `tag NO [TOOBIG]`, because RFC 7889 section 4 has the
//!   server reject an APPEND over the upload limit with a tagged TOOBIG and
//!   NO is APPEND's result for a message the server will not store (RFC 9051
//!   section 6.3.12). Every other literal gets `tag BAD [TOOBIG]`.
//! - A non-synchronising literal `{n+}` over its limit is already on its way.
//!   Its bytes are counted and dropped, the rest of the command is dropped,
//!   and then `tag BAD [TOOBIG]` is returned. If `n` is larger than both
//!   literal limits the connection is closed without reading it, because
//!   skipping that much would let one client occupy the connection for long.
//! - A command whose buffered bytes pass `command_bytes_max` is rejected the
//!   same way. The message literal of APPEND is not counted there: it has its
//!   own limit, `append_literal_bytes_max`.
//! - With [`ReaderOptions::non_sync_literal_bytes_max`] set, as LITERAL-
//!   (RFC 7888) and IMAP4rev2 require at 4096, a larger non-synchronising
//!   literal is rejected like one over its literal limit.
//!
//! A command imap-codec rejects is given to [`crate::extended`], which
//! decodes the IMAP4rev2 forms imap-codec lacks, such as `SEARCH RETURN`
//! and `LIST (SUBSCRIBED) "" %`. They come out as `ReadEvent::Extended`,
//! which exists with the `rev2` feature. Without it, those commands are
//! rejected as before.
//!
//! imap-codec accepts UTF-8 in quoted strings (its `ext_utf8` feature), but
//! RFC 3501 allows only 7-bit text outside literals. Until the session sets
//! [`ReaderOptions::utf8_accepted`], after `ENABLE UTF8=ACCEPT` or
//! `ENABLE IMAP4rev2`, a command with 8-bit bytes outside literals is
//! rejected.
//!
//! This module has no access to sockets, sessions or storage.

use std::ops::Range;

use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec, decode::Decoder};
use imap_types::{
    IntoStatic,
    auth::AuthenticateData,
    command::Command,
    core::Tag,
    response::{Code, StatusKind},
};

use crate::extended::ExtendedCommand;
use crate::extended::{self, ExtendedLimits, Parsed};

/// Size limits for one read. The server passes tighter ones before login.
///
/// The larger of the two literal limits also caps how many bytes of a
/// rejected non-synchronising literal are skipped, so before login both
/// should be small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Maximum bytes of one line, including its literal announcement and the
    /// line ending. A longer line closes the connection.
    pub line_bytes_max: usize,
    /// Maximum bytes of a literal other than APPEND's message.
    pub literal_bytes_max: usize,
    /// Maximum bytes of APPEND's message literal.
    pub append_literal_bytes_max: usize,
    /// Maximum bytes of one command (lines and literals), not counting
    /// APPEND's message literal.
    pub command_bytes_max: usize,
}

/// Grammar switches that change when the session enables an extension.
/// The default is IMAP4rev1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Whether quoted strings may contain UTF-8: set after `ENABLE
    /// UTF8=ACCEPT` (RFC 6855) or `ENABLE IMAP4rev2` (RFC 9051).
    pub utf8_accepted: bool,
    /// Maximum bytes of a non-synchronising literal `{n+}`, or `None` for
    /// no limit beyond the literal limits. LITERAL- (RFC 7888) and IMAP4rev2
    /// set it to 4096.
    pub non_sync_literal_bytes_max: Option<u32>,
    /// Limits on the counts in extended command forms.
    pub extended: ExtendedLimits,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            utf8_accepted: false,
            non_sync_literal_bytes_max: None,
            extended: ExtendedLimits::default(),
        }
    }
}

impl ReaderOptions {
    /// Non-synchronising literal limit of LITERAL- and IMAP4rev2, in bytes.
    pub const LITERAL_MINUS_BYTES_MAX: u32 = 4096;
}

/// Expected form of the next line, set by the session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// A tagged command.
    Command,
    /// The `DONE` line that ends IDLE (RFC 2177).
    IdleDone,
    /// A base64 line or `*`, sent in reply to an AUTHENTICATE challenge.
    AuthenticateData,
}

/// One result of [`CommandReader::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReadEvent {
    /// A complete, valid command.
    Command(Command<'static>),
    /// A complete, valid command in an IMAP4rev2 form that imap-codec does
    /// not parse, described in [`crate::extended`].
        Extended {
        /// The command's tag.
        tag: Tag<'static>,
        /// The decoded command.
        command: ExtendedCommand,
    },
    /// The client ended IDLE. Only returned in [`ReadMode::IdleDone`].
    IdleDone,
    /// A SASL response line or a `*` cancel. Only returned in
    /// [`ReadMode::AuthenticateData`].
    AuthenticateData(AuthenticateData<'static>),
    /// A synchronising literal was accepted: the server must send a `+ `
    /// continuation request now.
    ContinuationNeeded {
        /// Announced literal size in bytes.
        length: u32,
    },
    /// Rejected input. The server sends `tag <kind> [code] text`, or
    /// `* <kind>` when `tag` is `None`. If `close` is set, the server then
    /// sends a BYE and closes the connection, and the reader returns no more
    /// events.
    Rejected {
        /// The command's tag, if it could be read.
        tag: Option<Tag<'static>>,
        /// Status of the response: NO for an APPEND message over its limit,
        /// BAD for everything else.
        kind: StatusKind,
        /// Response code to put in brackets, such as TOOBIG.
        code: Option<Code<'static>>,
        /// Human-readable response text, never empty.
        text: String,
        /// Whether the connection must be closed after the response.
        close: bool,
    },
}

/// Streaming decoder of client input, described in the module documentation.
#[derive(Debug, Default)]
pub struct CommandReader {
    /// Bytes fed but not framed yet, starting at `input_start`.
    input: Vec<u8>,
    /// Offset of the first unread byte in `input`.
    input_start: usize,
    /// Lines and kept literals of the command being read.
    command: Vec<u8>,
    /// Bytes of APPEND's message literal inside `command`, which count
    /// against `append_literal_bytes_max` instead of `command_bytes_max`.
    append_message_bytes: usize,
    /// Number of literals announced so far in the current command.
    literal_count: u32,
    /// Whether a line of the current command ended with a bare LF.
    bare_line_feed: bool,
    /// Step that the next bytes go through.
    stage: Stage,
    /// Rejection to return when the current, already failed, command ends.
    /// While set, lines and literals are dropped instead of kept.
    pending: Option<Box<Rejection>>,
    /// Grammar switches set by the session, or `None` for the defaults.
    /// Boxed because an idle session's reader must stay small.
    options: Option<Box<ReaderOptions>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading a line.
    #[default]
    Line,
    /// Copying the given number of remaining literal bytes into `command`.
    Literal { remaining: u32 },
    /// Dropping the given number of remaining bytes of a rejected literal.
    Skip { remaining: u32 },
    /// A rejection closed the connection; nothing more is read.
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
struct Rejection {
    tag: Option<Tag<'static>>,
    kind: StatusKind,
    code: Option<Code<'static>>,
    text: String,
    close: bool,
}

impl Rejection {
    fn into_event(self) -> ReadEvent {
        ReadEvent::Rejected {
            tag: self.tag,
            kind: self.kind,
            code: self.code,
            text: self.text,
            close: self.close,
        }
    }
}

/// A literal announced at the end of a line: `{n}` or `{n+}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announcement {
    /// Literal size in bytes; `None` if it does not fit in a `u32`.
    length: Option<u32>,
    /// Whether the literal is non-synchronising (LITERAL+, RFC 7888).
    non_sync: bool,
    /// Offset of the `{` in the line.
    start: usize,
}

impl CommandReader {
    /// Creates a reader, which allocates no buffer until bytes are fed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.stage == Stage::Closed {
            return;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Decodes the next event from the fed bytes, or returns `None` when more
    /// bytes are needed. `mode` and `limits` apply to this call only, so the
    /// server can switch them between commands.
    pub fn next(&mut self, mode: ReadMode, limits: &ReaderLimits) -> Option<ReadEvent> {
        let event = self.advance(mode, limits);
        if event.is_none() {
            self.compact_input();
        }
        event
    }

    /// Sets the grammar switches for the commands read from now on.
    pub fn set_options(&mut self, options: ReaderOptions) {
        self.options = match options == ReaderOptions::default() {
            true => None,
            false => Some(Box::new(options)),
        };
    }

    /// Returns the grammar switches in effect.
    pub fn options(&self) -> ReaderOptions {
        self.options.as_deref().cloned().unwrap_or_default()
    }

    /// Returns whether no partial command or unread byte is buffered.
    pub fn is_idle(&self) -> bool {
        self.input_start == self.input.len()
            && self.command.is_empty()
            && self.stage == Stage::Line
            && self.pending.is_none()
    }

    /// Frees buffer capacity so a waiting session keeps no heap memory.
    /// When a partial command is buffered, only the unused capacity is freed.
    pub fn release_buffers(&mut self) {
        if self.is_idle() {
            self.input = Vec::new();
            self.input_start = 0;
            self.command = Vec::new();
        } else {
            self.compact_input();
            self.input.shrink_to_fit();
            self.command.shrink_to_fit();
        }
    }

    fn advance(&mut self, mode: ReadMode, limits: &ReaderLimits) -> Option<ReadEvent> {
        loop {
            match self.stage {
                Stage::Closed => return None,
                Stage::Literal { remaining } => {
                    let literal_bytes = self.take_input(remaining);
                    let remaining = remaining - literal_bytes.len() as u32;
                    self.command.extend_from_slice(&self.input[literal_bytes]);
                    if remaining > 0 {
                        self.stage = Stage::Literal { remaining };
                        return None;
                    }
                    self.stage = Stage::Line;
                }
                Stage::Skip { remaining } => {
                    let skipped = self.take_input(remaining).len() as u32;
                    let remaining = remaining - skipped;
                    if remaining > 0 {
                        self.stage = Stage::Skip { remaining };
                        return None;
                    }
                    self.stage = Stage::Line;
                }
                Stage::Line => {
                    let line_end = self.find_line_end(limits)?;
                    let event = match line_end {
                        Err(rejection) => Some(rejection.into_event()),
                        Ok(end) => match mode {
                            ReadMode::Command => self.command_line(end, limits),
                            ReadMode::IdleDone => Some(self.idle_done_line(end)),
                            ReadMode::AuthenticateData => Some(self.authenticate_line(end)),
                        },
                    };
                    if event.is_some() {
                        return event;
                    }
                }
            }
        }
    }

    /// Finds the end (exclusive) of the next line in `input`. Returns `None`
    /// when the line is incomplete and still within the limit, and an error
    /// that closes the connection when it is longer than the limit.
    fn find_line_end(&mut self, limits: &ReaderLimits) -> Option<Result<usize, Rejection>> {
        let unread = &self.input[self.input_start..];
        let scanned = unread.len().min(limits.line_bytes_max);
        match unread[..scanned].iter().position(|&byte| byte == b'\n') {
            Some(position) => Some(Ok(self.input_start + position + 1)),
            None if scanned < limits.line_bytes_max => None,
            None => {
                // The line has reached the limit without its line feed, so
                // the whole line cannot fit.
                let tag = match (&self.pending, self.command.is_empty()) {
                    (Some(rejection), _) => rejection.tag.clone(),
                    (None, true) => decode_tag(unread),
                    (None, false) => decode_tag(&self.command),
                };
                self.close();
                Some(Err(Rejection {
                    tag,
                    kind: StatusKind::Bad,
                    code: Some(Code::TooBig),
                    text: format!("Line is longer than {} bytes", limits.line_bytes_max),
                    close: true,
                }))
            }
        }
    }

    /// Handles a complete line of a command, which either ends the command
    /// or announces a literal.
    fn command_line(&mut self, end: usize, limits: &ReaderLimits) -> Option<ReadEvent> {
        let line_start = self.input_start;
        self.input_start = end;
        let line = &self.input[line_start..end];
        let announcement = parse_announcement(line);
        if !line.ends_with(b"\r\n") {
            self.bare_line_feed = true;
        }

        // A command that already failed only needs its end found.
        if let Some(rejection) = self.pending.take() {
            self.command.clear();
            return self.discard_announced(*rejection, announcement, limits);
        }

        let counted_bytes = self.command.len() - self.append_message_bytes;
        if counted_bytes + line.len() > limits.command_bytes_max {
            let tag = match self.command.is_empty() {
                true => decode_tag(line),
                false => decode_tag(&self.command),
            };
            self.command.clear();
            return self.discard_announced(command_too_big(tag, limits), announcement, limits);
        }
        let line_offset = self.command.len();
        self.command.extend_from_slice(line);

        let Some(announcement) = announcement else {
            return Some(self.finish_command());
        };
        self.start_literal(announcement, line_offset, limits)
    }

    /// Accepts or rejects the literal announced at the end of the line just
    /// appended to `command`, which starts at `line_offset`.
    fn start_literal(
        &mut self,
        announcement: Announcement,
        line_offset: usize,
        limits: &ReaderLimits,
    ) -> Option<ReadEvent> {
        let literal_index = self.literal_count;
        self.literal_count += 1;
        let is_append_message = is_append_message_literal(
            &self.command,
            line_offset + announcement.start,
            literal_index,
        );
        let literal_bytes_max = match is_append_message {
            true => limits.append_literal_bytes_max,
            false => limits.literal_bytes_max,
        };

        if let Some(rejection) = self.check_non_sync_length(announcement) {
            self.command.clear();
            return self.discard_announced(rejection, Some(announcement), limits);
        }
        let length = match announcement.length {
            Some(length) if length as usize <= literal_bytes_max => length,
            _ => {
                // Only a synchronising message literal can still get NO: a
                // non-synchronising one is already on its way, and RFC 7888
                // section 4 answers it with BAD.
                let kind = match is_append_message && !announcement.non_sync {
                    true => StatusKind::No,
                    false => StatusKind::Bad,
                };
                let rejection = Rejection {
                    tag: decode_tag(&self.command),
                    kind,
                    code: Some(Code::TooBig),
                    text: format!("Literal is larger than {literal_bytes_max} bytes"),
                    close: false,
                };
                self.command.clear();
                return self.discard_announced(rejection, Some(announcement), limits);
            }
        };

        // APPEND's message has its own limit, and every other literal also
        // counts towards the command's.
        let counted_bytes = self.command.len() - self.append_message_bytes;
        let fits = is_append_message || counted_bytes + length as usize <= limits.command_bytes_max;
        if !fits {
            let rejection = command_too_big(decode_tag(&self.command), limits);
            self.command.clear();
            return self.discard_announced(rejection, Some(announcement), limits);
        }

        if is_append_message {
            self.append_message_bytes += length as usize;
        }
        self.command.reserve_exact(length as usize);
        self.stage = Stage::Literal { remaining: length };
        match announcement.non_sync {
            true => None,
            false => Some(ReadEvent::ContinuationNeeded { length }),
        }
    }

    /// Returns the rejection of a non-synchronising literal longer than
    /// [`ReaderOptions::non_sync_literal_bytes_max`].
    fn check_non_sync_length(&self, announcement: Announcement) -> Option<Rejection> {
        let non_sync_bytes_max = self.options.as_ref()?.non_sync_literal_bytes_max?;
        let within = announcement
            .length
            .is_some_and(|length| length <= non_sync_bytes_max);
        if !announcement.non_sync || within {
            return None;
        }
        Some(Rejection {
            tag: decode_tag(&self.command),
            kind: StatusKind::Bad,
            code: Some(Code::TooBig),
            text: format!(
                "Non-synchronising literal is larger than {non_sync_bytes_max} bytes: send it as a synchronising literal"
            ),
            close: false,
        })
    }

    /// Ends a failed command at a line without a non-synchronising literal,
    /// or skips the literal's bytes and keeps the rejection for later. A
    /// client that announced a synchronising literal waits for a
    /// continuation request that never comes, so the command ends there.
    fn discard_announced(
        &mut self,
        rejection: Rejection,
        announcement: Option<Announcement>,
        limits: &ReaderLimits,
    ) -> Option<ReadEvent> {
        let skip_bytes_max = limits
            .literal_bytes_max
            .max(limits.append_literal_bytes_max);
        let Some(Announcement {
            non_sync: true,
            length,
            ..
        }) = announcement
        else {
            self.reset_command();
            return Some(rejection.into_event());
        };
        match length.filter(|&length| length as usize <= skip_bytes_max) {
            Some(length) => {
                self.pending = Some(Box::new(rejection));
                self.stage = Stage::Skip { remaining: length };
                None
            }
            None => {
                self.close();
                Some(ReadEvent::Rejected {
                    tag: rejection.tag,
                    kind: rejection.kind,
                    code: rejection.code,
                    text: format!(
                        "Non-synchronising literal is larger than {skip_bytes_max} bytes"
                    ),
                    close: true,
                })
            }
        }
    }

    /// Decodes the complete command in `command`.
    fn finish_command(&mut self) -> ReadEvent {
        let event = self.decode_command();
        self.reset_command();
        event
    }

    fn decode_command(&self) -> ReadEvent {
        let rejected = |text: String| ReadEvent::Rejected {
            tag: decode_tag(&self.command),
            kind: StatusKind::Bad,
            code: None,
            text,
            close: false,
        };
        let options = self.options();
        if !options.utf8_accepted
            && !self.bare_line_feed
            && extended::has_eight_bit_outside_literals(&self.command)
        {
            return rejected(
                "8-bit characters outside literals require ENABLE UTF8=ACCEPT".to_owned(),
            );
        }
        if let Ok(([], command)) = CommandCodec::new().decode(&self.command) {
            return ReadEvent::Command(command.into_static());
        }
        if self.bare_line_feed {
            return rejected(describe_invalid_command(&self.command, true));
        }
        match extended::parse(&self.command, &options.extended) {
            Parsed::Command(tag, command) => ReadEvent::Extended { tag, command },
            Parsed::Invalid(text) => rejected(text),
            Parsed::NotExtended => rejected(describe_invalid_command(&self.command, false)),
        }
    }

    fn idle_done_line(&mut self, end: usize) -> ReadEvent {
        let line = &self.input[self.input_start..end];
        let event = match IdleDoneCodec::new().decode(line) {
            Ok(([], _)) => ReadEvent::IdleDone,
            _ => ReadEvent::Rejected {
                tag: None,
                kind: StatusKind::Bad,
                code: None,
                text: "Expected DONE to end IDLE".to_owned(),
                close: false,
            },
        };
        self.input_start = end;
        event
    }

    fn authenticate_line(&mut self, end: usize) -> ReadEvent {
        let line = &self.input[self.input_start..end];
        let event = match AuthenticateDataCodec::new().decode(line) {
            Ok(([], data)) => ReadEvent::AuthenticateData(data.into_static()),
            _ => ReadEvent::Rejected {
                tag: None,
                kind: StatusKind::Bad,
                code: None,
                text: "Invalid base64 in authentication response".to_owned(),
                close: false,
            },
        };
        self.input_start = end;
        event
    }

    /// Marks up to `count` unread bytes of `input` as read and returns their
    /// range.
    fn take_input(&mut self, count: u32) -> Range<usize> {
        let start = self.input_start;
        let available = self.input.len() - start;
        let taken_count = available.min(count as usize);
        self.input_start += taken_count;
        start..start + taken_count
    }

    fn reset_command(&mut self) {
        // A large command (an APPEND) leaves a large buffer behind, which an
        // idle session should not keep.
        if self.command.capacity() > COMMAND_CAPACITY_KEPT_MAX {
            self.command = Vec::new();
        } else {
            self.command.clear();
        }
        self.append_message_bytes = 0;
        self.literal_count = 0;
        self.bare_line_feed = false;
        self.pending = None;
        self.stage = Stage::Line;
    }

    fn close(&mut self) {
        self.stage = Stage::Closed;
        self.input = Vec::new();
        self.input_start = 0;
        self.command = Vec::new();
        self.pending = None;
    }

    /// Moves unread bytes to the front of `input` so it does not grow with
    /// the bytes already read.
    /// Removes and returns every byte fed but not yet returned as an event,
    /// and resets the reader to expect a new command.
    ///
    /// STARTTLS uses this: bytes a client sent after the STARTTLS line were
    /// sent in plaintext and must be discarded, never run as commands after
    /// the handshake (the command-injection attack of CVE-2011-0411).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let mut buffered = std::mem::take(&mut self.command);
        buffered.extend_from_slice(&self.input[self.input_start..]);
        let options = self.options.take();
        *self = CommandReader::new();
        self.options = options;
        buffered
    }

    fn compact_input(&mut self) {
        if self.input_start == self.input.len() {
            self.input.clear();
        } else {
            self.input.drain(..self.input_start);
        }
        self.input_start = 0;
    }
}

/// Largest command buffer capacity kept between commands.
const COMMAND_CAPACITY_KEPT_MAX: usize = 64 * 1024;

fn command_too_big(tag: Option<Tag<'static>>, limits: &ReaderLimits) -> Rejection {
    Rejection {
        tag,
        kind: StatusKind::Bad,
        code: Some(Code::TooBig),
        text: format!("Command is larger than {} bytes", limits.command_bytes_max),
        close: false,
    }
}

/// Parses a literal announcement, `{n}` or `{n+}`, just before the line
/// ending, the way imap-codec's `Fragmentizer` finds one.
fn parse_announcement(line: &[u8]) -> Option<Announcement> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, non_sync) = match line.strip_suffix(b"+") {
        Some(rest) => (rest, true),
        None => (line, false),
    };
    let digit_count = line
        .iter()
        .rev()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digit_count == 0 {
        return None;
    }
    let digits_start = line.len() - digit_count;
    if digits_start == 0 || line[digits_start - 1] != b'{' {
        return None;
    }

    // An overflowing length is still an announcement: the client will send
    // that many bytes, and they must not be read as commands.
    let mut length: Option<u32> = Some(0);
    for &digit in &line[digits_start..] {
        length = length
            .and_then(|length| length.checked_mul(10))
            .and_then(|length| length.checked_add(u32::from(digit - b'0')));
    }
    Some(Announcement {
        length,
        non_sync,
        start: digits_start - 1,
    })
}

/// Reads the tag of a command: the bytes before the first space, if they
/// form a valid tag.
fn decode_tag(bytes: &[u8]) -> Option<Tag<'static>> {
    let space = bytes
        .iter()
        .position(|&byte| byte == b' ' || byte == b'\n')?;
    if bytes[space] != b' ' {
        return None;
    }
    Tag::try_from(&bytes[..space])
        .ok()
        .map(IntoStatic::into_static)
}

/// Returns the command name after the tag, upper-cased, with `UID ` kept
/// in front of the name it modifies. Returns `None` for a name that is not
/// a command this reader recognizes, so the name sent back is never client
/// text.
fn command_name(bytes: &[u8]) -> Option<&'static str> {
    let mut words = bytes
        .split(|&byte| byte == b' ' || byte == b'\r' || byte == b'\n')
        .skip(1);
    let name = words.next()?;
    let known = KNOWN_COMMANDS
        .iter()
        .find(|known| known.as_bytes().eq_ignore_ascii_case(name))?;
    if *known != "UID" {
        return Some(known);
    }
    let name = words.next()?;
    UID_COMMANDS
        .iter()
        .find(|known| known.as_bytes()[4..].eq_ignore_ascii_case(name))
        .copied()
}

const KNOWN_COMMANDS: &[&str] = &[
    "APPEND",
    "AUTHENTICATE",
    "CAPABILITY",
    "CHECK",
    "CLOSE",
    "COPY",
    "CREATE",
    "DELETE",
    "ENABLE",
    "EXAMINE",
    "EXPUNGE",
    "FETCH",
    "ID",
    "IDLE",
    "LIST",
    "LOGIN",
    "LOGOUT",
    "LSUB",
    "MOVE",
    "NAMESPACE",
    "NOOP",
    "RENAME",
    "SEARCH",
    "SELECT",
    "STARTTLS",
    "STATUS",
    "STORE",
    "SUBSCRIBE",
    "UID",
    "UNSELECT",
    "UNSUBSCRIBE",
];

const UID_COMMANDS: &[&str] = &[
    "UID COPY",
    "UID EXPUNGE",
    "UID FETCH",
    "UID MOVE",
    "UID SEARCH",
    "UID STORE",
];

/// Builds the text of the BAD response for a command imap-codec rejected.
fn describe_invalid_command(bytes: &[u8], bare_line_feed: bool) -> String {
    if bare_line_feed {
        return "Lines must end with CRLF".to_owned();
    }
    if decode_tag(bytes).is_none() {
        return "Missing or invalid command tag".to_owned();
    }
    match command_name(bytes) {
        Some(name) => format!("Invalid arguments to {name}"),
        None => "Unknown command".to_owned(),
    }
}

/// Returns whether the literal starting at `announcement_offset` of the
/// command is APPEND's message. APPEND's mailbox may itself be a literal,
/// and then it is the first one and comes right after `APPEND `.
fn is_append_message_literal(
    command: &[u8],
    announcement_offset: usize,
    literal_index: u32,
) -> bool {
    if command_name(command) != Some("APPEND") {
        return false;
    }
    let mailbox_is_literal = match command.iter().position(|&byte| byte == b' ') {
        Some(tag_end) => {
            let after_name = tag_end + 1 + "APPEND ".len();
            literal_index == 0 && after_name == announcement_offset
        }
        None => false,
    };
    match literal_index {
        0 => !mailbox_is_literal,
        1 => first_literal_was_mailbox(command),
        _ => false,
    }
}

/// Returns whether the first literal of an APPEND was its mailbox, that is,
/// whether the first line is `tag APPEND {n}`.
fn first_literal_was_mailbox(command: &[u8]) -> bool {
    let first_line_end = command
        .iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(command.len());
    let first_line = &command[..=first_line_end.min(command.len() - 1)];
    match (
        first_line.iter().position(|&byte| byte == b' '),
        parse_announcement(first_line),
    ) {
        (Some(tag_end), Some(announcement)) => tag_end + 1 + "APPEND ".len() == announcement.start,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
