//! The IMAP listener and sessions.
//!
//! Code map:
//! - [`session`] drives one connection.
//! - [`dispatch`] gates each command by state and calls its handler in [`cmd`].
//! - [`sync`] and [`view`] keep a selected session's view of its mailbox current.
//! - [`control`] is the session table and the sweeper that replaces
//!   per-session timers.
//! - [`admission`] connects the session table to the connection governor.
//! - [`password`] checks LOGIN and AUTHENTICATE passwords here or in the
//!   supervisor.
//!
//! Every piece of session state is owned by the task that serves the
//! session; the only shared structures are the session table, the view
//! registry and the store, all reached through the [`ImapContext`] the
//! server instance owns.

pub mod admission;
pub mod cmd;
pub mod control;
pub mod dispatch;
pub mod flags;
pub mod names;
pub mod output;
pub mod password;
pub mod sequence;
pub mod session;
pub mod sync;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_auth::UserDb;
use roost_proto::capability::CapabilityOptions;
use roost_store::MailStore;
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::tls::TlsAcceptor;
use crate::transport::TlsLimits;
use control::SessionTable;
use password::PasswordCheck;
use session::Session;
use view::ViewRegistry;

/// Most password checks run at once. Hash schemes such as Argon2id take
/// tens of milliseconds and much memory each, so a burst of logins queues
/// here instead of exhausting the blocking thread pool.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 8;

/// The state every IMAP session of one server shares.
pub struct ImapContext {
    pub store: Arc<dyn MailStore>,
    /// Where passwords are checked: against this process's users file, or
    /// by the supervisor for a worker, which never opens the file.
    pub passwords: PasswordCheck,
    pub config: Arc<Config>,
    pub views: ViewRegistry,
    pub sessions: Arc<SessionTable>,
    /// Permits for the password checks this process runs; in the
    /// supervisor they also cover the checks its workers ask for.
    pub password_checks: Semaphore,
    /// The TLS configuration for STARTTLS and the implicit-TLS listener,
    /// swapped in place when the certificate is reloaded.
    pub tls: Arc<TlsAcceptor>,
    pub tls_limits: TlsLimits,
    next_session_id: AtomicU64,
}

impl ImapContext {
    /// Creates the context of a single-process server with its own governor.
    pub fn new(store: Arc<dyn MailStore>, users: Arc<UserDb>, config: Arc<Config>, tls: Arc<TlsAcceptor>) -> Arc<ImapContext> {
        let governor = roost_governor::Governor::new(config.governor.policy.clone());
        let policy = &config.governor.policy;
        let tickets = (policy.max_sessions as usize + policy.max_preauth as usize) * 5 / 4 + 1024;
        let phases = crate::workers::phases::PhaseBoard::create(tickets).expect("memfd_create works on Linux");
        let table = SessionTable::new(governor, Arc::new(phases));
        ImapContext::with_table(store, PasswordCheck::Local(users), config, tls, table)
    }

    /// Creates the context around an existing session table.
    pub fn with_table(
        store: Arc<dyn MailStore>,
        passwords: PasswordCheck,
        config: Arc<Config>,
        tls: Arc<TlsAcceptor>,
        sessions: Arc<SessionTable>,
    ) -> Arc<ImapContext> {
        let tls_limits = TlsLimits {
            handshake_timeout: config.tls.timeout_handshake,
            incoming_bytes_max: config.tls.incoming_bytes_max,
        };
        Arc::new(ImapContext {
            tls,
            tls_limits,
            store,
            passwords,
            config,
            views: ViewRegistry::default(),
            sessions,
            password_checks: Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
            next_session_id: AtomicU64::new(1),
        })
    }
}

/// Makes session ids start at `first`, so that the ids of worker processes
/// do not overlap in the logs.
pub fn start_session_ids_at(ctx: &ImapContext, first: u64) {
    ctx.next_session_id.store(first, Ordering::Relaxed);
}

/// Returns a new session id, unique in this process.
pub fn next_session_id(ctx: &ImapContext) -> u64 {
    ctx.next_session_id.fetch_add(1, Ordering::Relaxed)
}

/// Where an admitted connection is served.
#[derive(Clone)]
pub enum Dispatch {
    /// In this process.
    Local,
    /// In a worker process, handed over by the pool.
    Workers(Arc<crate::workers::WorkerPool>),
}

