//! `roost-bench notify`: hold sessions in IDLE, deliver messages to some
//! of their users over LMTP, and measure the time from the end of DATA to
//! the `* N EXISTS` the idle client receives.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::addresses::check_loopback;
use crate::coordinator::{Workers, plan, run_setup};
use crate::lmtp::{Delivered, LmtpClient, message};
use crate::messages::{PasswordMode, WorkerCommand, WorkerEvent};
use crate::outcome::{CauseCount, Failures, Percentiles};
use crate::probe::{PROBES_MAX, ProbeJob, ProbeSummary};
use crate::report::{DeliverySummary, NotifyReport, write_json};
use crate::system::monotonic_ns;
use crate::{NotifyArgs, RunError};

/// Maximum deliveries of one run.
pub const DELIVERIES_MAX: u64 = 1_000_000;

/// Maximum messages delivered to the probe user before the setup.
pub const PROBE_MESSAGES_MAX: u64 = 10_000;

pub fn run(args: &NotifyArgs) -> Result<bool, RunError> {
    check_loopback("--lmtp", args.lmtp).map_err(RunError::Usage)?;
    if args.deliveries == 0 || args.deliveries > DELIVERIES_MAX {
        return Err(RunError::Usage(format!(
            "--deliveries {}: must be between 1 and {DELIVERIES_MAX}",
            args.deliveries
        )));
    }
    if let Some(domain) = &args.rcpt_domain
        && (domain.is_empty()
            || domain
                .bytes()
                .any(|byte| !(byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-')))
    {
        return Err(RunError::Usage(format!(
            "--rcpt-domain {domain:?}: invalid domain; use letters, digits, dots and hyphens"
        )));
    }
    let probe_user = check_probe_args(args)?;
    let plan = plan(&args.session, true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| RunError::Failed(format!("starting the tokio runtime failed: {err}")))?;
    let report = runtime.block_on(notify(args, plan, probe_user))?;

    print!("{}", report.table());
    if let Some(path) = &args.session.json {
        write_json(path, &report).map_err(RunError::Failed)?;
    }
    Ok(report.succeeded())
}

/// Checks the probe flags and returns the probe user's number, or `None`
/// when the run makes no probes.
fn check_probe_args(args: &NotifyArgs) -> Result<Option<u64>, RunError> {
    if args.probes > PROBES_MAX {
        return Err(RunError::Usage(format!(
            "--probes {}: must be at most {PROBES_MAX}",
            args.probes
        )));
    }
    if args.probe_messages > PROBE_MESSAGES_MAX {
        return Err(RunError::Usage(format!(
            "--probe-messages {}: must be at most {PROBE_MESSAGES_MAX}",
            args.probe_messages
        )));
    }
    if args.probes == 0 {
        return Ok(None);
    }
    let first = args.session.first_user;
    let last = first + args.session.sessions.saturating_sub(1);
    let number = args.probe_user.unwrap_or(first + args.session.sessions);
    if (first..=last).contains(&number) {
        return Err(RunError::Usage(format!(
            "--probe-user {number}: {}{number} is one of the idle sessions' users ({}{first} to {}{last}), whose new messages would count as notifications; choose a number outside that range",
            args.session.users_prefix, args.session.users_prefix, args.session.users_prefix
        )));
    }
    Ok(Some(number))
}

/// One delivery: its target session and what LMTP returned.
struct Sent {
    session: u64,
    delivered: Delivered,
}

async fn notify(
    args: &NotifyArgs,
    plan: crate::coordinator::Plan,
    probe_user: Option<u64>,
) -> anyhow::Result<NotifyReport> {
    let probe_job = probe_user
        .map(|number| probe_job(args, &plan, number))
        .transpose()?;
    if let Some(job) = &probe_job
        && args.probe_messages > 0
    {
        deliver_probe_messages(args, &job.user).await?;
    }
    eprintln!(
        "notify: {} sessions to {} from {} source addresses in {} workers, then {} deliveries over LMTP {}",
        plan.sessions,
        args.session.server,
        plan.source_addresses.len(),
        plan.jobs.len(),
        args.deliveries,
        args.lmtp
    );
    let mut workers = Workers::spawn(&plan.jobs).await?;
    let mut tracker = SeenTracker::default();
    let setup = run_setup(&mut workers, &plan, &args.session, |_, event| {
        tracker.event(event)
    })
    .await?;
    eprintln!(
        "setup done: {} in IDLE, {} failed; delivering",
        setup.established,
        setup.failures.total()
    );

    // The probes run while the deliveries do, and while the sessions idle.
    let probe_task = probe_job.map(|job| {
        eprintln!(
            "probing: {} logins as {}, at most one every {:?}, for at most {:?}",
            job.count, job.user, job.interval, job.limit
        );
        let requested = job.count;
        let user = job.user.clone();
        (requested, user, tokio::spawn(crate::probe::run(job)))
    });

    let failed: HashSet<u64> = setup.failed_sessions.iter().copied().collect();
    let candidates: Vec<u64> = (0..plan.sessions)
        .filter(|index| !failed.contains(index))
        .collect();
    anyhow::ensure!(
        !candidates.is_empty(),
        "no session reached IDLE, so there is no one to deliver to"
    );
    let seed = args.seed.unwrap_or_else(monotonic_ns);
    let targets = choose_targets(
        &candidates,
        args.deliveries,
        &mut StdRng::seed_from_u64(seed),
    );

    let (results_sender, mut results) = mpsc::unbounded_channel();
    let recipients: Vec<(u64, String)> = targets
        .iter()
        .map(|&session| (session, recipient(args, session)))
        .collect();
    let lmtp = args.lmtp;
    let lmtp_start = Instant::now();
    let delivery_task = tokio::spawn(async move {
        let mut client = LmtpClient::connect(lmtp).await?;
        for (number, (session, recipient)) in recipients.into_iter().enumerate() {
            let delivered = client
                .deliver(&recipient, &message(number as u64 + 1, &recipient))
                .await?;
            if results_sender.send(Sent { session, delivered }).is_err() {
                break;
            }
        }
        client.quit().await;
        anyhow::Ok(())
    });

    let mut sent = Vec::new();
    let mut delivering = true;
    let mut lmtp_seconds = 0.0;
    let mut deadline = None;
    loop {
        if !delivering && tracker.unseen == 0 {
            break;
        }
        tokio::select! {
            event = workers.next_event(deadline) => match event? {
                Some((_, event)) => tracker.event(event),
                None => break,
            },
            result = results.recv(), if delivering => match result {
                Some(delivery) => {
                    if delivery.delivered.accepted.is_ok() {
                        tracker.accepted(delivery.session);
                    }
                    sent.push(delivery);
                }
                None => {
                    delivering = false;
                    lmtp_seconds = lmtp_start.elapsed().as_secs_f64();
                    let last_sent = sent.iter().map(|delivery| delivery.delivered.sent_ns).max().unwrap_or_else(monotonic_ns);
                    let wait = Duration::from_nanos((last_sent + args.timeout.as_nanos() as u64).saturating_sub(monotonic_ns()));
                    deadline = Some(Instant::now() + wait);
                }
            },
        }
    }
    delivery_task
        .await
        .context("the LMTP task failed")?
        .context("LMTP delivery")?;
    let probes = match probe_task {
        Some((requested, user, task)) => {
            let outcome = task.await.context("the probe task failed")?;
            Some(ProbeSummary::build(&user, requested, outcome))
        }
        None => None,
    };

    let mut hold_failures = Failures::default();
    workers
        .ask(
            WorkerCommand::Release,
            |_, event| match event {
                WorkerEvent::Final {
                    hold_failures: failures,
                    ..
                } => {
                    hold_failures.merge(failures);
                    true
                }
                _ => false,
            },
            |_, event| tracker.event(event),
        )
        .await
        .context("release")?;
    workers.wait_exit().await;

    let mut deliveries = summarize(args, &sent, &tracker);
    deliveries.lmtp_seconds = lmtp_seconds;
    Ok(NotifyReport::build(
        args,
        &plan,
        &setup,
        &hold_failures,
        deliveries,
        probes,
    ))
}

/// Returns the probe client's job: the server and TLS settings of the
/// sessions, and user `number`.
fn probe_job(
    args: &NotifyArgs,
    plan: &crate::coordinator::Plan,
    number: u64,
) -> anyhow::Result<ProbeJob> {
    let job = plan.jobs.first().context("the plan has no worker job")?;
    let tls = job
        .tls
        .as_ref()
        .map(crate::tls::client_config)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let password = match &job.password {
        PasswordMode::Numbered => format!("pass{number}"),
        PasswordMode::Same(password) => password.clone(),
    };
    Ok(ProbeJob {
        server: args.session.server,
        tls,
        user: format!("{}{number}", args.session.users_prefix),
        password,
        count: args.probes,
        interval: args.probe_interval,
        limit: args.probe_limit,
        timeout: args.session.setup_timeout,
    })
}

/// Delivers `--probe-messages` messages to the probe user, so that its
/// INBOX has messages to fetch.
async fn deliver_probe_messages(args: &NotifyArgs, user: &str) -> anyhow::Result<()> {
    let recipient = with_domain(args, user.to_owned());
    let mut client = LmtpClient::connect(args.lmtp).await?;
    for number in 1..=args.probe_messages {
        let delivered = client
            .deliver(&recipient, &message(number, &recipient))
            .await?;
        if let Err(reply) = delivered.accepted {
            anyhow::bail!("delivering the messages for the probes to {recipient} failed: {reply}");
        }
    }
    client.quit().await;
    Ok(())
}

fn recipient(args: &NotifyArgs, session: u64) -> String {
    let user = format!(
        "{}{}",
        args.session.users_prefix,
        args.session.first_user + session
    );
    with_domain(args, user)
}

/// Adds `--rcpt-domain` to `user`, when given.
fn with_domain(args: &NotifyArgs, user: String) -> String {
    match &args.rcpt_domain {
        Some(domain) => format!("{user}@{domain}"),
        None => user,
    }
}

/// Picks `count` sessions: distinct while `candidates` has enough, else
/// drawn with repetition.
fn choose_targets(candidates: &[u64], count: u64, rng: &mut StdRng) -> Vec<u64> {
    use rand::Rng as _;
    if count as usize <= candidates.len() {
        rand::seq::index::sample(rng, candidates.len(), count as usize)
            .into_iter()
            .map(|i| candidates[i])
            .collect()
    } else {
        (0..count)
            .map(|_| candidates[rng.random_range(0..candidates.len())])
            .collect()
    }
}

/// The EXISTS events of idle sessions, and how many accepted deliveries
/// have not shown up yet.
#[derive(Default)]
struct SeenTracker {
    /// Per session: (new messages counted since SELECT, when), in order.
    events: HashMap<u64, Vec<(u64, u64)>>,
    accepted: HashMap<u64, u64>,
    /// Accepted deliveries whose session has not yet counted that many
    /// new messages.
    unseen: u64,
}

impl SeenTracker {
    fn event(&mut self, event: WorkerEvent) {
        if let WorkerEvent::Seen {
            session,
            count,
            at_ns,
        } = event
        {
            let before = self.pending(session);
            self.events.entry(session).or_default().push((count, at_ns));
            self.unseen -= before - self.pending(session);
        }
    }

    fn accepted(&mut self, session: u64) {
        let before = self.pending(session);
        *self.accepted.entry(session).or_default() += 1;
        self.unseen += self.pending(session) - before;
    }

    fn pending(&self, session: u64) -> u64 {
        let accepted = self.accepted.get(&session).copied().unwrap_or(0);
        let seen = self
            .events
            .get(&session)
            .and_then(|list| list.iter().map(|(count, _)| *count).max())
            .unwrap_or(0);
        accepted.saturating_sub(seen)
    }

    /// Returns when session `session` first counted at least `count` new
    /// messages.
    fn seen_at(&self, session: u64, count: u64) -> Option<u64> {
        self.events
            .get(&session)?
            .iter()
            .find(|(seen, _)| *seen >= count)
            .map(|(_, at)| *at)
    }
}

/// Matches each accepted delivery to the EXISTS that announced it: the
/// m-th accepted delivery to a session is seen once that session counts m
/// new messages.
fn summarize(args: &NotifyArgs, sent: &[Sent], tracker: &SeenTracker) -> DeliverySummary {
    let timeout_ns = args.timeout.as_nanos() as u64;
    let mut summary = DeliverySummary {
        requested: args.deliveries,
        timeout_seconds: args.timeout.as_secs_f64(),
        ..DeliverySummary::default()
    };
    let mut rank: HashMap<u64, u64> = HashMap::new();
    let mut delays = Vec::new();
    for (number, delivery) in sent.iter().enumerate() {
        if let Err(reply) = &delivery.delivered.accepted {
            record(&mut summary.rejected, || reply.clone());
            continue;
        }
        summary.accepted += 1;
        let m = rank.entry(delivery.session).or_default();
        *m += 1;
        let delay = tracker
            .seen_at(delivery.session, *m)
            .map(|at| at.saturating_sub(delivery.delivered.sent_ns));
        match delay {
            Some(delay) if delay <= timeout_ns => {
                summary.seen += 1;
                delays.push(delay / 1000);
            }
            _ => record(&mut summary.not_seen, || {
                format!(
                    "delivery {} to {} not seen as EXISTS within {:?}",
                    number + 1,
                    recipient(args, delivery.session),
                    args.timeout
                )
            }),
        }
    }
    summary.delay = Percentiles::from_micros(delays);
    summary
}

fn record(counted: &mut CauseCount, example: impl FnOnce() -> String) {
    if counted.count == 0 {
        counted.example = example();
    }
    counted.count += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_distinct_when_enough() {
        let candidates: Vec<u64> = (0..50).collect();
        let targets = choose_targets(&candidates, 10, &mut StdRng::seed_from_u64(1));
        assert_eq!(targets.len(), 10);
        let distinct: HashSet<u64> = targets.iter().copied().collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn targets_repeat_when_too_few() {
        let candidates = vec![3, 7];
        let targets = choose_targets(&candidates, 5, &mut StdRng::seed_from_u64(1));
        assert_eq!(targets.len(), 5);
        assert!(targets.iter().all(|target| candidates.contains(target)));
    }

    #[test]
    fn tracker_counts_unseen() {
        let mut tracker = SeenTracker::default();
        tracker.accepted(4);
        tracker.accepted(4);
        tracker.accepted(9);
        assert_eq!(tracker.unseen, 3);
        tracker.event(WorkerEvent::Seen {
            session: 4,
            count: 1,
            at_ns: 100,
        });
        assert_eq!(tracker.unseen, 2);
        // One EXISTS can announce two messages at once.
        tracker.event(WorkerEvent::Seen {
            session: 4,
            count: 2,
            at_ns: 150,
        });
        tracker.event(WorkerEvent::Seen {
            session: 9,
            count: 1,
            at_ns: 200,
        });
        assert_eq!(tracker.unseen, 0);
        assert_eq!(tracker.seen_at(4, 1), Some(100));
        assert_eq!(tracker.seen_at(4, 2), Some(150));
        assert_eq!(tracker.seen_at(4, 3), None);
    }

    #[test]
    fn tracker_seen_before_accepted() {
        // The server may announce the message before its 250 reply arrives.
        let mut tracker = SeenTracker::default();
        tracker.event(WorkerEvent::Seen {
            session: 1,
            count: 1,
            at_ns: 10,
        });
        tracker.accepted(1);
        assert_eq!(tracker.unseen, 0);
    }
}
