//! The supervisor and its worker processes, with the real `roost` binary:
//! sessions spread over workers, the governor decides across them, a
//! mailbox change reaches an IDLE session in another process, a worker
//! that dies loses only its own sessions and is replaced, and workers
//! check passwords through the supervisor without a copy of the users file.

#[path = "clients/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use harness::{ImapConnection, Server, add_user, deliver_with_lmtp, import_users};

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
    // The supervisor releases them when it sees the worker end, which on a
    // loaded machine can take several seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
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

/// A password no other text in the log could contain by chance.
const ALICE_PASSWORD: &str = "Corr3ct-Horse-7";
/// Base64 of the PLAIN response `\0alice\0Corr3ct-Horse-7`.
const ALICE_PLAIN: &str = "AGFsaWNlAENvcnIzY3QtSG9yc2UtNw==";
/// Base64 of the PLAIN response `\0alice\0wrong-Horse-7`.
const ALICE_PLAIN_WRONG: &str = "AGFsaWNlAHdyb25nLUhvcnNlLTc=";

/// One connection that sends commands and returns their tagged lines,
/// whatever the status.
struct RawSession {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawSession {
    fn connect(address: SocketAddr) -> RawSession {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(harness::READ_TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut session = RawSession { reader: BufReader::new(stream), writer };
        let greeting = session.read_line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting:?}");
        session
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line).unwrap();
        assert!(read > 0, "the server closed the connection");
        line.trim_end_matches("\r\n").to_owned()
    }

    /// Sends `tag command` and returns the tagged response line.
    fn tagged(&mut self, tag: &str, command: &str) -> String {
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes()).unwrap();
        loop {
            let line = self.read_line();
            if line.starts_with(&format!("{tag} ")) {
                return line;
            }
        }
    }
}

/// Returns the tagged lines of a wrong LOGIN, a wrong AUTHENTICATE PLAIN
/// and the right LOGIN and AUTHENTICATE PLAIN for alice, each on a
/// connection of its own, and the time the wrong AUTHENTICATE took.
fn login_replies(address: SocketAddr) -> (Vec<String>, Duration) {
    let commands = [
        format!("LOGIN alice wrong-{ALICE_PASSWORD}"),
        format!("AUTHENTICATE PLAIN {ALICE_PLAIN_WRONG}"),
        format!("LOGIN alice {ALICE_PASSWORD}"),
        format!("AUTHENTICATE PLAIN {ALICE_PLAIN}"),
    ];
    let mut replies = Vec::new();
    let mut second_failure = Duration::ZERO;
    for (index, command) in commands.iter().enumerate() {
        let mut session = RawSession::connect(address);
        let started = Instant::now();
        replies.push(session.tagged("a1", command));
        if index == 1 {
            second_failure = started.elapsed();
        }
    }
    (replies, second_failure)
}

/// Failed logins from one source are held back 300 ms, then 600 ms.
const SHORT_PENALTIES: &str = "[governor]\nlogin_penalty_base = \"300ms\"\nlogin_penalty_max = \"600ms\"\n";

/// Returns a field of /proc/PID/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn worker_login_matches_single_process() {
    let with_workers = Server::start_with_config(&[("alice", ALICE_PASSWORD)], &format!("workers = 2\n{SHORT_PENALTIES}"));
    let single = Server::start_with_config(&[("alice", ALICE_PASSWORD)], &format!("workers = 0\n{SHORT_PENALTIES}"));

    let (through_worker, worker_delay) = login_replies(with_workers.imap);
    assert!(!children(with_workers.pid()).is_empty(), "the server started no worker");
    assert!(children(single.pid()).is_empty(), "the single-process server started workers");
    let (in_process, process_delay) = login_replies(single.imap);

    assert_eq!(through_worker[0], "a1 NO [AUTHENTICATIONFAILED] Invalid credentials");
    assert_eq!(through_worker[1], "a1 NO [AUTHENTICATIONFAILED] Invalid credentials");
    assert!(through_worker[2].starts_with("a1 OK [CAPABILITY "), "{}", through_worker[2]);
    assert!(through_worker[3].starts_with("a1 OK [CAPABILITY "), "{}", through_worker[3]);
    assert_eq!(through_worker, in_process);
    // The second failure from one source is held back longer, in both modes.
    assert!(worker_delay >= Duration::from_millis(550), "second failure through a worker took {worker_delay:?}");
    assert!(process_delay >= Duration::from_millis(550), "second failure in one process took {process_delay:?}");

    // The password crossed the link but reached no log line.
    with_workers.wait_for_log("logged in", 0, Duration::from_secs(5));
    for line in with_workers.log() {
        assert!(!line.contains(ALICE_PASSWORD), "the password is in the log: {line}");
    }
}