/// Accepts connections until `shutdown` turns true, then requests every session
/// to send BYE and waits for them to end.
pub async fn serve(
    listener: TcpListener,
    kind: session::Listener,
    ctx: Arc<ImapContext>,
    dispatch: Dispatch,
    mut shutdown: watch::Receiver<bool>,
) {
    // Accepting through the standard library's socket leaves a refused
    // connection out of the reactor: it costs the accept, one write and
    // the close, and is never registered with epoll.
    let registered = listener.into_std().and_then(|listener| {
        // SAFETY: the standard listener owns its descriptor, which stays open
        // and unchanged until the AsyncFd that owns the listener is dropped.
        unsafe { AsyncFd::register(listener) }.map_err(std::io::Error::from)
    });
    let listener = match registered {
        Ok(listener) => listener,
        Err(err) => {
            error!(error = %err, "failed to set up the IMAP listener");
            return;
        }
    };
    let sessions = crate::tasks::TaskCount::new();
    let mut accept_failures = 0u32;
    loop {
        tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok((stream, peer)) => {
                    accept_failures = 0;
                    if ctx.config.governor.trusted_proxies.iter().any(|network| network.contains(peer.ip())) {
                        let Some(stream) = into_tokio(stream, peer) else { continue };
                        // The header takes a read, so it runs in the
                        // connection's own task, never in the accept loop.
                        let ctx = Arc::clone(&ctx);
                        let dispatch = dispatch.clone();
                        sessions.spawn(async move {
                            let Some(client) = read_proxy_header(&stream, peer, &ctx).await else { return };
                            match ctx.sessions.admit_connection(client.ip()) {
                                roost_governor::Admission::Admit { ticket, delay, .. } => match dispatch {
                                    Dispatch::Local => {
                                        let id = next_session_id(&ctx);
                                        let admitted = session::Admitted { ticket, delay };
                                        session::run(stream, client, ctx, id, kind, admitted).await;
                                    }
                                    Dispatch::Workers(pool) => match stream.into_std() {
                                        Ok(stream) => pool.hand_over(stream.into(), ticket, client, kind, delay).await,
                                        Err(err) => {
                                            warn!(%client, error = %err, "failed to detach a connection for a worker");
                                            ctx.sessions.abandon(ticket);
                                        }
                                    },
                                },
                                roost_governor::Admission::Refuse { refusal, .. } => {
                                    if kind == session::Listener::Plain {
                                        let _ = stream.try_write(refusal_line(&refusal).as_bytes());
                                    }
                                }
                            }
                        });
                        continue;
                    }
                    match ctx.sessions.admit_connection(peer.ip()) {
                        roost_governor::Admission::Admit { ticket, delay, .. } => {
                            if let Dispatch::Workers(pool) = &dispatch {
                                // The worker takes the socket as it is; nothing
                                // here registers it with this process's reactor.
                                let pool = Arc::clone(pool);
                                sessions.spawn(async move { pool.hand_over(stream.into(), ticket, peer, kind, delay).await });
                                continue;
                            }
                            let Some(stream) = into_tokio(stream, peer) else {
                                ctx.sessions.abandon(ticket);
                                continue;
                            };
                            let id = next_session_id(&ctx);
                            let admitted = session::Admitted { ticket, delay };
                            sessions.spawn(session::run(stream, peer, Arc::clone(&ctx), id, kind, admitted));
                        }
                        roost_governor::Admission::Refuse { refusal, .. } => {
                            // Nothing can be sent in clear on the TLS port, so
                            // the connection is closed before any handshake.
                            // On the cleartext port a fresh socket's send
                            // buffer takes the one line at once.
                            if kind == session::Listener::Plain {
                                send_and_close(stream, refusal_line(&refusal).as_bytes());
                            }
                        }
                    }
                }
                Err(err) => {
                    // Running out of descriptors is transient: back off and
                    // retry rather than spinning or exiting.
                    accept_failures += 1;
                    error!(error = %err, "failed to accept an IMAP connection");
                    let backoff = std::time::Duration::from_millis(10u64 << accept_failures.min(10));
                    tokio::time::sleep(backoff).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    info!(listener = ?kind, sessions = ctx.sessions.len(), "IMAP listener closed; ending sessions");
    ctx.sessions.shutdown_all();
    sessions.all_ended().await;
}

/// Waits for the next connection on `listener`.
async fn accept(listener: &AsyncFd<std::net::TcpListener>) -> std::io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        if let Ok(accepted) = ready.try_io(|listener| listener.get_ref().accept()) {
            return accepted;
        }
    }
}

/// Hands an accepted socket to the reactor, for a connection that will be served.
fn into_tokio(stream: std::net::TcpStream, peer: SocketAddr) -> Option<TcpStream> {
    let converted = stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream));
    match converted {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(err) => {
            warn!(%peer, error = %err, "failed to set up an accepted IMAP connection");
            None
        }
    }
}

/// Sends `line` and closes the connection, with the line and the FIN in one
/// segment: MSG_MORE holds the data back until the close flushes both,
/// which saves the peer and the kernel one packet per refused connection.
fn send_and_close(stream: std::net::TcpStream, line: &[u8]) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for as long as `stream` lives, and the
    // buffer is valid for `line.len()` bytes.
    let sent = unsafe { libc::send(stream.as_raw_fd(), line.as_ptr().cast(), line.len(), libc::MSG_MORE | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        debug!(error = %std::io::Error::last_os_error(), "failed to send a refusal");
    }
    drop(stream);
}

/// Returns the line a connection refused before login gets: `* BYE
/// [UNAVAILABLE]` or `* BYE [LIMIT]` with the reason and a retry hint.
fn refusal_line(refusal: &roost_governor::Refusal) -> String {
    format!("* BYE [{}] {}\r\n", refusal.code(), refusal.text())
}

/// Reads the PROXY protocol header a trusted load balancer sends first and
/// returns the client's address, or `None` when the header is missing,
/// invalid or late (the connection is then dropped).
async fn read_proxy_header(stream: &TcpStream, peer: SocketAddr, ctx: &ImapContext) -> Option<SocketAddr> {
    let governor = &ctx.config.governor;
    match crate::proxy_protocol::read_header(stream, governor.proxy_header_bytes_max, governor.proxy_header_timeout).await {
        Ok(Some(client)) => Some(client),
        // LOCAL or UNKNOWN: the balancer's own connection, such as a health check.
        Ok(None) => Some(peer),
        Err(err) => {
            warn!(%peer, error = %err, "closing a connection from a trusted proxy without a valid PROXY header");
            None
        }
    }
}

/// The CAPABILITY list for `session`, space-separated. Before TLS, a
/// client outside `trusted_networks` gets LOGINDISABLED and no AUTH=.
pub fn capabilities(session: &Session) -> String {
    let protocol_state = dispatch::protocol_state(&session.state);
    let options = CapabilityOptions {
        login_disabled: !session.security.login_allowed(),
        starttls_offered: !session.security.tls,
        append_limit_bytes: session.ctx.config.limits.message_bytes_max as u64,
    };
    roost_proto::capability::capability_line(protocol_state, &options)
}
