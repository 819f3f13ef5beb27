//! One IMAP session: the connection driver and the state a session keeps.
//!
//! The driver waits on three things: the socket becoming readable, the
//! session's control (keepalive, timeout, shutdown) and, in IDLE, the
//! selected mailbox's change counter. While it waits it keeps no read or
//! write buffer: bytes are read into a per-thread scratch buffer, fed to the
//! command reader, and responses are built in an [`Output`] that lives only
//! while a command runs. Command handling is boxed so the waiting future
//! stays small.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::net::SocketAddr;
use std::sync::Arc;

use roost_proto::reader::{CommandReader, ReadEvent, ReadMode, ReaderLimits};
use roost_proto::types::command::{Command, CommandBody};
use roost_proto::types::core::Tag;
use roost_store::{AccountId, MailboxId, ModSeq, Snapshot, Uid};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::ImapContext;
use super::control::{Phase, Registration, SessionControl, request};
use super::output::{Output, Status};
use crate::transport::Transport;

/// Size of the per-thread buffer sockets are read into.
const READ_CHUNK_BYTES: usize = 16 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK_BYTES]);
}

/// The protocol state of RFC 3501 section 3, with the data each state needs.
pub enum State {
    NotAuthenticated { failures: u32 },
    Authenticated(Box<Account>),
    Selected(Box<Account>, Box<Selected>),
    Logout,
}

/// The logged-in user.
pub struct Account {
    pub id: AccountId,
    pub name: Box<str>,
}

/// The selected mailbox, in the state this session last reported.
pub struct Selected {
    pub id: MailboxId,
    pub name: Box<str>,
    pub read_only: bool,
    /// The snapshot whose sequence numbers the client was last sent.
    /// Shared with every other session that saw the same one.
    pub view: Arc<Snapshot>,
    /// UIDs that are `\Recent` in this session, ascending.
    pub recent: Vec<Uid>,
    /// The mailbox's highest MODSEQ, as the store announces it.
    pub changes: roost_store::ChangeReceiver,
    /// Flag changes this session made with STORE .SILENT (or reported in its
    /// own STORE response), not to be announced again by the next sync.
    pub own_changes: Vec<(Uid, ModSeq)>,
    /// The result of the last SEARCH with RETURN (SAVE), as UIDs
    /// (RFC 5182). `None` until a SEARCH saves one, and for an empty
    /// result; it goes with the mailbox when the session leaves it.
    pub saved_search: Option<Box<roost_proto::types::sequence::SequenceSet>>,
}

/// The multi-line exchange a session is in the middle of between reads.
pub enum Pending {
    None,
    /// IDLE is running; DONE ends it.
    Idle(Tag<'static>),
    /// AUTHENTICATE PLAIN is waiting for the client's response line.
    Authenticate(Tag<'static>),
}

/// Extensions the client turned on with ENABLE (RFC 5161).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enabled {
    /// IMAP4rev2 behaviour (RFC 9051): no \Recent, ESEARCH results,
    /// UTF-8 mailbox names.
    pub imap4rev2: bool,
    /// UTF-8 in quoted strings and mailbox names (RFC 6855).
    pub utf8_accept: bool,
}

/// Everything a session keeps between commands.
pub struct Session {
    pub ctx: Arc<ImapContext>,
    pub peer: SocketAddr,
    pub id: u64,
    pub state: State,
    pub pending: Pending,
    pub enabled: Enabled,
    pub security: Security,
    reader: CommandReader,
    registration: Registration,
}

/// The next step of the connection after a command.
pub enum Flow {
    Continue,
    Close,
    /// STARTTLS was accepted: the TLS handshake comes next.
    StartTls,
}

/// The protection of a connection, for LOGINDISABLED and PRIVACYREQUIRED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Security {
    /// TLS is active (implicit TLS or after STARTTLS).
    pub tls: bool,
    /// The client's address is in `trusted_networks`.
    pub trusted: bool,
}

impl Security {
    /// Returns whether passwords may be sent on this connection.
    pub fn login_allowed(&self) -> bool {
        self.tls || self.trusted
    }
}

