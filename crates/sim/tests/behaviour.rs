//! The client models follow their scenario settings when nothing stops
//! them. Pollers sync for their share of the time, interactive users work
//! and leave, and the governor cuts idle interactive sessions for a class
//! of higher priority.

use roost_sim::{ClassReport, PolicyKind, PolicyRun, parse_scenario, simulate};

fn class<'a>(run: &'a PolicyRun, name: &str) -> &'a ClassReport {
    run.report.classes.iter().find(|class| class.name == name).unwrap()
}

const UNCONTENDED: &str = r#"
[scenario]
name = "uncontended"
duration = "2h"
capacity = 1000

[[population]]
name = "staff"
behaviour = "interactive"
count = 200
networks = ["10.1.0.0/24"]
session = "10m"
interval = "20m"

[[population]]
name = "campus"
behaviour = "poller"
count = 100
networks = ["10.0.0.0/24"]
interval = "1m"
session = "6s"
"#;

#[test]
fn pollers_sync_for_their_share() {
    let run = simulate(&parse_scenario(UNCONTENDED, "uncontended.toml").unwrap(), PolicyKind::None).unwrap();
    let campus = class(&run, "campus");
    assert_eq!(campus.logins_refused, 0);
    // 100 pollers, one sync a minute on average, for 120 minutes.
    assert!((11_000..13_000).contains(&campus.logins_served), "{campus:?}");
    assert!(campus.sessions_completed + 100 >= campus.logins_served, "{campus:?}");
    // Syncs of 6 s every 60 s: connected a tenth of the time.
    let fraction = campus.connected_s_mean / 7200.0;
    assert!((0.08..0.12).contains(&fraction), "{fraction}");
}

#[test]
fn interactive_users_work_and_leave() {
    let run = simulate(&parse_scenario(UNCONTENDED, "uncontended.toml").unwrap(), PolicyKind::None).unwrap();
    let staff = class(&run, "staff");
    assert_eq!(staff.logins_refused, 0);
    assert_eq!(staff.cuts, 0);
    assert!(staff.sessions_completed > 400, "{staff:?}");
    // 10 minutes in, 20 away: logged in a third of the time.
    let fraction = staff.connected_s_mean / 7200.0;
    assert!((0.28..0.39).contains(&fraction), "{fraction}");
}

#[test]
fn idle_interactive_sessions_yield_to_priority() {
    let text = r#"
        [scenario]
        name = "priority"
        duration = "30m"
        capacity = 50

        [governor]
        max_sessions = 50
        [[governor.class]]
        name = "campus"
        networks = ["10.0.0.0/24"]
        priority = 10
        [[governor.class]]
        name = "staff"
        networks = ["10.1.0.0/24"]

        [[population]]
        name = "staff"
        behaviour = "interactive"
        count = 60
        networks = ["10.1.0.0/24"]
        session = "4h"
        interval = "1h"
        busy_fraction = 0.5
        reconnect_delay = ["1s", "5s"]

        [[population]]
        name = "campus"
        behaviour = "poller"
        count = 100
        networks = ["10.0.0.0/24"]
        interval = "2m"
        session = "10s"
    "#;
    let run = simulate(&parse_scenario(text, "priority.toml").unwrap(), PolicyKind::Roost).unwrap();
    let campus = class(&run, "campus");
    let staff = class(&run, "staff");
    assert!(staff.preemptions > 0, "{staff:?}");
    assert!(campus.logins_served > 1000, "{campus:?}");
    // Slots set aside for the waiting staff go to the higher-priority
    // campus too, so no campus login is refused.
    assert_eq!(campus.logins_refused, 0, "{campus:?}");
    assert!(staff.logins_refused > 0, "staff outnumber the slots: {staff:?}");
}
