//! The reports of both commands: built from the workers' outcomes and the
//! memory snapshots, printed as a table and written as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::coordinator::Plan;
use crate::outcome::{CauseCount, Failures, Percentiles, SetupOutcome};
use crate::probe::ProbeSummary;
use crate::storm::Snapshot;
use crate::{SessionArgs, StormArgs};

/// Slab caches listed in a storm report, those that grew most.
const SLAB_CACHES_LISTED: usize = 8;

/// Slab caches that every TCP connection and its descriptor allocate
/// from: the socket, its inode, the open file and the epoll entries.
/// Other caches also grow with connections (kmalloc buffers), but their
/// growth cannot be separated from the file system's and the server's.
const SOCKET_SLAB_CACHES: &[&str] = &[
    "TCP",
    "TCPv6",
    "sock_inode_cache",
    "filp",
    "eventpoll_epi",
    "eventpoll_pwq",
    "request_sock_TCP",
    "tw_sock_TCP",
];

/// Summary of the sessions' way from connect to IDLE.
#[derive(Clone, Debug, Serialize)]
pub struct SetupSummary {
    /// From the first connect to the last IDLE continuation.
    pub seconds: Option<f64>,
    /// Established sessions divided by `seconds`.
    pub sessions_per_second: Option<f64>,
    /// Connect-to-IDLE latency of the established sessions.
    pub latency: Option<Percentiles>,
}

impl SetupSummary {
    fn from_outcome(outcome: &SetupOutcome) -> SetupSummary {
        let seconds = outcome.setup_seconds();
        let sessions_per_second = seconds
            .filter(|s| *s > 0.0)
            .map(|s| outcome.established as f64 / s);
        let latency = Percentiles::from_micros(
            outcome
                .latencies_us
                .iter()
                .map(|&us| u64::from(us))
                .collect(),
        );
        SetupSummary {
            seconds,
            sessions_per_second,
            latency,
        }
    }
}

/// Session results, the part both reports share.
#[derive(Clone, Debug, Serialize)]
pub struct SessionSummary {
    pub server: String,
    pub tls: bool,
    pub sessions: u64,
    pub established: u64,
    /// Sessions that failed in setup or closed during the hold.
    pub failed: u64,
    pub failures: Failures,
    pub workers: u64,
    pub source_addresses: Vec<String>,
    pub established_per_source_address: Vec<u64>,
    pub setup: SetupSummary,
}

impl SessionSummary {
    fn build(
        args: &SessionArgs,
        plan: &Plan,
        setup: &SetupOutcome,
        hold_failures: &Failures,
    ) -> SessionSummary {
        let mut failures = setup.failures.clone();
        failures.merge(hold_failures);
        SessionSummary {
            server: args.server.to_string(),
            tls: args.tls,
            sessions: plan.sessions,
            established: setup.established,
            failed: failures.total(),
            failures,
            workers: plan.jobs.len() as u64,
            source_addresses: plan
                .source_addresses
                .iter()
                .map(ToString::to_string)
                .collect(),
            established_per_source_address: setup.established_per_address.clone(),
            setup: SetupSummary::from_outcome(setup),
        }
    }

    fn write_table(&self, out: &mut String, command: &str) {
        let _ = writeln!(
            out,
            "roost-bench {command}: {} sessions to {} ({}), {} workers, {} source addresses",
            self.sessions,
            self.server,
            if self.tls { "TLS" } else { "plain" },
            self.workers,
            self.source_addresses.len()
        );
        let _ = writeln!(
            out,
            "  established   {} of {}, failed {}",
            self.established, self.sessions, self.failed
        );
        let mut setup = format!("  setup         {}", seconds(self.setup.seconds));
        if let Some(rate) = self.setup.sessions_per_second {
            let _ = write!(setup, ", {rate:.0} sessions/s");
        }
        if let Some(latency) = &self.setup.latency {
            let _ = write!(
                setup,
                "; latency ms p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms
            );
        }
        let _ = writeln!(out, "{setup}");
        if !self.failures.0.is_empty() {
            let _ = writeln!(out, "  failures (cause, count, first example)");
            for (cause, CauseCount { count, example }) in &self.failures.0 {
                let _ = writeln!(out, "    {:<22} {count:>8}  {example}", cause.label());
            }
        }
    }
}

