//! `roost-bench scenario`: replays a governor scenario, the file `roost
//! simulate` reads, on real sockets against a running server.
//!
//! The scenario's clients connect from loopback addresses in place of its
//! networks, and its virtual time runs `--time-scale` times faster than
//! real time. The server must run with the config `--write-config` writes
//! for the same scales and hold the users `--write-users` writes.
//!
//! Code map: [`loopback`] moves networks onto loopback ranges, [`prepare`]
//! scales the scenario, [`files`] writes the server's config and users,
//! [`replay`] runs the clients and [`report`] sums them up.

mod files;
mod loopback;
mod prepare;
mod replay;
mod report;

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use roost_governor::Time;
use roost_sim::behaviour::Client;
use tokio::time::Instant;

use crate::addresses::check_loopback;
use crate::report::write_json;
use crate::system::{DESCRIPTOR_RESERVE, DURATION_MAX, raise_descriptor_limit};
use crate::{RunError, ScenarioArgs};
use prepare::Prepared;
use replay::{GroupStats, ReplayJob, Shared, run_client};
use report::{ClassSummary, NetworkPair, ScenarioReport};

/// Largest `--time-scale`.
const TIME_SCALE_MAX: f64 = 100_000.0;

/// How often the replay prints its progress to stderr, in real time.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

pub fn run(args: &ScenarioArgs) -> Result<bool, RunError> {
    let usage = RunError::Usage;
    if !(1.0..=TIME_SCALE_MAX).contains(&args.time_scale) {
        return Err(usage(format!(
            "--time-scale {}: must be from 1 to {TIME_SCALE_MAX}",
            args.time_scale
        )));
    }
    if !(args.scale_population > 0.0 && args.scale_population <= 1.0) {
        return Err(usage(format!(
            "--scale-population {}: must be above 0 and at most 1",
            args.scale_population
        )));
    }
    files::check_password(&args.password).map_err(usage)?;
    if let Some(server) = args.server {
        check_loopback("--server", server).map_err(usage)?;
    } else if args.write_config.is_none() && args.write_users.is_none() {
        return Err(usage(
            "give --server ADDR to replay the scenario, or --write-config FILE and --write-users FILE to prepare the server for it".to_owned(),
        ));
    }

    let mut scenario = roost_sim::load_scenario(&args.file).map_err(usage)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let prepared = prepare::prepare(scenario, args.time_scale, args.scale_population)
        .map_err(|why| usage(format!("{}: {why}", args.file.display())))?;

    match args.server {
        None => {
            write_files(args, &prepared)?;
            Ok(true)
        }
        Some(server) => replay(args, prepared, server),
    }
}

/// Writes the requested files and reports each on stderr.
fn write_files(args: &ScenarioArgs, prepared: &Prepared) -> Result<(), RunError> {
    if let Some(path) = &args.write_config {
        let replay = format!(
            "roost-bench scenario {} --server 127.0.0.1:1143 --time-scale {} --scale-population {}",
            args.file.display(),
            args.time_scale,
            args.scale_population
        );
        let text = files::server_config(prepared, &args.file.display().to_string(), &replay)
            .map_err(RunError::Failed)?;
        write_file("--write-config", path, &text)?;
        eprintln!(
            "wrote the server config to {}; start roost serve with --config {}",
            path.display(),
            path.display()
        );
    }
    if let Some(path) = &args.write_users {
        let text = files::users_file(prepared, &args.password);
        write_file("--write-users", path, &text)?;
        eprintln!(
            "wrote {} users to {}; add them with roost user import {}",
            text.lines().count(),
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn write_file(flag: &str, path: &Path, text: &str) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|err| {
        RunError::Failed(format!("{flag} {}: writing failed: {err}", path.display()))
    })
}

fn replay(
    args: &ScenarioArgs,
    prepared: Prepared,
    server: std::net::SocketAddr,
) -> Result<bool, RunError> {
    let scenario_end = prepared.scenario.duration;
    let real_end = match args.duration {
        Some(duration) => duration.min(scenario_end.div_f64(args.time_scale)),
        None => scenario_end.div_f64(args.time_scale),
    };
    if real_end > DURATION_MAX {
        return Err(RunError::Usage(format!(
            "the replay would take {:.0} s of real time, above the maximum of {} s; raise --time-scale or give --duration",
            real_end.as_secs_f64(),
            DURATION_MAX.as_secs()
        )));
    }
    let descriptors = raise_descriptor_limit()
        .map_err(|err| RunError::Failed(format!("raising the descriptor limit failed: {err}")))?;
    let job = ReplayJob {
        server,
        password: args.password.clone(),
        time_scale: args.time_scale,
        end: Time::from_millis((real_end.as_secs_f64() * args.time_scale * 1000.0) as u64),
        reply_timeout: args.reply_timeout,
        sockets_max: descriptors.saturating_sub(DESCRIPTOR_RESERVE).max(1),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| RunError::Failed(format!("starting the tokio runtime failed: {err}")))?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, run_replay(args, &prepared, job))?;

    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report).map_err(RunError::Failed)?;
    }
    Ok(report.succeeded())
}

