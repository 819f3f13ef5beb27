//! The `roost serve` command: logging, the tokio runtime, the shutdown
//! signal and the call into the server.
//!
//! This module owns process-level concerns only. Listeners, sessions and
//! delivery belong to `roost_server`.

use std::io::IsTerminal;

use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::CliError;
use roost_server::config::WorkersConfig;
use roost_server::workers::WorkerCommand;

use crate::config::{LOG_LEVEL_DEFAULT, Settings, WorkerCount};

/// Starts logging to stderr. The filter comes from `--log-level`, else
/// `RUST_LOG`, else the config file's `log_level`, else `info`.
pub fn init_logging(flag: Option<&str>, from_file: Option<&str>) -> Result<(), CliError> {
    let from_environment = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty());
    let (source, directives) = match (flag, from_environment, from_file) {
        (Some(flag), _, _) => ("--log-level", flag.to_owned()),
        (None, Some(environment), _) => ("RUST_LOG", environment),
        (None, None, Some(file)) => ("log_level", file.to_owned()),
        (None, None, None) => ("default", LOG_LEVEL_DEFAULT.to_owned()),
    };
    let filter = EnvFilter::try_new(&directives).map_err(|err| {
        CliError::Usage(format!(
            "{source}: invalid log filter \"{directives}\": {err}"
        ))
    })?;
    // Colour codes only help a person at a terminal; in journald or a log
    // file they are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    Ok(())
}

/// Descriptors each process keeps free of sessions: the store's
/// connections and files, listeners, the links to workers, logs.
const DESCRIPTORS_RESERVED: u64 = 1024;

/// Raises this process's soft limit on open descriptors to its hard limit
/// and returns the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit write and read the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Decides how many worker processes hold sessions: with `workers =
/// "auto"`, none when this process's descriptors cover `max_sessions` and
/// `max_preauth`, else as many as they need.
pub fn resolve_workers(settings: &mut Settings, descriptors: u64) -> Result<(), CliError> {
    let policy = &settings.server.governor.policy;
    let needed = u64::from(policy.max_sessions) + u64::from(policy.max_preauth);
    let mut per_worker = descriptors.saturating_sub(DESCRIPTORS_RESERVED).max(1);
    if let Some(max) = settings.worker_connections_max {
        per_worker = per_worker.min(max as u64);
    }
    let count = match settings.workers {
        WorkerCount::Auto if needed <= per_worker => 0,
        WorkerCount::Auto => needed.div_ceil(per_worker),
        WorkerCount::Fixed(count) => count as u64,
    };
    if count == 0 {
        settings.server.workers = WorkersConfig {
            answer_timeout: settings.server.workers.answer_timeout,
            ..WorkersConfig::single_process()
        };
        return Ok(());
    }
    let program = std::env::current_exe()
        .map_err(|err| CliError::Runtime(format!("failed to find the roost program to start workers: {err}")))?;
    settings.server.workers = WorkersConfig {
        command: Some(WorkerCommand { program, args: std::env::args_os().skip(1).collect() }),
        workers_max: count as usize,
        connections_per_worker_max: per_worker as usize,
        answer_timeout: settings.server.workers.answer_timeout,
    };
    Ok(())
}

/// Runs a worker process the supervisor started: the same settings, no
/// listeners, sessions handed over by the supervisor.
pub fn run_worker(settings: Settings, index: usize) -> Result<(), CliError> {
    // One thread: the supervisor spreads sessions over many workers. A
    // worker's blocking work (the store) runs on the blocking pool, and its
    // password checks run in the supervisor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(settings.worker_blocking_threads_max)
        .enable_all()
        .build()
        .map_err(|err| CliError::Runtime(format!("starting the tokio runtime failed: {err}")))?;
    runtime.block_on(async move {
        // Signals from a terminal reach the whole process group. The
        // supervisor decides when workers stop and reload, so they ignore
        // SIGINT, SIGTERM and SIGHUP.
        let _interrupt = signal(SignalKind::interrupt());
        let _terminate = signal(SignalKind::terminate());
        let _hangup = signal(SignalKind::hangup());
        // SAFETY: this process was started by the supervisor's pool, which
        // put the two descriptors in place; they are taken once, here.
        let (socket, phases) = unsafe { roost_server::workers::pool::inherited_descriptors() }
            .map_err(|err| CliError::Runtime(format!("worker {index}: failed to take the supervisor's descriptors: {err}")))?;
        roost_server::workers::run_worker(settings.server, socket, phases, index)
            .await
            .map_err(|err| CliError::Runtime(format!("worker {index}: {err:#}")))
    })
}

/// Runs the server until SIGTERM or SIGINT and its graceful shutdown end.
/// SIGHUP rereads the TLS certificate and key without dropping sessions.
pub fn run(settings: Settings) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Runtime(format!("starting the tokio runtime failed: {err}")))?;

    runtime.block_on(async move {
        // Installed before start-up, so a signal that arrives meanwhile is
        // not lost.
        let mut signals = Signals::install()
            .map_err(|err| CliError::Runtime(format!("installing signal handlers failed: {err}")))?;
        let config = settings.server;
        info!(
            data_dir = %config.data_dir.display(),
            imap_listen = ?config.imap_listen,
            imaps_listen = ?config.imaps_listen,
            lmtp_listen = ?config.lmtp_listen,
            "starting roost {}",
            env!("CARGO_PKG_VERSION")
        );
        let running = roost_server::start(config)
            .await
            .map_err(|err| CliError::Runtime(format!("{err:#}")))?;
        loop {
            match signals.next().await {
                Signal::Reload => {
                    info!("received SIGHUP; reloading the TLS certificate");
                    // A failed reload is logged by the server and keeps the
                    // current certificate; the server goes on.
                    let _ = running.reload_tls().await;
                }
                Signal::Stop => break,
            }
        }
        running.stop().await;
        info!("stopped");
        Ok(())
    })
}

/// What a signal asks of the server.
enum Signal {
    Reload,
    Stop,
}

/// The process signals `roost serve` handles.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.terminate.recv() => {
                info!("received SIGTERM; shutting down");
                Signal::Stop
            }
            _ = self.interrupt.recv() => {
                info!("received SIGINT; shutting down");
                Signal::Stop
            }
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}