impl Session {
    pub fn new(ctx: Arc<ImapContext>, peer: SocketAddr, id: u64, registration: Registration, tls: bool) -> Session {
        let trusted = ctx.config.trusted_networks.iter().any(|network| network.contains(peer.ip()));
        Session {
            security: Security { tls, trusted },
            ctx,
            peer,
            id,
            state: State::NotAuthenticated { failures: 0 },
            pending: Pending::None,
            enabled: Enabled::default(),
            reader: CommandReader::new(),
            registration,
        }
    }

    pub fn account(&self) -> Option<&Account> {
        match &self.state {
            State::Authenticated(account) | State::Selected(account, _) => Some(account),
            _ => None,
        }
    }

    pub fn selected(&self) -> Option<&Selected> {
        match &self.state {
            State::Selected(_, selected) => Some(selected),
            _ => None,
        }
    }

    pub fn selected_mut(&mut self) -> Option<&mut Selected> {
        match &mut self.state {
            State::Selected(_, selected) => Some(selected),
            _ => None,
        }
    }

    /// Lets the client send UTF-8 in quoted strings from now on, after
    /// `ENABLE UTF8=ACCEPT` or `ENABLE IMAP4rev2` (RFC 6855, RFC 9051).
    pub fn accept_utf8(&mut self) {
        let mut options = self.reader.options();
        options.utf8_accepted = true;
        self.reader.set_options(options);
    }

    fn reader_limits(&self) -> ReaderLimits {
        let limits = &self.ctx.config.limits;
        match self.state {
            State::NotAuthenticated { .. } | State::Logout => ReaderLimits {
                line_bytes_max: limits.line_bytes_max,
                literal_bytes_max: limits.literal_bytes_max_unauthenticated,
                append_literal_bytes_max: limits.literal_bytes_max_unauthenticated,
                command_bytes_max: limits.line_bytes_max + limits.literal_bytes_max_unauthenticated,
            },
            _ => ReaderLimits {
                line_bytes_max: limits.line_bytes_max,
                literal_bytes_max: limits.command_bytes_max,
                append_literal_bytes_max: limits.message_bytes_max,
                command_bytes_max: limits.command_bytes_max,
            },
        }
    }

    fn read_mode(&self) -> ReadMode {
        match self.pending {
            Pending::None => ReadMode::Command,
            Pending::Idle(_) => ReadMode::IdleDone,
            Pending::Authenticate(_) => ReadMode::AuthenticateData,
        }
    }

    fn phase(&self) -> Phase {
        match (&self.state, &self.pending) {
            (_, Pending::Idle(_)) => Phase::Idle,
            (State::NotAuthenticated { .. }, _) => Phase::Unauthenticated,
            // Part of a command (an APPEND literal, say) is buffered: the
            // session must not be preempted until the command completes.
            _ if !self.reader.is_idle() => Phase::Partial,
            _ => Phase::Authenticated,
        }
    }

    /// Returns the governor's ticket for this connection.
    pub fn ticket(&self) -> roost_governor::Ticket {
        self.registration.ticket
    }

    fn touch(&self, phase: Phase) {
        self.ctx.sessions.touch(&self.registration.control, phase);
    }
}

/// The kind of listener a connection arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Cleartext, with STARTTLS offered.
    Plain,
    /// TLS from the first byte (the port 993 role).
    ImplicitTls,
}

/// What the governor decided for a connection it admitted.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    pub ticket: roost_governor::Ticket,
    /// Wait before the greeting, to damp a reconnect storm.
    pub delay: std::time::Duration,
}

/// Serves one connection until it closes. `peer` is the client's address,
/// from the PROXY header when a trusted load balancer sent one.
///
/// This future is the connection's task and stays alive while the session
/// waits, so it holds only the session, the transport and a [`Wait`].
/// Everything that runs between waits is boxed and freed when it ends.
pub fn run(
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
    id: u64,
    listener: Listener,
    admitted: Admitted,
) -> impl Future<Output = ()> + Send {
    // An async fn keeps its arguments for its whole life. Boxed, they cost
    // the waiting future one pointer instead of about 100 bytes.
    serve(Box::new(Opening { socket, peer, ctx, id, listener, admitted }))
}

/// A new connection's arguments, until the session is set up.
struct Opening {
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
    id: u64,
    listener: Listener,
    admitted: Admitted,
}

