//! A worker process: one single-threaded tokio runtime that runs a slice
//! of the sessions and reports to the parent over stdout.
//!
//! Each session is one small task until IDLE begins; then its socket moves
//! to the hold set, one epoll instance for the whole worker. The counters
//! every task updates live in `WorkerState` behind `Cell` and `RefCell`,
//! because all tasks run on the one thread.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::hold::HoldSet;
use crate::messages::{WorkerCommand, WorkerEvent, WorkerJob};
use crate::outcome::{Cause, Failures, SetupOutcome};
use crate::session;

/// How often a worker reports its setup progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Maximum length of a line from the parent, in bytes.
const COMMAND_LINE_BYTES_MAX: usize = 64 * 1024;

/// Runs the worker side of `--worker`: reads the job from stdin and runs
/// it until the parent sends `release` or closes stdin.
pub fn main() -> ExitCode {
    if let Err(err) = crate::system::raise_descriptor_limit() {
        eprintln!("roost-bench worker: raising the descriptor limit failed: {err}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roost-bench worker: starting the tokio runtime failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run()) {
        // Exiting here skips dropping thousands of tasks one by one; the
        // kernel closes every socket with the process.
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("roost-bench worker: {err:#}");
            std::process::exit(1)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let job_line = read_bounded_line(&mut stdin)
        .await?
        .context("stdin closed before the job line")?;
    let job: WorkerJob = serde_json::from_str(&job_line).context("invalid job line")?;
    crate::system::exit_with_parent(job.parent_pid);

    let tls = job
        .tls
        .as_ref()
        .map(crate::tls::client_config)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let state = Rc::new(WorkerState::new(job, tls).context("creating the epoll instance failed")?);

    let holder = state.clone();
    tokio::task::spawn_local(async move {
        if let Err(err) = holder.hold.run(&holder).await {
            eprintln!(
                "roost-bench worker {}: watching idle sessions failed: {err}",
                holder.job.worker
            );
            std::process::exit(1);
        }
    });
    tokio::task::spawn_local(launch(state.clone()));
    tokio::task::spawn_local(report_progress(state.clone()));
    state.setup_complete.notified().await;
    emit(&WorkerEvent::SetupDone(state.setup.take()));

    loop {
        let Some(line) = read_bounded_line(&mut stdin).await? else {
            // The parent exited or gave up, so no one reads a final report.
            std::process::exit(3);
        };
        let command: WorkerCommand = serde_json::from_str(&line)
            .with_context(|| format!("invalid command line {line:?}"))?;
        match command {
            WorkerCommand::Census => emit(&WorkerEvent::Census {
                live: state.live(),
                closed: state.closed.get(),
            }),
            WorkerCommand::Release => {
                emit(&WorkerEvent::Final {
                    hold_failures: state.hold_failures.take(),
                    keepalives: state.keepalives.get(),
                });
                return Ok(());
            }
        }
    }
}

/// Reads one line from the parent, without its newline.
async fn read_bounded_line(
    stdin: &mut BufReader<tokio::io::Stdin>,
) -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    let count = (&mut *stdin)
        .take(COMMAND_LINE_BYTES_MAX as u64)
        .read_line(&mut line)
        .await?;
    if count == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        bail!("a line from the parent is longer than {COMMAND_LINE_BYTES_MAX} bytes");
    }
    line.pop();
    Ok(Some(line))
}

/// Starts the sessions at the job's rate, at most `concurrency` in setup
/// at once, until all are started or the setup limit passes.
async fn launch(state: Rc<WorkerState>) {
    let job = &state.job;
    let semaphore = Arc::new(Semaphore::new(job.concurrency.max(1) as usize));
    let start = Instant::now();
    let limit = start + Duration::from_millis(job.setup_limit_ms);
    let interval = job
        .rate_per_second
        .map(|rate| Duration::from_secs_f64(1.0 / rate));

    for local in 0..job.session_count {
        let index = job.first_session + local;
        if let Some(interval) = interval {
            tokio::time::sleep_until((start + interval.mul_f64(local as f64)).min(limit)).await;
        }
        let permit = tokio::select! {
            permit = semaphore.clone().acquire_owned() => Some(permit.expect("the semaphore is never closed")),
            () = tokio::time::sleep_until(limit) => None,
        };
        let Some(permit) = permit.filter(|_| Instant::now() < limit) else {
            let setup_limit = Duration::from_millis(job.setup_limit_ms);
            for skipped in local..job.session_count {
                state.setup_failed(job.first_session + skipped, Cause::Timeout, || {
                    format!("the setup limit of {setup_limit:?} passed before the session started")
                });
            }
            return;
        };
        tokio::task::spawn_local(session::run(state.clone(), index, permit));
    }
}

