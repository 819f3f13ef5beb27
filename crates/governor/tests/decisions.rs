//! The governor's decisions, driven in virtual time.

use std::net::IpAddr;
use std::time::Duration;

use roost_governor::{
    Admission, ClassConfig, DecisionKind, Governor, LoginDecision, Network, Policy, Rate, Reason, Rotation, Ticket,
    Time,
};

fn at(seconds: u64) -> Time {
    Time::from_millis(seconds * 1000)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn class(name: &str, network: &str) -> ClassConfig {
    let mut class = ClassConfig::new(name);
    class.networks = vec![network.parse::<Network>().unwrap()];
    class
}

fn always(_: Ticket) -> bool {
    true
}

fn connect(governor: &mut Governor, now: Time, address: &str) -> Ticket {
    match governor.connect(now, ip(address)) {
        Admission::Admit { ticket, .. } => ticket,
        other => panic!("connection from {address} was not admitted: {other:?}"),
    }
}

/// Connects and logs in; returns the ticket and the decision.
fn session(governor: &mut Governor, now: Time, address: &str, user: &str) -> (Ticket, LoginDecision) {
    let ticket = connect(governor, now, address);
    let decision = governor.login(now, ticket, user, &[], &mut always);
    (ticket, decision)
}

fn admitted(decision: &LoginDecision) -> bool {
    matches!(decision, LoginDecision::Admit { .. } | LoginDecision::Preempt { .. })
}

fn refusal_reason(decision: &LoginDecision) -> Reason {
    match decision {
        LoginDecision::Refuse { refusal, .. } => refusal.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn capacity_refuses_with_unavailable() {
    let mut governor = Governor::new(Policy::with_capacity(2, 10));
    for user in ["a", "b"] {
        assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", user).1));
    }
    let (_, decision) = session(&mut governor, at(0), "192.0.2.1", "c");
    let LoginDecision::Refuse { refusal, .. } = decision else { panic!("{decision:?}") };
    assert_eq!(refusal.reason, Reason::Capacity);
    assert_eq!(refusal.code(), "UNAVAILABLE");
    assert_eq!(governor.totals(), (1, 2));
}

#[test]
fn release_frees_slot_and_ticket() {
    let mut governor = Governor::new(Policy::with_capacity(1, 10));
    let (first, decision) = session(&mut governor, at(0), "192.0.2.1", "a");
    assert!(admitted(&decision));
    governor.release(at(1), first);
    assert_eq!(governor.totals(), (0, 0));
    let (second, decision) = session(&mut governor, at(2), "192.0.2.1", "b");
    assert!(admitted(&decision));
    assert_eq!(second, first, "tickets are reused");
}

#[test]
fn preauth_bound_refuses_at_connect() {
    let mut governor = Governor::new(Policy::with_capacity(10, 2));
    connect(&mut governor, at(0), "192.0.2.1");
    connect(&mut governor, at(0), "192.0.2.2");
    let Admission::Refuse { refusal, .. } = governor.connect(at(0), ip("192.0.2.3")) else { panic!() };
    assert_eq!(refusal.reason, Reason::PreauthFull);
}

#[test]
fn class_limit_refuses_its_class_only() {
    let mut policy = Policy::with_capacity(10, 10);
    let mut proxy = class("proxy", "198.51.100.0/24");
    proxy.limit = Some(1);
    policy.classes = vec![proxy];
    let mut governor = Governor::new(policy);
    assert!(admitted(&session(&mut governor, at(0), "198.51.100.1", "a").1));
    let (_, decision) = session(&mut governor, at(0), "198.51.100.1", "b");
    assert_eq!(refusal_reason(&decision), Reason::ClassLimit);
    assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", "c").1));
}

#[test]
fn per_user_max_uses_limit_code() {
    let mut policy = Policy::with_capacity(10, 10);
    policy.default_class.per_user_max = Some(2);
    let mut governor = Governor::new(policy);
    for _ in 0..2 {
        assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", "alice").1));
    }
    let (_, decision) = session(&mut governor, at(0), "192.0.2.1", "alice");
    let LoginDecision::Refuse { refusal, .. } = decision else { panic!("{decision:?}") };
    assert_eq!(refusal.reason, Reason::PerUserMax);
    assert_eq!(refusal.code(), "LIMIT");
    assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", "bob").1));
}

#[test]
fn per_source_max_refuses_at_connect() {
    let mut policy = Policy::with_capacity(10, 10);
    policy.default_class.per_source_max = Some(2);
    let mut governor = Governor::new(policy);
    connect(&mut governor, at(0), "192.0.2.1");
    connect(&mut governor, at(0), "192.0.2.1");
    let Admission::Refuse { refusal, .. } = governor.connect(at(0), ip("192.0.2.1")) else { panic!() };
    assert_eq!(refusal.reason, Reason::PerSourceMax);
    assert_eq!(refusal.code(), "LIMIT");
    connect(&mut governor, at(0), "192.0.2.2");
}

#[test]
fn ipv6_sources_group_by_64() {
    let mut policy = Policy::with_capacity(10, 10);
    policy.default_class.per_source_max = Some(1);
    let mut governor = Governor::new(policy);
    connect(&mut governor, at(0), "2001:db8:1:2::1");
    assert!(matches!(governor.connect(at(0), ip("2001:db8:1:2::ffff")), Admission::Refuse { .. }));
    connect(&mut governor, at(0), "2001:db8:1:3::1");
}

#[test]
fn source_rate_delays_then_refuses() {
    let mut policy = Policy::with_capacity(100, 100);
    policy.default_class.source_rate = Some(Rate { per_second: 1.0, burst: 2 });
    policy.greeting_delay_max = Duration::from_secs(2);
    let mut governor = Governor::new(policy);
    let delays: Vec<Duration> = (0..4)
        .map(|_| match governor.connect(at(0), ip("192.0.2.1")) {
            Admission::Admit { delay, .. } => delay,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(delays, [Duration::ZERO, Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2)]);
    let Admission::Refuse { refusal, .. } = governor.connect(at(0), ip("192.0.2.1")) else { panic!() };
    assert_eq!(refusal.reason, Reason::SourceRate);
    assert!(refusal.retry_after > Duration::from_secs(2));
    connect(&mut governor, at(0), "192.0.2.2");
}

#[test]
fn user_rate_refuses_fast_logins() {
    let mut policy = Policy::with_capacity(100, 100);
    policy.default_class.user_rate = Some(Rate { per_second: 0.1, burst: 1 });
    let mut governor = Governor::new(policy);
    assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", "alice").1));
    let (_, decision) = session(&mut governor, at(1), "192.0.2.1", "alice");
    assert_eq!(refusal_reason(&decision), Reason::UserRate);
    assert!(admitted(&session(&mut governor, at(11), "192.0.2.1", "alice").1));
}

#[test]
fn higher_priority_preempts_lower() {
    let mut policy = Policy::with_capacity(4, 10);
    let mut campus = class("campus", "10.0.0.0/8");
    campus.priority = 10;
    let mut proxy = class("proxy", "198.51.100.0/24");
    proxy.reserved = 1;
    policy.classes = vec![campus, proxy];
    let mut governor = Governor::new(policy);
    let proxies: Vec<Ticket> =
        (0..4).map(|i| session(&mut governor, at(i), "198.51.100.1", &format!("p{i}"))).map(|(t, _)| t).collect();
    for i in 0..3 {
        let (_, decision) = session(&mut governor, at(10), "10.0.0.1", &format!("c{i}"));
        let LoginDecision::Preempt { reason, victim, .. } = decision else { panic!("{decision:?}") };
        assert_eq!(reason, Reason::Priority);
        assert_eq!(victim, proxies[i as usize], "oldest proxy session goes first");
    }
    // The proxy class keeps its one reserved slot.
    let (_, decision) = session(&mut governor, at(10), "10.0.0.1", "c3");
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
}

#[test]
fn busy_sessions_are_never_preempted() {
    let mut policy = Policy::with_capacity(2, 10);
    let mut campus = class("campus", "10.0.0.0/8");
    campus.priority = 10;
    policy.classes = vec![campus];
    let mut governor = Governor::new(policy);
    let (busy, _) = session(&mut governor, at(0), "198.51.100.1", "p0");
    let (idle, _) = session(&mut governor, at(1), "198.51.100.1", "p1");
    let ticket = connect(&mut governor, at(2), "10.0.0.1");
    let decision = governor.login(at(2), ticket, "c0", &[], &mut |t| t != busy);
    let LoginDecision::Preempt { victim, .. } = decision else { panic!("{decision:?}") };
    assert_eq!(victim, idle);
    let ticket = connect(&mut governor, at(3), "10.0.0.1");
    let decision = governor.login(at(3), ticket, "c1", &[], &mut |t| t != busy);
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
}

#[test]
fn reservation_is_kept_free() {
    let mut policy = Policy::with_capacity(4, 10);
    let mut staff = class("staff", "10.1.0.0/16");
    staff.reserved = 2;
    policy.classes = vec![staff];
    let mut governor = Governor::new(policy);
    for i in 0..2 {
        assert!(admitted(&session(&mut governor, at(0), "192.0.2.1", &format!("u{i}")).1));
    }
    let (_, decision) = session(&mut governor, at(0), "192.0.2.1", "u2");
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
    for i in 0..2 {
        assert!(admitted(&session(&mut governor, at(0), "10.1.0.1", &format!("s{i}")).1));
    }
}

#[test]
fn equal_classes_share_by_weight() {
    let mut policy = Policy::with_capacity(6, 20);
    let mut heavy = class("heavy", "10.1.0.0/16");
    heavy.weight = 2;
    let light = class("light", "10.2.0.0/16");
    policy.classes = vec![heavy, light];
    let mut governor = Governor::new(policy);
    for i in 0..6 {
        assert!(admitted(&session(&mut governor, at(i), "10.2.0.1", &format!("l{i}")).1));
    }
    // The heavy class takes slots back until it holds two thirds.
    for i in 0..4 {
        let (_, decision) = session(&mut governor, at(10), "10.1.0.1", &format!("h{i}"));
        let LoginDecision::Preempt { reason, .. } = decision else { panic!("heavy login {i}: {decision:?}") };
        assert_eq!(reason, Reason::FairShare);
    }
    let (_, decision) = session(&mut governor, at(10), "10.1.0.1", "h4");
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
    let heavy = governor.class_by_name("heavy").unwrap();
    let light = governor.class_by_name("light").unwrap();
    assert_eq!(governor.class_stats(heavy).sessions, 4);
    assert_eq!(governor.class_stats(light).sessions, 2);
}

#[test]
fn user_with_many_sessions_yields() {
    let mut governor = Governor::new(Policy::with_capacity(3, 10));
    let (first, _) = session(&mut governor, at(0), "192.0.2.1", "greedy");
    session(&mut governor, at(1), "192.0.2.1", "greedy");
    session(&mut governor, at(2), "192.0.2.1", "greedy");
    let (_, decision) = session(&mut governor, at(3), "192.0.2.2", "modest");
    let LoginDecision::Preempt { reason, victim, .. } = decision else { panic!("{decision:?}") };
    assert_eq!(reason, Reason::UserShare);
    assert_eq!(victim, first);
    // Two sessions against one is as even as three slots allow.
    let (_, decision) = session(&mut governor, at(4), "192.0.2.2", "modest");
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
}

fn rotation_policy() -> Policy {
    let mut policy = Policy::with_capacity(2, 100);
    policy.default_class.lease = Some(Duration::from_secs(60));
    policy.default_class.rotation_rate = 1.0;
    policy.rotation_hold = Duration::from_secs(10);
    policy
}

fn tick(governor: &mut Governor, now: Time) -> Vec<Rotation> {
    let mut rotations = Vec::new();
    governor.tick(now, &mut always, &mut rotations);
    rotations
}

#[test]
fn rotation_waits_for_lease_and_waiters() {
    let mut governor = Governor::new(rotation_policy());
    let (a, _) = session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(5), "192.0.2.1", "b");
    assert!(tick(&mut governor, at(100)).is_empty(), "nobody waits, so nobody rotates");
    let (_, decision) = session(&mut governor, at(100), "192.0.2.1", "c");
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
    let rotations = tick(&mut governor, at(101));
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].ticket, a, "the oldest session rotates first");
    assert!(rotations[0].retry_after >= Duration::from_secs(1));
}

#[test]
fn first_sessions_rotate_after_half_lease() {
    let mut governor = Governor::new(rotation_policy());
    session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    session(&mut governor, at(20), "192.0.2.1", "c");
    assert!(tick(&mut governor, at(29)).is_empty(), "no session rotates before half its lease");
    assert_eq!(tick(&mut governor, at(61)).len(), 1);
}

#[test]
fn queued_sessions_keep_whole_lease() {
    // Four users share two slots and retry every second, as push proxies do.
    let mut governor = Governor::new(rotation_policy());
    let users = ["a", "b", "c", "d"];
    let mut held: Vec<Option<(Ticket, u64, bool)>> = vec![None; users.len()];
    let mut lifetimes = Vec::new();
    for second in 0..400 {
        let now = at(second);
        for rotation in tick(&mut governor, now) {
            governor.release(now, rotation.ticket);
            let index = held.iter().position(|h| h.is_some_and(|(t, _, _)| t == rotation.ticket)).unwrap();
            let (_, since, queued) = held[index].take().unwrap();
            lifetimes.push((second - since, queued));
        }
        for (index, user) in users.iter().enumerate() {
            if held[index].is_none() {
                let (ticket, decision) = session(&mut governor, now, "192.0.2.1", user);
                if admitted(&decision) {
                    held[index] = Some((ticket, second, second > 0));
                } else {
                    governor.release(now, ticket);
                }
            }
        }
    }
    let first: Vec<u64> = lifetimes.iter().filter(|(_, queued)| !queued).map(|(life, _)| *life).collect();
    let queued: Vec<u64> = lifetimes.iter().filter(|(_, queued)| *queued).map(|(life, _)| *life).collect();
    assert_eq!(first.len(), 2, "{lifetimes:?}");
    assert!(first.iter().all(|life| (30..=61).contains(life)), "first sessions: {first:?}");
    assert!(queued.len() >= 6, "{lifetimes:?}");
    assert!(queued.iter().all(|life| *life >= 60), "sessions from the queue: {queued:?}");
}

#[test]
fn set_aside_slot_yields_to_priority() {
    let mut policy = Policy::with_capacity(4, 100);
    let mut campus = class("campus", "10.0.0.0/16");
    campus.priority = 10;
    campus.reserved = 1;
    let mut proxy = class("proxy", "198.51.100.0/30");
    proxy.lease = Some(Duration::from_secs(60));
    policy.classes = vec![campus, proxy];
    let mut governor = Governor::new(policy);
    for user in ["p0", "p1", "p2"] {
        session(&mut governor, at(0), "198.51.100.1", user);
    }
    let (refused, decision) = session(&mut governor, at(1), "198.51.100.1", "p3");
    assert!(!admitted(&decision));
    governor.release(at(1), refused);
    session(&mut governor, at(2), "10.0.0.1", "c0");
    // p3 keeps retrying, so the proxy class has a user waiting.
    let mut second = 3;
    let rotated = loop {
        let (retry, _) = session(&mut governor, at(second), "198.51.100.1", "p3");
        governor.release(at(second), retry);
        let rotated = tick(&mut governor, at(second));
        if !rotated.is_empty() {
            break rotated;
        }
        second += 1;
        assert!(second < 70, "no rotation within the lease");
    };
    assert_eq!(rotated.len(), 1);
    governor.release(at(second), rotated[0].ticket);
    let (_, decision) = session(&mut governor, at(second), "10.0.0.1", "c1");
    assert_eq!(decision, LoginDecision::Admit { class: governor.class_by_name("campus").unwrap(), reason: Reason::Priority });
    let proxy = governor.class_by_name("proxy").unwrap();
    assert_eq!(governor.class_stats(proxy).set_aside, 0);
}

#[test]
fn rotated_slot_goes_to_longest_waiter() {
    let mut governor = Governor::new(rotation_policy());
    let (a, _) = session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    let (waiter, decision) = session(&mut governor, at(70), "192.0.2.1", "waiter");
    assert!(!admitted(&decision));
    let rotations = tick(&mut governor, at(71));
    assert_eq!(rotations.len(), 1);
    governor.release(at(71), rotations[0].ticket);
    // The rotated user reconnects first but the slot is set aside.
    let victim_user = if rotations[0].ticket == a { "a" } else { "b" };
    let (_, decision) = session(&mut governor, at(71), "192.0.2.1", victim_user);
    assert_eq!(refusal_reason(&decision), Reason::Capacity);
    let decision = governor.login(at(72), waiter, "waiter", &[], &mut always);
    assert_eq!(decision, LoginDecision::Admit { class: governor.class_by_name("default").unwrap(), reason: Reason::RotationSlot });
}

#[test]
fn set_aside_slot_expires() {
    let mut governor = Governor::new(rotation_policy());
    session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    session(&mut governor, at(70), "192.0.2.1", "waiter");
    let rotations = tick(&mut governor, at(71));
    governor.release(at(71), rotations[0].ticket);
    // The waiter never returns; after the hold anyone may take the slot.
    tick(&mut governor, at(82));
    assert!(admitted(&session(&mut governor, at(82), "192.0.2.1", "someone").1));
}

#[test]
fn rotation_is_paced() {
    let mut policy = rotation_policy();
    policy.max_sessions = 10;
    let mut governor = Governor::new(policy);
    for i in 0..10 {
        session(&mut governor, at(0), "192.0.2.1", &format!("h{i}"));
    }
    for i in 0..5 {
        session(&mut governor, at(100), "192.0.2.1", &format!("w{i}"));
    }
    assert_eq!(tick(&mut governor, at(100)).len(), 1, "the bucket starts with one token");
    assert_eq!(tick(&mut governor, at(101)).len(), 1);
    assert_eq!(tick(&mut governor, at(103)).len(), 1);
}

#[test]
fn waiters_expire_after_window() {
    let mut governor = Governor::new(rotation_policy());
    session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    session(&mut governor, at(70), "192.0.2.1", "gone");
    let class = governor.class_by_name("default").unwrap();
    assert_eq!(governor.class_stats(class).waiting, 1);
    assert!(tick(&mut governor, at(200)).is_empty(), "a waiter silent past the window is dropped");
    assert_eq!(governor.class_stats(class).waiting, 0);
}

#[test]
fn login_penalty_doubles_and_is_capped() {
    let mut governor = Governor::new(Policy::with_capacity(10, 10));
    let ticket = connect(&mut governor, at(0), "192.0.2.1");
    let delays: Vec<u64> =
        (0..5).map(|_| governor.login_failed(at(0), ticket, Some("alice")).as_secs()).collect();
    assert_eq!(delays, [2, 4, 8, 15, 15]);
    assert_eq!(governor.login_delay(at(5), "alice"), Duration::from_secs(10));
    assert_eq!(governor.login_delay(at(5), "bob"), Duration::ZERO, "other users are not slowed");
    assert_eq!(governor.login_delay(at(20), "alice"), Duration::ZERO);
}

#[test]
fn login_penalty_is_forgotten_after_window() {
    let mut governor = Governor::new(Policy::with_capacity(10, 10));
    let ticket = connect(&mut governor, at(0), "192.0.2.1");
    governor.login_failed(at(0), ticket, Some("alice"));
    governor.login_failed(at(0), ticket, Some("alice"));
    let later = at(16 * 60);
    assert_eq!(governor.login_failed(later, ticket, Some("alice")), Duration::from_secs(2));
}

#[test]
fn identify_moves_into_client_class() {
    let mut policy = Policy::with_capacity(10, 10);
    let mut phones = ClassConfig::new("phones");
    phones.client_ids = vec!["iPhone Mail".to_owned()];
    phones.limit = Some(1);
    policy.classes = vec![phones];
    let mut governor = Governor::new(policy);
    let first = connect(&mut governor, at(0), "192.0.2.1");
    governor.identify(first, "iphone mail");
    let decision = governor.login(at(0), first, "a", &[], &mut always);
    assert_eq!(governor.class_name(class_of(&decision)), "phones");
    let second = connect(&mut governor, at(0), "192.0.2.1");
    governor.identify(second, "IPHONE MAIL");
    let decision = governor.login(at(0), second, "b", &[], &mut always);
    assert_eq!(refusal_reason(&decision), Reason::ClassLimit);
    let (_, decision) = session(&mut governor, at(0), "192.0.2.1", "c");
    assert_eq!(governor.class_name(class_of(&decision)), "default");
}

#[test]
fn user_and_group_classes_match_at_login() {
    let mut policy = Policy::with_capacity(10, 10);
    let mut staff = ClassConfig::new("staff");
    staff.groups = ["staff".to_owned()].into();
    let mut admins = ClassConfig::new("admins");
    admins.users = ["root".to_owned()].into();
    policy.classes = vec![admins, staff];
    let mut governor = Governor::new(policy);
    let ticket = connect(&mut governor, at(0), "192.0.2.1");
    assert_eq!(governor.class_name(governor.session(ticket).unwrap().class), "default");
    let decision = governor.login(at(0), ticket, "carol", &["staff"], &mut always);
    assert_eq!(governor.class_name(class_of(&decision)), "staff");
    let (_, decision) = session(&mut governor, at(0), "192.0.2.1", "root");
    assert_eq!(governor.class_name(class_of(&decision)), "admins");
}

fn class_of(decision: &LoginDecision) -> roost_governor::ClassId {
    match decision {
        LoginDecision::Admit { class, .. } | LoginDecision::Preempt { class, .. } | LoginDecision::Refuse { class, .. } => {
            *class
        }
    }
}

#[test]
fn decisions_are_counted_with_reasons() {
    let mut governor = Governor::new(Policy::with_capacity(1, 10));
    session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    let counts: Vec<(DecisionKind, Reason, u64)> =
        governor.decision_counts().map(|(_, kind, reason, count)| (kind, reason, count)).collect();
    assert!(counts.contains(&(DecisionKind::Admit, Reason::Connected, 2)), "{counts:?}");
    assert!(counts.contains(&(DecisionKind::Admit, Reason::FreeSlot, 1)), "{counts:?}");
    assert!(counts.contains(&(DecisionKind::Refuse, Reason::Capacity, 1)), "{counts:?}");
}

#[test]
fn who_view_lists_users_and_stages() {
    let mut governor = Governor::new(Policy::with_capacity(10, 10));
    let (ticket, _) = session(&mut governor, at(3), "192.0.2.7", "alice");
    let waiting = connect(&mut governor, at(4), "192.0.2.8");
    let view = governor.session(ticket).unwrap();
    assert_eq!(view.user, Some("alice"));
    assert!(view.logged_in);
    assert_eq!(view.since, at(3));
    let view = governor.session(waiting).unwrap();
    assert_eq!(view.user, None);
    assert!(!view.logged_in);
    assert_eq!(governor.sessions().count(), 2);
}

#[test]
fn idle_users_and_sources_are_forgotten() {
    let mut policy = Policy::with_capacity(10, 10);
    policy.login_penalty_window = Duration::from_secs(60);
    let mut governor = Governor::new(policy);
    for i in 0..100 {
        let (ticket, _) = session(&mut governor, at(0), &format!("192.0.2.{i}"), &format!("user{i}"));
        governor.release(at(1), ticket);
    }
    tick(&mut governor, at(1000));
    // A new user takes a reused slot: the state did not grow.
    let (ticket, _) = session(&mut governor, at(1000), "192.0.2.1", "fresh");
    assert_eq!(governor.session(ticket).unwrap().user, Some("fresh"));
}

#[test]
fn retry_hint_counts_to_first_rotation() {
    let mut governor = Governor::new(rotation_policy());
    // Two sessions from the queue-less start come due between 30 s and 60 s.
    session(&mut governor, at(0), "192.0.2.1", "a");
    session(&mut governor, at(0), "192.0.2.1", "b");
    let (_, decision) = session(&mut governor, at(5), "192.0.2.1", "c");
    let LoginDecision::Refuse { refusal, .. } = decision else { panic!("{decision:?}") };
    assert!(refusal.retry_after >= Duration::from_secs(25), "{refusal:?}");
    assert!(refusal.retry_after <= Duration::from_secs(56 + 30), "{refusal:?}");
}
