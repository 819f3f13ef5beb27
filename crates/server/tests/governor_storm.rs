//! The proxy storm on real sockets: 80 push-proxy holders that sit in IDLE
//! and reconnect at once whenever they are cut, and 30 campus pollers,
//! against a server with 60 slots.
//!
//! Every poller must log in, holders must rotate with the documented BYE
//! text, no holder may be starved, and the metrics endpoint must count
//! what the clients saw.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use roost_auth::UserDb;
use roost_governor::ClassConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Mutex;

const HOLDERS: usize = 80;
const POLLERS: usize = 30;
const SLOTS: u32 = 60;
/// How long the storm runs before the clients stop.
const STORM: Duration = Duration::from_secs(24);
const LEASE: Duration = Duration::from_secs(3);
const CAMPUS: &str = "127.0.0.2";

fn proxy_address(holder: usize) -> IpAddr {
    format!("127.0.1.{}", 1 + holder % 4).parse().unwrap()
}

fn start_server() -> TestServer {
    TestServer::start_with(|config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        let policy = &mut config.governor.policy;
        policy.max_sessions = SLOTS;
        policy.max_preauth = 200;
        policy.waiting_window = Duration::from_secs(10);
        policy.rotation_hold = Duration::from_secs(3);
        let mut campus = ClassConfig::new("campus");
        campus.networks = vec![format!("{CAMPUS}/32").parse().unwrap()];
        campus.priority = 10;
        campus.reserved = 10;
        let mut proxy = ClassConfig::new("proxy");
        proxy.networks = vec!["127.0.1.0/24".parse().unwrap()];
        proxy.lease = Some(LEASE);
        proxy.rotation_rate = 5.0;
        policy.classes = vec![campus, proxy];
    })
}

fn add_users(server: &TestServer) {
    let users = UserDb::open(&server.data_dir).unwrap();
    let mut lines = String::new();
    for holder in 0..HOLDERS {
        lines.push_str(&format!("holder{holder}:{{PLAIN}}secret\n"));
    }
    for poller in 0..POLLERS {
        lines.push_str(&format!("campus{poller}:{{PLAIN}}secret\n"));
    }
    users.import(&lines).unwrap();
}

/// What the clients saw, for comparison with the metrics.
#[derive(Default)]
struct Seen {
    /// Greeting BYEs and login NOs with UNAVAILABLE or LIMIT.
    refusals: u64,
    /// BYE [UNAVAILABLE] while logged in: rotations and preemptions.
    evictions: u64,
    /// Logged-in time per holder.
    connected: BTreeMap<usize, Duration>,
    poller_logins: u64,
    poller_failures: Vec<String>,
    bad_texts: Vec<String>,
}

struct Connection {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn open(source: IpAddr, server: SocketAddr) -> std::io::Result<Connection> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(server).await?;
        let (reader, writer) = stream.into_split();
        Ok(Connection { lines: BufReader::new(reader).lines(), writer })
    }

    async fn line(&mut self) -> Option<String> {
        match tokio::time::timeout(Duration::from_secs(20), self.lines.next_line()).await {
            Ok(Ok(line)) => line,
            _ => None,
        }
    }

    /// Sends a command and returns its tagged response, or the BYE that
    /// ended the connection.
    async fn command(&mut self, tag: &str, command: &str) -> Option<String> {
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes()).await.ok()?;
        loop {
            let line = self.line().await?;
            if line.starts_with(&format!("{tag} ")) || line.starts_with("* BYE") {
                return Some(line);
            }
        }
    }
}

/// Checks the refusal and eviction text: `[UNAVAILABLE] reason, retry in N s`.
fn well_formed(line: &str) -> bool {
    let Some(rest) = line.split_once("[UNAVAILABLE] ").or_else(|| line.split_once("[LIMIT] ")).map(|(_, rest)| rest) else {
        return false;
    };
    let Some((_, retry)) = rest.rsplit_once(", retry in ") else { return false };
    retry.strip_suffix(" s").is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|n| n >= 1))
}

async fn holder(index: usize, server: SocketAddr, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut attempt = 0u64;
    while !stop.load(Ordering::Relaxed) {
        attempt += 1;
        // Proxies reconnect at once; a short jitter keeps the loop bounded.
        let pause = Duration::from_millis(20 + (index as u64 * 37 + attempt * 11) % 80);
        let Ok(mut connection) = Connection::open(proxy_address(index), server).await else {
            tokio::time::sleep(pause).await;
            continue;
        };
        let Some(greeting) = connection.line().await else { continue };
        if greeting.starts_with("* BYE") {
            let mut seen = seen.lock().await;
            seen.refusals += 1;
            if !well_formed(&greeting) {
                seen.bad_texts.push(greeting);
            }
            drop(seen);
            tokio::time::sleep(pause).await;
            continue;
        }
        let login = connection.command("a1", &format!("LOGIN holder{index} secret")).await.unwrap_or_default();
        if !login.starts_with("a1 OK") {
            let mut seen = seen.lock().await;
            if login.contains("[UNAVAILABLE]") || login.contains("[LIMIT]") {
                seen.refusals += 1;
                if !well_formed(&login) {
                    seen.bad_texts.push(login);
                }
            }
            drop(seen);
            let _ = connection.command("a9", "LOGOUT").await;
            tokio::time::sleep(pause).await;
            continue;
        }
        let since = Instant::now();
        let select = connection.command("a2", "SELECT INBOX").await.unwrap_or_default();
        let _ = connection.writer.write_all(b"a3 IDLE\r\n").await;
        // Sit in IDLE until the server cuts the session or the storm ends.
        // The cut can come as early as the SELECT response.
        let ended = loop {
            if select.starts_with("* BYE") {
                break Some(select);
            }
            if stop.load(Ordering::Relaxed) {
                break None;
            }
            match tokio::time::timeout(Duration::from_millis(200), connection.lines.next_line()).await {
                Err(_) => continue,
                Ok(Ok(Some(line))) if line.starts_with("* BYE") => break Some(line),
                Ok(Ok(Some(_))) => continue,
                Ok(_) => break Some(String::new()),
            }
        };
        let mut seen = seen.lock().await;
        *seen.connected.entry(index).or_default() += since.elapsed();
        if let Some(bye) = ended {
            if bye.contains("[UNAVAILABLE]") {
                seen.evictions += 1;
            }
            if !well_formed(&bye) {
                seen.bad_texts.push(format!("holder{index} cut with {bye:?}"));
            }
        } else {
            drop(seen);
            let _ = connection.writer.write_all(b"DONE\r\na4 LOGOUT\r\n").await;
            let _ = connection.line().await;
            return;
        }
    }
}

