//! The supervisor and its worker processes, with the real `roost` binary:
//! sessions spread over workers, the governor decides across them, a
//! mailbox change reaches an IDLE session in another process, and a worker
//! that dies loses only its own sessions and is replaced.

#[path = "clients/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{ImapConnection, Server, deliver_with_lmtp};

/// Returns the PIDs of the processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The parent PID is the second field after the command in parentheses.
        let Some((_, after)) = stat.rsplit_once(')') else { continue };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let parent_field = fields.next().and_then(|field| field.parse::<u32>().ok());
        // A killed worker stays a zombie until the supervisor reaps it.
        if parent_field == Some(parent) && state != Some("Z") {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Waits until `parent` has `count` children, or fails after 10 s.
fn wait_for_children(parent: u32, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = children(parent);
        if pids.len() == count {
            return pids;
        }
        assert!(Instant::now() < deadline, "expected {count} workers, found {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn users(count: usize) -> Vec<(String, String)> {
    (0..count).map(|n| (format!("user{n}"), format!("pass{n}"))).collect()
}

#[test]
fn sessions_spread_and_survive_a_worker_crash() {
    let accounts = users(10);
    let pairs: Vec<(&str, &str)> = accounts.iter().map(|(user, password)| (user.as_str(), password.as_str())).collect();
    let config = "workers = 3\nworker_connections_max = 4\n[governor]\nmax_sessions = 100\nmax_preauth = 20\n";
    let server = Server::start_with_config(&pairs, config);

    let mut sessions: Vec<ImapConnection> = accounts
        .iter()
        .map(|(user, password)| {
            let mut session = ImapConnection::login(server.imap, user, password);
            session.command("SELECT INBOX");
            session.start_idle();
            session
        })
        .collect();
    let workers = wait_for_children(server.pid(), 3);

    // A delivery through the supervisor's LMTP listener reaches IDLE
    // sessions in a worker process.
    deliver_with_lmtp(server.lmtp, "user9", b"Subject: across\r\n\r\nbody\r\n");
    sessions[9].wait_for_line("* 1 EXISTS", Duration::from_secs(3));

    // Kill one worker: its sessions end, the others stay, and a new worker
    // takes its place.
    // SAFETY: kill with a PID of a child of the server this test started.
    unsafe {
        libc::kill(workers[0] as libc::pid_t, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while children(server.pid()).contains(&workers[0]) {
        assert!(Instant::now() < deadline, "the killed worker was never reaped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let replaced = wait_for_children(server.pid(), 3);
    assert!(!replaced.contains(&workers[0]));
    let mut alive = 0;
    for session in &mut sessions {
        session.send("DONE\r\n");
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut session_reader(session), &mut line);
        if matches!(read, Ok(n) if n > 0) && line.starts_with("idle OK") {
            alive += 1;
        }
    }
    assert!((6..=8).contains(&alive), "{alive} of 10 sessions survived one worker of three");

    // The governor released the lost sessions: who lists only the live ones.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["who", "--data-dir", server.data_dir.to_str().unwrap()])
            .output()
            .unwrap();
        let table = String::from_utf8(output.stdout).unwrap();
        if table.contains(&format!("{alive} sessions")) {
            break;
        }
        assert!(Instant::now() < deadline, "who still lists lost sessions:\n{table}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fresh = ImapConnection::login(server.imap, "user0", "pass0");
    fresh.command("NOOP");
}

fn session_reader(session: &mut ImapConnection) -> impl std::io::BufRead + '_ {
    session.reader()
}

#[test]
fn preemption_reaches_another_worker() {
    let accounts = [("user0", "pass0"), ("user1", "pass1"), ("boss", "secret")];
    let config = "workers = 3\nworker_connections_max = 1\n[governor]\nmax_sessions = 2\nmax_preauth = 2\n[[governor.class]]\nname = \"staff\"\nusers = [\"boss\"]\npriority = 10\n";
    let server = Server::start_with_config(&accounts, config);
    let mut first = ImapConnection::login(server.imap, "user0", "pass0");
    first.command("SELECT INBOX");
    first.start_idle();
    let mut second = ImapConnection::login(server.imap, "user1", "pass1");
    second.command("SELECT INBOX");
    second.start_idle();
    wait_for_children(server.pid(), 3);

    let mut boss = ImapConnection::login(server.imap, "boss", "secret");
    boss.command("NOOP");
    // One of the two holders, each in its own worker, gets the BYE.
    let mut byes = 0;
    for holder in [&mut first, &mut second] {
        holder.send("DONE\r\n");
        let line = holder.read_line_or_eof();
        if line.starts_with("* BYE [UNAVAILABLE] session ended to admit a higher-priority client") {
            byes += 1;
        }
    }
    assert_eq!(byes, 1);
}
