//! The replay: every client of the scenario is one task that follows the
//! simulator's behaviour model (`roost_sim::behaviour::Client`) on a real
//! socket, in virtual time that runs `time_scale` times faster than real
//! time.
//!
//! A client task keeps at most one planned wake and one planned connect,
//! as the simulator's event queue does for it, and has at most one
//! connection open. All tasks run on one thread, so the counters live in
//! `RefCell`s.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use roost_governor::{Ticket, Time};
use roost_sim::behaviour::{Client, Next, Stage};
use roost_sim::report::WaitHistogram;
use roost_sim::scenario::Behaviour;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::outcome::{Cause, Failures};
use crate::session::{connect, imap_string, text};

/// Settings of a replay, apart from its clients.
pub struct ReplayJob {
    pub server: SocketAddr,
    pub password: String,
    pub time_scale: f64,
    /// Virtual time at which the replay stops.
    pub end: Time,
    /// Time one reply from the server may take, in real time.
    pub reply_timeout: Duration,
    /// Connections the tool may have open at once.
    pub sockets_max: u64,
}

/// Response code of a governor's refusal or cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    Unavailable,
    Limit,
    Other,
}

impl Code {
    /// Reads the response code after `* BYE ` or `TAG NO `.
    fn of(rest: &[u8]) -> Code {
        if rest.starts_with(b"[UNAVAILABLE]") {
            Code::Unavailable
        } else if rest.starts_with(b"[LIMIT]") {
            Code::Limit
        } else {
            Code::Other
        }
    }
}

/// Counters of one report group: the clients of the populations that
/// share a name.
#[derive(Debug, Default)]
pub struct GroupStats {
    pub served: u64,
    pub refused_unavailable: u64,
    pub refused_limit: u64,
    /// Refusals whose code was neither of the two above.
    pub refused_other: u64,
    /// Refusals sent as `* BYE` instead of the greeting.
    pub refused_at_greeting: u64,
    pub rotations: u64,
    pub preemptions: u64,
    /// Sessions that ended by any other BYE, or closed without one.
    pub other_cuts: u64,
    /// Sessions the client ended with LOGOUT.
    pub completed: u64,
    /// Connections the tool did not open because it had `sockets_max`
    /// open already.
    pub tool_limited: u64,
    pub errors: Failures,
    pub held: u32,
    pub peak: u32,
    pub waits: WaitHistogram,
    pub refusal_example: Option<String>,
    pub rotation_example: Option<String>,
    pub preemption_example: Option<String>,
    pub other_cut_example: Option<String>,
}

impl GroupStats {
    pub fn refused(&self) -> u64 {
        self.refused_unavailable + self.refused_limit + self.refused_other
    }
}

/// State the client tasks share.
pub struct Shared {
    pub job: ReplayJob,
    start: Instant,
    pub groups: RefCell<Vec<GroupStats>>,
    sockets: Cell<u64>,
    tickets: Cell<u32>,
}

impl Shared {
    pub fn new(job: ReplayJob, groups: usize) -> Shared {
        Shared {
            job,
            start: Instant::now(),
            groups: RefCell::new((0..groups).map(|_| GroupStats::default()).collect()),
            sockets: Cell::new(0),
            tickets: Cell::new(0),
        }
    }

    /// Returns the virtual time now.
    pub fn now(&self) -> Time {
        let real = self.start.elapsed().as_secs_f64();
        Time::from_millis((real * self.job.time_scale * 1000.0) as u64)
    }

    /// Returns the real instant of virtual time `at`.
    pub fn instant(&self, at: Time) -> Instant {
        let seconds = at.as_millis() as f64 / 1000.0 / self.job.time_scale;
        self.start + Duration::from_secs_f64(seconds)
    }

    fn end_instant(&self) -> Instant {
        self.instant(self.job.end)
    }

