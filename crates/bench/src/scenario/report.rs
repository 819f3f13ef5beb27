//! The report of a replay: per class (population name), what the server
//! did with its logins and sessions, as a table and as JSON. Times are in
//! scenario seconds, real seconds times the time scale, so that they
//! compare with `roost simulate`.

use std::fmt::Write as _;

use roost_sim::behaviour::Client;
use roost_sim::report::jain_index;
use serde::Serialize;

use super::replay::GroupStats;
use crate::outcome::{CauseCount, Failures};

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub command: &'static str,
    pub scenario: String,
    pub file: String,
    pub server: String,
    pub seed: u64,
    pub time_scale: f64,
    pub population_scale: f64,
    /// Virtual time the replay covered.
    pub scenario_seconds: f64,
    pub real_seconds: f64,
    pub loopback_networks: Vec<NetworkPair>,
    /// Changes the scaling made beyond dividing and multiplying.
    pub notes: Vec<String>,
    pub classes: Vec<ClassSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetworkPair {
    pub scenario: String,
    pub loopback: String,
}

/// One class: the clients of the populations that share a name.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    pub name: String,
    pub behaviour: String,
    pub clients: u64,
    pub logins_served: u64,
    /// Refusals at the greeting (`* BYE`) or at LOGIN (`NO`) with a
    /// governor's response code.
    pub logins_refused: u64,
    pub refused_unavailable: u64,
    pub refused_limit: u64,
    /// Refusals by `* BYE` with neither code.
    pub refused_other: u64,
    pub refused_at_greeting: u64,
    /// Served logins over served and refused ones; 1 when there were none.
    pub served_fraction: f64,
    /// `* BYE [UNAVAILABLE] session rotated ...` received in a session.
    pub rotations: u64,
    /// `* BYE [UNAVAILABLE] session ended to ...` received in a session.
    pub preemptions: u64,
    /// Sessions ended by another BYE or closed without one.
    pub other_cuts: u64,
    /// Sessions the client ended with LOGOUT.
    pub sessions_completed: u64,
    /// Jain's fairness index of the users' connected time: 1 when all are
    /// equal, 1/n when one user has it all, 0 when no one was connected.
    pub jain_connected_time: f64,
    pub connected_s_mean: f64,
    /// From a client's first refusal until it is next admitted, or until
    /// the end for a client still waiting.
    pub p50_wait_s: f64,
    pub p99_wait_s: f64,
    pub max_wait_s: f64,
    /// Wait episodes the percentiles are over.
    pub waits: u64,
    /// Most sessions the class held at once.
    pub peak_sessions: u32,
    /// Connections that failed other than by a governor's refusal or cut,
    /// such as a timeout or an unexpected reply.
    pub errors: u64,
    pub failures: Failures,
    /// Connections the tool skipped because it had as many open as its
    /// descriptor limit allows.
    pub tool_limited: u64,
    pub refusal_example: Option<String>,
    pub rotation_example: Option<String>,
    pub preemption_example: Option<String>,
    pub other_cut_example: Option<String>,
}

impl ClassSummary {
    /// Summarizes one group from its counters and its clients, whose
    /// connected time and wait have been closed at the end.
    pub fn build(name: &str, stats: GroupStats, clients: &[&Client]) -> ClassSummary {
        let connected: Vec<f64> = clients
            .iter()
            .map(|client| client.connected_ms as f64 / 1000.0)
            .collect();
        let refused = stats.refused();
        let attempts = stats.served + refused;
        ClassSummary {
            name: name.to_owned(),
            behaviour: clients
                .first()
                .map_or("", |client| client.behaviour.label())
                .to_owned(),
            clients: clients.len() as u64,
            logins_served: stats.served,
            logins_refused: refused,
            refused_unavailable: stats.refused_unavailable,
            refused_limit: stats.refused_limit,
            refused_other: stats.refused_other,
            refused_at_greeting: stats.refused_at_greeting,
            served_fraction: if attempts == 0 {
                1.0
            } else {
                stats.served as f64 / attempts as f64
            },
            rotations: stats.rotations,
            preemptions: stats.preemptions,
            other_cuts: stats.other_cuts,
            sessions_completed: stats.completed,
            jain_connected_time: jain_index(&connected),
            connected_s_mean: if connected.is_empty() {
                0.0
            } else {
                connected.iter().sum::<f64>() / connected.len() as f64
            },
            p50_wait_s: stats.waits.percentile_seconds(0.5),
            p99_wait_s: stats.waits.percentile_seconds(0.99),
            max_wait_s: stats.waits.max_seconds(),
            waits: stats.waits.count(),
            peak_sessions: stats.peak,
            errors: stats.errors.total(),
            failures: stats.errors,
            tool_limited: stats.tool_limited,
            refusal_example: stats.refusal_example,
            rotation_example: stats.rotation_example,
            preemption_example: stats.preemption_example,
            other_cut_example: stats.other_cut_example,
        }
    }
}

