//! `roost-bench`: opens many idle IMAP sessions against a loopback server
//! and measures what they cost it, or replays a governor scenario on real
//! sockets.
//!
//! For `storm` and `notify`, the parent process splits the sessions into
//! worker processes (the same binary started with `--worker`), each under
//! the per-process descriptor limit, and adds up what they report.
//! `scenario` runs in one process. Exit codes: 0 when every session,
//! delivery and probe succeeded (for `scenario`, when no connection failed
//! other than by the governor's refusals and cuts), 1 when some failed or
//! the run could not finish, 2 for an invalid command line or scenario.

mod addresses;
mod connection;
mod coordinator;
mod hold;
mod lmtp;
mod messages;
mod notify;
mod outcome;
mod probe;
mod procfs;
mod report;
mod scenario;
mod session;
mod storm;
mod system;
mod tls;
mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load tool for Roost and other IMAP servers: keeps many sessions in
/// IDLE over loopback and reports setup rate, failures and memory.
#[derive(Parser, Debug)]
#[command(name = "roost-bench", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open sessions (LOGIN, SELECT INBOX, IDLE), hold them in IDLE and
    /// report the server's memory per session.
    Storm(StormArgs),
    /// Hold sessions in IDLE, deliver messages over LMTP and report how
    /// long each took to reach its idle client as `* N EXISTS`; with
    /// --probes, also time a separate client's LOGIN, SELECT and FETCH.
    Notify(NotifyArgs),
    /// Replay a governor scenario (the format `roost simulate` reads) on
    /// real sockets from loopback addresses, or write the server config
    /// and users that the replay needs.
    Scenario(ScenarioArgs),
}

/// Flags shared by `storm` and `notify`: where to connect and how to set
/// sessions up.
#[derive(Args, Debug, Clone)]
pub struct SessionArgs {
    /// IMAP server address, a loopback IP:PORT.
    #[arg(long, default_value = "127.0.0.1:1143", value_name = "ADDR")]
    pub server: SocketAddr,
    /// Number of sessions to open.
    #[arg(long, value_name = "N")]
    pub sessions: u64,
    /// User names are this prefix followed by a number.
    #[arg(long, default_value = "user", value_name = "PREFIX")]
    pub users_prefix: String,
    /// Number of the first user; session K logs in as PREFIX(FIRST+K).
    #[arg(long, default_value_t = 1, value_name = "NUMBER")]
    pub first_user: u64,
    /// Passwords: "plain" sends passN to userN (as the lines
    /// `userN:{PLAIN}passN` set it), "same:PASS" sends PASS to every user.
    #[arg(long, default_value = "plain", value_name = "MODE")]
    pub password_mode: String,
    /// Connect pacing over all workers, sessions per second (such as
    /// 500/s) [default: no pacing].
    #[arg(long, value_name = "RATE", value_parser = system::parse_rate)]
    pub rate: Option<f64>,
    /// Maximum sessions in setup (connect to IDLE) at once, over all
    /// workers.
    #[arg(long, default_value_t = 200, value_name = "C")]
    pub concurrency: u32,
    /// Time a session may take from connect to the IDLE continuation.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = system::parse_duration)]
    pub setup_timeout: Duration,
    /// Time after which no new session is started; the rest count as
    /// timed out.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = system::parse_duration)]
    pub setup_limit: Duration,
    /// Use implicit TLS (IMAPS). Without --ca the certificate is not
    /// verified.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA that signed the server certificate; turns
    /// certificate verification on.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,
    /// TLS server name for SNI and verification [default: the server's IP
    /// address].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,
    /// Number of loopback source addresses [default: as few as the
    /// ephemeral port range allows].
    #[arg(long, value_name = "K")]
    pub source_addresses: Option<u32>,
    /// First source address; the rest follow it upward.
    #[arg(long, default_value = "127.0.0.2", value_name = "IP")]
    pub first_source_address: Ipv4Addr,
    /// Sessions per source address [default: a third of the kernel's
    /// ephemeral port range, at most 20000].
    #[arg(long, value_name = "N")]
    pub sessions_per_address: Option<u32>,
    /// Sessions per worker process [default: 19000, or less when the
    /// descriptor limit is lower]. For tests that need several workers.
    #[arg(long, value_name = "N", hide = true)]
    pub connections_per_worker: Option<u64>,
    /// Write the report as JSON to FILE too.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// How long all sessions stay in IDLE once the last one is set up.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = system::parse_duration)]
    pub hold: Duration,
    /// A server process to measure; its descendants count too. Repeatable.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
    /// Shell command that prints server PIDs, such as "pgrep -x dovecot".
    #[arg(long, value_name = "CMD")]
    pub server_pids_from: Option<String>,
}

