//! The parent's side of the workers: the plan that slices the sessions,
//! starting the worker processes, the event stream from them and the
//! setup phase both commands share.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::addresses::{
    check_loopback, default_sessions_per_address, ephemeral_port_count, plan_sources,
};
use crate::messages::{
    PasswordMode, TlsJob, WORKER_LINE_BYTES_MAX, WorkerCommand, WorkerEvent, WorkerJob,
};
use crate::outcome::SetupOutcome;
use crate::system::{DESCRIPTOR_RESERVE, raise_descriptor_limit};
use crate::{RunError, SessionArgs};

/// Maximum sessions of one run.
pub const SESSIONS_MAX: u64 = 10_000_000;

/// Maximum worker processes of one run.
pub const WORKERS_MAX: u64 = 2_000;

/// Default sessions per worker: under a 20,000-descriptor limit with room
/// for the worker's own descriptors.
pub const CONNECTIONS_PER_WORKER_DEFAULT: u64 = 19_000;

/// Maximum time workers get to reply to a census or release.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Maximum time a released worker gets to exit before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the parent prints setup progress to stderr.
const PROGRESS_PRINT_INTERVAL: Duration = Duration::from_secs(2);

/// The sessions of one run, sliced into worker jobs.
#[derive(Debug)]
pub struct Plan {
    pub jobs: Vec<WorkerJob>,
    pub sessions: u64,
    pub source_addresses: Vec<IpAddr>,
}

/// Checks the session flags and slices the sessions into worker jobs.
pub fn plan(args: &SessionArgs, report_exists: bool) -> Result<Plan, RunError> {
    let usage = RunError::Usage;
    check_loopback("--server", args.server).map_err(usage)?;
    if args.sessions == 0 || args.sessions > SESSIONS_MAX {
        return Err(usage(format!(
            "--sessions {}: must be between 1 and {SESSIONS_MAX}",
            args.sessions
        )));
    }
    if args.concurrency == 0 {
        return Err(usage(
            "--concurrency 0: at least one setup must be allowed in flight".to_owned(),
        ));
    }
    if args
        .users_prefix
        .bytes()
        .any(|byte| byte.is_ascii_control() || byte == b' ')
    {
        return Err(usage(format!(
            "--users-prefix {:?}: spaces and control characters are not allowed",
            args.users_prefix
        )));
    }
    let password = parse_password_mode(&args.password_mode).map_err(usage)?;

    let descriptors = raise_descriptor_limit()
        .map_err(|err| RunError::Failed(format!("raising the descriptor limit failed: {err}")))?;
    let per_worker_max = descriptors.saturating_sub(DESCRIPTOR_RESERVE);
    if per_worker_max == 0 {
        return Err(RunError::Failed(format!(
            "the descriptor limit is {descriptors}, too low for any session; raise it with ulimit -n"
        )));
    }
    let per_worker_limit = match args.connections_per_worker {
        Some(0) => {
            return Err(usage(
                "--connections-per-worker 0: must be at least 1".to_owned(),
            ));
        }
        Some(count) if count > per_worker_max => {
            return Err(usage(format!(
                "--connections-per-worker {count}: above the descriptor limit of {descriptors} minus {DESCRIPTOR_RESERVE} kept free; use at most {per_worker_max}"
            )));
        }
        Some(count) => count,
        None => CONNECTIONS_PER_WORKER_DEFAULT.min(per_worker_max),
    };
    let workers = args.sessions.div_ceil(per_worker_limit);
    if workers > WORKERS_MAX {
        return Err(usage(format!(
            "--sessions {} needs {workers} worker processes of {per_worker_limit} sessions, above the maximum of {WORKERS_MAX}; lower --sessions",
            args.sessions
        )));
    }

    let ports = ephemeral_port_count().map_err(RunError::Failed)?;
    let per_address = args
        .sessions_per_address
        .unwrap_or_else(|| default_sessions_per_address(ports));
    if per_address == 0 || per_address > ports {
        return Err(usage(format!(
            "--sessions-per-address {per_address}: must be between 1 and the {ports} ephemeral ports of one address"
        )));
    }
    let source_addresses = plan_sources(
        args.server,
        args.sessions,
        per_address,
        args.source_addresses,
        args.first_source_address,
    )
    .map_err(usage)?;

    let tls = args.tls.then(|| TlsJob {
        ca_file: args.ca.clone(),
        server_name: args
            .server_name
            .clone()
            .unwrap_or_else(|| args.server.ip().to_string()),
    });
    if let Some(tls) = &tls {
        // Fails early on a bad --ca file or server name.
        crate::tls::client_config(tls).map_err(usage)?;
    }

    // Even slices: every worker gets the same share, give or take one.
    let per_worker = args.sessions.div_ceil(workers);
    let parent_pid = std::process::id();
    let mut jobs = Vec::new();
    for worker in 0..workers {
        let first_session = worker * per_worker;
        let session_count = per_worker.min(args.sessions - first_session);
        let concurrency = u64::from(args.concurrency) / workers
            + u64::from(worker < u64::from(args.concurrency) % workers);
        jobs.push(WorkerJob {
            worker: worker as u32,
            parent_pid,
            server: args.server,
            tls: tls.clone(),
            first_session,
            session_count,
            users_prefix: args.users_prefix.clone(),
            first_user: args.first_user,
            password: password.clone(),
            source_addresses: source_addresses.clone(),
            rate_per_second: args.rate.map(|rate| rate / workers as f64),
            concurrency: concurrency.max(1) as u32,
            setup_timeout_ms: args.setup_timeout.as_millis() as u64,
            setup_limit_ms: args.setup_limit.as_millis() as u64,
            report_exists,
        });
    }
    Ok(Plan {
        jobs,
        sessions: args.sessions,
        source_addresses,
    })
}

