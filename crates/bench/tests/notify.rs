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
