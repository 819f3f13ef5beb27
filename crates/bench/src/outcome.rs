//! Results of sessions and their aggregation: failure causes with a first
//! example each, setup latencies and percentiles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Maximum length of the example message kept per failure cause, in bytes.
pub const EXAMPLE_BYTES_MAX: usize = 200;

/// The reason a session did not reach or did not stay in IDLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The TCP connect (or the bind before it) failed.
    Connect,
    /// The TLS handshake failed.
    TlsHandshake,
    /// The server sent `* BYE` before IDLE began, as a governor refusal does.
    RefusedBye,
    /// LOGIN got NO or BAD.
    LoginRejected,
    /// SELECT got NO or BAD.
    SelectFailed,
    /// IDLE got NO or BAD instead of a `+` continuation.
    IdleRejected,
    /// A probe's FETCH got NO or BAD.
    FetchFailed,
    /// A greeting or reply that fits no step of the setup.
    UnexpectedResponse,
    /// The setup did not reach IDLE within the setup timeout or limit.
    Timeout,
    /// The server closed the connection before IDLE began.
    ClosedDuringSetup,
    /// The server sent BYE or closed the connection while the session idled.
    ClosedDuringHold,
    /// The server ended IDLE with a tagged reply while the session idled.
    IdleEnded,
}

impl Cause {
    /// Returns the label used in the human table.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Connect => "connect error",
            Cause::TlsHandshake => "TLS handshake failed",
            Cause::RefusedBye => "refused with BYE",
            Cause::LoginRejected => "LOGIN rejected",
            Cause::SelectFailed => "SELECT failed",
            Cause::IdleRejected => "IDLE rejected",
            Cause::FetchFailed => "FETCH failed",
            Cause::UnexpectedResponse => "unexpected response",
            Cause::Timeout => "timed out",
            Cause::ClosedDuringSetup => "closed during setup",
            Cause::ClosedDuringHold => "closed during hold",
            Cause::IdleEnded => "IDLE ended by server",
        }
    }
}

/// The count of one failure cause and the first message seen for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseCount {
    pub count: u64,
    pub example: String,
}

/// Failures by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Failures(pub BTreeMap<Cause, CauseCount>);

impl Failures {
    /// Counts one failure. `example` is only built for the first one of
    /// each cause.
    pub fn record(&mut self, cause: Cause, example: impl FnOnce() -> String) {
        let entry = self.0.entry(cause).or_default();
        if entry.count == 0 {
            entry.example = truncate_example(example());
        }
        entry.count += 1;
    }

    /// Adds `other`'s counts; an example already present is kept.
    pub fn merge(&mut self, other: &Failures) {
        for (cause, counted) in &other.0 {
            let entry = self.0.entry(*cause).or_default();
            if entry.count == 0 {
                entry.example = counted.example.clone();
            }
            entry.count += counted.count;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().map(|counted| counted.count).sum()
    }

    #[cfg(test)]
    pub fn count(&self, cause: Cause) -> u64 {
        self.0.get(&cause).map_or(0, |counted| counted.count)
    }
}

fn truncate_example(mut text: String) -> String {
    if text.len() > EXAMPLE_BYTES_MAX {
        let mut end = EXAMPLE_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A worker's report once all its sessions have reached IDLE or failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupOutcome {
    pub established: u64,
    pub failures: Failures,
    /// Connect-to-IDLE time of each established session, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Established sessions per source address, indexed as in the job.
    pub established_per_address: Vec<u64>,
    /// CLOCK_MONOTONIC of the first connect attempt, in nanoseconds.
    pub first_connect_ns: Option<u64>,
    /// CLOCK_MONOTONIC of the last IDLE continuation, in nanoseconds.
    pub last_idle_ns: Option<u64>,
    /// Global indices of the sessions that failed; filled in `notify` runs
    /// only, which must not deliver to them.
    pub failed_sessions: Vec<u64>,
}

impl SetupOutcome {
    pub fn merge(&mut self, other: &SetupOutcome) {
        self.established += other.established;
        self.failures.merge(&other.failures);
        self.latencies_us.extend_from_slice(&other.latencies_us);
        if self.established_per_address.len() < other.established_per_address.len() {
            self.established_per_address
                .resize(other.established_per_address.len(), 0);
        }
        for (total, count) in self
            .established_per_address
            .iter_mut()
            .zip(&other.established_per_address)
        {
            *total += count;
        }
        self.first_connect_ns = min_option(self.first_connect_ns, other.first_connect_ns);
        self.last_idle_ns = self.last_idle_ns.max(other.last_idle_ns);
        self.failed_sessions
            .extend_from_slice(&other.failed_sessions);
    }

    /// Returns the seconds from the first connect to the last IDLE.
    pub fn setup_seconds(&self) -> Option<f64> {
        let (first, last) = (self.first_connect_ns?, self.last_idle_ns?);
        Some(last.saturating_sub(first) as f64 / 1e9)
    }
}

fn min_option(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Returns the nearest-rank percentile `p` (0 < p <= 100) of sorted
/// values: the smallest value with at least p% of all values at or below
/// it.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Percentiles of a latency sample, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarizes values in microseconds; `None` when there are none.
    pub fn from_micros(mut values: Vec<u64>) -> Option<Percentiles> {
        values.sort_unstable();
        let ms = |p: f64| percentile(&values, p).map(|us| us as f64 / 1000.0);
        Some(Percentiles {
            count: values.len() as u64,
            p50_ms: ms(50.0)?,
            p90_ms: ms(90.0)?,
            p99_ms: ms(99.0)?,
            max_ms: ms(100.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 90.0), Some(90));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&values, 0.1), Some(1));
    }

    #[test]
    fn percentile_small_samples() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        // Ten values: p99 is the largest, p50 the fifth.
        let values: Vec<u64> = (10..20).collect();
        assert_eq!(percentile(&values, 50.0), Some(14));
        assert_eq!(percentile(&values, 99.0), Some(19));
        assert_eq!(percentile(&values, 90.0), Some(18));
    }

