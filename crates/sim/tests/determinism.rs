//! The same seed gives the same report; another seed gives other numbers.

use std::path::PathBuf;

use roost_sim::{PolicyKind, Scenario, load_scenario, simulate_all};

fn scenario() -> Scenario {
    load_scenario(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/proxy-storm-small.toml")).unwrap()
}

/// Returns the JSON report without the fields that measure real time.
fn json_without_timing(scenario: &Scenario) -> serde_json::Value {
    let (report, _) = simulate_all(scenario, &PolicyKind::ALL).unwrap();
    let mut json = serde_json::to_value(&report).unwrap();
    for policy in json["policies"].as_array_mut().unwrap() {
        let policy = policy.as_object_mut().unwrap();
        assert!(policy.remove("decisions_per_second").is_some());
        assert!(policy.remove("wall_seconds").is_some());
    }
    json
}

#[test]
fn same_seed_same_report() {
    let scenario = scenario();
    let first = json_without_timing(&scenario);
    let second = json_without_timing(&scenario);
    assert_eq!(first, second);
}

#[test]
fn other_seed_other_numbers() {
    let mut scenario = scenario();
    let first = json_without_timing(&scenario);
    scenario.seed = 2;
    let second = json_without_timing(&scenario);
    assert_eq!(second["seed"], 2);
    for (a, b) in first["policies"].as_array().unwrap().iter().zip(second["policies"].as_array().unwrap()) {
        assert_ne!(a["classes"][0]["logins_served"], b["classes"][0]["logins_served"], "{}", a["name"]);
        assert_ne!(a["decisions"], b["decisions"], "{}", a["name"]);
    }
}