fn parse_password_mode(text: &str) -> Result<PasswordMode, String> {
    let mode = match text {
        "plain" => PasswordMode::Numbered,
        _ => match text.strip_prefix("same:") {
            Some(password) => PasswordMode::Same(password.to_owned()),
            None => {
                return Err(format!(
                    "--password-mode {text:?}: invalid mode; use plain or same:PASSWORD"
                ));
            }
        },
    };
    if let PasswordMode::Same(password) = &mode
        && password
            .bytes()
            .any(|byte| matches!(byte, b'\r' | b'\n' | 0))
    {
        return Err(
            "--password-mode same:...: the password must not contain CR, LF or NUL".to_owned(),
        );
    }
    Ok(mode)
}

/// The running worker processes and the events they send.
pub struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    events: mpsc::UnboundedReceiver<(usize, Option<WorkerEvent>)>,
    interrupt: Signal,
    terminate: Signal,
}

impl Workers {
    /// Starts one worker per job and sends each its job line.
    pub async fn spawn(jobs: &[WorkerJob]) -> anyhow::Result<Workers> {
        let interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler failed")?;
        let terminate =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler failed")?;
        let executable =
            std::env::current_exe().context("finding the roost-bench executable failed")?;
        let (sender, events) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for (index, job) in jobs.iter().enumerate() {
            let mut child = Command::new(&executable)
                .arg("--worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {index} failed"))?;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            let stdout = child.stdout.take().expect("stdout is piped");
            let mut line = serde_json::to_vec(job).expect("jobs serialize");
            line.push(b'\n');
            stdin
                .write_all(&line)
                .await
                .with_context(|| format!("sending the job to worker {index} failed"))?;
            tokio::spawn(forward_events(
                index,
                BufReader::new(stdout),
                sender.clone(),
            ));
            children.push(child);
            stdins.push(stdin);
        }
        Ok(Workers {
            children,
            stdins,
            events,
            interrupt,
            terminate,
        })
    }

    pub fn count(&self) -> usize {
        self.children.len()
    }

    /// Sends `command` to every worker.
    pub async fn broadcast(&mut self, command: WorkerCommand) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&command).expect("commands serialize");
        line.push(b'\n');
        for (index, stdin) in self.stdins.iter_mut().enumerate() {
            stdin
                .write_all(&line)
                .await
                .with_context(|| format!("writing to worker {index} failed"))?;
        }
        Ok(())
    }

    /// Returns the next event, or `None` once `deadline` passes. A worker
    /// that exits and SIGINT or SIGTERM are errors.
    pub async fn next_event(
        &mut self,
        deadline: Option<Instant>,
    ) -> anyhow::Result<Option<(usize, WorkerEvent)>> {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        tokio::select! {
            received = self.events.recv() => match received {
                Some((index, Some(event))) => Ok(Some((index, event))),
                Some((index, None)) => Err(anyhow!("worker {index} exited before the run ended; its messages, if any, are above")),
                None => Err(anyhow!("every worker's output closed")),
            },
            () = tokio::time::sleep_until(deadline.unwrap_or(far)) => Ok(None),
            _ = self.interrupt.recv() => Err(anyhow!("interrupted by SIGINT; the workers were stopped")),
            _ = self.terminate.recv() => Err(anyhow!("stopped by SIGTERM; the workers were stopped")),
        }
    }

    /// Waits for every worker to exit, killing those that take longer
    /// than `EXIT_TIMEOUT`.
    pub async fn wait_exit(mut self) {
        self.stdins.clear();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        for child in &mut self.children {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }

    /// Sends `command` and collects one reply per worker with `accept`,
    /// which returns whether an event is the reply. Other events go to
    /// `other`.
    pub async fn ask(
        &mut self,
        command: WorkerCommand,
        mut accept: impl FnMut(usize, &WorkerEvent) -> bool,
        mut other: impl FnMut(usize, WorkerEvent),
    ) -> anyhow::Result<()> {
        self.broadcast(command).await?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut answered = vec![false; self.count()];
        while answered.iter().any(|done| !done) {
            let Some((index, event)) = self.next_event(Some(deadline)).await? else {
                bail!("workers did not reply to {command:?} within {REPLY_TIMEOUT:?}");
            };
            if accept(index, &event) {
                answered[index] = true;
            } else {
                other(index, event);
            }
        }
        Ok(())
    }
}

