//! The small proxy-storm scenario under all five policies. Roost keeps the
//! campus served and shares the proxies' slots fairly, and the report,
//! JSON and plot have the documented shape.

use std::path::PathBuf;
use std::sync::OnceLock;

use roost_sim::{ClassReport, PolicyKind, PolicyReport, Report, SimulateArgs, load_scenario, simulate_all};

fn small_scenario_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/proxy-storm-small.toml")
}

/// Runs all five policies on the small scenario once for every test in
/// this file and returns the report.
fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        let scenario = load_scenario(&small_scenario_path()).unwrap();
        simulate_all(&scenario, &PolicyKind::ALL).unwrap().0
    })
}

fn policy(name: &str) -> &'static PolicyReport {
    report().policies.iter().find(|policy| policy.name == name).unwrap_or_else(|| panic!("no policy {name}"))
}

fn class<'a>(policy: &'a PolicyReport, name: &str) -> &'a ClassReport {
    policy.classes.iter().find(|class| class.name == name).unwrap_or_else(|| panic!("no class {name} in {}", policy.name))
}

#[test]
fn all_five_policies_run() {
    let names: Vec<&str> = report().policies.iter().map(|policy| policy.name.as_str()).collect();
    assert_eq!(names, ["none", "proxy-cap", "proxy-cap-reset-15m", "per-user-ip-cap", "roost"]);
    for policy in &report().policies {
        let classes: Vec<&str> = policy.classes.iter().map(|class| class.name.as_str()).collect();
        assert_eq!(classes, ["campus", "proxy"], "{}", policy.name);
        assert!(policy.decisions > 0, "{}", policy.name);
    }
}

#[test]
fn roost_serves_every_campus_login() {
    let campus = class(policy("roost"), "campus");
    assert!(campus.logins_served > 3000, "{campus:?}");
    assert_eq!(campus.logins_refused, 0);
    assert_eq!(campus.served_fraction, 1.0);
    assert_eq!(campus.cuts, 0, "busy pollers are never cut");
}

#[test]
fn roost_shares_proxy_slots_fairly() {
    let proxy = class(policy("roost"), "proxy");
    assert!(proxy.jain_connected_time >= 0.9, "{proxy:?}");
    assert!(proxy.rotations > 0, "{proxy:?}");
    assert_eq!(proxy.lease_s, 60.0);
    // 100 phones on 25 slots wait three leases of 60 s, plus the rotation time.
    assert!(proxy.max_wait_s < 4.0 * proxy.lease_s, "{proxy:?}");
}

#[test]
fn roost_beats_proxy_cap_on_fairness() {
    let roost = class(policy("roost"), "proxy");
    let capped = class(policy("proxy-cap"), "proxy");
    assert!(roost.jain_connected_time > capped.jain_connected_time + 0.3, "{roost:?} {capped:?}");
    assert!(roost.max_wait_s < capped.max_wait_s, "{roost:?} {capped:?}");
}

#[test]
fn roost_beats_none_on_campus_service() {
    let roost = class(policy("roost"), "campus");
    let none = class(policy("none"), "campus");
    assert!(roost.served_fraction > none.served_fraction + 0.2, "{roost:?} {none:?}");
    assert!(roost.sessions_completed > none.sessions_completed * 2, "{roost:?} {none:?}");
    assert!(policy("none").collapses > 0);
}

#[test]
fn table_has_block_per_class_and_verdicts() {
    let table = report().table();
    assert!(table.contains("class campus (poller, 1000 clients)"), "{table}");
    assert!(table.contains("class proxy (holder, 100 clients)"), "{table}");
    for name in ["none", "proxy-cap", "proxy-cap-reset-15m", "per-user-ip-cap"] {
        assert!(table.contains(&format!("overall: roost beats {name} (")), "{name}:\n{table}");
    }
    assert!(table.contains("proxy Jain index of connected time: roost"), "{table}");
}

#[test]
fn json_has_documented_keys() {
    let json = serde_json::to_value(report()).unwrap();
    assert_eq!(json["scenario"], "proxy-storm-small");
    assert_eq!(json["seed"], 1);
    let policies = json["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 5);
    for policy in policies {
        assert!(policy["name"].is_string(), "{policy}");
        assert!(policy["decisions_per_second"].is_number(), "{policy}");
        let classes = policy["classes"].as_array().unwrap();
        assert_eq!(classes.len(), 2);
        for class in classes {
            assert!(class["name"].is_string(), "{class}");
            for key in ["logins_served", "logins_refused", "rotations", "preemptions", "cuts"] {
                assert!(class[key].is_u64(), "{key} in {class}");
            }
            for key in ["jain_connected_time", "max_wait_s", "p99_wait_s", "p50_wait_s", "lease_s", "connected_share"] {
                assert!(class[key].is_f64(), "{key} in {class}");
            }
        }
    }
}

#[test]
fn run_writes_json_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let plot_path = dir.path().join("plot.png");
    let args = SimulateArgs {
        scenario: small_scenario_path(),
        policies: Some(vec!["proxy-cap".into(), "roost".into()]),
        json: Some(json_path.clone()),
        plot: Some(plot_path.clone()),
        seed: None,
        font: None,
    };
    let table = roost_sim::run(&args).unwrap();
    assert!(table.contains("overall: roost beats proxy-cap"), "{table}");

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["policies"].as_array().unwrap().len(), 2);

    let png = std::fs::read(&plot_path).unwrap();
    assert!(png.len() > 10_000, "{} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn missing_font_names_path_and_package() {
    let dir = tempfile::tempdir().unwrap();
    let args = SimulateArgs {
        scenario: small_scenario_path(),
        policies: Some(vec!["roost".into()]),
        json: None,
        plot: Some(dir.path().join("plot.png")),
        seed: None,
        font: Some(dir.path().join("missing.ttf")),
    };
    let err = roost_sim::run(&args).unwrap_err().to_string();
    assert!(err.contains("missing.ttf not found"), "{err}");
    assert!(err.contains("fonts-dejavu-core"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn unknown_policy_lists_valid_names() {
    let args = SimulateArgs {
        scenario: small_scenario_path(),
        policies: Some(vec!["rooster".into()]),
        ..SimulateArgs::default()
    };
    let err = roost_sim::run(&args).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown policy \"rooster\"; valid policies are: none, proxy-cap, proxy-cap-reset-15m, per-user-ip-cap, roost"
    );
}
