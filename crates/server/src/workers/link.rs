//! A worker's link to the supervisor: the governor's decisions and the
//! password checks for the sessions this worker serves, asked over the
//! worker's socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use roost_auth::{AuthError, Secret, UserDbOptions};
use roost_governor::{ClassId, LoginDecision, Reason, Refusal, Ticket};
use tokio::sync::{mpsc, oneshot};
use tokio_seqpacket::UnixSeqpacket;
use tracing::warn;

use super::message::{MESSAGE_BYTES_MAX, ToSupervisor, ToWorker, wipe};

/// Why a request to the supervisor got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// The supervisor did not answer within the answer timeout.
    TimedOut(Duration),
    /// The link to the supervisor is closed.
    LinkClosed,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::TimedOut(timeout) => write!(
                f,
                "the supervisor did not answer within {} s (worker_answer_timeout)",
                timeout.as_secs_f64()
            ),
            NoAnswer::LinkClosed => f.write_str("the link to the supervisor is closed"),
        }
    }
}

/// The worker's side of its socket to the supervisor.
pub struct SupervisorLink {
    /// Messages for the writer task, which owns the sending side. Every
    /// session sends a bounded number (one release, a few requests), so
    /// the queue is bounded by the sessions this worker holds.
    outgoing: mpsc::UnboundedSender<ToSupervisor>,
    pending: Mutex<HashMap<u64, oneshot::Sender<ToWorker>>>,
    next_request: AtomicU64,
    /// Set once the link failed or the supervisor closed it; requests then
    /// fail at once instead of waiting for the answer timeout.
    closed: AtomicBool,
    answer_timeout: Duration,
}

impl SupervisorLink {
    /// Starts the writer task on `socket`; must run inside a Tokio runtime.
    /// Requests without a reply from the supervisor within `answer_timeout`
    /// fail with [`NoAnswer::TimedOut`].
    pub fn start(socket: Arc<UnixSeqpacket>, answer_timeout: Duration) -> Arc<SupervisorLink> {
        let (outgoing, queue) = mpsc::unbounded_channel::<ToSupervisor>();
        let link = Arc::new(SupervisorLink {
            outgoing,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            answer_timeout,
        });
        tokio::spawn(write_messages(socket, queue, Arc::downgrade(&link)));
        link
    }

    /// Marks the link closed and fails every request waiting for an answer.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropping the senders wakes the waiting requests with an error.
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
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

    async fn request(&self, build: impl FnOnce(u64) -> ToSupervisor) -> Result<ToWorker, NoAnswer> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock that `close` takes, so a request is
            // either failed by `close` or sees the flag here.
            if self.closed.load(Ordering::Acquire) {
                return Err(NoAnswer::LinkClosed);
            }
            pending.insert(request, reply);
        }
        self.send(build(request));
        let answered = tokio::time::timeout(self.answer_timeout, answer).await;
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request);
        match answered {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(NoAnswer::LinkClosed),
            Err(_) => Err(NoAnswer::TimedOut(self.answer_timeout)),
        }
    }

    /// Delivers an answer the supervisor sent to the request waiting for it.
    pub fn answer(&self, request: u64, message: ToWorker) {
        if let Some(reply) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request) {
            let _ = reply.send(message);
        }
    }

    /// Asks the supervisor to check the password of `user`. Returns `None`
    /// when the password matches, else which check failed. A password over
    /// the users file's length limit or a name the passwd-file cannot hold
    /// fails here, as the supervisor would fail it, without a request, so
    /// every request fits in one message.
    pub async fn verify(&self, user: &str, password: Secret) -> Result<Option<String>, NoAnswer> {
        let password_bytes_max = UserDbOptions::default().password_bytes_max;
        if password.len() > password_bytes_max {
            let rejection = AuthError::PasswordTooLong { user: user.to_owned(), len: password.len(), max: password_bytes_max };
            return Ok(Some(rejection.to_string()));
        }
        if roost_auth::validate_user_name(user).is_err() {
            return Ok(Some(AuthError::UserNotFound(user.to_owned()).to_string()));
        }
        let user = user.to_owned();
        match self.request(move |request| ToSupervisor::Verify { request, user, password }).await? {
            ToWorker::Verified { rejection, .. } => Ok(rejection),
            other => {
                warn!(answer = ?other, "unexpected reply from the supervisor to a password check");
                Err(NoAnswer::LinkClosed)
            }
        }
    }

    /// Asks for a slot for `user`. Without an answer the login is refused
    /// as if the server were full, so a stuck supervisor never admits more
    /// than it counted.
    pub async fn login(&self, ticket: Ticket, user: &str, groups: &[&str]) -> LoginDecision {
        let groups = groups.iter().map(|group| (*group).to_owned()).collect();
        let user = user.to_owned();
        let answer = self.request(move |request| ToSupervisor::Login { request, ticket, user, groups }).await;
        match answer {
            Ok(ToWorker::Login { decision, .. }) => decision,
            answer => {
                warn!(ticket = ticket.0, error = ?answer.err(), "no login decision from the supervisor; refusing the login");
                LoginDecision::Refuse {
                    class: ClassId(0),
                    refusal: Refusal { reason: Reason::Capacity, retry_after: Duration::from_secs(60) },
                }
            }
        }
    }

    /// Asks how long to wait before checking the password of `user`. A
    /// name the passwd-file cannot hold never has failures on record, so
    /// it waits for nothing and costs no request.
    pub async fn login_delay(&self, user: &str) -> Result<Duration, NoAnswer> {
        if roost_auth::validate_user_name(user).is_err() {
            return Ok(Duration::ZERO);
        }
        match self.request(|request| ToSupervisor::LoginDelay { request, user: user.to_owned() }).await? {
            ToWorker::Delay { delay, .. } => Ok(delay),
            _ => Ok(Duration::ZERO),
        }
    }

    /// Reports a failed login and returns how long to hold back the `NO`.
    /// `user` is the name the client gave; the supervisor counts the
    /// failure against it only when the users file has that user.
    pub async fn login_failed(&self, ticket: Ticket, user: Option<&str>) -> Duration {
        let user = user.filter(|user| roost_auth::validate_user_name(user).is_ok()).map(str::to_owned);
        match self.request(|request| ToSupervisor::LoginFailed { request, ticket, user }).await {
            Ok(ToWorker::Delay { delay, .. }) => delay,
            answer => {
                warn!(ticket = ticket.0, error = ?answer.err(), "no failed-login delay from the supervisor");
                Duration::ZERO
            }
        }
    }
}

