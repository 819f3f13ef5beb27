//! A worker process: serves the IMAP sessions the supervisor hands it.
//!
//! A worker opens the store like a single-process server but binds no
//! listener and never opens the users file. Connections arrive over its
//! socket to the supervisor with the governor's ticket, and every governor
//! question and password check goes back over the same socket through its
//! [`SupervisorLink`]. Mailbox changes made by other processes reach its
//! IDLE sessions through the store's change log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_seqpacket::UnixSeqpacket;
use tokio_seqpacket::ancillary::OwnedAncillaryMessage;
use tracing::{info, warn};

use super::link::SupervisorLink;
use super::message::{MESSAGE_BYTES_MAX, ToWorker};
use super::phases::PhaseBoard;
use crate::Config;
use crate::imap::control::SessionTable;
use crate::imap::password::PasswordCheck;
use crate::imap::{self, ImapContext, session};

/// Serves sessions until the supervisor says to stop or goes away.
pub async fn run_worker(config: Config, socket: UnixSeqpacket, phases: std::fs::File, index: usize) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = crate::open_store(&config).await?;
    let tls = crate::open_tls(&config).await?;
    let phases = Arc::new(PhaseBoard::open(phases).context("failed to map the phase board")?);
    let socket = Arc::new(socket);
    let link = SupervisorLink::start(Arc::clone(&socket), config.workers.answer_timeout);
    let table = SessionTable::for_worker(Arc::clone(&link), phases);
    let passwords = PasswordCheck::Supervisor(Arc::clone(&link));
    let ctx = ImapContext::with_table(store, passwords, Arc::clone(&config), tls, table);
    let sweeper = tokio::spawn(Arc::clone(&ctx.sessions).run_sweeper(crate::timeouts(&config)));
    imap::start_session_ids_at(&ctx, (index as u64 + 1) << 40);
    info!(worker = index, "worker ready");

    let sessions = crate::tasks::TaskCount::new();
    let mut buffer = vec![0u8; MESSAGE_BYTES_MAX];
    let mut attachment = [0u8; 64];
    loop {
        let received = socket.recv_with_ancillary(&mut buffer, &mut attachment).await;
        let (info, ancillary) = match received {
            Ok(received) => received,
            Err(err) => {
                warn!(worker = index, error = %err, "failed to read from the supervisor");
                break;
            }
        };
        if info.bytes_read() == 0 {
            info!(worker = index, "the supervisor closed the link");
            break;
        }
        let mut descriptors = Vec::new();
        for message in ancillary.into_messages() {
            if let OwnedAncillaryMessage::FileDescriptors(received) = message {
                descriptors.extend(received);
            }
        }
        let text = String::from_utf8_lossy(&buffer[..info.bytes_read()]).into_owned();
        let message = match ToWorker::decode(&text) {
            Ok(message) => message,
            Err(err) => {
                warn!(worker = index, error = %err, "invalid message from the supervisor");
                continue;
            }
        };
        match message {
            ToWorker::Connection { ticket, peer, listener, delay } => {
                let Some(descriptor) = descriptors.pop() else {
                    warn!(worker = index, ticket = ticket.0, "a connection arrived without its socket");
                    ctx.sessions.abandon(ticket);
                    continue;
                };
                let stream = std::net::TcpStream::from(descriptor);
                let stream = match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                    Ok(stream) => stream,
                    Err(err) => {
                        warn!(worker = index, %peer, error = %err, "failed to take over a connection");
                        ctx.sessions.abandon(ticket);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let id = imap::next_session_id(&ctx);
                let admitted = session::Admitted { ticket, delay };
                sessions.spawn(session::run(stream, peer, Arc::clone(&ctx), id, listener, admitted));
            }
            ToWorker::Evict { ticket, reason, retry_after } => {
                if let Some(control) = ctx.sessions.control(ticket) {
                    control.evict(reason, retry_after);
                }
            }
            ToWorker::Login { request, .. } | ToWorker::Delay { request, .. } | ToWorker::Verified { request, .. } => {
                link.answer(request, message)
            }
            ToWorker::ReloadTls => {
                let tls = Arc::clone(&ctx.tls);
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    let ok = match tokio::task::spawn_blocking(move || tls.reload()).await {
                        Ok(Ok(())) => true,
                        Ok(Err(err)) => {
                            warn!(worker = index, error = %err, "TLS reload failed; keeping the current certificate");
                            false
                        }
                        Err(err) => {
                            warn!(worker = index, error = %err, "TLS reload task failed");
                            false
                        }
                    };
                    let answer = super::message::ToSupervisor::Reloaded { ok }.encode();
                    let _ = socket.send(answer.as_bytes()).await;
                });
            }
            ToWorker::Shutdown => {
                info!(worker = index, "the supervisor asked to stop");
                break;
            }
        }
    }

    // Nothing reads the supervisor's answers any more: requests still
    // waiting fail now, and their sessions answer NO [UNAVAILABLE].
    link.close();
    ctx.sessions.shutdown_all();
    let ended = sessions.all_ended();
    if tokio::time::timeout(config.shutdown_grace + Duration::from_secs(1), ended).await.is_err() {
        warn!(worker = index, "sessions still open after the shutdown grace period; exiting anyway");
    }
    sweeper.abort();
    Ok(())
}
