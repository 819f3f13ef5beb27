//! One LMTP connection: reads from the socket into a bounded buffer, runs
//! the protocol [`Session`], performs its user lookups and deliveries, and
//! writes its replies.
//!
//! This module owns the socket, the idle timeout and the reaction to
//! shutdown. Protocol rules live in `protocol`, storage in `delivery`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::protocol::{Delivery, Event, Outcome, Reply, Session, SessionConfig, UserStatus};
use crate::delivery::{Deliverer, DeliveryError};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// Reply bytes collected before they are written even though more
/// pipelined input is waiting, so a long pipeline does not grow the
/// output buffer.
const OUTPUT_FLUSH_BYTES: usize = 16 * 1024;

/// A reason other than QUIT for a connection to end.
enum Interruption {
    Shutdown,
    TimedOut,
    ClosedByPeer,
}

/// The settings a connection needs beyond the protocol ones.
pub(super) struct ConnectionConfig {
    pub session: SessionConfig,
    /// Inactivity after which the connection is closed with 421 4.4.2. A
    /// write that the client does not take up within this time also ends
    /// the connection.
    pub timeout_idle: Duration,
}

/// Runs one connection until QUIT, a timeout, shutdown or an I/O error.
pub(super) async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    deliverer: Arc<Deliverer>,
    config: Arc<ConnectionConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = info_span!("lmtp", %peer);
    async move {
        debug!("LMTP connection opened");
        match serve_connection(&mut stream, &deliverer, &config, &mut shutdown).await {
            Ok(()) => debug!("LMTP connection closed"),
            Err(error) => debug!(%error, "LMTP connection failed"),
        }
        // The peer may already be gone, and there is nothing left to send.
        let _ = stream.shutdown().await;
    }
    .instrument(span)
    .await
}

async fn serve_connection(
    stream: &mut TcpStream,
    deliverer: &Arc<Deliverer>,
    config: &ConnectionConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let hostname = config.session.hostname.clone();
    let mut session = Session::new(config.session.clone());
    // The session leaves fewer than line_bytes_max + 2 bytes unused before
    // asking for more, and each read adds at most READ_CHUNK_BYTES.
    let input_bytes_max = config.session.line_bytes_max + 2 + READ_CHUNK_BYTES;
    let mut input: Vec<u8> = Vec::new();
    let mut output: Vec<u8> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();

    // Set when the shutdown sender flips to true or is dropped.
    let mut shutting_down = false;

    session.greeting().encode(&mut output);
    loop {
        // A session between commands stops at once on shutdown; one in DATA
        // finishes its delivery and replies first.
        shutting_down |= *shutdown.borrow();
        if shutting_down && !session.is_in_data() {
            Reply::shutting_down(&hostname).encode(&mut output);
            return write_all(stream, &output, config.timeout_idle).await;
        }

        let step = session.receive(&input, &mut replies);
        input.drain(..step.consumed);
        let needs_input = step.consumed == 0 && step.event.is_none();
        match step.event {
            Some(Event::CheckUser(user)) => {
                let status = check_user(deliverer, user).await;
                session.user_checked(status, &mut replies);
            }
            Some(Event::Deliver(delivery)) => {
                let outcomes = deliver(deliverer, delivery).await;
                session.delivered(&outcomes, &mut replies);
            }
            Some(Event::Rejected { recipients, size }) => {
                for recipient in &recipients {
                    info!(recipient = recipient.user, size, "delivery rejected: message too big");
                }
            }
            Some(Event::Close) => {
                encode_replies(&mut replies, &mut output);
                return write_all(stream, &output, config.timeout_idle).await;
            }
            None => {}
        }
        encode_replies(&mut replies, &mut output);

        if needs_input || output.len() >= OUTPUT_FLUSH_BYTES {
            write_all(stream, &output, config.timeout_idle).await?;
            output.clear();
        }
        if !needs_input {
            continue;
        }

        // A session waiting for its next command keeps no large buffers, so
        // an idle connection costs little memory.
        if input.is_empty() && !session.is_in_data() {
            release_if_large(&mut input);
            release_if_large(&mut output);
        }
        debug_assert!(input.len() < input_bytes_max);
        match read_more(stream, &mut input, input_bytes_max, config.timeout_idle, shutdown, session.is_in_data()).await? {
            None => {}
            Some(Interruption::Shutdown) => shutting_down = true,
            Some(Interruption::TimedOut) => {
                Reply::timed_out(&hostname).encode(&mut output);
                return write_all(stream, &output, config.timeout_idle).await;
            }
            Some(Interruption::ClosedByPeer) => return Ok(()),
        }
    }
}