async fn report_progress(state: Rc<WorkerState>) {
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if state.done.get() >= state.job.session_count {
            return;
        }
        let setup = state.setup.borrow();
        emit(&WorkerEvent::Progress {
            established: setup.established,
            failed: setup.failures.total(),
        });
    }
}

/// Writes one event line to the parent. A parent that stopped reading
/// ends the worker.
pub fn emit(event: &WorkerEvent) {
    let mut line = serde_json::to_vec(event).expect("events serialize");
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

/// State that the sessions of a worker share.
pub struct WorkerState {
    pub job: WorkerJob,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub hold: HoldSet,
    setup: RefCell<SetupOutcome>,
    /// Sessions whose setup ended, established or failed.
    done: Cell<u64>,
    /// Sessions that reached IDLE, kept apart from `setup`, which is
    /// handed to the parent when the setup is done.
    established_count: Cell<u64>,
    setup_complete: Notify,
    hold_failures: RefCell<Failures>,
    closed: Cell<u64>,
    keepalives: Cell<u64>,
}

impl WorkerState {
    fn new(
        job: WorkerJob,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ) -> std::io::Result<WorkerState> {
        let setup = SetupOutcome {
            latencies_us: Vec::with_capacity(job.session_count as usize),
            established_per_address: vec![0; job.source_addresses.len()],
            ..SetupOutcome::default()
        };
        let state = WorkerState {
            hold: HoldSet::new(job.session_count)?,
            job,
            tls,
            setup: RefCell::new(setup),
            done: Cell::new(0),
            established_count: Cell::new(0),
            setup_complete: Notify::new(),
            hold_failures: RefCell::new(Failures::default()),
            closed: Cell::new(0),
            keepalives: Cell::new(0),
        };
        if state.job.session_count == 0 {
            state.setup_complete.notify_one();
        }
        Ok(state)
    }

    pub fn note_connect_start(&self, at_ns: u64) {
        let mut setup = self.setup.borrow_mut();
        if setup.first_connect_ns.is_none() {
            setup.first_connect_ns = Some(at_ns);
        }
    }

    pub fn established(&self, index: u64, elapsed: Duration, at_ns: u64) {
        {
            let mut setup = self.setup.borrow_mut();
            setup.established += 1;
            setup
                .latencies_us
                .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            let address = (index % self.job.source_addresses.len() as u64) as usize;
            setup.established_per_address[address] += 1;
            setup.last_idle_ns = setup.last_idle_ns.max(Some(at_ns));
        }
        self.established_count.set(self.established_count.get() + 1);
        self.finish_one();
    }

    pub fn setup_failed(&self, index: u64, cause: Cause, example: impl FnOnce() -> String) {
        {
            let mut setup = self.setup.borrow_mut();
            setup.failures.record(cause, example);
            if self.job.report_exists {
                setup.failed_sessions.push(index);
            }
        }
        self.finish_one();
    }

    fn finish_one(&self) {
        self.done.set(self.done.get() + 1);
        if self.done.get() == self.job.session_count {
            self.setup_complete.notify_one();
        }
    }

    pub fn hold_failed(&self, cause: Cause, example: impl FnOnce() -> String) {
        self.closed.set(self.closed.get() + 1);
        self.hold_failures.borrow_mut().record(cause, example);
    }

    pub fn keepalive(&self) {
        self.keepalives.set(self.keepalives.get() + 1);
    }

    pub fn exists_seen(&self, index: u64, count: u64, at_ns: u64) {
        if self.job.report_exists {
            emit(&WorkerEvent::Seen {
                session: index,
                count,
                at_ns,
            });
        }
    }

    /// Returns the sessions in IDLE now.
    fn live(&self) -> u64 {
        self.established_count
            .get()
            .saturating_sub(self.closed.get())
    }
}
