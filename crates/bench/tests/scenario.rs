//! `roost-bench scenario` against a real Roost server in this process. The
//! tool writes the server config and users for proxy-storm-small, and the
//! server starts with them. A short replay at a high time scale must then
//! serve every campus poller and rotate the phones' sessions.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestServer, describe, read_report, run_bench, strings};
use roost_governor::config::{Count, parse_governor};

const TIME_SCALE: &str = "60";
const POPULATION_SCALE: &str = "0.3";

fn small_scenario() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/proxy-storm-small.toml");
    path.to_str().unwrap().to_owned()
}

/// Runs roost-bench without the `--json` the common helper adds.
fn bench(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args(args)
        .output()
        .expect("starting roost-bench failed")
}

/// Reads the written config the way `roost serve` reads those keys.
fn read_config(text: &str) -> (roost_governor::Policy, Duration) {
    let root: toml::Table = text.parse().unwrap();
    let read = parse_governor(root["governor"].as_table().unwrap(), &[]).unwrap();
    assert!(matches!(read.max_sessions, Count::Fixed(_)), "{text}");
    assert!(matches!(read.max_preauth, Count::Fixed(_)), "{text}");
    read.policy.validate().unwrap();
    let keepalive = root["imap"]["idle_keepalive"].as_str().unwrap();
    let keepalive = roost_governor::policy::parse_duration(keepalive).unwrap();
    (read.policy, keepalive)
}

#[test]
fn scenario_small_replay_rotates_phones() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.toml");
    let users_path = dir.path().join("users.passwd");
    let output = bench(&[
        "scenario".to_owned(),
        small_scenario(),
        "--write-config".to_owned(),
        config_path.to_str().unwrap().to_owned(),
        "--write-users".to_owned(),
        users_path.to_str().unwrap().to_owned(),
        "--time-scale".to_owned(),
        TIME_SCALE.to_owned(),
        "--scale-population".to_owned(),
        POPULATION_SCALE.to_owned(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let (policy, keepalive) = read_config(&std::fs::read_to_string(&config_path).unwrap());
    assert_eq!(policy.max_sessions, 30);
    let users = std::fs::read_to_string(&users_path).unwrap();
    assert_eq!(users.lines().count(), 300 + 30);

    let server = TestServer::start_with_users(&users, |config| {
        config.governor.policy = policy;
        config.imap.idle_keepalive = keepalive;
    });
    let json = dir.path().join("scenario.json");
    let mut args = strings(&[
        "scenario",
        "--time-scale",
        TIME_SCALE,
        "--scale-population",
        POPULATION_SCALE,
        "--duration",
        "20s",
    ]);
    args.push(small_scenario());
    args.extend(["--server".to_owned(), server.imap.to_string()]);
    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));

    let report = read_report(&json);
    assert_eq!(report["scenario"], "proxy-storm-small");
    let scenario_seconds = report["scenario_seconds"].as_f64().unwrap();
    assert!((scenario_seconds - 1200.0).abs() < 1.0, "{report:#}");
    let classes = report["classes"].as_array().unwrap();
    let campus = classes
        .iter()
        .find(|class| class["name"] == "campus")
        .unwrap();
    let proxy = classes
        .iter()
        .find(|class| class["name"] == "proxy")
        .unwrap();

    // Every campus poller that tried got in: the reservation and the
    // priority keep the phones out of their way.
    assert_eq!(campus["clients"], 300, "{campus:#}");
    assert_eq!(campus["errors"], 0, "{campus:#}");
    assert_eq!(campus["logins_refused"], 0, "{campus:#}");
    assert!(
        campus["logins_served"].as_u64().unwrap() >= 300,
        "{campus:#}"
    );
    assert!(
        campus["sessions_completed"].as_u64().unwrap() > 0,
        "{campus:#}"
    );

    // Thirty phones want the eight slots the campus leaves, so they wait
    // their turn and are rotated out after their one-second lease.
    assert_eq!(proxy["clients"], 30, "{proxy:#}");
    assert_eq!(proxy["errors"], 0, "{proxy:#}");
    assert!(proxy["logins_refused"].as_u64().unwrap() > 0, "{proxy:#}");
    assert!(proxy["rotations"].as_u64().unwrap() > 0, "{proxy:#}");
    let rotation = proxy["rotation_example"].as_str().unwrap();
    assert!(
        rotation
            .starts_with("* BYE [UNAVAILABLE] session rotated to let waiting users in, retry in "),
        "{rotation}"
    );
    let refusal = proxy["refusal_example"].as_str().unwrap();
    assert!(refusal.starts_with("a NO [UNAVAILABLE] "), "{refusal}");
    assert!(
        proxy["jain_connected_time"].as_f64().unwrap() > 0.5,
        "{proxy:#}"
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("10.0.0.0/16 -> 127.1.0.0/16"), "{stdout}");
}

#[test]
fn scenario_needs_server_or_files() {
    let output = bench(&["scenario".to_owned(), small_scenario()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--server"), "{stderr}");
    assert!(stderr.contains("--write-config"), "{stderr}");
}

#[test]
fn scenario_bad_flags_rejected() {
    let cases: [(&[&str], &str); 5] = [
        (&["--server", "192.0.2.1:143"], "not a loopback address"),
        (
            &["--server", "127.0.0.1:1", "--scale-population", "0"],
            "--scale-population 0",
        ),
        (
            &["--server", "127.0.0.1:1", "--scale-population", "1.5"],
            "--scale-population 1.5",
        ),
        (
            &["--server", "127.0.0.1:1", "--time-scale", "0.5"],
            "--time-scale 0.5",
        ),
        (
            &["--write-users", "/dev/null", "--password", "a:b"],
            "--password",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["scenario".to_owned(), small_scenario()];
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let output = bench(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{flags:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}

#[test]
fn scenario_invalid_file_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[scenario]\nname = \"x\"\n").unwrap();
    let output = bench(&[
        "scenario".to_owned(),
        path.to_str().unwrap().to_owned(),
        "--write-config".to_owned(),
        dir.path().join("out.toml").to_str().unwrap().to_owned(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(!dir.path().join("out.toml").exists());
}

#[test]
fn scenario_unreachable_server_counts_errors() {
    // Nothing listens on the port, so every connect fails: the replay
    // ends on time with errors and exit code 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("unreachable.json");
    let mut args = strings(&[
        "scenario",
        "--time-scale",
        "600",
        "--scale-population",
        "0.02",
        "--duration",
        "2s",
        "--server",
    ]);
    args.push(address.to_string());
    args.push(small_scenario());
    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = read_report(&json);
    let proxy = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|class| class["name"] == "proxy")
        .unwrap()
        .clone();
    assert_eq!(proxy["logins_served"], 0, "{proxy:#}");
    assert!(
        proxy["failures"]["connect"]["count"].as_u64().unwrap() > 0,
        "{proxy:#}"
    );
}
