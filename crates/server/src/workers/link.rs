//! A worker's link to the supervisor: the governor's decisions for the
//! sessions this worker serves, asked over the worker's socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roost_governor::{ClassId, LoginDecision, Reason, Refusal, Ticket};
use tokio::sync::{mpsc, oneshot};
use tokio_seqpacket::UnixSeqpacket;
use tracing::warn;

use super::message::{ToSupervisor, ToWorker};

/// Longest a worker waits for the supervisor's answer before refusing the
/// login itself.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker's side of its socket to the supervisor.
pub struct SupervisorLink {
    /// Messages for the writer task, which owns the sending side. Every
    /// session sends a bounded number (one release, a few requests), so
    /// the queue is bounded by the sessions this worker holds.
    outgoing: mpsc::UnboundedSender<ToSupervisor>,
    pending: Mutex<HashMap<u64, oneshot::Sender<ToWorker>>>,
    next_request: AtomicU64,
}

impl SupervisorLink {
    /// Starts the writer task on `socket`; must run inside a Tokio runtime.
    pub fn start(socket: Arc<UnixSeqpacket>) -> Arc<SupervisorLink> {
        let (outgoing, mut queue) = mpsc::unbounded_channel::<ToSupervisor>();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if let Err(err) = socket.send(message.encode().as_bytes()).await {
                    warn!(error = %err, "failed to send to the supervisor");
                    return;
                }
            }
        });
        Arc::new(SupervisorLink { outgoing, pending: Mutex::new(HashMap::new()), next_request: AtomicU64::new(1) })
    }

    fn send(&self, message: ToSupervisor) {
        // A closed queue means the supervisor is gone and the worker is
        // shutting down; nothing is left to tell.
        let _ = self.outgoing.send(message);
    }

    /// Tells the supervisor that the connection holding `ticket` closed.
    pub fn release(&self, ticket: Ticket) {
        self.send(ToSupervisor::Release { ticket });
    }

    /// Passes on the client's name from `ID`.
    pub fn identify(&self, ticket: Ticket, name: &str) {
        self.send(ToSupervisor::Identify { ticket, name: name.to_owned() });
    }

    async fn request(&self, build: impl FnOnce(u64) -> ToSupervisor) -> Option<ToWorker> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(request, reply);
        self.send(build(request));
        let answered = tokio::time::timeout(ANSWER_TIMEOUT, answer).await;
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request);
        match answered {
            Ok(Ok(message)) => Some(message),
            _ => {
                warn!(request, "the supervisor did not answer");
                None
            }
        }
    }

    /// Delivers an answer the supervisor sent to the request waiting for it.
    pub fn answer(&self, request: u64, message: ToWorker) {
        if let Some(reply) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request) {
            let _ = reply.send(message);
        }
    }

    /// Asks for a slot for `user`. Without an answer the login is refused
    /// as if the server were full, so a stuck supervisor never admits more
    /// than it counted.
    pub async fn login(&self, ticket: Ticket, user: &str, groups: &[&str]) -> LoginDecision {
        let groups = groups.iter().map(|group| (*group).to_owned()).collect();
        let message = ToSupervisor::Login { request: 0, ticket, user: user.to_owned(), groups };
        let answer = self
            .request(|request| match message {
                ToSupervisor::Login { ticket, user, groups, .. } => ToSupervisor::Login { request, ticket, user, groups },
                other => other,
            })
            .await;
        match answer {
            Some(ToWorker::Login { decision, .. }) => decision,
            _ => LoginDecision::Refuse {
                class: ClassId(0),
                refusal: Refusal { reason: Reason::Capacity, retry_after: Duration::from_secs(60) },
            },
        }
    }

    /// Asks how long to wait before checking the password of `user`.
    pub async fn login_delay(&self, user: &str) -> Duration {
        match self.request(|request| ToSupervisor::LoginDelay { request, user: user.to_owned() }).await {
            Some(ToWorker::Delay { delay, .. }) => delay,
            _ => Duration::ZERO,
        }
    }

    /// Reports a failed login and returns how long to hold back the `NO`.
    pub async fn login_failed(&self, ticket: Ticket, user: Option<&str>) -> Duration {
        let user = user.map(str::to_owned);
        match self.request(|request| ToSupervisor::LoginFailed { request, ticket, user }).await {
            Some(ToWorker::Delay { delay, .. }) => delay,
            _ => Duration::ZERO,
        }
    }
}
