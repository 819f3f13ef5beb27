//! The `roost` command: `serve`, `check-config`, `user ...` and `deliver`.
//!
//! This file owns the command line, the one-line error output and the exit
//! codes: 0 on success, 1 when a command fails while running, 2 for an
//! invalid command line, config file or input file (nothing was changed).
//! It wires `roost_auth` and `roost_server` together and implements no
//! protocol or storage itself.

mod config;
mod governor_config;
mod serve;
mod user;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    ConfigError, DATA_DIR_DEFAULT, Settings, apply_file, check_consistency, default_settings, resolve_capacity,
};

/// Roost, an IMAP4rev1 server with LMTP delivery.
#[derive(Parser, Debug)]
#[command(name = "roost", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the IMAP and LMTP server until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Check a config file; print "FILE: ok" or the first error.
    CheckConfig {
        /// TOML config file to check.
        file: PathBuf,
    },
    /// Add, change, delete, list or import users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// List the live IMAP sessions of a running server: user, class,
    /// source, state and time connected.
    Who {
        #[command(flatten)]
        location: DataLocation,
    },
    /// Run the connection governor in virtual time against a scenario's
    /// client populations and compare it with other admission policies.
    Simulate(roost_sim::SimulateArgs),
    /// Deliver the message on stdin to a user's INBOX.
    Deliver {
        /// User who receives the message.
        name: String,
        #[command(flatten)]
        location: DataLocation,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder of the mail store and the users file [default: data_dir from
    /// --config, else ./roost-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// IMAP listen address, IP:PORT or "off" [default: 127.0.0.1:1143].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_flag)]
    imap_listen: Option<Listen>,
    /// LMTP listen address, IP:PORT or "off" [default: 127.0.0.1:2424].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_flag)]
    lmtp_listen: Option<Listen>,
    /// IMAP-over-TLS listen address, IP:PORT or "off" [default: 127.0.0.1:1993].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_flag)]
    imaps_listen: Option<Listen>,
    /// Prometheus metrics listen address (GET /metrics), IP:PORT or "off"
    /// [default: 127.0.0.1:9143].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_flag)]
    metrics_listen: Option<Listen>,
    /// Log filter such as "debug" or "roost_server=debug,info"; overrides
    /// RUST_LOG and the config file's log_level [default: info].
    #[arg(long, value_name = "FILTER", value_parser = parse_log_level_flag)]
    log_level: Option<String>,
}

/// Source of the user commands' data directory: `--data-dir`, else the
/// config file's `data_dir`, else `./roost-data`.
#[derive(Args, Debug)]
struct DataLocation {
    /// Folder of the mail store and the users file [default: data_dir from
    /// --config, else ./roost-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file to take data_dir from; import and deliver also take
    /// the mailbox settings and limits from it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user; the password is read from the terminal (asked twice) or
    /// from the first line of stdin.
    Add {
        name: String,
        #[command(flatten)]
        location: DataLocation,
    },
    /// Change a user's password, read like `user add` reads it.
    Passwd {
        name: String,
        #[command(flatten)]
        location: DataLocation,
    },
    /// Delete a user's login; the user's mail is kept.
    Delete {
        name: String,
        #[command(flatten)]
        location: DataLocation,
    },
    /// List all users, one per line.
    List {
        #[command(flatten)]
        location: DataLocation,
    },
    /// Add or replace users from a passwd-file ("-" reads stdin).
    Import {
        file: PathBuf,
        #[command(flatten)]
        location: DataLocation,
    },
}

/// A listen address from a flag; `None` turns the listener off.
#[derive(Clone, Copy, Debug)]
struct Listen(Option<SocketAddr>);

fn parse_listen_flag(text: &str) -> Result<Listen, String> {
    values::parse_listen(text).map(Listen)
}

fn parse_log_level_flag(text: &str) -> Result<String, String> {
    values::check_log_filter(text).map(|()| text.to_owned())
}

/// A failed command, printed as one line after `roost: `.
#[derive(Debug)]
pub enum CliError {
    /// Bad command line, config or input; exit code 2.
    Usage(String),
    /// An invalid config file; exit code 2.
    Config(ConfigError),
    /// A failure while running; exit code 1.
    Runtime(String),
    /// Stdout was closed by the reader; exit code 0 and no message.
    Quiet,
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::Config(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
            CliError::Quiet => ExitCode::SUCCESS,
        }
    }
}

fn main() -> ExitCode {
    // Mail, the users file and TLS keys are private to the account Roost
    // runs as, so every file and folder it creates is too.
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    return_large_blocks_at_once();
    // clap prints its own usage errors and exits with code 2.
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            match &err {
                CliError::Usage(message) | CliError::Runtime(message) => {
                    eprintln!("roost: {message}")
                }
                CliError::Config(config_error) => eprintln!("roost: {config_error}"),
                CliError::Quiet => {}
            }
            err.exit_code()
        }
    }
}

/// Size from which the allocator maps each block on its own and unmaps it on
/// free.
const MMAP_THRESHOLD_BYTES: libc::c_int = 256 * 1024;

