//! The IMAP listener and sessions.
//!
//! Code map:
//! - [`session`] drives one connection.
//! - [`dispatch`] gates each command by state and calls its handler in [`cmd`].
//! - [`sync`] and [`view`] keep a selected session's view of its mailbox current.
//! - [`control`] is the session table and the sweeper that replaces
//!   per-session timers.
//! - [`admission`] connects the session table to the connection governor.
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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::tls::TlsAcceptor;
use crate::transport::TlsLimits;
use control::SessionTable;
use session::Session;
use view::ViewRegistry;

/// Most password checks run at once. Hash schemes such as Argon2id take
/// tens of milliseconds and much memory each, so a burst of logins queues
/// here instead of exhausting the blocking thread pool.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 8;

/// The state every IMAP session of one server shares.
pub struct ImapContext {
    pub store: Arc<dyn MailStore>,
    pub users: Arc<UserDb>,
    pub config: Arc<Config>,
    pub views: ViewRegistry,
    pub sessions: Arc<SessionTable>,
    pub password_checks: Semaphore,
    /// The TLS configuration for STARTTLS and the implicit-TLS listener,
    /// swapped in place when the certificate is reloaded.
    pub tls: Arc<TlsAcceptor>,
    pub tls_limits: TlsLimits,
    next_session_id: AtomicU64,
}

impl ImapContext {
    pub fn new(store: Arc<dyn MailStore>, users: Arc<UserDb>, config: Arc<Config>, tls: Arc<TlsAcceptor>) -> Arc<ImapContext> {
        let tls_limits = TlsLimits {
            handshake_timeout: config.tls.timeout_handshake,
            incoming_bytes_max: config.tls.incoming_bytes_max,
        };
        let sessions = SessionTable::new(roost_governor::Governor::new(config.governor.policy.clone()));
        Arc::new(ImapContext {
            tls,
            tls_limits,
            store,
            users,
            config,
            views: ViewRegistry::default(),
            sessions,
            password_checks: Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
            next_session_id: AtomicU64::new(1),
        })
    }
}

/// Accepts connections until `shutdown` turns true, then requests every session
/// to send BYE and waits for them to end.
pub async fn serve(
    listener: TcpListener,
    kind: session::Listener,
    ctx: Arc<ImapContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut accept_failures = 0u32;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    accept_failures = 0;
                    let _ = stream.set_nodelay(true);
                    if ctx.config.governor.trusted_proxies.iter().any(|network| network.contains(peer.ip())) {
                        // The header takes a read, so it runs in the
                        // connection's own task, never in the accept loop.
                        let ctx = Arc::clone(&ctx);
                        sessions.spawn(async move {
                            if let Some(client) = read_proxy_header(&stream, peer, &ctx).await
                                && let Some(admitted) = admit(&stream, client, &ctx, kind)
                            {
                                let id = ctx.next_session_id.fetch_add(1, Ordering::Relaxed);
                                session::run(stream, client, ctx, id, kind, admitted).await;
                            }
                        });
                    } else if let Some(admitted) = admit(&stream, peer, &ctx, kind) {
                        let id = ctx.next_session_id.fetch_add(1, Ordering::Relaxed);
                        sessions.spawn(session::run(stream, peer, Arc::clone(&ctx), id, kind, admitted));
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
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    info!(listener = ?kind, sessions = ctx.sessions.len(), "IMAP listener closed; ending sessions");
    ctx.sessions.shutdown_all();
    while sessions.join_next().await.is_some() {}
}

/// Asks the governor about a new connection from `client`. A refused
/// connection gets `* BYE [UNAVAILABLE]` (or `[LIMIT]`) on the cleartext
/// listener and is closed; on the implicit-TLS listener it is closed
/// before any handshake, since nothing can be sent in clear there.
fn admit(stream: &TcpStream, client: SocketAddr, ctx: &ImapContext, kind: session::Listener) -> Option<session::Admitted> {
    match ctx.sessions.admit_connection(client.ip()) {
        roost_governor::Admission::Admit { ticket, delay, .. } => Some(session::Admitted { ticket, delay }),
        roost_governor::Admission::Refuse { refusal, .. } => {
            if kind == session::Listener::Plain {
                let line = format!("* BYE [{}] {}\r\n", refusal.code(), refusal.text());
                // A fresh socket's send buffer takes the line at once; if it
                // does not, the client just sees the connection close.
                let _ = stream.try_write(line.as_bytes());
            }
            None
        }
    }
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
