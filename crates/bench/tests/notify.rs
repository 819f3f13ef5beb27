//! `roost-bench notify` against a real Roost server in this process.

mod common;

use common::{TestServer, describe, read_report, run_bench, strings};

#[test]
fn notify_every_delivery_seen() {
    let server = TestServer::start(50);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "50",
        "--deliveries",
        "10",
        "--connections-per-worker",
        "25",
        "--seed",
        "7",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imap.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let report = read_report(&json);
    assert_eq!(report["established"], 50, "{report:#}");
    assert_eq!(report["workers"], 2);
    let deliveries = &report["deliveries"];
    assert_eq!(deliveries["requested"], 10, "{deliveries:#}");
    assert_eq!(deliveries["accepted"], 10, "{deliveries:#}");
    assert_eq!(deliveries["seen"], 10, "{deliveries:#}");
    assert_eq!(deliveries["not_seen"]["count"], 0, "{deliveries:#}");
    assert_eq!(deliveries["delay"]["count"], 10);
    assert!(deliveries["delay"]["max_ms"].as_f64().unwrap() < 10_000.0);
}

#[test]
fn notify_more_deliveries_than_sessions() {
    // Users repeat, and one EXISTS may announce two messages at once.
    let server = TestServer::start(3);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "3",
        "--deliveries",
        "9",
        "--seed",
        "1",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imap.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let deliveries = &read_report(&json)["deliveries"];
    assert_eq!(deliveries["accepted"], 9, "{deliveries:#}");
    assert_eq!(deliveries["seen"], 9, "{deliveries:#}");
}

#[test]
fn notify_rejected_recipient_counted() {
    let server = TestServer::start_with(2, |config| {
        config.lmtp.local_domains = vec!["roost.test".to_owned()]
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "2",
        "--deliveries",
        "2",
        "--timeout",
        "1s",
        "--rcpt-domain",
        "example.org",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imap.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let deliveries = &read_report(&json)["deliveries"];
    assert_eq!(deliveries["accepted"], 0, "{deliveries:#}");
    assert_eq!(deliveries["rejected"]["count"], 2, "{deliveries:#}");
    let example = deliveries["rejected"]["example"].as_str().unwrap();
    assert!(example.contains("550"), "{example}");
}

#[test]
fn notify_over_implicit_tls() {
    let server = TestServer::start(6);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify-tls.json");
    let mut args = strings(&["notify", "--sessions", "6", "--deliveries", "4", "--tls"]);
    args.extend([
        "--server".to_owned(),
        server.imaps.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let report = read_report(&json);
    assert_eq!(report["tls"], true);
    assert_eq!(report["established"], 6);
    assert_eq!(report["deliveries"]["seen"], 4, "{report:#}");
}

#[test]
fn notify_probes_fetch_while_idle() {
    // user21 is the probe user: the one after the 20 idle sessions' users.
    let server = TestServer::start(21);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify-probes.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "20",
        "--deliveries",
        "5",
        "--probes",
        "15",
        "--probe-messages",
        "7",
        "--probe-interval",
        "10ms",
        "--seed",
        "3",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imap.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let report = read_report(&json);
    // The probe messages went to user21 only, so every delivery to an idle
    // user is matched to its own EXISTS.
    assert_eq!(report["deliveries"]["seen"], 5, "{report:#}");
    let probes = &report["probes"];
    assert_eq!(probes["user"], "user21", "{probes:#}");
    assert_eq!(probes["requested"], 15, "{probes:#}");
    assert_eq!(probes["completed"], 15, "{probes:#}");
    assert_eq!(probes["failed"], 0, "{probes:#}");
    assert_eq!(probes["messages_min"], 7, "{probes:#}");
    assert_eq!(probes["messages_max"], 7, "{probes:#}");
    assert_eq!(probes["login_select_fetch"]["count"], 15, "{probes:#}");
    let p99 = probes["login_select_fetch"]["p99_ms"].as_f64().unwrap();
    let max = probes["login_select_fetch"]["max_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 <= max, "{probes:#}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("LOGIN sent to FETCH done"), "{stdout}");
}

#[test]
fn notify_probes_over_implicit_tls() {
    let server = TestServer::start(4);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify-probes-tls.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "3",
        "--deliveries",
        "2",
        "--tls",
        "--probes",
        "3",
        "--probe-messages",
        "2",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imaps.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert!(output.status.success(), "{}", describe(&output));
    let probes = &read_report(&json)["probes"];
    assert_eq!(probes["completed"], 3, "{probes:#}");
    assert_eq!(probes["messages_max"], 2, "{probes:#}");
}

#[test]
fn notify_probe_user_among_idle_rejected() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args([
            "notify",
            "--sessions",
            "10",
            "--deliveries",
            "1",
            "--probes",
            "1",
            "--probe-user",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--probe-user 4"), "{stderr}");
    assert!(stderr.contains("user1 to user10"), "{stderr}");
}

#[test]
fn notify_probe_failures_counted() {
    // The probe user, user3, does not exist. With --probe-messages 0 no
    // message is delivered to it first, so the probes run and every LOGIN
    // is rejected.
    let server = TestServer::start(2);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("notify-probe-fail.json");
    let mut args = strings(&[
        "notify",
        "--sessions",
        "2",
        "--deliveries",
        "1",
        "--probes",
        "2",
        "--probe-messages",
        "0",
    ]);
    args.extend([
        "--server".to_owned(),
        server.imap.to_string(),
        "--lmtp".to_owned(),
        server.lmtp.to_string(),
    ]);

    let output = run_bench(&args, &json);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let probes = &read_report(&json)["probes"];
    assert_eq!(probes["completed"], 0, "{probes:#}");
    assert_eq!(probes["failed"], 2, "{probes:#}");
    assert_eq!(
        probes["failures"]["login_rejected"]["count"], 2,
        "{probes:#}"
    );
}
