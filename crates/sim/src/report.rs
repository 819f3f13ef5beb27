//! Results of a run: per-policy, per-class numbers, the JSON form, the
//! printed table with its verdict lines, and the time series for the plot.

use std::fmt::Write as _;
use std::time::Duration;

use roost_governor::Time;
use serde::Serialize;

use crate::scenario::Scenario;

/// The report of every policy run over one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub policies: Vec<PolicyReport>,
}

/// One policy's run.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub name: String,
    /// Policy calls (connect, login, release, tick) per second of real
    /// time, engine included. Varies from run to run.
    pub decisions_per_second: f64,
    pub classes: Vec<ClassReport>,
    /// Policy calls over the run.
    pub decisions: u64,
    /// Real time the run took. Varies from run to run.
    pub wall_seconds: f64,
    /// Times the ungoverned server collapsed.
    pub collapses: u64,
    /// Times proxy-cap-reset-15m cut the proxies' connections.
    pub resets: u64,
}

/// One class (population name) under one policy.
#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub name: String,
    pub logins_served: u64,
    /// Refused connections and logins, including connections cut before
    /// their login ran.
    pub logins_refused: u64,
    /// Jain's fairness index of the users' connected seconds:
    /// (sum x)^2 / (n * sum x^2). It is 1 when all are equal and 1/n when one
    /// user has everything; 0 means no user was connected.
    pub jain_connected_time: f64,
    /// Maximum wait: from a client's first refusal until it is next
    /// admitted, or until the end of the run for a client still waiting.
    pub max_wait_s: f64,
    pub p99_wait_s: f64,
    pub p50_wait_s: f64,
    /// The roost policy's lease for the class; 0 for other policies or
    /// classes without rotation.
    pub lease_s: f64,
    pub rotations: u64,
    pub preemptions: u64,
    /// Sessions ended by the policy: rotations, preemptions, collapses and resets.
    pub cuts: u64,
    /// The class's connected seconds divided by capacity times duration:
    /// its share of the server's slot time.
    pub connected_share: f64,
    pub behaviour: String,
    pub clients: u64,
    pub served_fraction: f64,
    pub p90_wait_s: f64,
    /// Wait episodes the percentiles are over.
    pub waits: u64,
    pub collapse_cuts: u64,
    pub reset_cuts: u64,
    /// Sessions the client ended by logging out (a poller's completed syncs).
    pub sessions_completed: u64,
    /// Mean connected seconds per user.
    pub connected_s_mean: f64,
    /// Maximum number of sessions the class held at once.
    pub peak_sessions: u32,
}

/// Computes Jain's fairness index of `values`; 0 when all are zero or
/// there are none.
pub fn jain_index(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || squares <= 0.0 {
        return 0.0;
    }
    sum * sum / (values.len() as f64 * squares)
}

/// Sub-buckets per power of two in [`WaitHistogram`]; the relative error
/// of a percentile is at most 1/64.
const SUB_BUCKETS: u64 = 64;
/// Buckets enough for any `u64` of milliseconds.
const BUCKETS: usize = 2 * SUB_BUCKETS as usize + 57 * SUB_BUCKETS as usize;

/// Wait times in a log-linear histogram of milliseconds, so that memory
/// stays fixed however many waits a run has. The maximum is exact.
#[derive(Clone, Debug)]
pub struct WaitHistogram {
    counts: Vec<u64>,
    total: u64,
    max_ms: u64,
}

impl Default for WaitHistogram {
    fn default() -> Self {
        WaitHistogram { counts: vec![0; BUCKETS], total: 0, max_ms: 0 }
    }
}

impl WaitHistogram {
    pub fn record(&mut self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ms)] += 1;
        self.total += 1;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_seconds(&self) -> f64 {
        self.max_ms as f64 / 1000.0
    }

    /// Returns the wait at quantile `q` (0 to 1) in seconds, 0 when no
    /// wait was recorded.
    pub fn percentile_seconds(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_middle(index).min(self.max_ms) as f64 / 1000.0;
            }
        }
        self.max_seconds()
    }
}