/// One measured figure before the storm and at the end of the hold.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MemoryRow {
    pub key: String,
    pub label: String,
    /// "bytes" or "count".
    pub unit: &'static str,
    pub before: u64,
    pub during: u64,
    pub delta: i64,
    /// `delta` divided by the sessions idle at the sample.
    pub per_session: Option<f64>,
}

impl MemoryRow {
    fn new(
        key: &str,
        label: &str,
        unit: &'static str,
        before: u64,
        during: u64,
        sessions: u64,
    ) -> MemoryRow {
        let delta = during as i64 - before as i64;
        MemoryRow {
            key: key.to_owned(),
            label: label.to_owned(),
            unit,
            before,
            during,
            delta,
            per_session: (sessions > 0).then(|| delta as f64 / sessions as f64),
        }
    }
}

/// The tool's own memory while the sessions idle.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ToolMemory {
    pub processes: u64,
    pub rss_bytes: u64,
    pub pss_bytes: u64,
    pub rss_per_session: Option<f64>,
    pub pss_per_session: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HoldSummary {
    /// From the end of the setup to the memory sample.
    pub seconds: f64,
    /// Sessions still in IDLE when memory was sampled.
    pub live_at_sample: u64,
    pub closed_during_hold: u64,
    /// `* OK` lines received during IDLE.
    pub keepalives: u64,
    /// Time the memory sample took to read.
    pub sample_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StormReport {
    pub command: &'static str,
    #[serde(flatten)]
    pub sessions: SessionSummary,
    pub hold: HoldSummary,
    pub server_pids: Vec<u32>,
    /// Rows in order: server, sockets, TCP counters, kernel memory, tool.
    pub memory: Vec<MemoryRow>,
    /// The slab caches that grew most, when /proc/slabinfo is readable.
    pub slab_caches: Vec<MemoryRow>,
    pub tool: ToolMemory,
}

/// Everything a storm report is built from.
pub struct StormInputs<'a> {
    pub args: &'a StormArgs,
    pub plan: &'a Plan,
    pub setup: SetupOutcome,
    pub hold_failures: Failures,
    pub keepalives: u64,
    pub live: u64,
    pub hold_seconds: f64,
    pub sample_seconds: f64,
    pub server_pids: Vec<u32>,
    pub before: Snapshot,
    pub during: Snapshot,
}

impl StormReport {
    pub fn build(inputs: StormInputs<'_>) -> StormReport {
        let StormInputs {
            args,
            plan,
            setup,
            hold_failures,
            keepalives,
            live,
            hold_seconds,
            sample_seconds,
            server_pids,
            before,
            during,
        } = inputs;
        let sessions = SessionSummary::build(&args.session, plan, &setup, &hold_failures);
        let memory = memory_rows(&before, &during, live);
        let slab_caches = slab_rows(&before, &during, live);
        let per_session = |bytes: u64| (live > 0).then(|| bytes as f64 / live as f64);
        let tool = ToolMemory {
            processes: during.tool.processes,
            rss_bytes: during.tool.rss_bytes,
            pss_bytes: during.tool.pss_bytes,
            rss_per_session: per_session(during.tool.rss_bytes),
            pss_per_session: per_session(during.tool.pss_bytes),
        };
        StormReport {
            command: "storm",
            sessions,
            hold: HoldSummary {
                seconds: hold_seconds,
                live_at_sample: live,
                closed_during_hold: hold_failures.total(),
                keepalives,
                sample_seconds,
            },
            server_pids,
            memory,
            slab_caches,
            tool,
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        self.sessions.write_table(&mut out, "storm");
        let _ = writeln!(
            out,
            "  hold          {:.1} s, {} in IDLE at the sample, {} closed, {} keepalives",
            self.hold.seconds,
            self.hold.live_at_sample,
            self.hold.closed_during_hold,
            self.hold.keepalives
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<44} {:>12} {:>12} {:>12} {:>13}",
            "measured (during = at the end of the hold)",
            "before",
            "during",
            "delta",
            "per session"
        );
        for row in self.memory.iter().chain(&self.slab_caches) {
            let _ = writeln!(
                out,
                "  {:<44} {:>12} {:>12} {:>12} {:>13}",
                row.label,
                amount(row.unit, row.before as f64),
                amount(row.unit, row.during as f64),
                signed_amount(row.unit, row.delta),
                row.per_session
                    .map_or("-".to_owned(), |value| per_session(row.unit, value)),
            );
        }
        if self.server_pids.is_empty() {
            let _ = writeln!(
                out,
                "  (no --server-pid given, so the server's own memory was not measured)"
            );
        }
        let _ = writeln!(
            out,
            "  tool: {} processes, RSS {} ({} per session), PSS {} ({} per session)",
            self.tool.processes,
            amount("bytes", self.tool.rss_bytes as f64),
            self.tool
                .rss_per_session
                .map_or("-".to_owned(), |value| per_session("bytes", value)),
            amount("bytes", self.tool.pss_bytes as f64),
            self.tool
                .pss_per_session
                .map_or("-".to_owned(), |value| per_session("bytes", value)),
        );
        out
    }
}