async fn run_replay(
    args: &ScenarioArgs,
    prepared: &Prepared,
    job: ReplayJob,
) -> Result<ScenarioReport, RunError> {
    let scenario = &prepared.scenario;

    // Clients as the simulator makes them: the same seeds, addresses and
    // users, grouped by population name.
    let mut names: Vec<String> = Vec::new();
    let mut clients = Vec::new();
    for population in &scenario.populations {
        let group = match names.iter().position(|name| *name == population.name) {
            Some(group) => group,
            None => {
                names.push(population.name.clone());
                names.len() - 1
            }
        };
        for number in 0..population.count {
            let index = clients.len() as u32;
            clients.push(Client::new(
                population,
                group as u16,
                number,
                index,
                scenario.seed,
            ));
        }
    }
    let end = job.end;
    let server = job.server;
    eprintln!(
        "replaying {} ({} clients) against {server} for {:.1} scenario minutes at time scale {}",
        scenario.name,
        clients.len(),
        end.as_millis() as f64 / 60_000.0,
        prepared.time_scale
    );

    let shared = Rc::new(Shared::new(job, names.len()));
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::task::spawn_local(run_client(shared.clone(), client)))
        .collect();
    let progress = tokio::task::spawn_local(print_progress(shared.clone(), names.clone()));
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        let client = task
            .await
            .map_err(|err| RunError::Failed(format!("a client task failed: {err}")))?;
        finished.push(client);
    }
    progress.abort();
    let real_seconds = started.elapsed().as_secs_f64();

    // Close the books at the end: sessions still held count up to it, and
    // clients still waiting have waited until it.
    let mut groups = shared.groups.take();
    for client in &mut finished {
        client.finish(end);
        if let Some(since) = client.waiting_since {
            groups[usize::from(client.group)]
                .waits
                .record(end.since(since));
        }
    }
    let classes = names
        .iter()
        .zip(groups)
        .enumerate()
        .map(|(index, (name, stats))| {
            let members: Vec<&Client> = finished
                .iter()
                .filter(|client| usize::from(client.group) == index)
                .collect();
            ClassSummary::build(name, stats, &members)
        })
        .collect();
    Ok(ScenarioReport {
        command: "scenario",
        scenario: scenario.name.clone(),
        file: args.file.display().to_string(),
        server: server.to_string(),
        seed: scenario.seed,
        time_scale: prepared.time_scale,
        population_scale: prepared.population_scale,
        scenario_seconds: end.as_millis() as f64 / 1000.0,
        real_seconds,
        loopback_networks: prepared
            .map
            .blocks()
            .iter()
            .map(|(from, to)| NetworkPair {
                scenario: from.to_string(),
                loopback: to.to_string(),
            })
            .collect(),
        notes: prepared.notes.clone(),
        classes,
    })
}

/// Prints, every `PROGRESS_INTERVAL`, the scenario time and each class's
/// sessions and logins so far.
async fn print_progress(shared: Rc<Shared>, names: Vec<String>) {
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = shared.now().min(shared.job.end);
        let groups = shared.groups.borrow();
        let parts: Vec<String> = names
            .iter()
            .zip(groups.iter())
            .map(|(name, stats): (&String, &GroupStats)| {
                format!(
                    "{name} {} held, {} served, {} refused, {} rotated",
                    stats.held,
                    stats.served,
                    stats.refused(),
                    stats.rotations
                )
            })
            .collect();
        eprintln!(
            "replay: {:.1} of {:.1} scenario minutes; {}",
            now.as_millis() as f64 / 60_000.0,
            shared.job.end.as_millis() as f64 / 60_000.0,
            parts.join("; ")
        );
    }
}
