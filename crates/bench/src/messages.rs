//! The lines of JSON that the parent process and its workers exchange
//! over the workers' stdin and stdout.
//!
//! The parent writes one `WorkerJob` line, then `WorkerCommand` lines; the
//! worker writes `WorkerEvent` lines. A worker whose stdin closes exits at
//! once, so workers never outlive the parent.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::outcome::{Failures, SetupOutcome};

/// Maximum length of a line from a worker, in bytes. A setup report
/// carries one latency of up to 11 bytes per session, so this bounds a
/// worker at about 1.5 million sessions, far above what the descriptor
/// limit lets it open.
pub const WORKER_LINE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The rule that gives each session its password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordMode {
    /// `passN` for user `PREFIXN`.
    Numbered,
    /// The same password for every user.
    Same(String),
}

/// Implicit TLS settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsJob {
    /// CA certificates (PEM) the server certificate must chain to; `None`
    /// turns certificate verification off.
    pub ca_file: Option<PathBuf>,
    /// Name (or IP address) sent in SNI and checked against the
    /// certificate.
    pub server_name: String,
}

/// A worker's assignment: a slice of the sessions of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerJob {
    pub worker: u32,
    pub parent_pid: u32,
    pub server: SocketAddr,
    pub tls: Option<TlsJob>,
    /// Global index of this worker's first session; user numbers are
    /// `first_user + index`.
    pub first_session: u64,
    pub session_count: u64,
    pub users_prefix: String,
    pub first_user: u64,
    pub password: PasswordMode,
    /// All source addresses of the storm; session `i` binds to
    /// `source_addresses[i % len]`.
    pub source_addresses: Vec<IpAddr>,
    /// This worker's share of the connect rate, sessions per second.
    pub rate_per_second: Option<f64>,
    /// This worker's share of the in-flight setups.
    pub concurrency: u32,
    pub setup_timeout_ms: u64,
    /// Time after which no new session is started; those not started
    /// count as timed out.
    pub setup_limit_ms: u64,
    /// Report `* N EXISTS` seen during IDLE (the `notify` command).
    pub report_exists: bool,
}

impl WorkerJob {
    /// Returns the user name of global session `index`.
    pub fn user(&self, index: u64) -> String {
        format!("{}{}", self.users_prefix, self.first_user + index)
    }

    pub fn password(&self, index: u64) -> String {
        match &self.password {
            PasswordMode::Numbered => format!("pass{}", self.first_user + index),
            PasswordMode::Same(password) => password.clone(),
        }
    }
}

/// A request from the parent after the setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Report how many sessions are still idle.
    Census,
    /// Close every connection, send `Final` and exit.
    Release,
}

/// A report from a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// Sent once a second during the setup.
    Progress { established: u64, failed: u64 },
    /// Every session of the worker reached IDLE or failed.
    SetupDone(SetupOutcome),
    /// The reply to `Census`.
    Census { live: u64, closed: u64 },
    /// A session in IDLE saw `* N EXISTS` with N − (EXISTS at SELECT) =
    /// `count`, at CLOCK_MONOTONIC `at_ns`.
    Seen {
        session: u64,
        count: u64,
        at_ns: u64,
    },
    /// The reply to `Release`: failures after IDLE began and keepalives
    /// (`* OK` during IDLE) received.
    Final {
        hold_failures: Failures,
        keepalives: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_json() {
        let events = [
            WorkerEvent::Progress {
                established: 3,
                failed: 1,
            },
            WorkerEvent::Census { live: 5, closed: 0 },
            WorkerEvent::Seen {
                session: 7,
                count: 1,
                at_ns: 99,
            },
            WorkerEvent::SetupDone(SetupOutcome {
                established: 2,
                latencies_us: vec![1, 2],
                ..SetupOutcome::default()
            }),
        ];
        for event in events {
            let line = serde_json::to_string(&event).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<WorkerEvent>(&line).unwrap(), event);
        }
    }

    #[test]
    fn users_and_passwords() {
        let job = WorkerJob {
            worker: 0,
            parent_pid: 1,
            server: "127.0.0.1:1143".parse().unwrap(),
            tls: None,
            first_session: 0,
            session_count: 10,
            users_prefix: "user".to_owned(),
            first_user: 1,
            password: PasswordMode::Numbered,
            source_addresses: Vec::new(),
            rate_per_second: None,
            concurrency: 1,
            setup_timeout_ms: 1000,
            setup_limit_ms: 1000,
            report_exists: false,
        };
        assert_eq!(job.user(0), "user1");
        assert_eq!(job.password(4), "pass5");
        let same = WorkerJob {
            password: PasswordMode::Same("pass".to_owned()),
            ..job
        };
        assert_eq!(same.password(4), "pass");
    }
}