fn memory_rows(before: &Snapshot, during: &Snapshot, sessions: u64) -> Vec<MemoryRow> {
    let mut rows = Vec::new();
    if let (Some(b), Some(d)) = (before.server, during.server) {
        rows.push(MemoryRow::new(
            "server_processes",
            "server processes",
            "count",
            b.processes,
            d.processes,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "server_rss",
            "server RSS",
            "bytes",
            b.rss_bytes,
            d.rss_bytes,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "server_pss",
            "server PSS",
            "bytes",
            b.pss_bytes,
            d.pss_bytes,
            sessions,
        ));
    }
    if let (Some(b), Some(d)) = (before.sockets, during.sockets) {
        rows.push(MemoryRow::new(
            "sockets_used",
            "sockets used (both ends)",
            "count",
            b.sockets_used,
            d.sockets_used,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "tcp_in_use",
            "TCP sockets in use (both ends)",
            "count",
            b.tcp_in_use,
            d.tcp_in_use,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "tcp_memory",
            "kernel TCP buffers (sockstat mem)",
            "bytes",
            b.tcp_memory_bytes,
            d.tcp_memory_bytes,
            sessions,
        ));
    }
    if let (Some(b), Some(d)) = (before.tcp_counters, during.tcp_counters) {
        rows.push(MemoryRow::new(
            "listen_overflows",
            "TCP listen queue overflows (machine)",
            "count",
            b.listen_overflows,
            d.listen_overflows,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "syn_retransmits",
            "TCP SYN retransmits (machine)",
            "count",
            b.syn_retransmits,
            d.syn_retransmits,
            sessions,
        ));
    }
    if let (Some(b), Some(d)) = (before.memory, during.memory) {
        rows.push(MemoryRow::new(
            "slab",
            "kernel Slab",
            "bytes",
            b.slab_bytes,
            d.slab_bytes,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "slab_unreclaimable",
            "kernel SUnreclaim",
            "bytes",
            b.slab_unreclaimable_bytes,
            d.slab_unreclaimable_bytes,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "page_tables",
            "kernel PageTables",
            "bytes",
            b.page_tables_bytes,
            d.page_tables_bytes,
            sessions,
        ));
        rows.push(MemoryRow::new(
            "machine_used",
            "machine used (MemTotal - MemAvailable)",
            "bytes",
            b.used_bytes,
            d.used_bytes,
            sessions,
        ));
    }
    if let (Some(b), Some(d)) = (&before.slab_caches, &during.slab_caches) {
        let sockets = |caches: &std::collections::BTreeMap<String, u64>| {
            SOCKET_SLAB_CACHES
                .iter()
                .filter_map(|name| caches.get(*name))
                .sum::<u64>()
        };
        rows.push(MemoryRow::new(
            "socket_slab",
            "slab of sockets (TCP, sock_inode, filp, epoll)",
            "bytes",
            sockets(b),
            sockets(d),
            sessions,
        ));
        rows.push(MemoryRow::new(
            "slabinfo_total",
            "slabinfo, all caches (active objects)",
            "bytes",
            b.values().sum(),
            d.values().sum(),
            sessions,
        ));
    }
    rows.push(MemoryRow::new(
        "tool_rss",
        "roost-bench RSS",
        "bytes",
        before.tool.rss_bytes,
        during.tool.rss_bytes,
        sessions,
    ));
    rows.push(MemoryRow::new(
        "tool_pss",
        "roost-bench PSS",
        "bytes",
        before.tool.pss_bytes,
        during.tool.pss_bytes,
        sessions,
    ));
    rows
}