/// Sends the queued messages until the queue or the socket closes, then
/// closes the link. Every encoded message is cleared once sent, since a
/// password check carries a password.
async fn write_messages(socket: Arc<UnixSeqpacket>, mut queue: mpsc::UnboundedReceiver<ToSupervisor>, link: Weak<SupervisorLink>) {
    while let Some(message) = queue.recv().await {
        let mut encoded = message.encode();
        drop(message);
        if encoded.len() > MESSAGE_BYTES_MAX {
            // The supervisor would cut it short; its request times out.
            warn!(bytes = encoded.len(), max = MESSAGE_BYTES_MAX, "dropped a message too long for the link to the supervisor");
            wipe(&mut encoded);
            continue;
        }
        let sent = socket.send(encoded.as_bytes()).await;
        wipe(&mut encoded);
        if let Err(err) = sent {
            warn!(error = %err, "failed to send to the supervisor");
            break;
        }
    }
    if let Some(link) = link.upgrade() {
        link.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a link on one end of a socket pair and returns the other end,
    /// which plays the supervisor.
    fn link_pair(answer_timeout: Duration) -> (Arc<SupervisorLink>, UnixSeqpacket) {
        let (worker, supervisor) = UnixSeqpacket::pair().unwrap();
        (SupervisorLink::start(Arc::new(worker), answer_timeout), supervisor)
    }

    async fn receive(supervisor: &UnixSeqpacket) -> ToSupervisor {
        let mut buffer = vec![0u8; MESSAGE_BYTES_MAX];
        let received = supervisor.recv(&mut buffer).await.unwrap();
        ToSupervisor::decode(std::str::from_utf8(&buffer[..received.bytes_read()]).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn verify_round_trip() {
        let (link, supervisor) = link_pair(Duration::from_secs(10));
        let checking = tokio::spawn({
            let link = Arc::clone(&link);
            async move { link.verify("alice", Secret::from("tab\tin password")).await }
        });
        let ToSupervisor::Verify { request, user, password } = receive(&supervisor).await else { panic!("expected a password check") };
        assert_eq!(user, "alice");
        assert_eq!(password.expose(), "tab\tin password");
        link.answer(request, ToWorker::Verified { request, rejection: Some("wrong password".into()) });
        assert_eq!(checking.await.unwrap(), Ok(Some("wrong password".to_owned())));
    }

    #[tokio::test]
    async fn verify_rejects_unstorable_input_locally() {
        let (link, supervisor) = link_pair(Duration::from_secs(10));
        let too_long = "p".repeat(UserDbOptions::default().password_bytes_max + 1);
        let rejection = link.verify("alice", Secret::new(too_long)).await.unwrap().unwrap();
        assert!(rejection.contains("more than the maximum"), "{rejection}");
        for name in ["", "a b", "a\tb", &"a".repeat(roost_auth::USER_NAME_BYTES_MAX + 1)] {
            let rejection = link.verify(name, Secret::from("secret")).await.unwrap().unwrap();
            assert!(rejection.contains("not found"), "{name:?}: {rejection}");
        }
        drop(link);
        // Nothing reached the supervisor: the writer ended with the link.
        let mut buffer = [0u8; 64];
        assert_eq!(supervisor.recv(&mut buffer).await.unwrap().bytes_read(), 0);
    }

    #[tokio::test]
    async fn unanswered_verify_times_out() {
        let (link, _supervisor) = link_pair(Duration::from_millis(200));
        assert_eq!(link.verify("alice", Secret::from("secret")).await, Err(NoAnswer::TimedOut(Duration::from_millis(200))));
    }

    #[tokio::test]
    async fn close_fails_waiting_and_later_requests() {
        let (link, supervisor) = link_pair(Duration::from_secs(30));
        let checking = tokio::spawn({
            let link = Arc::clone(&link);
            async move { link.verify("alice", Secret::from("secret")).await }
        });
        receive(&supervisor).await;
        let started = std::time::Instant::now();
        link.close();
        assert_eq!(checking.await.unwrap(), Err(NoAnswer::LinkClosed));
        assert_eq!(link.verify("alice", Secret::from("secret")).await, Err(NoAnswer::LinkClosed));
        assert_eq!(link.login_delay("alice").await, Err(NoAnswer::LinkClosed));
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn dead_supervisor_closes_the_link() {
        let (link, supervisor) = link_pair(Duration::from_secs(30));
        drop(supervisor);
        let started = std::time::Instant::now();
        assert_eq!(link.verify("alice", Secret::from("secret")).await, Err(NoAnswer::LinkClosed));
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    }
}
