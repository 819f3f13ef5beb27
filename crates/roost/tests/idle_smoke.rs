//! A scaled-down idle-session run with the real binaries: `roost serve`
//! with three worker processes, and `roost-bench` holding a few thousand
//! sessions in IDLE. It checks correctness only: every session reaches
//! IDLE, every delivery reaches its idle client, and the server's memory
//! per session stays within a generous bound. Timings and the real
//! targets are measured by `scripts/bench-idle`, never here.
//!
//! `roost-bench` is another package's binary; `cargo test --workspace`
//! builds it next to `roost`.

#[path = "clients/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;

use harness::Server;


const SESSIONS: usize = 3000;
const DELIVERIES: usize = 200;

/// Server memory per idle session allowed here: several times the
/// measured 4 KiB, because the run is small and per-process costs weigh.
const SERVER_PSS_PER_SESSION_MAX: f64 = 24.0 * 1024.0;

fn bench_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_roost")).with_file_name("roost-bench");
    assert!(path.is_file(), "{} is missing; run the tests with `cargo test --workspace`, which builds it", path.display());
    path
}

fn run_bench(arguments: &[String]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(bench_binary())
        .args(arguments)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("roost-bench starts");
    assert!(
        output.status.success(),
        "roost-bench {arguments:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

#[test]
fn thousands_of_idle_sessions_over_workers() {
    // A cheap scheme, as the benchmark uses: a memory-hard hash per user
    // would make the test about its cost rather than the sessions.
    let passwd: String = (1..=SESSIONS).map(|n| format!("user{n}:{{PLAIN}}pass{n}::::::\n")).collect();
    let config = format!(
        "workers = 3\nworker_connections_max = {}\n[governor]\nmax_sessions = {}\nmax_preauth = 1000\n",
        SESSIONS / 3 + 300,
        SESSIONS * 2
    );
    let server = Server::start_prepared(&config, |data_dir| harness::import_users(data_dir, &passwd));

    let report = run_bench(&[
        "storm".into(),
        "--server".into(),
        server.imap.to_string(),
        "--sessions".into(),
        SESSIONS.to_string(),
        "--hold".into(),
        "3s".into(),
        "--server-pid".into(),
        server.pid().to_string(),
    ]);
    assert_eq!(report["established"], SESSIONS as u64, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    eprintln!("setup: {}", report["setup"]);
    let pss = report["memory"].as_array().unwrap().iter().find(|row| row["key"] == "server_pss").expect("server PSS row");
    let per_session = pss["per_session"].as_f64().unwrap();
    eprintln!("server PSS per session: {per_session:.0} B");
    assert!(per_session <= SERVER_PSS_PER_SESSION_MAX, "server PSS per session is {per_session} B: {}", report["memory"]);

    let report = run_bench(&[
        "notify".into(),
        "--server".into(),
        server.imap.to_string(),
        "--lmtp".into(),
        server.lmtp.to_string(),
        "--sessions".into(),
        SESSIONS.to_string(),
        "--deliveries".into(),
        DELIVERIES.to_string(),
        "--seed".into(),
        "1".into(),
    ]);
    assert_eq!(report["established"], SESSIONS as u64, "{report}");
    assert_eq!(report["deliveries"]["seen"], DELIVERIES as u64, "{report}");
}
