//! One IMAP session's setup: connect, read the greeting, LOGIN, SELECT
//! INBOX and IDLE, then hand the socket to the worker's hold set.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::Connection;
use crate::outcome::Cause;
use crate::system::monotonic_ns;
use crate::worker::WorkerState;

/// The step a session's setup is in, named in timeout messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Connect,
    TlsHandshake,
    Greeting,
    Login,
    Select,
    Idle,
    /// The FETCH of a `notify` probe.
    Fetch,
}

impl Step {
    pub fn waiting_for(self) -> &'static str {
        match self {
            Step::Connect => "the TCP connect",
            Step::TlsHandshake => "the TLS handshake",
            Step::Greeting => "the greeting",
            Step::Login => "the LOGIN reply",
            Step::Select => "the SELECT reply",
            Step::Idle => "the IDLE continuation",
            Step::Fetch => "the FETCH reply",
        }
    }
}

/// A failed setup: its cause and a message for the report.
#[derive(Debug)]
pub struct Failure {
    pub cause: Cause,
    pub message: String,
}

impl Failure {
    pub fn new(cause: Cause, message: impl Into<String>) -> Failure {
        Failure {
            cause,
            message: message.into(),
        }
    }
}

/// Sets session `index` up and hands it to the hold set. `permit` is the
/// in-flight setup slot, returned once IDLE begins.
pub async fn run(state: std::rc::Rc<WorkerState>, index: u64, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    state.note_connect_start(monotonic_ns());
    let step = Cell::new(Step::Connect);
    let timeout = Duration::from_millis(state.job.setup_timeout_ms);

    // Boxed so that the setup's larger state is freed when IDLE begins and
    // the long-lived future keeps only what the hold needs.
    let setup = Box::pin(tokio::time::timeout(timeout, setup(&state, index, &step)));
    let result = setup.await;
    drop(permit);

    let (connection, exists_at_select) = match result {
        Ok(Ok(established)) => established,
        Ok(Err(failure)) => {
            state.setup_failed(index, failure.cause, || failure.message);
            return;
        }
        Err(_) => {
            state.setup_failed(index, Cause::Timeout, || {
                format!(
                    "no IDLE continuation within {timeout:?}; still waiting for {}",
                    step.get().waiting_for()
                )
            });
            return;
        }
    };
    // The task ends here: the worker's hold set watches the idle socket.
    let slot = (index - state.job.first_session) as usize;
    let adopted = connection.into_parts().and_then(|(stream, tls, pending)| {
        state
            .hold
            .adopt(slot, stream, tls, pending, exists_at_select)
    });
    match adopted {
        Ok(()) => state.established(index, started.elapsed(), monotonic_ns()),
        Err(err) => state.setup_failed(index, Cause::UnexpectedResponse, || {
            format!("watching the idle socket failed: {err}")
        }),
    }
}

/// Connects and walks the session into IDLE. Returns the connection and
/// the EXISTS count last reported before IDLE began.
async fn setup(
    state: &WorkerState,
    index: u64,
    step: &Cell<Step>,
) -> Result<(Connection, u64), Failure> {
    let job = &state.job;
    let source = job.source_addresses[(index % job.source_addresses.len() as u64) as usize];
    let stream = connect(source, job.server).await.map_err(|err| {
        Failure::new(
            Cause::Connect,
            format!("connect from {source} to {} failed: {err}", job.server),
        )
    })?;

    let mut connection = match &state.tls {
        None => Connection::plain(stream),
        Some((config, name)) => {
            step.set(Step::TlsHandshake);
            Connection::tls(stream, config.clone(), name.clone())
                .await
                .map_err(|err| {
                    Failure::new(Cause::TlsHandshake, format!("TLS handshake failed: {err}"))
                })?
        }
    };

    step.set(Step::Greeting);
    let greeting = read_line(&mut connection, "the greeting").await?;
    if greeting.starts_with(b"* BYE") {
        return Err(Failure::new(Cause::RefusedBye, text(&greeting)));
    }
    if !greeting.starts_with(b"* OK") {
        return Err(Failure::new(
            Cause::UnexpectedResponse,
            format!("greeting: {}", text(&greeting)),
        ));
    }

    step.set(Step::Login);
    let login = format!(
        "a LOGIN {} {}\r\n",
        imap_string(&job.user(index)),
        imap_string(&job.password(index))
    );
    write(&mut connection, login.as_bytes()).await?;
    let mut exists = 0;
    let reply = read_tagged(&mut connection, b"a ", &mut exists, "the LOGIN reply").await?;
    if !reply.starts_with(b"a OK") {
        return Err(Failure::new(
            Cause::LoginRejected,
            format!("user {}: {}", job.user(index), text(&reply)),
        ));
    }

    step.set(Step::Select);
    write(&mut connection, b"b SELECT INBOX\r\n").await?;
    let reply = read_tagged(&mut connection, b"b ", &mut exists, "the SELECT reply").await?;
    if !reply.starts_with(b"b OK") {
        return Err(Failure::new(Cause::SelectFailed, text(&reply)));
    }

    step.set(Step::Idle);
    write(&mut connection, b"c IDLE\r\n").await?;
    loop {
        let line = read_line(&mut connection, "the IDLE continuation").await?;
        if line.starts_with(b"+") {
            return Ok((connection, exists));
        }
        if line.starts_with(b"c ") {
            return Err(Failure::new(Cause::IdleRejected, text(&line)));
        }
        untagged(&line, &mut exists)?;
    }
}