#[test]
fn added_user_logs_in_through_worker() {
    let server = Server::start_with_config(&[("alice", ALICE_PASSWORD)], "workers = 1\n");
    let mut first = ImapConnection::login(server.imap, "alice", ALICE_PASSWORD);
    first.command("NOOP");
    wait_for_children(server.pid(), 1);

    add_user(&server.data_dir, "late", "Late-Pass-5");
    // The users file is checked for changes at most once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let mut late = ImapConnection::login(server.imap, "late", "Late-Pass-5");
    late.command("SELECT INBOX");
}

#[test]
fn worker_memory_ignores_users_file() {
    const USERS: usize = 200_000;
    let config = "workers = 1\n";
    let server = Server::start_prepared(config, |data_dir| import_users(data_dir, "first:{PLAIN}first-pass\n"));
    let mut session = ImapConnection::login(server.imap, "first", "first-pass");
    session.command("SELECT INBOX");
    let worker = wait_for_children(server.pid(), 1)[0];
    let supervisor = server.pid();
    let supervisor_before = status_kb(supervisor, "RssAnon");
    let worker_before = status_kb(worker, "RssAnon");

    let started = Instant::now();
    let mut passwd = String::with_capacity(USERS * 40);
    for n in 0..USERS {
        passwd.push_str(&format!("bulk{n}:{{PLAIN}}bulk-pass-{n}\n"));
    }
    import_users(&server.data_dir, &passwd);
    eprintln!("imported {USERS} users ({} bytes) in {:?}", passwd.len(), started.elapsed());
    std::thread::sleep(Duration::from_millis(1200));

    // A login through the worker of a user only the new file has: the
    // supervisor has reread the file by the time it answers.
    let last = USERS - 1;
    let mut bulk = ImapConnection::login(server.imap, &format!("bulk{last}"), &format!("bulk-pass-{last}"));
    bulk.command("SELECT INBOX");
    session.command("NOOP");
    assert_eq!(children(supervisor), [worker], "the worker was replaced during the test");

    let supervisor_after = status_kb(supervisor, "RssAnon");
    let worker_after = status_kb(worker, "RssAnon");
    let supervisor_growth = supervisor_after.saturating_sub(supervisor_before);
    let worker_growth = worker_after.saturating_sub(worker_before);
    eprintln!(
        "RssAnon in kB: supervisor {supervisor_before} -> {supervisor_after}, worker {worker_before} -> {worker_after}; \
         VmRSS supervisor {} worker {}",
        status_kb(supervisor, "VmRSS"),
        status_kb(worker, "VmRSS")
    );
    // The supervisor's growth shows the measurement covers the parsed
    // users file; a worker with its own copy would grow about as much.
    assert!(supervisor_growth > 10_000, "the supervisor grew by only {supervisor_growth} kB with {USERS} users");
    assert!(worker_growth < supervisor_growth / 5, "the worker grew by {worker_growth} kB, the supervisor by {supervisor_growth} kB");
    assert!(worker_after < supervisor_after, "worker {worker_after} kB, supervisor {supervisor_after} kB");
}

#[test]
fn groups_select_class_through_worker() {
    let config = "workers = 1\n[groups]\nstaff = [\"bob\"]\n[[governor.class]]\nname = \"staff\"\ngroups = [\"staff\"]\nlimit = 0\n";
    let server = Server::start_prepared(config, |data_dir| {
        import_users(data_dir, "carol:{PLAIN}secret:::::: groups=faculty,staff\nbob:{PLAIN}builder\ndave:{PLAIN}secret\n");
    });
    // carol is in staff through the passwd-file, which only the supervisor
    // reads, and bob through the configuration, which the worker reads too.
    let refused = "a1 NO [UNAVAILABLE] all slots for this class of client are in use";
    let carol = RawSession::connect(server.imap).tagged("a1", "LOGIN carol secret");
    assert!(carol.starts_with(refused), "{carol:?}");
    let bob = RawSession::connect(server.imap).tagged("a1", "LOGIN bob builder");
    assert!(bob.starts_with(refused), "{bob:?}");
    let dave = RawSession::connect(server.imap).tagged("a1", "LOGIN dave secret");
    assert!(dave.starts_with("a1 OK"), "{dave:?}");
    assert_eq!(children(server.pid()).len(), 1, "the logins did not go through a worker");
}