/// Returns the slab caches that grew most, largest growth first.
fn slab_rows(before: &Snapshot, during: &Snapshot, sessions: u64) -> Vec<MemoryRow> {
    let (Some(b), Some(d)) = (&before.slab_caches, &during.slab_caches) else {
        return Vec::new();
    };
    let mut rows: Vec<MemoryRow> = d
        .iter()
        .map(|(name, &bytes)| {
            let earlier = b.get(name).copied().unwrap_or(0);
            MemoryRow::new(
                &format!("slab_{name}"),
                &format!("  slab {name}"),
                "bytes",
                earlier,
                bytes,
                sessions,
            )
        })
        .filter(|row| row.delta > 0)
        .collect();
    rows.sort_by(|x, y| y.delta.cmp(&x.delta).then_with(|| x.key.cmp(&y.key)));
    rows.truncate(SLAB_CACHES_LISTED);
    rows
}

/// Delivery results of `notify`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DeliverySummary {
    pub requested: u64,
    /// Deliveries the LMTP server accepted with 250.
    pub accepted: u64,
    pub rejected: CauseCount,
    /// Accepted deliveries seen as EXISTS by their idle client in time.
    pub seen: u64,
    /// Accepted deliveries not seen within the timeout, or whose session
    /// closed first.
    pub not_seen: CauseCount,
    pub timeout_seconds: f64,
    /// Time the LMTP client took for all deliveries.
    pub lmtp_seconds: f64,
    /// From the end of DATA (the final dot written) to `* N EXISTS`.
    pub delay: Option<Percentiles>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotifyReport {
    pub command: &'static str,
    #[serde(flatten)]
    pub sessions: SessionSummary,
    pub lmtp: String,
    pub deliveries: DeliverySummary,
    /// The probe client's logins while the sessions idled, when asked for.
    pub probes: Option<ProbeSummary>,
}

impl NotifyReport {
    pub fn build(
        args: &crate::NotifyArgs,
        plan: &Plan,
        setup: &SetupOutcome,
        hold_failures: &Failures,
        deliveries: DeliverySummary,
        probes: Option<ProbeSummary>,
    ) -> NotifyReport {
        NotifyReport {
            command: "notify",
            sessions: SessionSummary::build(&args.session, plan, setup, hold_failures),
            lmtp: args.lmtp.to_string(),
            deliveries,
            probes,
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        self.sessions.write_table(&mut out, "notify");
        let d = &self.deliveries;
        let _ = writeln!(
            out,
            "  deliveries    {} requested over LMTP {}, {} accepted, {} rejected, {} seen, {} not seen within {:.1} s",
            d.requested,
            self.lmtp,
            d.accepted,
            d.rejected.count,
            d.seen,
            d.not_seen.count,
            d.timeout_seconds
        );
        let _ = writeln!(out, "  LMTP time     {:.2} s", d.lmtp_seconds);
        if let Some(delay) = &d.delay {
            let _ = writeln!(
                out,
                "  delay ms      p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (end of DATA to * N EXISTS)",
                delay.p50_ms, delay.p90_ms, delay.p99_ms, delay.max_ms
            );
        }
        if d.rejected.count > 0 {
            let _ = writeln!(out, "  first rejection: {}", d.rejected.example);
        }
        if d.not_seen.count > 0 {
            let _ = writeln!(out, "  first delivery not seen: {}", d.not_seen.example);
        }
        if let Some(probes) = &self.probes {
            write_probes(&mut out, probes);
        }
        out
    }

    pub fn succeeded(&self) -> bool {
        self.sessions.failed == 0
            && self.deliveries.rejected.count == 0
            && self.deliveries.not_seen.count == 0
            && self.probes.as_ref().is_none_or(|probes| probes.failed == 0)
    }
}

fn write_probes(out: &mut String, probes: &ProbeSummary) {
    let mut line = format!(
        "  probes        {} of {} as {}, {} failed, {} not started",
        probes.completed, probes.requested, probes.user, probes.failed, probes.not_started
    );
    match (probes.messages_min, probes.messages_max) {
        (Some(min), Some(max)) if min == max => {
            let _ = write!(line, "; {min} messages fetched each");
        }
        (Some(min), Some(max)) => {
            let _ = write!(line, "; {min} to {max} messages fetched each");
        }
        _ => {}
    }
    let _ = writeln!(out, "{line}");
    if let Some(latency) = &probes.login_select_fetch {
        let _ = writeln!(
            out,
            "  probe ms      p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (LOGIN sent to FETCH done)",
            latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms
        );
    }
    let steps = [
        ("connect", &probes.connect),
        ("LOGIN", &probes.login),
        ("SELECT", &probes.select),
        ("FETCH", &probes.fetch),
    ];
    let parts: Vec<String> = steps
        .iter()
        .filter_map(|(name, step)| {
            step.as_ref()
                .map(|step| format!("{name} {:.1}/{:.1}", step.p50_ms, step.p99_ms))
        })
        .collect();
    if !parts.is_empty() {
        let _ = writeln!(out, "  probe steps   p50/p99 ms: {}", parts.join(", "));
    }
    for (cause, CauseCount { count, example }) in &probes.failures.0 {
        let _ = writeln!(out, "    probe {:<16} {count:>8}  {example}", cause.label());
    }
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json(path: &Path, report: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(report)
        .map_err(|err| format!("encoding the JSON report failed: {err}"))?;
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|err| format!("--json {}: writing failed: {err}", path.display()))
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |s| format!("{s:.2} s"))
}