async fn poller(index: usize, server: SocketAddr, seen: Arc<Mutex<Seen>>) {
    // Pollers arrive spread over the storm, three syncs each.
    for round in 0..3u64 {
        let start = Duration::from_millis(2_000 + (index as u64 * 613 + round * 6_000) % 18_000);
        tokio::time::sleep_until(tokio::time::Instant::now() + start / 3).await;
        let result: Result<(), String> = async {
            let mut connection = Connection::open(CAMPUS.parse().unwrap(), server).await.map_err(|e| e.to_string())?;
            let greeting = connection.line().await.unwrap_or_default();
            if !greeting.starts_with("* OK") {
                return Err(format!("greeting {greeting:?}"));
            }
            let login = connection.command("p1", &format!("LOGIN campus{index} secret")).await.unwrap_or_default();
            if !login.starts_with("p1 OK") {
                return Err(format!("login {login:?}"));
            }
            let select = connection.command("p2", "SELECT INBOX").await.unwrap_or_default();
            if !select.starts_with("p2 OK") {
                return Err(format!("select {select:?}"));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            connection.command("p3", "LOGOUT").await;
            Ok(())
        }
        .await;
        let mut seen = seen.lock().await;
        match result {
            Ok(()) => seen.poller_logins += 1,
            Err(why) => seen.poller_failures.push(format!("campus{index} round {round}: {why}")),
        }
    }
}

fn scrape(metrics: SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect(metrics).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Sums the samples of `family` whose labels contain every `filter`.
fn metric_sum(text: &str, family: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .filter(|line| filters.iter().all(|filter| line.contains(filter)))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum()
}

#[test]
fn proxy_storm_rotates_holders_and_serves_campus() {
    let server = start_server();
    add_users(&server);
    let address = server.imap;
    let metrics = server.metrics.expect("metrics listener is on");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for index in 0..HOLDERS {
            tasks.push(tokio::spawn(holder(index, address, Arc::clone(&seen), Arc::clone(&stop))));
        }
        let mut pollers = Vec::new();
        for index in 0..POLLERS {
            pollers.push(tokio::spawn(poller(index, address, Arc::clone(&seen))));
        }
        tokio::time::sleep(STORM).await;
        for poller in pollers {
            poller.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    });
    // Give the server a moment to release what the clients closed.
    std::thread::sleep(Duration::from_millis(500));
    let seen = runtime.block_on(async { std::mem::take(&mut *seen.lock().await) });

    let least = seen.connected.values().min().copied().unwrap_or_default();
    let most = seen.connected.values().max().copied().unwrap_or_default();
    eprintln!(
        "storm: {} refusals, {} evictions, {} poller logins, holder connected time {least:?} to {most:?}",
        seen.refusals, seen.evictions, seen.poller_logins
    );
    assert!(seen.poller_failures.is_empty(), "pollers failed: {:?}", seen.poller_failures);
    assert_eq!(seen.poller_logins, 3 * POLLERS as u64);
    assert!(seen.bad_texts.is_empty(), "badly formed refusals: {:?}", seen.bad_texts);
    assert!(seen.evictions > 0, "no holder was rotated");
    assert_eq!(seen.connected.len(), HOLDERS, "some holders never logged in");
    let starved: Vec<_> = seen.connected.iter().filter(|(_, time)| **time < LEASE / 2).collect();
    assert!(starved.is_empty(), "holders connected less than half a lease: {starved:?}");

    let text = scrape(metrics);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let refused = metric_sum(&text, "roost_governor_decisions_total", &["decision=\"refuse\""]);
    let rotated = metric_sum(&text, "roost_governor_decisions_total", &["decision=\"rotate\""]);
    assert_eq!(refused as u64, seen.refusals, "refusals counted by the server and seen by clients differ");
    assert_eq!(rotated as u64, seen.evictions, "evictions counted by the server and seen by clients differ");
    let campus_refused = metric_sum(&text, "roost_governor_decisions_total", &["class=\"campus\"", "decision=\"refuse\""]);
    assert_eq!(campus_refused, 0.0);
    let live = metric_sum(&text, "roost_sessions", &[]);
    assert_eq!(live, 0.0, "sessions still counted after every client left: {text}");
}