    #[test]
    fn percentiles_in_milliseconds() {
        let summary = Percentiles::from_micros(vec![3000, 1000, 2000, 4000]).unwrap();
        assert_eq!(summary.count, 4);
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.p90_ms, 4.0);
        assert_eq!(summary.max_ms, 4.0);
        assert!(Percentiles::from_micros(Vec::new()).is_none());
    }

    #[test]
    fn failures_keep_first_example() {
        let mut failures = Failures::default();
        failures.record(Cause::LoginRejected, || "a NO first".to_owned());
        failures.record(Cause::LoginRejected, || {
            panic!("the example of a later failure is not built")
        });
        assert_eq!(failures.count(Cause::LoginRejected), 2);
        assert_eq!(failures.0[&Cause::LoginRejected].example, "a NO first");
    }

    #[test]
    fn failures_merge_adds_counts() {
        let mut first = Failures::default();
        first.record(Cause::Connect, || "refused".to_owned());
        let mut second = Failures::default();
        second.record(Cause::Connect, || "other".to_owned());
        second.record(Cause::Timeout, || "slow".to_owned());
        second.record(Cause::Timeout, || "slow".to_owned());
        first.merge(&second);
        assert_eq!(first.count(Cause::Connect), 2);
        assert_eq!(first.0[&Cause::Connect].example, "refused");
        assert_eq!(first.count(Cause::Timeout), 2);
        assert_eq!(first.0[&Cause::Timeout].example, "slow");
        assert_eq!(first.total(), 4);
    }

    #[test]
    fn long_examples_are_cut() {
        let mut failures = Failures::default();
        failures.record(Cause::RefusedBye, || "é".repeat(EXAMPLE_BYTES_MAX));
        let example = &failures.0[&Cause::RefusedBye].example;
        assert!(example.len() <= EXAMPLE_BYTES_MAX + '…'.len_utf8());
        assert!(example.ends_with('…'));
    }

    #[test]
    fn setup_outcomes_merge() {
        let mut total = SetupOutcome {
            established: 2,
            latencies_us: vec![10, 20],
            established_per_address: vec![1, 1],
            first_connect_ns: Some(500),
            last_idle_ns: Some(2_000),
            ..SetupOutcome::default()
        };
        let mut failures = Failures::default();
        failures.record(Cause::Timeout, || "slow".to_owned());
        let other = SetupOutcome {
            established: 3,
            failures,
            latencies_us: vec![30, 40, 50],
            established_per_address: vec![2, 0, 1],
            first_connect_ns: Some(100),
            last_idle_ns: Some(1_500_000_100),
            failed_sessions: vec![9],
        };
        total.merge(&other);
        assert_eq!(total.established, 5);
        assert_eq!(total.failures.total(), 1);
        assert_eq!(total.latencies_us, vec![10, 20, 30, 40, 50]);
        assert_eq!(total.established_per_address, vec![3, 1, 1]);
        assert_eq!(total.first_connect_ns, Some(100));
        assert_eq!(total.last_idle_ns, Some(1_500_000_100));
        assert_eq!(total.failed_sessions, vec![9]);
        assert_eq!(total.setup_seconds(), Some(1.5));
    }

    #[test]
    fn merge_into_empty_outcome() {
        let mut total = SetupOutcome::default();
        let other = SetupOutcome {
            established: 1,
            first_connect_ns: Some(7),
            last_idle_ns: Some(9),
            ..SetupOutcome::default()
        };
        total.merge(&other);
        assert_eq!(total.first_connect_ns, Some(7));
        assert_eq!(total.last_idle_ns, Some(9));
        assert_eq!(SetupOutcome::default().setup_seconds(), None);
    }
}