fn bucket_of(ms: u64) -> usize {
    if ms < 2 * SUB_BUCKETS {
        return ms as usize;
    }
    let bits = 64 - u64::from(ms.leading_zeros());
    let shift = bits - 7;
    let mantissa = ms >> shift;
    (2 * SUB_BUCKETS + (shift - 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

fn bucket_middle(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return index;
    }
    let shift = (index - 2 * SUB_BUCKETS) / SUB_BUCKETS + 1;
    let mantissa = (index - 2 * SUB_BUCKETS) % SUB_BUCKETS + SUB_BUCKETS;
    (mantissa << shift) + (1u64 << shift) / 2
}

/// Sessions held per class, sampled every `sample_interval`.
#[derive(Clone, Debug)]
pub struct Series {
    pub classes: Vec<String>,
    pub capacity: u32,
    /// Sample times in minutes from the start.
    pub minutes: Vec<f64>,
    /// Per class, the sessions held at each sample time.
    pub held: Vec<Vec<u32>>,
}

impl Series {
    pub fn new(scenario: &Scenario, classes: &[String]) -> Series {
        let samples = (scenario.duration.as_millis() / scenario.sample_interval.as_millis().max(1)) as usize + 1;
        Series {
            classes: classes.to_vec(),
            capacity: scenario.capacity,
            minutes: Vec::with_capacity(samples),
            held: classes.iter().map(|_| Vec::with_capacity(samples)).collect(),
        }
    }

    pub fn record(&mut self, now: Time, held: &[u32]) {
        self.minutes.push(now.as_millis() as f64 / 60_000.0);
        for (series, count) in self.held.iter_mut().zip(held) {
            series.push(*count);
        }
    }
}

impl Report {
    /// Formats the table: one block per class with a row per policy, then
    /// the verdict lines comparing roost with every other policy.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario {}, seed {}", self.scenario, self.seed);
        let Some(first) = self.policies.first() else { return out };
        let width = self.policies.iter().map(|policy| policy.name.len()).max().unwrap_or(6).max(6);
        for (index, class) in first.classes.iter().enumerate() {
            let _ = writeln!(out, "\nclass {} ({}, {} clients)", class.name, class.behaviour, class.clients);
            let _ = writeln!(
                out,
                "{:<width$} {:>9} {:>9} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6}",
                "policy", "served", "refused", "served%", "jain", "p50 w s", "p90 w s", "p99 w s", "max w s", "lease", "rotated",
                "preempt", "cuts", "share%", "peak",
            );
            for policy in &self.policies {
                let Some(row) = policy.classes.get(index) else { continue };
                let _ = writeln!(
                    out,
                    "{:<width$} {:>9} {:>9} {:>7.1} {:>6.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6.0} {:>7} {:>7} {:>7} {:>6.1} {:>6}",
                    policy.name,
                    row.logins_served,
                    row.logins_refused,
                    row.served_fraction * 100.0,
                    row.jain_connected_time,
                    row.p50_wait_s,
                    row.p90_wait_s,
                    row.p99_wait_s,
                    row.max_wait_s,
                    row.lease_s,
                    row.rotations,
                    row.preemptions,
                    row.cuts,
                    row.connected_share * 100.0,
                    row.peak_sessions,
                );
            }
        }
        let _ = writeln!(out, "\n{:<width$} {:>12} {:>10} {:>9} {:>6}", "policy", "decisions", "decisions/s", "collapses", "resets");
        for policy in &self.policies {
            let _ = writeln!(
                out,
                "{:<width$} {:>12} {:>10.0} {:>9} {:>6}",
                policy.name, policy.decisions, policy.decisions_per_second, policy.collapses, policy.resets
            );
        }
        out.push_str(&self.verdicts());
        out
    }

    /// Formats one verdict line per class and metric, then one line per
    /// other policy saying whether roost beats it overall.
    pub fn verdicts(&self) -> String {
        let mut out = String::new();
        let Some(roost) = self.policies.iter().find(|policy| policy.name == "roost") else { return out };
        let others: Vec<&PolicyReport> = self.policies.iter().filter(|policy| policy.name != "roost").collect();
        if others.is_empty() {
            return out;
        }
        let _ = writeln!(out, "\nverdicts (roost against each other policy):");
        let mut tallies: Vec<(u32, u32, Vec<String>)> = others.iter().map(|_| (0, 0, Vec::new())).collect();
        for (index, class) in roost.classes.iter().enumerate() {
            for metric in METRICS {
                let ours = (metric.value)(class);
                let all_zero = ours == 0.0
                    && others.iter().all(|other| other.classes.get(index).is_none_or(|row| (metric.value)(row) == 0.0));
                if all_zero {
                    // Such as sessions completed by holders, which never log out.
                    continue;
                }
                let mut parts = Vec::new();
                for (other, tally) in others.iter().zip(&mut tallies) {
                    let Some(theirs) = other.classes.get(index).map(|row| (metric.value)(row)) else { continue };
                    let outcome = compare(ours, theirs, metric.higher_is_better, metric.tolerance);
                    let word = match outcome {
                        Ordering3::Better => {
                            tally.0 += 1;
                            "beats"
                        }
                        Ordering3::Worse => {
                            tally.1 += 1;
                            tally.2.push(format!("{} {}", class.name, metric.name));
                            "loses to"
                        }
                        Ordering3::Tie => "ties",
                    };
                    parts.push(format!("{word} {} ({})", other.name, (metric.format)(theirs)));
                }
                let _ = writeln!(out, "  {} {}: roost {}; {}", class.name, metric.name, (metric.format)(ours), parts.join(", "));
            }
        }
        for (other, (wins, losses, lost)) in others.iter().zip(&tallies) {
            let verdict = if wins > losses { "roost beats" } else { "roost does not beat" };
            let detail = if lost.is_empty() { String::new() } else { format!("; worse on {}", lost.join(", ")) };
            let _ = writeln!(out, "overall: {verdict} {} (better on {wins} metrics, worse on {losses}{detail})", other.name);
        }
        out
    }
}

/// A metric the verdict lines compare.
struct Metric {
    name: &'static str,
    value: fn(&ClassReport) -> f64,
    higher_is_better: bool,
    /// Differences at most this large are ties.
    tolerance: f64,
    format: fn(f64) -> String,
}

const METRICS: [Metric; 6] = [
    Metric {
        name: "logins served",
        value: |row| row.served_fraction,
        higher_is_better: true,
        tolerance: 0.0005,
        format: |value| format!("{:.1}%", value * 100.0),
    },
    Metric {
        name: "Jain index of connected time",
        value: |row| row.jain_connected_time,
        higher_is_better: true,
        tolerance: 0.005,
        format: |value| format!("{value:.3}"),
    },
    Metric {
        name: "max wait",
        value: |row| row.max_wait_s,
        higher_is_better: false,
        tolerance: 1.0,
        format: |value| format!("{value:.0} s"),
    },
    Metric {
        name: "p99 wait",
        value: |row| row.p99_wait_s,
        higher_is_better: false,
        tolerance: 1.0,
        format: |value| format!("{value:.0} s"),
    },
    Metric {
        name: "cuts per client",
        value: |row| if row.clients == 0 { 0.0 } else { row.cuts as f64 / row.clients as f64 },
        higher_is_better: false,
        tolerance: 0.05,
        format: |value| format!("{value:.2}"),
    },
    Metric {
        name: "sessions completed",
        value: |row| row.sessions_completed as f64,
        higher_is_better: true,
        tolerance: 0.5,
        format: |value| format!("{value:.0}"),
    },
];

enum Ordering3 {
    Better,
    Worse,
    Tie,
}

fn compare(ours: f64, theirs: f64, higher_is_better: bool, tolerance: f64) -> Ordering3 {
    let gain = if higher_is_better { ours - theirs } else { theirs - ours };
    if gain > tolerance {
        Ordering3::Better
    } else if gain < -tolerance {
        Ordering3::Worse
    } else {
        Ordering3::Tie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_of_equal_values_is_one() {
        assert!((jain_index(&[5.0, 5.0, 5.0]) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain_index(&[0.0, 0.0]), 0.0);
        assert_eq!(jain_index(&[]), 0.0);
    }

    #[test]
    fn histogram_percentiles_within_two_percent() {
        let mut histogram = WaitHistogram::default();
        for ms in 1..=100_000u64 {
            histogram.record(Duration::from_millis(ms));
        }
        for (q, expected) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)] {
            let got = histogram.percentile_seconds(q);
            assert!((got - expected).abs() / expected < 0.02, "q {q}: {got}");
        }
        assert_eq!(histogram.max_seconds(), 100.0);
        assert_eq!(histogram.count(), 100_000);
    }

    #[test]
    fn histogram_buckets_cover_u64() {
        assert!(bucket_of(u64::MAX) < BUCKETS);
        for ms in [0, 1, 127, 128, 129, 1000, 65_535, 1 << 40] {
            let middle = bucket_middle(bucket_of(ms));
            let error = (middle as f64 - ms as f64).abs() / (ms.max(1) as f64);
            assert!(error <= 1.0 / 64.0 + 1e-9, "{ms}: {middle}");
        }
    }
}