async fn serve(opening: Box<Opening>) {
    let (id, peer) = (opening.id, opening.peer);
    let Some((mut session, mut transport)) = Box::pin(open(opening)).await else {
        return;
    };
    let mut wake = None;
    loop {
        match Box::pin(step(&mut session, &mut transport, wake.take())).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::StartTls) => {
                // Whatever the client sent after the STARTTLS line came in
                // plaintext and is dropped, never run after the handshake.
                let buffered = session.reader.take_buffered();
                let ctx = Arc::clone(&session.ctx);
                match Box::pin(transport.start_tls(&ctx.tls, &ctx.tls_limits, buffered)).await {
                    Ok(tls) => transport = tls,
                    Err(err) => {
                        info!(session = id, %peer, error = %err, "STARTTLS handshake failed");
                        return;
                    }
                }
                session.security.tls = true;
                debug!(session = id, "STARTTLS completed");
                continue;
            }
            Ok(Flow::Close) => break,
            Err(err) => {
                debug!(session = id, error = %err, "IMAP connection failed");
                break;
            }
        }
        wake = Some(Wait::new(&session, &transport).await);
    }
    let _ = Box::pin(transport.shutdown()).await;
    info!(session = id, %peer, "IMAP connection closed");
}

/// Registers the connection, waits out the governor's delay, runs the TLS
/// handshake on the implicit-TLS listener and sends the greeting. Returns
/// `None` when the connection ended on the way.
async fn open(opening: Box<Opening>) -> Option<(Session, Transport)> {
    let Opening { socket, peer, ctx, id, listener, admitted } = *opening;
    let registration = ctx.sessions.register(admitted.ticket);
    info!(session = id, %peer, ?listener, "IMAP connection opened");
    if !admitted.delay.is_zero() {
        debug!(session = id, delay = ?admitted.delay, "greeting delayed by the reconnect rate");
        tokio::time::sleep(admitted.delay).await;
    }
    let mut transport = match listener {
        Listener::Plain => Transport::Plain(socket),
        Listener::ImplicitTls => match Transport::accept_tls(socket, &ctx.tls, &ctx.tls_limits).await {
            Ok(transport) => transport,
            Err(err) => {
                info!(session = id, %peer, error = %err, "TLS handshake failed");
                return None;
            }
        },
    };
    let session = Session::new(ctx, peer, id, registration, transport.is_tls());
    // Built here, so the line is freed once sent rather than kept by the
    // connection's future for the session's life.
    let greeting = format!("* OK [CAPABILITY {}] Roost ready\r\n", super::capabilities(&session));
    transport.write_all(greeting.as_bytes()).await.ok()?;
    Some((session, transport))
}

/// Handles what woke the session, then every complete command already
/// buffered, and prepares the session to wait again: buffers released,
/// activity and phase recorded. Returns how the connection goes on.
async fn step(session: &mut Session, stream: &mut Transport, wake: Option<Wake>) -> std::io::Result<Flow> {
    match wake {
        None => {}
        Some(Wake::Readable) => {
            if !read_available(session, stream)? {
                return Ok(Flow::Close);
            }
        }
        Some(Wake::Control) => {
            if let Flow::Close = handle_requests(session, stream).await? {
                return Ok(Flow::Close);
            }
        }
        Some(Wake::MailboxChanged) => {
            if let Flow::Close = report_changes(session, stream).await? {
                return Ok(Flow::Close);
            }
        }
    }
    match process_buffered(session, stream).await? {
        Flow::Continue => {}
        other => return Ok(other),
    }
    if session.reader.is_idle() {
        session.reader.release_buffers();
    }
    stream.release_buffers();
    session.touch(session.phase());
    Ok(Flow::Continue)
}

/// Sends an idling client what changed in its mailbox.
async fn report_changes(session: &mut Session, stream: &mut Transport) -> std::io::Result<Flow> {
    // A deleted mailbox wakes its watchers too, so the client in IDLE gets
    // the BYE at once, as a command would.
    if super::cmd::selected_mailbox_gone(session).await {
        stream.write_all(b"* BYE Selected mailbox was deleted\r\n").await?;
        return Ok(Flow::Close);
    }
    let mut out = Output::new();
    super::sync::sync(session, &mut out, true).await;
    out.flush(stream).await?;
    Ok(Flow::Continue)
}

/// The event that ended a session's wait.
enum Wake {
    Readable,
    Control,
    MailboxChanged,
}

