//! `roost-bench storm` against a real Roost server in this process.

mod common;

use std::io::BufRead as _;
use std::process::Stdio;

use common::{TestServer, describe, read_report, run_bench, strings};

#[test]
fn storm_three_workers_all_idle() {
    let server = TestServer::start(300);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("storm.json");
    let mut args = strings(&[
        "storm",
        "--sessions",
        "300",
        "--hold",
        "2s",
        "--source-addresses",
        "3",
        "--connections-per-worker",
        "100",
    ]);
    args.extend(["--server".to_owned(), server.imap.to_string()]);
    args.extend(["--server-pid".to_owned(), std::process::id().to_string()]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let report = read_report(&json);

    assert_eq!(report["established"], 300, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["failures"], serde_json::json!({}));
    assert_eq!(report["workers"], 3);
    assert_eq!(
        report["source_addresses"],
        serde_json::json!(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    );
    assert_eq!(
        report["established_per_source_address"],
        serde_json::json!([100, 100, 100])
    );
    assert_eq!(report["setup"]["latency"]["count"], 300);
    assert!(report["setup"]["sessions_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["hold"]["live_at_sample"], 300);
    assert_eq!(report["hold"]["closed_during_hold"], 0);
    assert!(report["hold"]["seconds"].as_f64().unwrap() >= 2.0);

    let row = |key: &str| {
        report["memory"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["key"] == key)
            .unwrap_or_else(|| panic!("no {key} row"))
            .clone()
    };
    assert!(row("server_pss")["during"].as_u64().unwrap() > 0);
    // 300 idle connections hold 600 TCP sockets (both ends) at the sample.
    // The counter is machine-wide: other tests may open or close sockets
    // during the storm, so the delta is not checked, only that the count
    // at the sample includes this storm's sockets.
    assert!(
        row("tcp_in_use")["during"].as_i64().unwrap() >= 600,
        "{:#}",
        row("tcp_in_use")
    );
    // The parent and its three workers.
    assert_eq!(report["tool"]["processes"], 4);

    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("established   300 of 300, failed 0"),
        "{table}"
    );
    assert!(table.contains("server PSS"), "{table}");
}

#[test]
fn storm_counts_login_rejections() {
    let server = TestServer::start(5);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("storm.json");
    let mut args = strings(&[
        "storm",
        "--sessions",
        "5",
        "--hold",
        "0s",
        "--password-mode",
        "same:wrong",
    ]);
    args.extend(["--server".to_owned(), server.imap.to_string()]);

    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = read_report(&json);
    assert_eq!(report["established"], 0);
    assert_eq!(report["failed"], 5);
    assert_eq!(report["failures"]["login_rejected"]["count"], 5);
    let example = report["failures"]["login_rejected"]["example"]
        .as_str()
        .unwrap();
    assert!(example.starts_with("user"), "{example}");
    assert!(example.contains("a NO"), "{example}");
}

#[test]
fn storm_counts_sessions_closed_during_hold() {
    let mut server = TestServer::start(20);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("storm.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args(["storm", "--sessions", "20", "--hold", "3s", "--server"])
        .arg(server.imap.to_string())
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Stop the server once every session is in IDLE.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    for line in (&mut stderr).lines() {
        let line = line.unwrap();
        let done = line.starts_with("setup done");
        lines.push(line);
        if done {
            break;
        }
    }
    // Keep reading stderr, so the tool's later messages do not hit a
    // closed pipe.
    let rest = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    server.stop();
    let output = child.wait_with_output().unwrap();
    lines.extend(rest.join().unwrap());
    assert_eq!(
        output.status.code(),
        Some(1),
        "stderr: {lines:?}\n{}",
        describe(&output)
    );

    let report = read_report(&json);
    assert_eq!(report["established"], 20);
    assert_eq!(report["hold"]["closed_during_hold"], 20);
    assert_eq!(report["hold"]["live_at_sample"], 0);
    assert_eq!(report["failures"]["closed_during_hold"]["count"], 20);
    let example = report["failures"]["closed_during_hold"]["example"]
        .as_str()
        .unwrap();
    assert!(example.starts_with("* BYE"), "{example}");
}

#[test]
fn storm_over_implicit_tls() {
    let server = TestServer::start(10);
    let dir = tempfile::tempdir().unwrap();

    // Without verification, then verified against the generated
    // certificate, which names localhost.
    let certificate = server.certificate().to_string_lossy().into_owned();
    let verified = ["--ca", certificate.as_str(), "--server-name", "localhost"];
    for extra in [&[][..], &verified[..]] {
        let json = dir.path().join("tls.json");
        let mut args = strings(&["storm", "--sessions", "10", "--hold", "0s", "--tls"]);
        args.extend(["--server".to_owned(), server.imaps.to_string()]);
        args.extend(strings(extra));
        let output = run_bench(&args, &json);
        assert!(output.status.success(), "{extra:?}: {}", describe(&output));
        let report = read_report(&json);
        assert_eq!(report["established"], 10, "{extra:?}: {report:#}");
        assert_eq!(report["tls"], true);
    }

    // A name the certificate does not carry fails every handshake.
    let json = dir.path().join("wrong-name.json");
    let mut args = strings(&[
        "storm",
        "--sessions",
        "3",
        "--hold",
        "0s",
        "--tls",
        "--server-name",
        "mail.example.org",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imaps.to_string(),
        "--ca".to_owned(),
        certificate.clone(),
    ]);
    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(read_report(&json)["failures"]["tls_handshake"]["count"], 3);
}

#[test]
fn storm_rejects_non_loopback_server() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("never.json");
    for server in ["192.0.2.1:143", "[2001:db8::1]:143"] {
        let args = strings(&["storm", "--sessions", "1", "--server", server]);
        let output = run_bench(&args, &json);
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("not a loopback address"), "{stderr}");
        assert!(!json.exists(), "no report is written for a rejected target");
    }
}

#[test]
fn storm_reports_connect_errors() {
    // A loopback port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("refused.json");
    let args = strings(&[
        "storm",
        "--sessions",
        "4",
        "--hold",
        "0s",
        "--server",
        &format!("127.0.0.1:{port}"),
    ]);
    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = read_report(&json);
    assert_eq!(report["failures"]["connect"]["count"], 4);
    let example = report["failures"]["connect"]["example"].as_str().unwrap();
    assert!(example.contains("refused"), "{example}");
}

#[test]
fn storm_counts_keepalives() {
    let server = TestServer::start_with(5, |config| {
        config.imap.idle_keepalive = std::time::Duration::from_secs(1)
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("keepalive.json");
    let mut args = strings(&["storm", "--sessions", "5", "--hold", "3s"]);
    args.extend(["--server".to_owned(), server.imap.to_string()]);
    args.extend([
        "--server-pids-from".to_owned(),
        format!("echo {}", std::process::id()),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let report = read_report(&json);
    // One `* OK Still here` per second and session, give or take the
    // sweeper's tick.
    let keepalives = report["hold"]["keepalives"].as_u64().unwrap();
    assert!(keepalives >= 5, "{keepalives} keepalives");
    assert_eq!(report["hold"]["live_at_sample"], 5);
    assert_eq!(
        report["server_pids"],
        serde_json::json!([std::process::id()])
    );
}

/// Returns the PIDs whose parent is `parent`, from /proc/PID/stat.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        if after_name.split_whitespace().nth(1) == Some(parent.to_string().as_str()) {
            children.push(pid);
        }
    }
    children
}

#[test]
fn storm_sigterm_stops_workers() {
    let server = TestServer::start(20);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("never.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args([
            "storm",
            "--sessions",
            "20",
            "--connections-per-worker",
            "10",
            "--hold",
            "60s",
            "--server",
        ])
        .arg(server.imap.to_string())
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    for line in (&mut stderr).lines() {
        if line.unwrap().starts_with("setup done") {
            break;
        }
    }
    let workers = children_of(child.id());
    assert_eq!(workers.len(), 2, "worker processes: {workers:?}");

    let started = std::time::Instant::now();
    // SAFETY: kill only sends a signal to the process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let rest = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let status = child.wait().unwrap();
    let messages = rest.join().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the tool took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{messages:?}");
    assert!(
        messages.iter().any(|line| line.contains("SIGTERM")),
        "{messages:?}"
    );
    assert!(!json.exists(), "an interrupted run writes no report");

    // The workers die with the parent; give the kernel a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while workers
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "workers {workers:?} outlived the parent"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