/// Opens a TCP connection from `source` (any free port) to `server`.
pub async fn connect(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Without IP_BIND_ADDRESS_NO_PORT, bind() would reserve a port of the
    // source address for all destinations. With it, connect() chooses the
    // port, which then only needs to be unique per destination.
    let enable: libc::c_int = 1;
    // SAFETY: the descriptor is open and owned by `socket`; the option
    // value is a c_int that lives across the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

pub async fn write(connection: &mut Connection, bytes: &[u8]) -> Result<(), Failure> {
    connection
        .write_all(bytes)
        .await
        .map_err(|err| Failure::new(Cause::ClosedDuringSetup, format!("writing failed: {err}")))
}

/// Reads one line during the setup; a closed connection is a failure.
pub async fn read_line(connection: &mut Connection, waiting_for: &str) -> Result<Vec<u8>, Failure> {
    match connection.read_line().await {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err(Failure::new(
            Cause::ClosedDuringSetup,
            format!("connection closed while waiting for {waiting_for}"),
        )),
        Err(err) => Err(Failure::new(
            Cause::ClosedDuringSetup,
            format!("reading {waiting_for} failed: {err}"),
        )),
    }
}

/// Reads up to the line tagged `tag` and returns it, following EXISTS on
/// the way.
pub async fn read_tagged(
    connection: &mut Connection,
    tag: &[u8],
    exists: &mut u64,
    waiting_for: &str,
) -> Result<Vec<u8>, Failure> {
    loop {
        let line = read_line(connection, waiting_for).await?;
        if line.starts_with(tag) {
            return Ok(line);
        }
        untagged(&line, exists)?;
    }
}

/// Handles an untagged line during the setup: BYE is a refusal, EXISTS
/// updates the count, everything else is ignored.
fn untagged(line: &[u8], exists: &mut u64) -> Result<(), Failure> {
    if line.starts_with(b"* BYE") {
        return Err(Failure::new(Cause::RefusedBye, text(line)));
    }
    if let Some(count) = parse_exists(line) {
        *exists = count;
    }
    Ok(())
}

/// Returns N from `* N EXISTS`.
pub fn parse_exists(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"* ")?;
    let space = rest.iter().position(|&byte| byte == b' ')?;
    let (number, keyword) = rest.split_at(space);
    if !keyword[1..].eq_ignore_ascii_case(b"EXISTS") {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// Returns `value` as an IMAP atom when it is one, else as a quoted
/// string. Callers have rejected CR and LF, which neither form carries.
pub fn imap_string(value: &str) -> String {
    let atom = !value.is_empty()
        && value
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"(){%*\"\\]".contains(&byte));
    if atom {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for character in value.chars() {
        if character == '"' || character == '\\' {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

pub fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_lines() {
        assert_eq!(parse_exists(b"* 5 EXISTS"), Some(5));
        assert_eq!(parse_exists(b"* 0 exists"), Some(0));
        assert_eq!(parse_exists(b"* 5 RECENT"), None);
        assert_eq!(parse_exists(b"* OK Still here"), None);
        assert_eq!(parse_exists(b"a OK done"), None);
    }

    #[test]
    fn imap_strings() {
        assert_eq!(imap_string("user1"), "user1");
        assert_eq!(imap_string("pa ss"), "\"pa ss\"");
        assert_eq!(imap_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(imap_string(""), "\"\"");
    }
}
