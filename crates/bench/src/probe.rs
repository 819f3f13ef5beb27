//! The probe client of `notify`: while the sessions idle, one more client
//! connects again and again, logs in, selects INBOX, fetches the flags,
//! UID, size and header of every message and logs out. It measures what an
//! active user waits for while the server keeps the idle sessions open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::outcome::{Cause, Failures, Percentiles};
use crate::session::{Failure, Step, imap_string, read_line, read_tagged, text, write};

/// Maximum probes of one run.
pub const PROBES_MAX: u64 = 1_000_000;

/// Time a probe's LOGOUT may take; the probe's latency does not include it.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the probe client.
pub struct ProbeJob {
    pub server: SocketAddr,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub user: String,
    pub password: String,
    /// Probes to make, one after another.
    pub count: u64,
    /// Pause between one probe's logout and the next connect.
    pub interval: Duration,
    /// Time after which no new probe starts.
    pub limit: Duration,
    /// Time one probe may take from connect to the FETCH reply.
    pub timeout: Duration,
}

/// Time from one step's start to its end, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
struct StepTimes {
    connect_us: u64,
    login_us: u64,
    select_us: u64,
    fetch_us: u64,
}

/// The results of all probes.
#[derive(Debug, Default)]
pub struct ProbeOutcome {
    pub failures: Failures,
    /// Probes not started because the time limit passed.
    pub not_started: u64,
    /// Per completed probe, in microseconds: connect to greeting, LOGIN,
    /// SELECT and FETCH.
    connect_us: Vec<u64>,
    login_us: Vec<u64>,
    select_us: Vec<u64>,
    fetch_us: Vec<u64>,
    /// Messages the FETCH returned, per completed probe.
    messages: Vec<u64>,
}

/// Runs the probes one after another and returns their results.
pub async fn run(job: ProbeJob) -> ProbeOutcome {
    let start = Instant::now();
    let limit = start + job.limit;
    let mut outcome = ProbeOutcome::default();
    for number in 0..job.count {
        if Instant::now() >= limit {
            outcome.not_started = job.count - number;
            break;
        }
        let mut step = Step::Connect;
        let mut times = StepTimes::default();
        let result = tokio::time::timeout(job.timeout, probe(&job, &mut step, &mut times)).await;
        match result {
            Ok(Ok((connection, messages))) => {
                outcome.connect_us.push(times.connect_us);
                outcome.login_us.push(times.login_us);
                outcome.select_us.push(times.select_us);
                outcome.fetch_us.push(times.fetch_us);
                outcome.messages.push(messages);
                logout(connection).await;
            }
            Ok(Err(failure)) => outcome.failures.record(failure.cause, || failure.message),
            Err(_) => outcome.failures.record(Cause::Timeout, || {
                format!(
                    "probe {} took longer than {:?}; it was waiting for {}",
                    number + 1,
                    job.timeout,
                    step.waiting_for()
                )
            }),
        }
        if number + 1 < job.count {
            tokio::time::sleep_until((Instant::now() + job.interval).min(limit)).await;
        }
    }
    outcome
}

/// Connects, logs in, selects INBOX and fetches every message. Returns the
/// connection, still logged in, and the number of messages fetched.
async fn probe(
    job: &ProbeJob,
    step: &mut Step,
    times: &mut StepTimes,
) -> Result<(Connection, u64), Failure> {
    let started = Instant::now();
    let stream = TcpStream::connect(job.server).await.map_err(|err| {
        Failure::new(
            Cause::Connect,
            format!("probe connect to {} failed: {err}", job.server),
        )
    })?;
    let mut connection = match &job.tls {
        None => Connection::plain(stream),
        Some((config, name)) => {
            *step = Step::TlsHandshake;
            Connection::tls(stream, config.clone(), name.clone())
                .await
                .map_err(|err| {
                    Failure::new(Cause::TlsHandshake, format!("TLS handshake failed: {err}"))
                })?
        }
    };
    *step = Step::Greeting;
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
    let mut mark = Instant::now();
    times.connect_us = micros(mark - started);

    *step = Step::Login;
    let login = format!(
        "a LOGIN {} {}\r\n",
        imap_string(&job.user),
        imap_string(&job.password)
    );
    write(&mut connection, login.as_bytes()).await?;
    let mut exists = 0;
    let reply = read_tagged(&mut connection, b"a ", &mut exists, "the LOGIN reply").await?;
    if !reply.starts_with(b"a OK") {
        return Err(Failure::new(
            Cause::LoginRejected,
            format!("probe user {}: {}", job.user, text(&reply)),
        ));
    }
    times.login_us = micros(mark.elapsed());
    mark = Instant::now();

    *step = Step::Select;
    write(&mut connection, b"b SELECT INBOX\r\n").await?;
    let reply = read_tagged(&mut connection, b"b ", &mut exists, "the SELECT reply").await?;
    if !reply.starts_with(b"b OK") {
        return Err(Failure::new(Cause::SelectFailed, text(&reply)));
    }
    if exists == 0 {
        return Err(Failure::new(
            Cause::FetchFailed,
            format!(
                "the INBOX of probe user {} is empty, so there is nothing to fetch; deliver messages to it or raise --probe-messages",
                job.user
            ),
        ));
    }
    times.select_us = micros(mark.elapsed());
    mark = Instant::now();

    *step = Step::Fetch;
    write(
        &mut connection,
        b"c FETCH 1:* (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER])\r\n",
    )
    .await?;
    let messages = read_fetch(&mut connection).await?;
    times.fetch_us = micros(mark.elapsed());
    Ok((connection, messages))
}