    fn group(&self, client: &Client) -> std::cell::RefMut<'_, GroupStats> {
        std::cell::RefMut::map(self.groups.borrow_mut(), |groups| {
            &mut groups[usize::from(client.group)]
        })
    }
}

/// The action a client task has planned: at most one wake and one connect.
#[derive(Default)]
struct Planned {
    wake: Option<Time>,
    connect: Option<Time>,
}

impl Planned {
    fn follow(&mut self, next: Next) {
        match next {
            Next::Nothing => {}
            Next::Connect(at) => self.connect = Some(at),
            Next::Wake(at) => self.wake = Some(at),
        }
    }

    fn due(&self) -> Option<Time> {
        match (self.wake, self.connect) {
            (Some(wake), Some(connect)) => Some(wake.min(connect)),
            (wake, connect) => wake.or(connect),
        }
    }
}

/// Runs one client until the replay ends and returns it, with its
/// connected time and wait still to be closed at the end.
pub async fn run_client(shared: Rc<Shared>, mut client: Client) -> Client {
    let mut planned = Planned::default();
    planned.follow(client.start());
    while let Some(due) = planned.due() {
        if due >= shared.job.end {
            break;
        }
        tokio::time::sleep_until(shared.instant(due)).await;
        if planned.wake == Some(due) {
            planned.wake = None;
            let (connect, next) = client.wake(shared.now());
            planned.follow(next);
            if !connect {
                continue;
            }
        } else {
            planned.connect = None;
            if client.stage != Stage::Offline {
                continue;
            }
        }
        // A new connection makes any connect planned before it stale, as
        // the simulator's epochs do.
        planned.connect = None;
        let next = visit(&shared, &mut client, &mut planned).await;
        planned.follow(next);
    }
    client
}

/// Outcome of a connection attempt up to its login.
enum Login {
    Admitted(Connection),
    Refused {
        code: Code,
        at_greeting: bool,
        line: String,
    },
    Failed(Cause, String),
    /// The replay ended first.
    Over,
}

/// Outcome of a session.
enum SessionEnd {
    LoggedOut,
    Cut(String),
    Failed(Cause, String),
    Over,
}

/// Makes one connection: connect, log in and, once admitted, hold the
/// session as the behaviour model prescribes. Returns what the client does next.
async fn visit(shared: &Shared, client: &mut Client, planned: &mut Planned) -> Next {
    if shared.sockets.get() >= shared.job.sockets_max {
        shared.group(client).tool_limited += 1;
        return client.cut(shared.now());
    }
    shared.sockets.set(shared.sockets.get() + 1);
    let next = connect_and_serve(shared, client, planned).await;
    shared.sockets.set(shared.sockets.get() - 1);
    next
}

async fn connect_and_serve(shared: &Shared, client: &mut Client, planned: &mut Planned) -> Next {
    let login = until_end(shared, log_in(shared, client))
        .await
        .unwrap_or(Login::Over);
    let now = shared.now();
    let connection = match login {
        Login::Admitted(connection) => connection,
        Login::Refused {
            code,
            at_greeting,
            line,
        } => {
            let mut group = shared.group(client);
            match code {
                Code::Unavailable => group.refused_unavailable += 1,
                Code::Limit => group.refused_limit += 1,
                Code::Other => group.refused_other += 1,
            }
            if at_greeting {
                group.refused_at_greeting += 1;
            }
            group.refusal_example.get_or_insert(line);
            drop(group);
            return client.refused(now);
        }
        Login::Failed(cause, message) => {
            shared.group(client).errors.record(cause, || message);
            return client.cut(now);
        }
        Login::Over => return Next::Nothing,
    };

    {
        let mut group = shared.group(client);
        if let Some(since) = client.waiting_since {
            group.waits.record(now.since(since));
        }
        group.served += 1;
        group.held += 1;
        group.peak = group.peak.max(group.held);
    }
    let ticket = Ticket(shared.tickets.get());
    shared.tickets.set(shared.tickets.get().wrapping_add(1));
    let (logout, _busy) = client.admitted(now, ticket);

    let end = hold(shared, client, planned, connection, logout).await;
    let now = shared.now();
    let mut group = shared.group(client);
    group.held -= 1;
    match end {
        SessionEnd::LoggedOut => {
            group.completed += 1;
            drop(group);
            client.logged_out(now)
        }
        SessionEnd::Cut(line) => {
            if line.contains("[UNAVAILABLE] session rotated") {
                group.rotations += 1;
                group.rotation_example.get_or_insert(line);
            } else if line.contains("[UNAVAILABLE] session ended to") {
                group.preemptions += 1;
                group.preemption_example.get_or_insert(line);
            } else {
                group.other_cuts += 1;
                group.other_cut_example.get_or_insert(line);
            }
            drop(group);
            client.cut(now)
        }
        SessionEnd::Failed(cause, message) => {
            group.errors.record(cause, || message);
            drop(group);
            client.cut(now)
        }
        SessionEnd::Over => Next::Nothing,
    }
}