/// Reads once into `input`, waiting at most `timeout`. Shutdown interrupts
/// the wait unless the session is in DATA.
async fn read_more(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    input_bytes_max: usize,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
    in_data: bool,
) -> io::Result<Option<Interruption>> {
    let room = input_bytes_max.saturating_sub(input.len()).min(READ_CHUNK_BYTES);
    let mut limited = input.limit(room);
    let read = tokio::time::timeout(timeout, stream.read_buf(&mut limited));

    tokio::select! {
        result = read => match result {
            Err(_elapsed) => Ok(Some(Interruption::TimedOut)),
            Ok(Ok(0)) => Ok(Some(Interruption::ClosedByPeer)),
            Ok(Ok(_)) => Ok(None),
            Ok(Err(error)) => Err(error),
        },
        // A dropped sender also means shutdown, as nothing can flip it back.
        _ = shutdown.changed(), if !in_data => Ok(Some(Interruption::Shutdown)),
    }
}

/// Writes `output`, failing with `TimedOut` if the client does not take
/// it within `timeout`.
async fn write_all(stream: &mut TcpStream, output: &[u8], timeout: Duration) -> io::Result<()> {
    match tokio::time::timeout(timeout, stream.write_all(output)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, "client did not read replies in time")),
    }
}

/// Buffers up to this capacity are kept between commands.
const IDLE_BUFFER_BYTES_MAX: usize = 1024;

fn release_if_large(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER_BYTES_MAX {
        *buffer = Vec::new();
    }
}

fn encode_replies(replies: &mut Vec<Reply>, output: &mut Vec<u8>) {
    for reply in replies.drain(..) {
        reply.encode(output);
    }
}

/// Resolves a local part to a user on the blocking pool, as the lookup may
/// read the passwd-file.
async fn check_user(deliverer: &Arc<Deliverer>, local_part: String) -> UserStatus {
    let deliverer = deliverer.clone();
    let name = local_part.clone();
    match tokio::task::spawn_blocking(move || deliverer.resolve_user(&name)).await {
        Ok(Some(user)) => UserStatus::Exists(user),
        Ok(None) => {
            // The MTA bounces the message on this reply, so the log records
            // the reason for the administrator too.
            info!(recipient = local_part, "recipient rejected: no such user");
            UserStatus::Unknown
        }
        Err(error) => {
            warn!(recipient = local_part, %error, "user lookup task failed");
            UserStatus::LookupFailed
        }
    }
}

/// Delivers the message to each recipient in order and returns one outcome
/// per recipient.
async fn deliver(deliverer: &Deliverer, delivery: Delivery) -> Vec<Outcome> {
    let count = delivery.recipients.len();
    let message = match deliverer.prepare(delivery.message).await {
        Ok(message) => message,
        Err(error) => {
            warn!(%error, recipients = count, "message could not be prepared for delivery");
            return vec![outcome_of(&error); count];
        }
    };

    let mut outcomes = Vec::with_capacity(count);
    for recipient in &delivery.recipients {
        let outcome = match deliverer.deliver_prepared(&recipient.user, &message).await {
            Ok(_) => Outcome::Delivered,
            Err(error) => outcome_of(&error),
        };
        outcomes.push(outcome);
    }
    outcomes
}

fn outcome_of(error: &DeliveryError) -> Outcome {
    match error {
        DeliveryError::UnknownUser(_) => Outcome::UnknownUser,
        DeliveryError::TooBig { .. } => Outcome::TooBig,
        DeliveryError::Store(_) | DeliveryError::Interrupted(_) => Outcome::TemporaryFailure,
    }
}
