//! A server-side TLS session over TCP, driven through rustls' unbuffered
//! API so that this module owns every buffer of TLS records and plaintext.
//!
//! Owning the buffers is the point: between commands a session holds only
//! rustls' protocol state (keys, record sequence numbers, the handshake
//! state machine) and frees the record buffers, which is what keeps an idle
//! TLS session at a few KiB. The buffered `rustls::ServerConnection`, by
//! contrast, keeps at least a 4 KiB receive buffer allocated once it has
//! read anything.
//!
//! This module handles TLS records and sockets. It must not know IMAP: the
//! STARTTLS rules that concern commands belong to the caller of
//! [`super::Transport::start_tls`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

/// Largest TLS record on the wire: a 5-byte header, 2^14 bytes of
/// plaintext and the 2048 bytes of expansion TLS 1.2 allows (RFC 5246
/// section 6.2.3). TLS 1.3 records are smaller.
pub const RECORD_BYTES_MAX: usize = 5 + 16384 + 2048;

/// Most plaintext bytes encrypted into one record (RFC 8446 section 5.1).
const RECORD_PLAINTEXT_BYTES_MAX: usize = 16384;

/// Spare room reserved for a record's header, nonce and tag before rustls
/// reports the exact size it needs.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// Most rounds of flushing queued alert records after a TLS error. Each
/// round encodes or transmits one queued record, and rustls queues at most
/// one fatal alert.
const ALERT_FLUSH_ROUNDS_MAX: usize = 8;

/// Bounds on what one TLS session may make the server hold or wait for.
#[derive(Clone, Debug)]
pub struct TlsLimits {
    /// Time a peer has to complete the handshake, counted from the start
    /// of [`TlsSession::accept`] (the TCP accept or the STARTTLS reply).
    pub handshake_timeout: Duration,
    /// Most bytes received from the peer and not yet processed. It must be
    /// at least [`RECORD_BYTES_MAX`]. A handshake message split over
    /// several records stays buffered until its last record arrives, so a
    /// large ClientHello must fit too; 64 KiB plus one record is ample.
    pub incoming_bytes_max: usize,
}

/// An established TLS session on a TCP socket.
///
/// Everything but the socket is boxed so that a [`super::Transport`]
/// holding a plaintext socket stays as small as the socket itself.
pub struct TlsSession {
    socket: TcpStream,
    state: Box<TlsState>,
}

struct TlsState {
    connection: UnbufferedServerConnection,
    /// Bytes received from the peer that rustls has not consumed yet.
    incoming: Vec<u8>,
    /// Encrypted records waiting to be written to the socket, in order.
    outgoing: Vec<u8>,
    /// Decrypted bytes the caller has not taken yet, from `plaintext_start`.
    plaintext: Vec<u8>,
    plaintext_start: usize,
    incoming_bytes_max: usize,
    /// The peer sent close_notify or closed its side of the socket.
    read_closed: bool,
    /// `incoming` may hold records that were not processed because the
    /// last read stopped at the first record of plaintext.
    unprocessed: bool,
    close_notify_sent: bool,
}

/// The write [`TlsState::process`] does once rustls is ready for
/// application data.
#[derive(Clone, Copy)]
enum WriteAction<'a> {
    None,
    Data(&'a [u8]),
    CloseNotify,
}

/// The state [`TlsState::process`] stopped in.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// rustls needs more bytes from the peer.
    NeedsData,
    /// Nothing is pending and application data may be sent. The write
    /// action, if any, has been done.
    Ready,
    /// Decrypted bytes were appended to `plaintext`.
    Plaintext,
    /// Both sides have sent close_notify.
    Closed,
}