/// Connects from the client's address, reads the greeting and logs in.
async fn log_in(shared: &Shared, client: &Client) -> Login {
    let job = &shared.job;
    let stream = match connect(client.address, job.server).await {
        Ok(stream) => stream,
        Err(err) => {
            return Login::Failed(
                Cause::Connect,
                format!(
                    "connect from {} to {} failed: {err}",
                    client.address, job.server
                ),
            );
        }
    };
    let mut connection = Connection::plain(stream);
    let greeting = match reply_line(shared, &mut connection, "the greeting").await {
        Ok(line) => line,
        Err((cause, message)) => return Login::Failed(cause, message),
    };
    if let Some(rest) = greeting.strip_prefix(b"* BYE ") {
        return Login::Refused {
            code: Code::of(rest),
            at_greeting: true,
            line: text(&greeting),
        };
    }
    if !greeting.starts_with(b"* OK") {
        return Login::Failed(
            Cause::UnexpectedResponse,
            format!("greeting: {}", text(&greeting)),
        );
    }

    let command = format!(
        "a LOGIN {} {}\r\n",
        imap_string(&client.user),
        imap_string(&job.password)
    );
    if let Err(err) = connection.write_all(command.as_bytes()).await {
        return Login::Failed(
            Cause::ClosedDuringSetup,
            format!("writing LOGIN failed: {err}"),
        );
    }
    loop {
        let line = match reply_line(shared, &mut connection, "the LOGIN reply").await {
            Ok(line) => line,
            Err((cause, message)) => return Login::Failed(cause, message),
        };
        if line.starts_with(b"a OK") {
            return Login::Admitted(connection);
        }
        if let Some(rest) = line.strip_prefix(b"a NO ") {
            let code = Code::of(rest);
            if code == Code::Other {
                return Login::Failed(
                    Cause::LoginRejected,
                    format!("user {}: {}", client.user, text(&line)),
                );
            }
            return Login::Refused {
                code,
                at_greeting: false,
                line: text(&line),
            };
        }
        if line.starts_with(b"a ") {
            return Login::Failed(
                Cause::LoginRejected,
                format!("user {}: {}", client.user, text(&line)),
            );
        }
        if let Some(rest) = line.strip_prefix(b"* BYE ") {
            return Login::Refused {
                code: Code::of(rest),
                at_greeting: false,
                line: text(&line),
            };
        }
    }
}

