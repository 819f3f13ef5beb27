//! `roost-bench storm`: open the sessions, hold them in IDLE, measure
//! memory before the storm and at the end of the hold, then release.

use std::collections::BTreeMap;

use anyhow::Context as _;
use tokio::time::Instant;

use crate::coordinator::{Workers, plan, run_setup};
use crate::messages::{WorkerCommand, WorkerEvent};
use crate::outcome::Failures;
use crate::procfs::{self, MemoryInfo, ProcessMemory, SocketStats, TcpCounters};
use crate::report::{StormReport, write_json};
use crate::{RunError, StormArgs};

/// Memory figures at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `None` when no server PID was given.
    pub server: Option<ProcessMemory>,
    pub tool: ProcessMemory,
    pub sockets: Option<SocketStats>,
    pub tcp_counters: Option<TcpCounters>,
    pub memory: Option<MemoryInfo>,
    pub slab_caches: Option<BTreeMap<String, u64>>,
}

impl Snapshot {
    /// Reads every figure. The server tree leaves out this process and its
    /// workers, so a server that started roost-bench is not charged for it.
    pub fn take(server_pids: &[u32]) -> Snapshot {
        let own = std::process::id();
        let server = (!server_pids.is_empty())
            .then(|| procfs::tree_memory(&procfs::process_tree(server_pids, &[own])));
        let page_size = crate::system::page_size();
        Snapshot {
            server,
            tool: procfs::tree_memory(&procfs::process_tree(&[own], &[])),
            sockets: procfs::read_socket_stats(page_size),
            tcp_counters: procfs::read_tcp_counters(),
            memory: procfs::read_memory_info(),
            slab_caches: procfs::read_slab_caches(),
        }
    }
}

pub fn run(args: &StormArgs) -> Result<bool, RunError> {
    let plan = plan(&args.session, false)?;
    let server_pids = server_pids(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| RunError::Failed(format!("starting the tokio runtime failed: {err}")))?;
    let report = runtime.block_on(storm(args, plan, server_pids))?;

    print!("{}", report.table());
    if let Some(path) = &args.session.json {
        write_json(path, &report).map_err(RunError::Failed)?;
    }
    Ok(report.sessions.failed == 0)
}

/// Collects the server PIDs from `--server-pid` and `--server-pids-from`
/// and checks that each exists.
fn server_pids(args: &StormArgs) -> Result<Vec<u32>, RunError> {
    let mut pids = args.server_pids.clone();
    if let Some(command) = &args.server_pids_from {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .output()
            .map_err(|err| {
                RunError::Failed(format!("--server-pids-from: running sh failed: {err}"))
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        for word in text.split_whitespace() {
            let pid = word.parse::<u32>().map_err(|_| {
                RunError::Usage(format!(
                    "--server-pids-from {command:?}: output {word:?} is not a process ID"
                ))
            })?;
            pids.push(pid);
        }
        if text.split_whitespace().next().is_none() {
            return Err(RunError::Usage(format!(
                "--server-pids-from {command:?}: printed no process ID"
            )));
        }
    }
    for pid in &pids {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(RunError::Usage(format!(
                "--server-pid {pid}: no such process"
            )));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

async fn storm(
    args: &StormArgs,
    plan: crate::coordinator::Plan,
    server_pids: Vec<u32>,
) -> anyhow::Result<StormReport> {
    let before = Snapshot::take(&server_pids);
    eprintln!(
        "storm: {} sessions to {} from {} source addresses in {} workers",
        plan.sessions,
        args.session.server,
        plan.source_addresses.len(),
        plan.jobs.len()
    );

    let mut workers = Workers::spawn(&plan.jobs).await?;
    let setup = run_setup(&mut workers, &plan, &args.session, |_, _| {}).await?;
    eprintln!(
        "setup done: {} in IDLE, {} failed; holding for {:?}",
        setup.established,
        setup.failures.total(),
        args.hold
    );

    let hold_start = Instant::now();
    let hold_end = hold_start + args.hold;
    // Workers send nothing during a storm's hold but a late progress line.
    while workers.next_event(Some(hold_end)).await?.is_some() {}

    let mut live = 0;
    workers
        .ask(
            WorkerCommand::Census,
            |_, event| match event {
                WorkerEvent::Census { live: count, .. } => {
                    live += count;
                    true
                }
                _ => false,
            },
            |_, _| {},
        )
        .await
        .context("census")?;
    let sample_start = Instant::now();
    let during = Snapshot::take(&server_pids);
    let sample_seconds = sample_start.elapsed().as_secs_f64();
    let hold_seconds = hold_start.elapsed().as_secs_f64();

    let mut hold_failures = Failures::default();
    let mut keepalives = 0;
    workers
        .ask(
            WorkerCommand::Release,
            |_, event| match event {
                WorkerEvent::Final {
                    hold_failures: failures,
                    keepalives: count,
                } => {
                    hold_failures.merge(failures);
                    keepalives += count;
                    true
                }
                _ => false,
            },
            |_, _| {},
        )
        .await
        .context("release")?;
    workers.wait_exit().await;

    Ok(StormReport::build(crate::report::StormInputs {
        args,
        plan: &plan,
        setup,
        hold_failures,
        keepalives,
        live,
        hold_seconds,
        sample_seconds,
        server_pids,
        before,
        during,
    }))
}