impl TlsSession {
    /// Performs the server side of a TLS handshake on `socket`.
    ///
    /// Fails with `TimedOut` when the handshake takes longer than
    /// `limits.handshake_timeout`, and with `UnexpectedEof` when the peer
    /// closes mid-handshake. Fails with `InvalidData` when the peer sends
    /// something rustls rejects, after sending rustls' alert.
    pub async fn accept(
        socket: TcpStream,
        config: Arc<ServerConfig>,
        limits: &TlsLimits,
    ) -> io::Result<TlsSession> {
        if limits.incoming_bytes_max < RECORD_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TLS incoming buffer limit of {} bytes is below one TLS record ({RECORD_BYTES_MAX} bytes)",
                    limits.incoming_bytes_max
                ),
            ));
        }
        let connection = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut session = TlsSession {
            socket,
            state: Box::new(TlsState {
                connection,
                incoming: Vec::new(),
                outgoing: Vec::new(),
                plaintext: Vec::new(),
                plaintext_start: 0,
                incoming_bytes_max: limits.incoming_bytes_max,
                read_closed: false,
                unprocessed: false,
                close_notify_sent: false,
            }),
        };
        match tokio::time::timeout(limits.handshake_timeout, session.handshake()).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake timed out after {:?}",
                    limits.handshake_timeout
                ),
            )),
        }
    }

    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            let progress = match self.state.process(WriteAction::None) {
                Ok(progress) => progress,
                Err(err) => {
                    self.state.queue_alert();
                    self.send_queued_nonblocking();
                    return Err(err);
                }
            };
            self.send_queued().await?;
            match progress {
                Progress::Ready if self.state.connection.is_handshaking() => {
                    self.receive_during_handshake().await?
                }
                Progress::Ready => return Ok(()),
                // The client may send its first command in the same flight
                // as its Finished message.
                Progress::Plaintext => {
                    self.state.unprocessed = true;
                    return Ok(());
                }
                Progress::NeedsData => self.receive_during_handshake().await?,
                Progress::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the TLS session during the handshake",
                    ));
                }
            }
        }
    }

    async fn receive_during_handshake(&mut self) -> io::Result<()> {
        loop {
            self.socket.readable().await?;
            match self.state.receive(&self.socket) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the connection during the TLS handshake",
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Polls until [`TlsSession::try_read`] may have something: ready at
    /// once when decrypted bytes, unprocessed records or the end of the
    /// stream are pending, else when the socket is. A wake-up can be
    /// spurious, as with [`TcpStream::poll_read_ready`].
    pub fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        if self.state.has_pending_input() {
            return std::task::Poll::Ready(Ok(()));
        }
        self.socket.poll_read_ready(cx)
    }

    /// Reads decrypted bytes into `buf` without waiting. Returns 0 at the
    /// end of the stream (close_notify, or the peer closing the socket) and
    /// `WouldBlock` when nothing is available yet.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.state.take_plaintext(buf) {
                return Ok(n);
            }
            if self.state.read_closed {
                return Ok(0);
            }
            let progress = match self.state.process(WriteAction::None) {
                Ok(progress) => progress,
                Err(err) => {
                    self.state.queue_alert();
                    self.send_queued_nonblocking();
                    return Err(err);
                }
            };
            match progress {
                Progress::Plaintext => self.state.unprocessed = !self.state.incoming.is_empty(),
                Progress::Closed => self.state.read_closed = true,
                Progress::NeedsData | Progress::Ready => {
                    self.state.unprocessed = false;
                    // Records rustls produced while reading (an alert, or
                    // its reply to a renegotiation attempt) go out now.
                    // NOTE: what the socket does not take at once waits in
                    // `outgoing` for the next write, flush or shutdown.
                    self.send_queued_nonblocking();
                    if self.state.read_closed {
                        // close_notify arrived: the loop's top returns 0.
                        continue;
                    }
                    if !self.state.receive(&self.socket)? {
                        debug!("TLS peer closed the connection without close_notify");
                        self.state.read_closed = true;
                    }
                }
            }
        }
    }

    /// Encrypts `bytes` and writes them to the socket, one record of at
    /// most 16 KiB at a time, so the outgoing buffer never contains more than
    /// one record plus any queued alert or KeyUpdate.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        for chunk in bytes.chunks(RECORD_PLAINTEXT_BYTES_MAX) {
            match self.state.process(WriteAction::Data(chunk)) {
                Ok(Progress::Ready) => {}
                Ok(progress) => return Err(not_writable(progress)),
                Err(err) => {
                    self.state.queue_alert();
                    self.send_queued_nonblocking();
                    return Err(err);
                }
            }
            self.send_queued().await?;
        }
        Ok(())
    }

    /// Writes every encrypted byte still queued. Plaintext is never held
    /// back, so this only matters after a write was interrupted.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.send_queued().await?;
        self.socket.flush().await
    }

    /// Sends close_notify if the socket takes it without waiting, then
    /// shuts down the socket's sending side. It does not wait for the
    /// peer's close_notify, which RFC 8446 section 6.1 allows.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        if !self.state.close_notify_sent {
            self.state.close_notify_sent = true;
            match self.state.process(WriteAction::CloseNotify) {
                Ok(_) => self.send_queued_nonblocking(),
                Err(err) => debug!(error = %err, "TLS close_notify not sent"),
            }
        }
        self.socket.shutdown().await
    }

    /// Frees every empty buffer and shrinks the incoming buffer to the
    /// partial record in it. Call it before waiting.
    pub fn release_buffers(&mut self) {
        let state = &mut *self.state;
        if state.incoming.is_empty() {
            state.incoming = Vec::new();
        } else {
            state.incoming.shrink_to_fit();
        }
        if state.outgoing.is_empty() {
            state.outgoing = Vec::new();
        }
        if state.plaintext_start >= state.plaintext.len() {
            state.plaintext = Vec::new();
            state.plaintext_start = 0;
        }
    }

    /// Returns the underlying socket, for addresses and socket options.
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Returns the negotiated protocol version, such as `TLSv1_3`.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.state.connection.protocol_version()
    }

    /// Bytes of heap the session's own buffers hold, excluding rustls'
    /// internal state.
    pub fn buffer_capacity(&self) -> usize {
        self.state.incoming.capacity()
            + self.state.outgoing.capacity()
            + self.state.plaintext.capacity()
    }

    async fn send_queued(&mut self) -> io::Result<()> {
        if !self.state.outgoing.is_empty() {
            self.socket.write_all(&self.state.outgoing).await?;
            self.state.outgoing.clear();
        }
        Ok(())
    }

    /// Writes what the socket takes without waiting. A failure is only
    /// logged, because the next read or write on the socket reports it.
    fn send_queued_nonblocking(&mut self) {
        let outgoing = &mut self.state.outgoing;
        while !outgoing.is_empty() {
            match self.socket.try_write(outgoing) {
                Ok(n) => {
                    outgoing.drain(..n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    debug!(error = %err, "failed to send queued TLS records");
                    return;
                }
            }
        }
    }
}