/// Holds an admitted session: SELECT INBOX, then IDLE until cut for a
/// holder, or a short sync and LOGOUT at `logout` for the others.
async fn hold(
    shared: &Shared,
    client: &mut Client,
    planned: &mut Planned,
    mut connection: Connection,
    logout: Option<Time>,
) -> SessionEnd {
    let ended = until_end(shared, async {
        command(shared, &mut connection, b"b SELECT INBOX\r\n", b"b ").await?;
        match (client.behaviour, logout) {
            (Behaviour::Poller { .. }, Some(_)) => {
                // The sync: what changed since the last one.
                command(shared, &mut connection, b"c UID SEARCH ALL\r\n", b"c ").await?;
            }
            _ => {
                connection.write_all(b"d IDLE\r\n").await.map_err(|err| {
                    Stop::Failed(
                        Cause::ClosedDuringSetup,
                        format!("writing IDLE failed: {err}"),
                    )
                })?;
                loop {
                    let line =
                        session_line(shared, &mut connection, "the IDLE continuation").await?;
                    if line.starts_with(b"+") {
                        break;
                    }
                    if line.starts_with(b"d ") {
                        return Err(Stop::Failed(Cause::IdleRejected, text(&line)));
                    }
                }
            }
        }
        Ok(())
    })
    .await;
    match ended {
        None => return SessionEnd::Over,
        Some(Err(stop)) => return stop.into(),
        Some(Ok(())) => {}
    }

    // Wait for the logout time, the run's end or a cut, reading what the
    // server sends meanwhile. A poller's next sync falls due here when a
    // sync outlasts its interval, and is skipped, as in the simulator.
    loop {
        let deadline = [logout, planned.wake]
            .into_iter()
            .flatten()
            .min()
            .map_or(shared.end_instant(), |at| {
                shared.instant(at).min(shared.end_instant())
            });
        tokio::select! {
            line = connection.read_line() => match line {
                Ok(Some(line)) => {
                    if line.starts_with(b"* BYE") {
                        return SessionEnd::Cut(text(&line));
                    }
                    if line.starts_with(b"d ") {
                        return SessionEnd::Failed(Cause::IdleEnded, text(&line));
                    }
                }
                Ok(None) => return SessionEnd::Cut("connection closed without BYE".to_owned()),
                Err(err) => return SessionEnd::Failed(Cause::ClosedDuringHold, format!("reading failed: {err}")),
            },
            () = tokio::time::sleep_until(deadline) => {
                let now = shared.now();
                if now >= shared.job.end {
                    return SessionEnd::Over;
                }
                if let Some(wake) = planned.wake && wake <= now {
                    planned.wake = None;
                    let (_, next) = client.wake(now);
                    planned.follow(next);
                }
                if let Some(at) = logout && at <= now {
                    break;
                }
            }
        }
    }
    let done = until_end(shared, log_out(shared, &mut connection, client)).await;
    match done {
        None => SessionEnd::Over,
        Some(Err(stop)) => stop.into(),
        Some(Ok(())) => SessionEnd::LoggedOut,
    }
}

/// Ends an IDLE, if the session is in one, and logs out.
async fn log_out(
    shared: &Shared,
    connection: &mut Connection,
    client: &Client,
) -> Result<(), Stop> {
    if !matches!(client.behaviour, Behaviour::Poller { .. }) {
        connection.write_all(b"DONE\r\n").await.map_err(|err| {
            Stop::Failed(
                Cause::ClosedDuringHold,
                format!("writing DONE failed: {err}"),
            )
        })?;
        wait_tagged(shared, connection, b"d ").await?;
    }
    connection.write_all(b"z LOGOUT\r\n").await.map_err(|err| {
        Stop::Failed(
            Cause::ClosedDuringHold,
            format!("writing LOGOUT failed: {err}"),
        )
    })?;
    // The BYE that LOGOUT brings is no cut; the tagged OK ends it.
    loop {
        match connection.read_line().await {
            Ok(Some(line)) if line.starts_with(b"z ") => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(err) => {
                return Err(Stop::Failed(
                    Cause::ClosedDuringHold,
                    format!("reading the LOGOUT reply failed: {err}"),
                ));
            }
        }
    }
}

/// Reason a session step ended the session.
enum Stop {
    Cut(String),
    Failed(Cause, String),
}