fn amount(unit: &str, value: f64) -> String {
    if unit == "count" {
        return format!("{value:.0}");
    }
    let magnitude = value.abs();
    if magnitude >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", value / (1024.0 * 1024.0 * 1024.0))
    } else if magnitude >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else if magnitude >= 1024.0 {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        format!("{value:.0} B")
    }
}

fn signed_amount(unit: &str, value: i64) -> String {
    let text = amount(unit, value as f64);
    if value > 0 { format!("+{text}") } else { text }
}

fn per_session(unit: &str, value: f64) -> String {
    if unit == "count" {
        format!("{value:.2}")
    } else {
        format!("{:.2} KiB", value / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{MemoryInfo, ProcessMemory, SocketStats};

    fn snapshot(server_pss: u64, slab: u64, tcp_cache: u64) -> Snapshot {
        Snapshot {
            server: Some(ProcessMemory {
                processes: 1,
                rss_bytes: server_pss * 2,
                pss_bytes: server_pss,
            }),
            tool: ProcessMemory {
                processes: 1,
                rss_bytes: 1000,
                pss_bytes: 900,
            },
            sockets: Some(SocketStats {
                sockets_used: 10,
                tcp_in_use: 4,
                tcp_memory_bytes: 4096,
            }),
            tcp_counters: None,
            memory: Some(MemoryInfo {
                slab_bytes: slab,
                slab_unreclaimable_bytes: slab / 2,
                page_tables_bytes: 0,
                used_bytes: 0,
            }),
            slab_caches: Some(
                [("TCP".to_owned(), tcp_cache), ("dentry".to_owned(), 50)]
                    .into_iter()
                    .collect(),
            ),
        }
    }

    #[test]
    fn memory_rows_per_session() {
        let rows = memory_rows(
            &snapshot(1_000, 10_000, 100),
            &snapshot(401_000, 30_000, 2_100),
            100,
        );
        let pss = rows.iter().find(|row| row.key == "server_pss").unwrap();
        assert_eq!(pss.delta, 400_000);
        assert_eq!(pss.per_session, Some(4_000.0));
        let slab = rows.iter().find(|row| row.key == "slab").unwrap();
        assert_eq!(slab.per_session, Some(200.0));
        let total = rows.iter().find(|row| row.key == "slabinfo_total").unwrap();
        assert_eq!(total.delta, 2_000);
    }

    #[test]
    fn memory_rows_without_sessions_or_server() {
        let mut before = snapshot(1, 1, 1);
        before.server = None;
        let rows = memory_rows(&before, &snapshot(5, 5, 5), 0);
        assert!(rows.iter().all(|row| row.key != "server_pss"));
        assert!(rows.iter().all(|row| row.per_session.is_none()));
    }

    #[test]
    fn negative_delta() {
        let row = MemoryRow::new("x", "x", "bytes", 5_000, 1_000, 4);
        assert_eq!(row.delta, -4_000);
        assert_eq!(row.per_session, Some(-1_000.0));
        assert_eq!(signed_amount("bytes", row.delta), "-3.9 KiB");
    }

    #[test]
    fn slab_rows_list_growth_only() {
        let rows = slab_rows(&snapshot(0, 0, 100), &snapshot(0, 0, 5_100), 10);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "slab_TCP");
        assert_eq!(rows[0].per_session, Some(500.0));
    }

    #[test]
    fn amounts_readable() {
        assert_eq!(amount("bytes", 512.0), "512 B");
        assert_eq!(amount("bytes", 2048.0), "2.0 KiB");
        assert_eq!(amount("bytes", 3.5 * 1024.0 * 1024.0), "3.5 MiB");
        assert_eq!(amount("count", 12.0), "12");
        assert_eq!(per_session("bytes", 1536.0), "1.50 KiB");
    }
}
