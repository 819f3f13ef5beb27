//! Bad scenario files give one-line errors naming the file, key, value and fix.

use roost_sim::parse_scenario;

/// A valid scenario; the cases below change one line of it.
const BASE: &str = r#"
[scenario]
name = "tiny"
duration = "5m"
capacity = 10

[governor]
max_sessions = 10

[baselines]
proxy_networks = ["198.51.100.0/30"]
proxy_cap = 4

[[population]]
name = "campus"
behaviour = "poller"
count = 20
networks = ["10.0.0.0/24"]
interval = "1m"
session = "5s"

[[population]]
name = "proxy"
behaviour = "holder"
count = 5
networks = ["198.51.100.0/30"]
reconnect_delay = ["500ms", "2s"]
"#;

fn error_for(text: &str) -> String {
    let err = parse_scenario(text, "scenario.toml").expect_err("the scenario should be rejected");
    assert!(!err.contains('\n'), "not one line: {err}");
    assert!(err.starts_with("scenario.toml"), "no file name: {err}");
    err
}

/// Replaces the first occurrence of `line` in BASE.
fn with(line: &str, replacement: &str) -> String {
    assert!(BASE.contains(line), "{line}");
    BASE.replacen(line, replacement, 1)
}

/// Replaces `line` in the second population (the holders).
fn with_in_holders(line: &str, replacement: &str) -> String {
    let split = BASE.rfind("[[population]]").unwrap();
    let (head, tail) = BASE.split_at(split);
    assert!(tail.contains(line), "{line}");
    format!("{head}{}", tail.replacen(line, replacement, 1))
}

#[test]
fn base_scenario_is_valid() {
    let scenario = parse_scenario(BASE, "scenario.toml").unwrap();
    assert_eq!(scenario.populations.len(), 2);
    assert_eq!(scenario.seed, 1);
    assert_eq!(scenario.collapse_factor, 1.25);
    assert_eq!(scenario.governor.unwrap().max_preauth, 25, "defaults to one connection per client");
}

#[test]
fn negative_count_names_key_and_fix() {
    let text = with_in_holders("count = 5", "count = -3");
    assert_eq!(
        error_for(&text),
        "scenario.toml: key population[1].count: invalid value -3; expected a whole number above 0"
    );
}

#[test]
fn unknown_keys_list_valid_keys() {
    let cases = [
        (with("capacity = 10", "capacity = 10\ncapacty = 3"), "unknown key scenario.capacty; valid keys are: capacity, collapse_factor"),
        (with("proxy_cap = 4", "proxy_cap = 4\nproxy_limit = 3"), "unknown key baselines.proxy_limit; valid keys are: per_user_ip_max"),
        (with("session = \"5s\"", "session = \"5s\"\nsesion = \"5s\""), "unknown key population[0].sesion; valid keys are: addresses"),
        (format!("{BASE}\n[extra]\nx = 1\n"), "unknown key extra; valid keys are: baselines, governor, population, scenario"),
        (with("max_sessions = 10", "max_sessions = 10\nmax_session = 3"), "scenario.toml: unknown key governor.max_session; valid keys are"),
    ];
    for (text, expected) in cases {
        let err = error_for(&text);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn bad_values_name_key_value_and_fix() {
    let cases = [
        (with("duration = \"5m\"", "duration = \"soon\""), "key scenario.duration: \"soon\" is not a duration; write it like 30s"),
        (with("duration = \"5m\"", "duration = \"30d\""), "key scenario.duration: invalid value \"30d\"; expected at most 7d"),
        (with("capacity = 10", "capacity = 0"), "key scenario.capacity: invalid value 0; expected a whole number from 1 to"),
        (with("capacity = 10", "capacity = 10\ncollapse_factor = 0.5"), "key scenario.collapse_factor: invalid value 0.5; expected a number from 1 to 100"),
        (with("capacity = 10", "capacity = 10\ntick = \"0s\""), "key scenario.tick: invalid value \"0s\"; expected a duration of at least 10ms"),
        (with("behaviour = \"poller\"", "behaviour = \"pinger\""), "key population[0].behaviour: invalid value \"pinger\"; expected one of \"holder\", \"poller\", \"interactive\""),
        (with("networks = [\"10.0.0.0/24\"]", "networks = [\"10.0.0.0/33\"]"), "key population[0].networks: invalid value \"10.0.0.0/33\""),
        (with("networks = [\"10.0.0.0/24\"]", "networks = []"), "key population[0].networks: invalid value []; expected at least one network"),
        (with_in_holders("reconnect_delay = [\"500ms\", \"2s\"]", "reconnect_delay = [\"0s\", \"2s\"]"), "key population[1].reconnect_delay: invalid value [\"0s\", \"2s\"]; expected a list of two durations above zero"),
        (with_in_holders("reconnect_delay = [\"500ms\", \"2s\"]", "reconnect_delay = [\"3s\", \"2s\"]"), "minimum first"),
        (with("proxy_cap = 4", "proxy_cap = \"four\""), "key baselines.proxy_cap: invalid value \"four\"; expected a whole number from 1 to"),
        (with("max_sessions = 10", "max_sessions = 12"), "key governor.max_sessions: invalid value 12; expected scenario.capacity (10)"),
        (with("max_sessions = 10", "max_sessions = \"auto\""), "key governor.max_sessions: invalid value \"auto\"; expected a number"),
        (with("max_sessions = 10", "max_sessions = 10\n[[governor.class]]\nname = \"a\"\nreserved = 11"), "key governor: the classes reserve 11 slots but max_sessions is 10"),
    ];
    for (text, expected) in cases {
        let err = error_for(&text);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn missing_keys_say_what_to_add() {
    let cases = [
        (with("capacity = 10\n", ""), "key scenario.capacity is missing; add the server's session slots"),
        (with_in_holders("reconnect_delay = [\"500ms\", \"2s\"]\n", ""), "key population[1].reconnect_delay is missing; add the delay before reconnecting"),
        (with("max_sessions = 10\n", ""), "key governor.max_sessions is missing; add max_sessions = 10"),
        (BASE.split("[[population]]").next().unwrap().to_owned(), "key population is missing; add one or more [[population]] tables"),
    ];
    for (text, expected) in cases {
        let err = error_for(&text);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn keys_of_other_behaviours_are_rejected() {
    let text = with_in_holders("reconnect_delay", "interval = \"1m\"\nreconnect_delay");
    assert_eq!(
        error_for(&text),
        "scenario.toml: key population[1].interval does not apply to behaviour \"holder\"; remove it (a holder takes: reconnect_delay)"
    );
}

#[test]
fn invalid_toml_gives_line() {
    let err = error_for("[scenario\nname = \"x\"");
    assert!(err.starts_with("scenario.toml:1:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn unreadable_file_is_named() {
    let err = roost_sim::load_scenario(std::path::Path::new("/nonexistent/scenario.toml")).unwrap_err();
    assert!(err.starts_with("/nonexistent/scenario.toml: cannot read the file"), "{err}");
}