impl From<Stop> for SessionEnd {
    fn from(stop: Stop) -> SessionEnd {
        match stop {
            Stop::Cut(line) => SessionEnd::Cut(line),
            Stop::Failed(cause, message) => SessionEnd::Failed(cause, message),
        }
    }
}

/// Sends `line` and waits for the reply tagged `tag`, which must be OK.
async fn command(
    shared: &Shared,
    connection: &mut Connection,
    line: &[u8],
    tag: &[u8],
) -> Result<(), Stop> {
    connection.write_all(line).await.map_err(|err| {
        Stop::Failed(
            Cause::ClosedDuringSetup,
            format!("writing {} failed: {err}", text(line).trim_end()),
        )
    })?;
    let reply = wait_tagged(shared, connection, tag).await?;
    if reply[tag.len()..].starts_with(b"OK") {
        return Ok(());
    }
    let cause = if line.starts_with(b"b SELECT") {
        Cause::SelectFailed
    } else {
        Cause::UnexpectedResponse
    };
    Err(Stop::Failed(cause, text(&reply)))
}

/// Reads up to the line tagged `tag`; a BYE on the way is a cut.
async fn wait_tagged(
    shared: &Shared,
    connection: &mut Connection,
    tag: &[u8],
) -> Result<Vec<u8>, Stop> {
    loop {
        let line = session_line(shared, connection, "a tagged reply").await?;
        if line.starts_with(tag) {
            return Ok(line);
        }
    }
}

/// Reads one line of a logged-in session within the reply timeout; a BYE
/// or a close is a cut.
async fn session_line(
    shared: &Shared,
    connection: &mut Connection,
    waiting_for: &str,
) -> Result<Vec<u8>, Stop> {
    match reply_line(shared, connection, waiting_for).await {
        Ok(line) if line.starts_with(b"* BYE") => Err(Stop::Cut(text(&line))),
        Ok(line) => Ok(line),
        Err((Cause::ClosedDuringSetup, _)) => {
            Err(Stop::Cut("connection closed without BYE".to_owned()))
        }
        Err((cause, message)) => Err(Stop::Failed(cause, message)),
    }
}

/// Reads one line within the reply timeout.
async fn reply_line(
    shared: &Shared,
    connection: &mut Connection,
    waiting_for: &str,
) -> Result<Vec<u8>, (Cause, String)> {
    let timeout = shared.job.reply_timeout;
    match tokio::time::timeout(timeout, connection.read_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(Ok(None)) => Err((
            Cause::ClosedDuringSetup,
            format!("connection closed while waiting for {waiting_for}"),
        )),
        Ok(Err(err)) => Err((
            Cause::ClosedDuringSetup,
            format!("reading {waiting_for} failed: {err}"),
        )),
        Err(_) => Err((
            Cause::Timeout,
            format!("no {waiting_for} within {timeout:?}"),
        )),
    }
}

/// Runs `work` until the replay's end; `None` when the end came first.
async fn until_end<T>(shared: &Shared, work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        () = tokio::time::sleep_until(shared.end_instant()) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes() {
        assert_eq!(
            Code::of(b"[UNAVAILABLE] no slot is free"),
            Code::Unavailable
        );
        assert_eq!(Code::of(b"[LIMIT] too many sessions"), Code::Limit);
        assert_eq!(Code::of(b"server shutting down"), Code::Other);
    }

    #[test]
    fn planned_due_is_earliest() {
        let mut planned = Planned::default();
        assert_eq!(planned.due(), None);
        planned.follow(Next::Wake(Time::from_millis(50)));
        planned.follow(Next::Connect(Time::from_millis(20)));
        assert_eq!(planned.due(), Some(Time::from_millis(20)));
        planned.follow(Next::Nothing);
        planned.connect = None;
        assert_eq!(planned.due(), Some(Time::from_millis(50)));
    }
}
