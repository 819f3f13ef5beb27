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
use crate::config::{LOG_LEVEL_DEFAULT, Settings};

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