#[derive(Args, Debug)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// LMTP server address, a loopback IP:PORT.
    #[arg(long, default_value = "127.0.0.1:2424", value_name = "ADDR")]
    pub lmtp: SocketAddr,
    /// Messages to deliver, each to a random idle user (distinct users
    /// while there are enough).
    #[arg(long, value_name = "K")]
    pub deliveries: u64,
    /// How long a delivery may take to show up as EXISTS before it counts
    /// as lost.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = system::parse_duration)]
    pub timeout: Duration,
    /// Domain added to LMTP recipients (user@DOMAIN) [default: none, the
    /// bare user name].
    #[arg(long, value_name = "DOMAIN")]
    pub rcpt_domain: Option<String>,
    /// Seed for the choice of recipients [default: from the clock].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Probes to make while the sessions idle: one more client connects,
    /// logs in, selects INBOX, fetches every message's flags, UID, size
    /// and header, and logs out, K times one after another [default: no
    /// probes].
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub probes: u64,
    /// Number of the user the probes log in as, with the password that
    /// --password-mode gives it [default: FIRST+SESSIONS, the user after
    /// the idle ones].
    #[arg(long, value_name = "NUMBER")]
    pub probe_user: Option<u64>,
    /// Messages delivered over LMTP to the probe user before the sessions
    /// are set up, so that its FETCH has work.
    #[arg(long, default_value_t = 20, value_name = "M")]
    pub probe_messages: u64,
    /// Pause between one probe's logout and the next connect.
    #[arg(long, default_value = "100ms", value_name = "DURATION", value_parser = system::parse_duration)]
    pub probe_interval: Duration,
    /// Time after which no new probe starts, counted from the end of the
    /// setup.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = system::parse_duration)]
    pub probe_limit: Duration,
}

#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// Scenario file (TOML), such as scenarios/proxy-storm.toml.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// IMAP server to replay the scenario against, a loopback IP:PORT. It
    /// must run with the config --write-config writes for the same scales.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["write_config", "write_users"])]
    pub server: Option<SocketAddr>,
    /// Write a roost.toml for the replay to FILE and exit: the scenario's
    /// [governor] table with its networks moved to loopback ranges, its
    /// counts scaled by --scale-population and its times and rates by
    /// --time-scale.
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Write the scenario's users to FILE and exit, as passwd-file lines
    /// (`USER:{PLAIN}PASSWORD::::::`) for `roost user import`.
    #[arg(long, value_name = "FILE")]
    pub write_users: Option<PathBuf>,
    /// Scenario seconds per real second: 60 replays an hour in a minute.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub time_scale: f64,
    /// Share of each population to replay, above 0 and at most 1; the
    /// governor's session counts and reservations are scaled alike.
    #[arg(long, default_value_t = 1.0, value_name = "FRACTION")]
    pub scale_population: f64,
    /// Real time after which the replay stops [default: the scenario's
    /// duration divided by the time scale].
    #[arg(long, value_name = "DURATION", value_parser = system::parse_duration)]
    pub duration: Option<Duration>,
    /// Password of every scenario user, in --write-users and at LOGIN.
    #[arg(long, default_value = "scenario", value_name = "PASSWORD")]
    pub password: String,
    /// Seed of the clients' random draws [default: the scenario's seed].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Real time one reply from the server may take before the connection
    /// counts as an error.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = system::parse_duration)]
    pub reply_timeout: Duration,
    /// Write the report as JSON to FILE too.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A failed run, printed as one line after `roost-bench: `.
#[derive(Debug)]
pub enum RunError {
    /// Invalid flags; exit code 2.
    Usage(String),
    /// The run could not be done or finished; exit code 1.
    Failed(String),
}

impl From<anyhow::Error> for RunError {
    fn from(err: anyhow::Error) -> RunError {
        RunError::Failed(format!("{err:#}"))
    }
}

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "--worker")
    {
        return worker::main();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Storm(args) => storm::run(&args),
        Command::Notify(args) => notify::run(&args),
        Command::Scenario(args) => scenario::run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(RunError::Usage(message)) => {
            eprintln!("roost-bench: {message}");
            ExitCode::from(2)
        }
        Err(RunError::Failed(message)) => {
            eprintln!("roost-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