/// The wait between commands: for the socket to become readable, for a
/// request on the session's control (keepalive, timeout, eviction,
/// shutdown) and, in IDLE, for a change to the selected mailbox.
///
/// It polls each source in place and stores no future of its own, so a
/// waiting session costs three references here. Each source keeps the
/// task's waker in a slot it already has.
struct Wait<'a> {
    stream: &'a Transport,
    control: &'a SessionControl,
    changes: Option<&'a roost_store::ChangeReceiver>,
}

impl<'a> Wait<'a> {
    fn new(session: &'a Session, stream: &'a Transport) -> Wait<'a> {
        let changes = match (&session.pending, &session.state) {
            (Pending::Idle(_), State::Selected(_, selected)) => Some(&selected.changes),
            _ => None,
        };
        Wait { stream, control: &session.registration.control, changes }
    }
}

impl Future for Wait<'_> {
    type Output = Wake;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Wake> {
        if self.control.poll_requests(cx).is_ready() {
            return Poll::Ready(Wake::Control);
        }
        if let Some(changes) = self.changes {
            match changes.poll_changed(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::MailboxChanged),
                // The store is shutting down, and the control's shutdown
                // request follows.
                Poll::Ready(Err(roost_store::Closed)) => self.changes = None,
                Poll::Pending => {}
            }
        }
        // An error is reported by the read that follows.
        self.stream.poll_read_ready(cx).map(|_| Wake::Readable)
    }
}

/// Reads what the socket has into the command reader. Returns false at EOF.
fn read_available(session: &mut Session, stream: &mut Transport) -> std::io::Result<bool> {
    READ_BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        match stream.try_read(&mut buffer) {
            Ok(0) => Ok(false),
            Ok(n) => {
                session.reader.feed(&buffer[..n]);
                Ok(true)
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(err),
        }
    })
}

async fn handle_requests(session: &mut Session, stream: &mut Transport) -> std::io::Result<Flow> {
    let requests = session.registration.control.take_requests();
    if requests & request::SHUTDOWN != 0 {
        stream.write_all(b"* BYE Server shutting down\r\n").await?;
        return Ok(Flow::Close);
    }
    if requests & request::TIMEOUT != 0 {
        stream.write_all(b"* BYE Autologout: idle for too long\r\n").await?;
        return Ok(Flow::Close);
    }
    if requests & request::EVICT != 0 {
        let (reason, retry_seconds) = session.registration.control.eviction();
        let text = super::admission::unavailable_text(reason, retry_seconds);
        info!(session = session.id, peer = %session.peer, reason = reason.label(), "session closed by the governor");
        stream.write_all(format!("* BYE [UNAVAILABLE] {text}\r\n").as_bytes()).await?;
        return Ok(Flow::Close);
    }
    if requests & request::KEEPALIVE != 0 && matches!(session.pending, Pending::Idle(_)) {
        stream.write_all(b"* OK Still here\r\n").await?;
    }
    Ok(Flow::Continue)
}

async fn process_buffered(session: &mut Session, stream: &mut Transport) -> std::io::Result<Flow> {
    loop {
        let limits = session.reader_limits();
        let Some(event) = session.reader.next(session.read_mode(), &limits) else {
            return Ok(Flow::Continue);
        };
        session.touch(Phase::Busy);
        let mut out = Output::new();
        let flow = match event {
            ReadEvent::Command(command) => super::dispatch::dispatch(session, command, &mut out, stream).await?,
            ReadEvent::Extended { tag, command } => {
                super::dispatch::dispatch_extended(session, tag, command, &mut out, stream).await?
            }
            ReadEvent::ContinuationNeeded { .. } => {
                out.line("+ Ready for literal data");
                Flow::Continue
            }
            ReadEvent::IdleDone => {
                if let Pending::Idle(tag) = std::mem::replace(&mut session.pending, Pending::None) {
                    super::sync::sync(session, &mut out, true).await;
                    out.status(Some(tag.inner()), Status::Ok, None, "IDLE terminated");
                }
                Flow::Continue
            }
            ReadEvent::AuthenticateData(data) => super::cmd::auth::authenticate_data(session, data, &mut out).await,
            ReadEvent::Rejected { tag, kind, code, text, close } => {
                warn!(session = session.id, peer = %session.peer, %text, "rejected client input");
                out.raw(&roost_proto::response::encode_status(tag.as_ref(), kind, code, &text));
                if close {
                    out.untagged("BYE Closing connection after a protocol error");
                    out.flush(stream).await?;
                    return Ok(Flow::Close);
                }
                Flow::Continue
            }
        };
        out.flush(stream).await?;
        match flow {
            Flow::Continue => {}
            // STARTTLS stops here: what is still buffered was sent in
            // plaintext and is dropped by the caller.
            Flow::Close | Flow::StartTls => return Ok(flow),
        }
    }
}