impl ScenarioReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "roost-bench scenario: {} ({}) against {}, seed {}",
            self.scenario, self.file, self.server, self.seed
        );
        let _ = writeln!(
            out,
            "  time scale {} ({:.1} scenario minutes in {:.1} s), population scale {}",
            self.time_scale,
            self.scenario_seconds / 60.0,
            self.real_seconds,
            self.population_scale
        );
        let networks: Vec<String> = self
            .loopback_networks
            .iter()
            .map(|pair| format!("{} -> {}", pair.scenario, pair.loopback))
            .collect();
        let _ = writeln!(out, "  networks   {}", networks.join(", "));
        for note in &self.notes {
            let _ = writeln!(out, "  note       {note}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<10} {:<8} {:>7} {:>8} {:>8} {:>7} {:>5} {:>7} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7} {:>5} {:>6} {:>6}",
            "class",
            "model",
            "clients",
            "served",
            "refused",
            "UNAVAIL",
            "LIMIT",
            "served%",
            "jain",
            "p50 w s",
            "p99 w s",
            "max w s",
            "rotated",
            "preempt",
            "cuts",
            "peak",
            "errors"
        );
        for class in &self.classes {
            let _ = writeln!(
                out,
                "  {:<10} {:<8} {:>7} {:>8} {:>8} {:>7} {:>5} {:>7.1} {:>6.3} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>7} {:>5} {:>6} {:>6}",
                class.name,
                class.behaviour,
                class.clients,
                class.logins_served,
                class.logins_refused,
                class.refused_unavailable,
                class.refused_limit,
                class.served_fraction * 100.0,
                class.jain_connected_time,
                class.p50_wait_s,
                class.p99_wait_s,
                class.max_wait_s,
                class.rotations,
                class.preemptions,
                class.other_cuts,
                class.peak_sessions,
                class.errors + class.tool_limited
            );
        }
        let _ = writeln!(
            out,
            "  (waits in scenario seconds: real seconds times the time scale)"
        );
        self.write_examples(&mut out);
        out
    }

    /// Writes each class's first refusal and cut of each kind, and its
    /// errors.
    fn write_examples(&self, out: &mut String) {
        for class in &self.classes {
            let examples = [
                ("first refusal", &class.refusal_example),
                ("first rotation", &class.rotation_example),
                ("first preemption", &class.preemption_example),
                ("first other cut", &class.other_cut_example),
            ];
            for (label, example) in examples {
                if let Some(example) = example {
                    let _ = writeln!(out, "  {} {label}: {example}", class.name);
                }
            }
            for (cause, CauseCount { count, example }) in &class.failures.0 {
                let _ = writeln!(
                    out,
                    "  {} error {}: {count}, first: {example}",
                    class.name,
                    cause.label()
                );
            }
            if class.tool_limited > 0 {
                let _ = writeln!(
                    out,
                    "  {} connections skipped at the tool's descriptor limit: {}",
                    class.name, class.tool_limited
                );
            }
        }
    }

    /// Checks that no connection failed other than by the governor's
    /// decisions.
    pub fn succeeded(&self) -> bool {
        self.classes
            .iter()
            .all(|class| class.errors == 0 && class.tool_limited == 0)
    }
}
