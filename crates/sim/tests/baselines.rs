//! The baseline policies behave as modelled: the ungoverned server
//! collapses, the proxy cap holds, resets cut every proxy connection and
//! the per-user-and-address cap counts per pair.

use std::net::IpAddr;
use std::time::Duration;

use roost_governor::{Ticket, Time};
use roost_sim::policies::{AdmissionPolicy, Connected, Cut, CutKind, build_policy};
use roost_sim::{ClassReport, PolicyKind, PolicyRun, Scenario, parse_scenario, simulate};

/// Builds a scenario of `holders` phones behind the proxy network and 5
/// holders elsewhere, on 20 slots.
fn holders_scenario(holders: u32, extra: &str) -> Scenario {
    let text = format!(
        r#"
        [scenario]
        name = "holders"
        duration = "5m"
        capacity = 20
        collapse_factor = 1.5
        restart_time = "10s"
        sample_interval = "1s"
        {extra}

        [baselines]
        proxy_networks = ["198.51.100.0/30"]
        proxy_cap = 4
        reset_interval = "1m"
        per_user_ip_max = 1

        [[population]]
        name = "proxy"
        behaviour = "holder"
        count = {holders}
        networks = ["198.51.100.0/30"]
        reconnect_delay = ["500ms", "2s"]

        [[population]]
        name = "other"
        behaviour = "holder"
        count = 5
        networks = ["192.0.2.0/24"]
        reconnect_delay = ["500ms", "2s"]
        "#
    );
    parse_scenario(&text, "holders.toml").unwrap()
}

fn class<'a>(run: &'a PolicyRun, name: &str) -> &'a ClassReport {
    run.report.classes.iter().find(|class| class.name == name).unwrap()
}

