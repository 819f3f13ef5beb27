//! LMTP (RFC 2033) listener and sessions: local delivery from an MTA such
//! as Postfix into users' INBOXes.
//!
//! `protocol` (with `command` and `data`) is the I/O-free part: it turns
//! input bytes into replies and events. `connection` drives it over a
//! socket and hands messages to [`Deliverer`]. Neither part depends on how
//! the store keeps mail.

mod command;
mod connection;
mod data;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use self::connection::ConnectionConfig;
use self::protocol::SessionConfig;
use crate::config::Config;
use crate::delivery::Deliverer;

/// Maximum pause after failed accepts, which usually mean the process is
/// out of file descriptors and must wait for sessions to end.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts LMTP connections until `shutdown` becomes true (or its sender is
/// dropped), then stops accepting. Sessions between commands get
/// `421 4.3.2` at once; sessions in DATA finish their delivery and replies
/// first. Returns when every session has ended.
pub async fn serve(listener: TcpListener, deliverer: Arc<Deliverer>, config: Arc<Config>, mut shutdown: watch::Receiver<bool>) {
    let connection_config = Arc::new(connection_config(&config));
    let mut sessions = JoinSet::new();
    let mut backoff = Duration::from_millis(10);

    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(10);
                    let session = connection::run(stream, peer, deliverer.clone(), connection_config.clone(), shutdown.clone());
                    sessions.spawn(session);
                }
                Err(error) => {
                    error!(%error, retry_in_ms = backoff.as_millis() as u64, "failed to accept an LMTP connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(finished) = sessions.join_next(), if !sessions.is_empty() => log_session_end(finished),
        }
    }

    drop(listener);
    info!(sessions = sessions.len(), "LMTP listener stopped; waiting for sessions to end");
    while let Some(finished) = sessions.join_next().await {
        log_session_end(finished);
    }
    info!("LMTP sessions ended");
}

fn connection_config(config: &Config) -> ConnectionConfig {
    let session = SessionConfig {
        hostname: config.lmtp.hostname.clone(),
        local_domains: config.lmtp.local_domains.iter().map(|domain| domain.to_ascii_lowercase()).collect(),
        line_bytes_max: config.limits.line_bytes_max,
        message_bytes_max: config.limits.message_bytes_max,
        recipients_max: config.limits.lmtp_recipients_max,
    };
    ConnectionConfig { session, timeout_idle: config.imap.timeout_unauthenticated }
}

fn log_session_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        warn!(%error, "LMTP session task failed");
    }
}
