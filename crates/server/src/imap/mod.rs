//! The IMAP listener and sessions.
//!
//! Code map:
//! - [`session`] drives one connection.
//! - [`dispatch`] gates each command by state and calls its handler in [`cmd`].
//! - [`sync`] and [`view`] keep a selected session's view of its mailbox current.
//! - [`control`] is the session table and the sweeper that replaces
//!   per-session timers.
//!
//! Every piece of session state is owned by the task that serves the
//! session; the only shared structures are the session table, the view
//! registry and the store, all reached through the [`ImapContext`] the
//! server instance owns.

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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_auth::UserDb;
use roost_proto::capability::CapabilityOptions;
use roost_store::MailStore;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{error, info};

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
        Arc::new(ImapContext {
            tls,
            tls_limits,
            store,
            users,
            config,
            views: ViewRegistry::default(),
            sessions: SessionTable::new(),
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
                    let id = ctx.next_session_id.fetch_add(1, Ordering::Relaxed);
                    sessions.spawn(session::run(stream, peer, Arc::clone(&ctx), id, kind));
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