/// The tag and body of a command, for handlers.
pub type ClientCommand = Command<'static>;
pub type Body = CommandBody<'static>;

#[cfg(test)]
mod tests {
    //! Pins the memory a waiting session keeps, so growth is noticed in
    //! review. A waiting session is its task (the `run` future, which owns
    //! the socket and the `Session`) plus the boxed state it points to.
    //! Buffers are released before every wait, so they do not count.

    use std::mem::size_of;

    use super::*;

    /// Bytes of the session's own struct.
    const SESSION_BYTES_MAX: usize = 256;
    /// Bytes of the boxed per-mailbox state of a selected session,
    /// excluding the shared snapshot.
    const SELECTED_BYTES_MAX: usize = 128;
    /// Bytes of the whole connection future while it waits, socket
    /// registration handle and session included (368 measured).
    const RUN_FUTURE_BYTES_MAX: usize = 448;

    #[test]
    fn waiting_session_state_stays_small() {
        let session = size_of::<Session>();
        let selected = size_of::<Selected>();
        let account = size_of::<Account>();
        assert!(session <= SESSION_BYTES_MAX, "Session is {session} bytes");
        assert!(selected <= SELECTED_BYTES_MAX, "Selected is {selected} bytes");
        assert!(account <= 32, "Account is {account} bytes");
    }

    #[tokio::test]
    async fn connection_future_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let store = roost_store::sqlite::SqliteStore::open(dir.path()).unwrap();
        let users = roost_auth::UserDb::open(dir.path()).unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            imap_listen: None,
            lmtp_listen: None,
            imaps_listen: None,
            trusted_networks: crate::config::Network::loopback(),
            tls: crate::config::TlsConfig {
                settings: crate::tls::TlsSettings { cert_path: None, key_path: None },
                timeout_handshake: std::time::Duration::from_secs(10),
                incoming_bytes_max: 84_357,
            },
            shutdown_grace: std::time::Duration::from_secs(1),
            imap: crate::config::ImapConfig {
                idle_keepalive: std::time::Duration::from_secs(120),
                timeout_authenticated: std::time::Duration::from_secs(1800),
                timeout_unauthenticated: std::time::Duration::from_secs(60),
                default_mailboxes: Vec::new(),
            },
            lmtp: crate::config::LmtpConfig { local_domains: Vec::new(), hostname: "test".to_owned() },
            limits: crate::config::Limits {
                line_bytes_max: 65536,
                literal_bytes_max_unauthenticated: 8192,
                message_bytes_max: 1 << 20,
                command_bytes_max: 1 << 20,
                mailbox_name_bytes_max: 1024,
                mailbox_depth_max: 32,
                mime_depth_max: 32,
                mime_parts_max: 10_000,
                login_failures_max: 3,
                lmtp_recipients_max: 10,
                mailboxes_per_account_max: 100,
                store_reader_cache_bytes: 256 * 1024,
            },
            governor: crate::config::GovernorConfig::with_capacity(10, 10),
            metrics_listen: None,
            workers: crate::config::WorkersConfig::single_process(),
        };
        let tls = crate::tls::TlsAcceptor::load(&config.tls.settings, dir.path()).unwrap();
        let ctx = ImapContext::new(Arc::new(store), Arc::new(users), Arc::new(config), Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let roost_governor::Admission::Admit { ticket, delay, .. } = ctx.sessions.admit_connection(peer.ip()) else {
            panic!("the governor refused the only connection");
        };

        let future = run(server, peer, ctx, 1, Listener::Plain, Admitted { ticket, delay });
        let bytes = std::mem::size_of_val(&future);
        assert!(bytes <= RUN_FUTURE_BYTES_MAX, "connection future is {bytes} bytes");
        drop(future);
        drop(client);
    }
}