/// Reads the FETCH responses up to the tagged reply, with their literals,
/// and returns the number of `* N FETCH` responses.
async fn read_fetch(connection: &mut Connection) -> Result<u64, Failure> {
    let mut messages = 0;
    loop {
        let line = read_line(connection, "the FETCH reply").await?;
        if line.starts_with(b"c ") {
            if line.starts_with(b"c OK") {
                return Ok(messages);
            }
            return Err(Failure::new(Cause::FetchFailed, text(&line)));
        }
        if line.starts_with(b"* BYE") {
            return Err(Failure::new(Cause::ClosedDuringSetup, text(&line)));
        }
        if is_fetch_response(&line) {
            messages += 1;
        }
        // A literal's bytes may contain anything, CRLF included, so they
        // are read by count; the response continues on the line after.
        let mut current = line;
        while let Some(length) = literal_length(&current) {
            match connection.read_bytes(length).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Failure::new(
                        Cause::ClosedDuringSetup,
                        "connection closed in the middle of a FETCH literal",
                    ));
                }
                Err(err) => {
                    return Err(Failure::new(
                        Cause::ClosedDuringSetup,
                        format!("reading a FETCH literal failed: {err}"),
                    ));
                }
            }
            current = read_line(connection, "the rest of a FETCH response").await?;
        }
    }
}

/// Sends LOGOUT and waits, briefly, for the server to reply or close.
async fn logout(mut connection: Connection) {
    let ended = async {
        write(&mut connection, b"d LOGOUT\r\n").await?;
        loop {
            let line = read_line(&mut connection, "the LOGOUT reply").await?;
            if line.starts_with(b"d ") {
                return Ok::<(), Failure>(());
            }
        }
    };
    let _ = tokio::time::timeout(LOGOUT_TIMEOUT, ended).await;
}

/// Checks whether `line` is `* N FETCH ...`.
fn is_fetch_response(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"* ") else {
        return false;
    };
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    digits > 0
        && rest[digits..]
            .get(..7)
            .is_some_and(|word| word.eq_ignore_ascii_case(b" FETCH "))
}

/// Returns N when `line` ends with the literal announcement `{N}`.
fn literal_length(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&byte| byte == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The probe results in a report.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeSummary {
    pub user: String,
    pub requested: u64,
    pub completed: u64,
    /// Probes that failed, by cause.
    pub failed: u64,
    pub failures: Failures,
    /// Probes not started because `--probe-limit` passed.
    pub not_started: u64,
    /// Messages one FETCH returned: the fewest and the most over the probes.
    pub messages_min: Option<u64>,
    pub messages_max: Option<u64>,
    /// From sending LOGIN to the tagged OK of FETCH: what a user waits for
    /// once connected.
    pub login_select_fetch: Option<Percentiles>,
    /// From the start of the TCP connect to the greeting.
    pub connect: Option<Percentiles>,
    pub login: Option<Percentiles>,
    pub select: Option<Percentiles>,
    pub fetch: Option<Percentiles>,
}

impl ProbeSummary {
    pub fn build(job_user: &str, requested: u64, outcome: ProbeOutcome) -> ProbeSummary {
        let combined = outcome
            .login_us
            .iter()
            .zip(&outcome.select_us)
            .zip(&outcome.fetch_us)
            .map(|((login, select), fetch)| login + select + fetch)
            .collect();
        ProbeSummary {
            user: job_user.to_owned(),
            requested,
            completed: outcome.messages.len() as u64,
            failed: outcome.failures.total(),
            failures: outcome.failures,
            not_started: outcome.not_started,
            messages_min: outcome.messages.iter().copied().min(),
            messages_max: outcome.messages.iter().copied().max(),
            login_select_fetch: Percentiles::from_micros(combined),
            connect: Percentiles::from_micros(outcome.connect_us),
            login: Percentiles::from_micros(outcome.login_us),
            select: Percentiles::from_micros(outcome.select_us),
            fetch: Percentiles::from_micros(outcome.fetch_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths() {
        assert_eq!(
            literal_length(b"* 1 FETCH (UID 4 BODY[HEADER] {312}"),
            Some(312)
        );
        assert_eq!(literal_length(b"* 1 FETCH (UID 4)"), None);
        assert_eq!(literal_length(b"{}"), None);
        assert_eq!(literal_length(b"x {1a}"), None);
    }

    #[test]
    fn fetch_responses() {
        assert!(is_fetch_response(b"* 12 FETCH (FLAGS ())"));
        assert!(is_fetch_response(b"* 1 fetch (UID 1)"));
        assert!(!is_fetch_response(b"* 12 EXISTS"));
        assert!(!is_fetch_response(b"* OK [UIDNEXT 3]"));
        assert!(!is_fetch_response(b"c OK FETCH completed"));
    }

    #[test]
    fn summary_adds_steps() {
        let outcome = ProbeOutcome {
            connect_us: vec![100, 200],
            login_us: vec![1_000, 2_000],
            select_us: vec![500, 500],
            fetch_us: vec![1_500, 3_500],
            messages: vec![20, 21],
            ..ProbeOutcome::default()
        };
        let summary = ProbeSummary::build("user9", 3, outcome);
        assert_eq!(summary.completed, 2);
        let combined = summary.login_select_fetch.unwrap();
        assert_eq!(combined.p50_ms, 3.0);
        assert_eq!(combined.max_ms, 6.0);
        assert_eq!(summary.messages_min, Some(20));
        assert_eq!(summary.messages_max, Some(21));
    }
}