/// Fixes the allocator's mmap threshold. By default glibc raises the
/// threshold past the largest block freed so far, so after one login the
/// password hash's working memory (megabytes) comes from the heap instead,
/// and each thread's arena keeps it after a login storm: hundreds of
/// megabytes a process that idle sessions never use again.
fn return_large_blocks_at_once() {
    // SAFETY: mallopt only changes allocator tuning; it runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => {
            let descriptors = serve::raise_descriptor_limit();
            let mut settings = serve_settings(&args)?;
            serve::init_logging(args.log_level.as_deref(), settings.log_level.as_deref())?;
            if let Some(index) = worker_index()? {
                return serve::run_worker(settings, index);
            }
            serve::resolve_workers(&mut settings, descriptors)?;
            serve::run(settings)
        }
        Command::CheckConfig { file } => {
            let mut settings = default_settings();
            apply_file(&mut settings, &file).map_err(CliError::Config)?;
            let capacity = settings.capacity;
            resolve_capacity(&mut settings.server.governor, &capacity)
                .map_err(|message| CliError::Config(ConfigError { file: file.clone(), message }))?;
            check_tls_files(&settings).map_err(|message| {
                CliError::Config(ConfigError { file: file.clone(), message })
            })?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::User { command } => run_user(command),
        Command::Who { location } => who(&data_dir(&location)?),
        Command::Simulate(args) => {
            let table = roost_sim::run(&args).map_err(|err| match err {
                roost_sim::SimulateError::Invalid(message) => CliError::Usage(message),
                roost_sim::SimulateError::Failed(err) => CliError::Runtime(format!("{err:#}")),
            })?;
            print!("{table}");
            Ok(())
        }
        Command::Deliver { name, location } => user::deliver(&location_settings(&location)?, &name),
    }
}

fn run_user(command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Add { name, location } => user::add(&data_dir(&location)?, &name),
        UserCommand::Passwd { name, location } => user::passwd(&data_dir(&location)?, &name),
        UserCommand::Delete { name, location } => user::delete(&data_dir(&location)?, &name),
        UserCommand::List { location } => user::list(&data_dir(&location)?),
        UserCommand::Import { file, location } => user::import(&location_settings(&location)?, &file),
    }
}

/// Checks that configured certificate and key files can be loaded, so
/// `check-config` catches what would stop `serve`.
fn check_tls_files(settings: &Settings) -> Result<(), String> {
    let tls = &settings.server.tls.settings;
    let (Some(certificate), Some(key)) = (&tls.cert_path, &tls.key_path) else {
        return Ok(());
    };
    roost_server::tls::certificate::read_pem_files(certificate, key)
        .map(|_| ())
        .map_err(|err| format!("keys tls.cert_file and tls.key_file: {err}"))
}

/// Builds the server settings: defaults, then the config file, then flags.
fn serve_settings(args: &ServeArgs) -> Result<Settings, CliError> {
    let mut settings = default_settings();
    if let Some(file) = &args.config {
        apply_file(&mut settings, file).map_err(CliError::Config)?;
    }

    if let Some(data_dir) = &args.data_dir {
        settings.server.data_dir = data_dir.clone();
    }
    if let Some(Listen(address)) = args.imap_listen {
        settings.server.imap_listen = address;
    }
    if let Some(Listen(address)) = args.lmtp_listen {
        settings.server.lmtp_listen = address;
    }
    if let Some(Listen(address)) = args.imaps_listen {
        settings.server.imaps_listen = address;
    }
    if let Some(Listen(address)) = args.metrics_listen {
        settings.server.metrics_listen = address;
    }
    let capacity = settings.capacity;
    resolve_capacity(&mut settings.server.governor, &capacity).map_err(|message| match &args.config {
        Some(file) => CliError::Config(ConfigError { file: file.clone(), message }),
        None => CliError::Usage(message),
    })?;

    // Flags can break a rule between keys that the file alone kept.
    check_consistency(&settings.server).map_err(|message| match &args.config {
        Some(file) => CliError::Config(ConfigError {
            file: file.clone(),
            message,
        }),
        None => CliError::Usage(message),
    })?;
    Ok(settings)
}

/// Returns the worker index when the supervisor started this process as
/// one of its workers.
fn worker_index() -> Result<Option<usize>, CliError> {
    let Some(value) = std::env::var_os(roost_server::workers::pool::WORKER_ENV) else { return Ok(None) };
    let text = value.to_string_lossy();
    text.parse()
        .map(Some)
        .map_err(|_| CliError::Usage(format!("{}={text:?} is not a worker index", roost_server::workers::pool::WORKER_ENV)))
}

/// Prints the running server's session table, read over its admin socket.
fn who(data_dir: &Path) -> Result<(), CliError> {
    let table = roost_server::admin::request(data_dir, "who").map_err(|err| CliError::Runtime(format!("{err:#}")))?;
    print!("{table}");
    Ok(())
}

fn data_dir(location: &DataLocation) -> Result<PathBuf, CliError> {
    if let Some(data_dir) = &location.data_dir {
        return Ok(data_dir.clone());
    }
    if let Some(file) = &location.config {
        let mut settings = default_settings();
        apply_file(&mut settings, file).map_err(CliError::Config)?;
        return Ok(settings.server.data_dir);
    }
    Ok(Path::new(DATA_DIR_DEFAULT).to_path_buf())
}

/// Builds the settings for `roost deliver` and `roost user import`:
/// defaults, then `--config`, then `--data-dir`.
fn location_settings(location: &DataLocation) -> Result<Settings, CliError> {
    let mut settings = default_settings();
    if let Some(file) = &location.config {
        apply_file(&mut settings, file).map_err(CliError::Config)?;
    }
    if let Some(data_dir) = &location.data_dir {
        settings.server.data_dir = data_dir.clone();
    }
    Ok(settings)
}