fn series_max(run: &PolicyRun, class: usize) -> u32 {
    run.series.held[class].iter().copied().max().unwrap_or(0)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn at(seconds: u64) -> Time {
    Time::from_millis(seconds * 1000)
}

fn connect(policy: &mut dyn AdmissionPolicy, now: Time, address: &str) -> Ticket {
    match policy.connect(now, ip(address)) {
        Connected::Admitted { ticket, .. } => ticket,
        Connected::Refused => panic!("connection from {address} refused"),
    }
}

/// Connects and logs in; returns the ticket, whether the login was
/// admitted, and the cuts the login made.
fn session(policy: &mut dyn AdmissionPolicy, now: Time, address: &str, user: &str) -> (Ticket, bool, Vec<Cut>) {
    let ticket = connect(policy, now, address);
    let mut cuts = Vec::new();
    let admitted = policy.login(now, ticket, user, &mut |_| true, &mut cuts);
    (ticket, admitted, cuts)
}

#[test]
fn none_collapses_past_collapse_factor() {
    // 40 holders on 20 slots: the server collapses above 30 sessions.
    let run = simulate(&holders_scenario(35, ""), PolicyKind::None).unwrap();
    assert!(run.report.collapses > 0, "{:?}", run.report);
    let proxy = class(&run, "proxy");
    assert!(proxy.collapse_cuts > 0, "{proxy:?}");
    assert!(proxy.logins_refused > 0, "connections are refused while the server restarts");
    let total_peak: u32 = (0..run.series.minutes.len()).map(|i| run.series.held.iter().map(|c| c[i]).sum()).max().unwrap();
    assert!(total_peak <= 30, "never more than capacity x collapse_factor: {total_peak}");
    assert!(total_peak > 20, "no admission control below the collapse: {total_peak}");
}

#[test]
fn none_without_overload_keeps_everyone() {
    // 25 sessions on 20 slots stay under the collapse point of 30.
    let run = simulate(&holders_scenario(20, ""), PolicyKind::None).unwrap();
    assert_eq!(run.report.collapses, 0);
    assert_eq!(class(&run, "proxy").cuts, 0);
    assert_eq!(class(&run, "proxy").peak_sessions, 20);
    assert_eq!(class(&run, "other").peak_sessions, 5);
}

#[test]
fn none_slows_logins_under_load() {
    let scenario = holders_scenario(1, "");
    let mut policy = build_policy(PolicyKind::None, &scenario).unwrap();
    let base = Duration::from_millis(20);
    assert_eq!(policy.login_time(base), base);
    for i in 0..30 {
        let (_, admitted, _) = session(policy.as_mut(), at(0), "192.0.2.1", &format!("u{i}"));
        assert!(admitted);
    }
    assert_eq!(policy.login_time(base), Duration::from_millis(30), "30 sessions on 20 slots take 1.5 times as long");
    let (ticket, admitted, cuts) = session(policy.as_mut(), at(1), "192.0.2.1", "last");
    assert!(!admitted, "the 31st session collapses the server");
    assert_eq!(cuts.len(), 30);
    assert!(cuts.iter().all(|cut| cut.kind == CutKind::Collapse && cut.ticket != ticket));
    for cut in &cuts {
        policy.release(at(1), cut.ticket);
    }
    policy.release(at(1), ticket);
    assert_eq!(policy.connect(at(5), ip("192.0.2.1")), Connected::Refused, "restarting");
    assert!(matches!(policy.connect(at(11), ip("192.0.2.1")), Connected::Admitted { .. }));
}

#[test]
fn proxy_cap_never_exceeds_cap() {
    let run = simulate(&holders_scenario(10, ""), PolicyKind::ProxyCap).unwrap();
    let proxy = class(&run, "proxy");
    assert_eq!(proxy.peak_sessions, 4);
    assert_eq!(series_max(&run, 0), 4);
    assert_eq!(proxy.cuts, 0, "whoever holds a slot keeps it");
    assert_eq!(proxy.logins_served, 4);
    assert_eq!(class(&run, "other").peak_sessions, 5, "other addresses are not capped");
}

#[test]
fn proxy_cap_refuses_beyond_capacity() {
    let scenario = holders_scenario(1, "");
    let mut policy = build_policy(PolicyKind::ProxyCap, &scenario).unwrap();
    for i in 0..20 {
        assert!(session(policy.as_mut(), at(0), "192.0.2.1", &format!("u{i}")).1);
    }
    let (_, admitted, _) = session(policy.as_mut(), at(0), "192.0.2.2", "late");
    assert!(!admitted, "20 slots are full");
}

#[test]
fn reset_cuts_every_proxy_session_each_interval() {
    let run = simulate(&holders_scenario(10, ""), PolicyKind::ProxyCapReset).unwrap();
    // Resets at 1, 2, 3 and 4 minutes of a 5-minute run, each cutting the
    // 4 proxy sessions the cap allows.
    assert_eq!(run.report.resets, 4);
    let proxy = class(&run, "proxy");
    assert_eq!(proxy.reset_cuts, 16, "{proxy:?}");
    assert_eq!(proxy.logins_served, 20, "4 at the start and 4 after each reset");
    assert_eq!(class(&run, "other").cuts, 0, "only proxy connections are reset");
    // Just before the first reset the cap is full.
    let minute = run.series.minutes.iter().position(|m| (*m - 1.0).abs() < 1e-9).unwrap();
    assert_eq!(run.series.held[0][minute - 1], 4);
}

#[test]
fn reset_cuts_proxy_connections_at_interval() {
    let scenario = holders_scenario(1, "");
    let mut policy = build_policy(PolicyKind::ProxyCapReset, &scenario).unwrap();
    let (proxy_a, ..) = session(policy.as_mut(), at(0), "198.51.100.1", "a");
    let (proxy_b, ..) = session(policy.as_mut(), at(0), "198.51.100.2", "b");
    let pending = connect(policy.as_mut(), at(0), "198.51.100.3");
    let (other, ..) = session(policy.as_mut(), at(0), "192.0.2.1", "c");

    let mut cuts = Vec::new();
    policy.tick(at(59), &mut |_| true, &mut cuts);
    assert!(cuts.is_empty(), "no reset before the interval");
    policy.tick(at(60), &mut |_| true, &mut cuts);
    let mut cut: Vec<Ticket> = cuts.iter().map(|cut| cut.ticket).collect();
    cut.sort();
    let mut expected = vec![proxy_a, proxy_b, pending];
    expected.sort();
    assert_eq!(cut, expected);
    assert!(cuts.iter().all(|cut| cut.kind == CutKind::Reset));
    assert!(!cut.contains(&other));
    for ticket in cut {
        policy.release(at(60), ticket);
    }
    // The cap counts from zero again.
    for user in ["d", "e", "f", "g"] {
        assert!(session(policy.as_mut(), at(61), "198.51.100.1", user).1);
    }
    assert_eq!(policy.connect(at(61), ip("198.51.100.1")), Connected::Refused, "cap of 4 reached");
}

#[test]
fn per_user_ip_cap_counts_each_pair() {
    let scenario = holders_scenario(1, "");
    let mut policy = build_policy(PolicyKind::PerUserIpCap, &scenario).unwrap();
    let (first, admitted, _) = session(policy.as_mut(), at(0), "192.0.2.1", "alice");
    assert!(admitted);
    assert!(!session(policy.as_mut(), at(0), "192.0.2.1", "alice").1, "per_user_ip_max is 1");
    assert!(session(policy.as_mut(), at(0), "192.0.2.2", "alice").1, "another address");
    assert!(session(policy.as_mut(), at(0), "192.0.2.1", "bob").1, "another user");
    policy.release(at(1), first);
    assert!(session(policy.as_mut(), at(1), "192.0.2.1", "alice").1, "released");
}

#[test]
fn policies_that_need_settings_say_so() {
    let scenario = parse_scenario(
        r#"
        [scenario]
        name = "bare"
        duration = "1m"
        capacity = 5
        [[population]]
        name = "p"
        behaviour = "holder"
        count = 1
        networks = ["192.0.2.1"]
        reconnect_delay = "1s"
        "#,
        "bare.toml",
    )
    .unwrap();
    let err = build_policy(PolicyKind::ProxyCap, &scenario).err().unwrap();
    assert_eq!(err, "policy proxy-cap needs baselines.proxy_cap; add it to the scenario");
    let err = build_policy(PolicyKind::Roost, &scenario).err().unwrap();
    assert!(err.starts_with("policy roost needs a [governor] table"), "{err}");
    assert!(build_policy(PolicyKind::None, &scenario).is_ok());
}