impl TlsState {
    fn has_pending_input(&self) -> bool {
        self.plaintext_start < self.plaintext.len() || self.unprocessed || self.read_closed
    }

    fn take_plaintext(&mut self, buf: &mut [u8]) -> Option<usize> {
        let pending = &self.plaintext[self.plaintext_start..];
        if pending.is_empty() {
            return None;
        }
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.plaintext_start += n;
        if self.plaintext_start == self.plaintext.len() {
            self.plaintext.clear();
            self.plaintext_start = 0;
        }
        Some(n)
    }

    /// Reads what the socket has, up to the incoming limit, without
    /// waiting. Returns false at the end of the stream.
    fn receive(&mut self, socket: &TcpStream) -> io::Result<bool> {
        let filled = self.incoming.len();
        let room = self.incoming_bytes_max.saturating_sub(filled);
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "TLS peer sent {filled} bytes without completing a record or handshake message (limit {} bytes)",
                    self.incoming_bytes_max
                ),
            ));
        }
        self.incoming.resize(filled + room.min(RECORD_BYTES_MAX), 0);
        let result = socket.try_read(&mut self.incoming[filled..]);
        let received = *result.as_ref().unwrap_or(&0);
        self.incoming.truncate(filled + received);
        result.map(|n| n > 0)
    }

    /// Runs rustls over the received bytes until it needs more data, has
    /// decrypted a record or is ready for application data, and then does
    /// `action`. Records rustls emits are appended to `outgoing`.
    ///
    /// When `action` writes, decrypted records are kept in `plaintext` and
    /// processing goes on, because rustls only reports readiness to write
    /// once its decrypted records have been taken.
    fn process(&mut self, action: WriteAction<'_>) -> io::Result<Progress> {
        loop {
            let status = self.connection.process_tls_records(&mut self.incoming);
            let mut discard = status.discard;
            let step: Result<Option<Progress>, io::Error> = match status.state {
                Err(err) => Err(tls_error(err)),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut result = Ok(None);
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(err) => {
                                result = Err(tls_error(err));
                                break;
                            }
                        }
                    }
                    match (result, action) {
                        (Ok(_), WriteAction::None) => Ok(Some(Progress::Plaintext)),
                        (result, _) => result,
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encoder)) => append_record(
                    &mut self.outgoing,
                    RECORD_BYTES_MAX,
                    |buf| encoder.encode(buf),
                    encode_size,
                )
                .map(|()| None)
                .map_err(|err| io::Error::other(format!("failed to encode a TLS record: {err}"))),
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // The encoded records stay in `outgoing`, in order,
                    // until the caller writes them to the socket.
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Progress::NeedsData)),
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => Ok(Some(Progress::Closed)),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let written = match action {
                        WriteAction::None => Ok(()),
                        WriteAction::Data(data) => append_record(
                            &mut self.outgoing,
                            data.len() + RECORD_OVERHEAD_BYTES,
                            |buf| traffic.encrypt(data, buf),
                            encrypt_size,
                        ),
                        WriteAction::CloseNotify => append_record(
                            &mut self.outgoing,
                            RECORD_OVERHEAD_BYTES,
                            |buf| traffic.queue_close_notify(buf),
                            encrypt_size,
                        ),
                    };
                    written.map(|()| Some(Progress::Ready)).map_err(|err| {
                        io::Error::other(format!("failed to encrypt a TLS record: {err}"))
                    })
                }
                // Early data is off (rustls' default `max_early_data_size`
                // of 0), so rustls never reports it.
                Ok(other) => Err(io::Error::other(format!("unexpected TLS state {other:?}"))),
            };
            self.incoming.drain(..discard);
            if let Some(progress) = step? {
                return Ok(progress);
            }
        }
    }

    /// Moves the alert rustls queued on a protocol error into `outgoing`.
    /// After the error rustls processes no more input, so an empty input
    /// buffer is passed.
    fn queue_alert(&mut self) {
        for _ in 0..ALERT_FLUSH_ROUNDS_MAX {
            let status = self.connection.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut encoder)) => {
                    if append_record(
                        &mut self.outgoing,
                        RECORD_BYTES_MAX,
                        |buf| encoder.encode(buf),
                        encode_size,
                    )
                    .is_err()
                    {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }
}

/// Appends one record to `outgoing` through `write`, first offering
/// `guess` bytes of room and then the exact size the error reports.
fn append_record<E>(
    outgoing: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required_size: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let filled = outgoing.len();
    outgoing.resize(filled + guess, 0);
    let mut result = write(&mut outgoing[filled..]);
    if let Err(err) = &result
        && let Some(size) = required_size(err)
    {
        outgoing.resize(filled + size, 0);
        result = write(&mut outgoing[filled..]);
    }
    match result {
        Ok(n) => {
            outgoing.truncate(filled + n);
            Ok(())
        }
        Err(err) => {
            outgoing.truncate(filled);
            Err(err)
        }
    }
}

fn encode_size(err: &EncodeError) -> Option<usize> {
    match err {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn encrypt_size(err: &EncryptError) -> Option<usize> {
    match err {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS error: {err}"))
}

fn not_writable(progress: Progress) -> io::Error {
    match progress {
        Progress::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "TLS session is closed"),
        _ => io::Error::other("TLS session is not ready for application data"),
    }
}

#[cfg(test)]
pub(super) fn tls_state_size() -> usize {
    std::mem::size_of::<TlsState>()
}