/// Reads event lines from one worker's stdout and forwards them; sends
/// `None` when the output ends or turns invalid.
async fn forward_events(
    index: usize,
    mut stdout: BufReader<tokio::process::ChildStdout>,
    sender: mpsc::UnboundedSender<(usize, Option<WorkerEvent>)>,
) {
    loop {
        let mut line = String::new();
        let read = (&mut stdout)
            .take(WORKER_LINE_BYTES_MAX as u64)
            .read_line(&mut line)
            .await;
        let event = match read {
            Ok(0) | Err(_) => None,
            Ok(_) if !line.ends_with('\n') => {
                eprintln!(
                    "roost-bench: worker {index} sent a line longer than {WORKER_LINE_BYTES_MAX} bytes"
                );
                None
            }
            Ok(_) => match serde_json::from_str::<WorkerEvent>(&line) {
                Ok(event) => Some(event),
                Err(err) => {
                    eprintln!("roost-bench: worker {index} sent an invalid line: {err}");
                    None
                }
            },
        };
        // A worker exits right after its final report, which is no error.
        let end = matches!(event, None | Some(WorkerEvent::Final { .. }));
        if sender.send((index, event)).is_err() || end {
            return;
        }
    }
}

/// Waits until every worker has set up its sessions, printing progress to
/// stderr, and returns their merged outcome. Events other than progress
/// and the outcome go to `other`.
pub async fn run_setup(
    workers: &mut Workers,
    plan: &Plan,
    args: &SessionArgs,
    mut other: impl FnMut(usize, WorkerEvent),
) -> anyhow::Result<SetupOutcome> {
    // Every session is bounded by the setup limit plus its own timeout.
    let deadline = Instant::now() + args.setup_limit + args.setup_timeout + Duration::from_secs(60);
    let started = Instant::now();
    let mut progress = vec![(0u64, 0u64); workers.count()];
    let mut outcomes: Vec<Option<SetupOutcome>> = vec![None; workers.count()];
    let mut last_print = Instant::now();

    while outcomes.iter().any(Option::is_none) {
        let Some((index, event)) = workers.next_event(Some(deadline)).await? else {
            bail!("the workers did not finish the setup by the setup limit plus the setup timeout");
        };
        match event {
            WorkerEvent::Progress {
                established,
                failed,
            } => progress[index] = (established, failed),
            WorkerEvent::SetupDone(outcome) => {
                progress[index] = (outcome.established, outcome.failures.total());
                outcomes[index] = Some(outcome);
            }
            other_event => other(index, other_event),
        }
        if last_print.elapsed() >= PROGRESS_PRINT_INTERVAL {
            last_print = Instant::now();
            let established: u64 = progress.iter().map(|(count, _)| count).sum();
            let failed: u64 = progress.iter().map(|(_, count)| count).sum();
            let rate = established as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "setup: {established} in IDLE, {failed} failed of {} ({rate:.0} sessions/s)",
                plan.sessions
            );
        }
    }

    let mut total = SetupOutcome::default();
    for outcome in outcomes.into_iter().flatten() {
        total.merge(&outcome);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sessions: u64) -> SessionArgs {
        SessionArgs {
            server: "127.0.0.1:1143".parse().unwrap(),
            sessions,
            users_prefix: "user".to_owned(),
            first_user: 1,
            password_mode: "plain".to_owned(),
            rate: Some(300.0),
            concurrency: 10,
            setup_timeout: Duration::from_secs(30),
            setup_limit: Duration::from_secs(3600),
            tls: false,
            ca: None,
            server_name: None,
            source_addresses: None,
            first_source_address: "127.0.0.2".parse().unwrap(),
            sessions_per_address: None,
            connections_per_worker: None,
            json: None,
        }
    }

    #[test]
    fn plan_slices_evenly() {
        let mut arguments = args(300);
        arguments.connections_per_worker = Some(100);
        arguments.source_addresses = Some(3);
        let plan = plan(&arguments, false).unwrap();
        assert_eq!(plan.jobs.len(), 3);
        assert_eq!(plan.source_addresses.len(), 3);
        let firsts: Vec<u64> = plan.jobs.iter().map(|job| job.first_session).collect();
        assert_eq!(firsts, vec![0, 100, 200]);
        assert!(plan.jobs.iter().all(|job| job.session_count == 100));
        let concurrency: u32 = plan.jobs.iter().map(|job| job.concurrency).sum();
        assert_eq!(concurrency, 10);
        assert_eq!(plan.jobs[0].rate_per_second, Some(100.0));
    }

    #[test]
    fn plan_uneven_last_slice() {
        let mut arguments = args(250);
        arguments.connections_per_worker = Some(100);
        let plan = plan(&arguments, false).unwrap();
        let counts: Vec<u64> = plan.jobs.iter().map(|job| job.session_count).collect();
        assert_eq!(counts, vec![84, 84, 82]);
    }

    #[test]
    fn plan_rejects_non_loopback_server() {
        let mut arguments = args(10);
        arguments.server = "192.0.2.1:143".parse().unwrap();
        let Err(RunError::Usage(message)) = plan(&arguments, false) else {
            panic!("a non-loopback server must be a usage error");
        };
        assert!(message.contains("not a loopback address"), "{message}");
    }

    #[test]
    fn plan_rejects_bad_counts() {
        assert!(matches!(plan(&args(0), false), Err(RunError::Usage(_))));
        let mut arguments = args(10);
        arguments.connections_per_worker = Some(10_000_000);
        assert!(
            matches!(plan(&arguments, false), Err(RunError::Usage(message)) if message.contains("descriptor limit"))
        );
    }

    #[test]
    fn password_modes() {
        assert_eq!(
            parse_password_mode("plain").unwrap(),
            PasswordMode::Numbered
        );
        assert_eq!(
            parse_password_mode("same:pass").unwrap(),
            PasswordMode::Same("pass".to_owned())
        );
        assert_eq!(
            parse_password_mode("same:").unwrap(),
            PasswordMode::Same(String::new())
        );
        assert!(
            parse_password_mode("secret")
                .unwrap_err()
                .contains("invalid mode")
        );
        assert!(parse_password_mode("same:a\r\nb").is_err());
    }
}
