//! Runs the built `roost` binary as a child process for end-to-end tests:
//! a temporary data directory, port-0 listeners, users added through
//! `roost user add`, and a raw IMAP and LMTP client for timing checks.
//!
//! This module depends on the binary's command line and start-up log lines,
//! and nothing of the server's internals.

// Several test files include this module, and none uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Time the binary gets to log both listening addresses. A debug build
/// opens an empty store in well under a second; the margin covers a busy
/// two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a stopped server gets after SIGTERM before the harness sends
/// SIGKILL: the default shutdown_grace of 10 s plus a margin.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum time that one read from a server socket may block.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum time a client program may run before the harness kills it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

/// Returns the workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Returns the corpus folder that `scripts/fetch-corpus` fills, failing
/// the test with the command to run when it is empty.
pub fn corpus_dir() -> PathBuf {
    let dir = workspace_root().join("tests/corpus/.cache");
    let has_files = std::fs::read_dir(&dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    assert!(
        has_files,
        "no corpus under {}; run scripts/fetch-corpus first",
        dir.display()
    );
    dir
}

/// Loads every corpus message as (path relative to the corpus folder,
/// bytes with CRLF line ends), sorted by path. A leading mbox `From ` line
/// is dropped because it is not part of the message.
pub fn corpus_messages() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut paths = Vec::new();
    collect_files(&dir, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
            (name, to_crlf(strip_mbox_from(&bytes)))
        })
        .collect()
}

fn collect_files(dir: &Path, paths: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, paths);
        } else {
            paths.push(path);
        }
    }
}

fn strip_mbox_from(bytes: &[u8]) -> &[u8] {
    if !bytes.starts_with(b"From ") {
        return bytes;
    }
    match bytes.iter().position(|&byte| byte == b'\n') {
        Some(end) => &bytes[end + 1..],
        None => &[],
    }
}

/// Turns bare LF and bare CR into CRLF and keeps existing CRLF.
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// Returns the folder of the Python client scripts.
pub fn scripts_dir() -> PathBuf {
    workspace_root().join("tests/clients")
}

/// A running `roost serve` child process. Dropping it sends SIGTERM, then
/// SIGKILL if the process has not exited within [`STOP_TIMEOUT`].
pub struct Server {
    child: Option<Child>,
    /// Address of the IMAP listener, from the start-up log.
    pub imap: SocketAddr,
    /// Address of the LMTP listener, from the start-up log.
    pub lmtp: SocketAddr,
    /// Address of the implicit-TLS IMAP listener, from the start-up log,
    /// when it is on.
    pub imaps: Option<SocketAddr>,
    /// Data directory passed with `--data-dir`.
    pub data_dir: PathBuf,
    /// Every stderr line so far, for checks on log output.
    log: Arc<Mutex<Vec<String>>>,
    /// Kept so the temporary directory lives as long as the server.
    _temp: tempfile::TempDir,
}

impl Server {
    /// Starts `roost serve` on port 0 after adding each (name, password).
    pub fn start(users: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        for (name, password) in users {
            add_user(&data_dir, name, password);
        }
        let args = [
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--imap-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
            "--imaps-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        let cwd = temp.path().to_path_buf();
        Server::spawn(&args, &cwd, data_dir.clone(), temp)
    }

    /// Starts `roost` with the given arguments in working directory `cwd`
    /// and waits for both listening addresses in its log.
    pub fn spawn(args: &[&str], cwd: &Path, data_dir: PathBuf, temp: tempfile::TempDir) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the roost binary starts");

        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = forward_lines(child.stderr.take().unwrap(), Arc::clone(&log));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut imap = None;
        let mut lmtp = None;
        let mut imaps = None;
        while imap.is_none() || lmtp.is_none() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining) {
                Ok(line) => {
                    imap = imap.or_else(|| address_after(&line, "IMAP listening address="));
                    lmtp = lmtp.or_else(|| address_after(&line, "LMTP listening address="));
                    // The server binds the TLS listener before LMTP, so its
                    // line comes before the loop ends.
                    imaps = imaps.or_else(|| address_after(&line, "IMAP over TLS listening address="));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!(
                        "roost serve logged no listening addresses within {START_TIMEOUT:?}; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "roost serve exited with {status} before listening; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }

        Server {
            child: Some(child),
            imap: imap.unwrap(),
            lmtp: lmtp.unwrap(),
            imaps,
            data_dir,
            log,
            _temp: temp,
        }
    }

    /// Returns the PID of the `roost serve` process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Starts `roost serve` like [`Server::start`], with `config` as the
    /// TOML config file. The flags still choose the data folder and the
    /// port-0 listeners.
    pub fn start_with_config(users: &[(&str, &str)], config: &str) -> Server {
        Server::start_prepared(config, |data_dir| {
            for (name, password) in users {
                add_user(data_dir, name, password);
            }
        })
    }

    /// Starts `roost serve` like [`Server::start_with_config`], after
    /// `prepare` has filled the data folder (with users, say).
    pub fn start_prepared(config: &str, prepare: impl FnOnce(&Path)) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        prepare(&data_dir);
        let config_path = temp.path().join("roost.toml");
        std::fs::write(&config_path, config).unwrap();
        let args = [
            "serve",
            "--config",
            config_path.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--imap-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
            "--imaps-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        let cwd = temp.path().to_path_buf();
        Server::spawn(&args, &cwd, data_dir.clone(), temp)
    }

    /// Returns the self-signed certificate the server generated, which
    /// clients must trust when no certificate is configured.
    pub fn generated_certificate(&self) -> PathBuf {
        self.data_dir.join("tls").join("certificate.pem")
    }

    /// Returns the stderr lines logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a log line, after the first `skip` lines,
    /// that contains `needle`, and returns it. Fails the test with the log
    /// when none comes.
    pub fn wait_for_log(&self, needle: &str, skip: usize, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let found = self.log.lock().unwrap().iter().skip(skip).find(|line| line.contains(needle)).cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                started.elapsed() < timeout,
                "no log line containing {needle:?} within {timeout:?}; log:\n{}",
                self.log().join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP, which makes the server reread its TLS certificate.
    pub fn reload(&self) {
        let child = self.child.as_ref().expect("the server is running");
        signal(child, libc::SIGHUP);
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit. Returns the
    /// exit status and the time from the signal to the exit, or `None`
    /// when the process was still running and got SIGKILL.
    pub fn terminate(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let sent = Instant::now();
        signal(&child, libc::SIGTERM);
        while sent.elapsed() < timeout {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, sent.elapsed()));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate(STOP_TIMEOUT);
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill() has no memory effects; the pid is our own child, which
    // is not yet reaped, so it cannot name another process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Copies each stderr line into `log` and sends it on the returned channel.
fn forward_lines(stderr: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) -> Receiver<String> {
    let (sender, receiver) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line.clone());
            // The test may have stopped listening; the log still collects.
            let _ = sender.send(line);
        }
    });
    receiver
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let start = line.find(marker)? + marker.len();
    let text = line[start..].split_whitespace().next()?;
    text.parse().ok()
}

/// Adds a user with `roost user add`, passing the password on stdin.
pub fn add_user(data_dir: &Path, name: &str, password: &str) {
    let output = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_roost")).args(["user", "add", name, "--data-dir", data_dir.to_str().unwrap()]),
        format!("{password}\n").as_bytes(),
    );
    assert!(
        output.status.success(),
        "roost user add {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Imports `passwd`, a users file in passwd-file format, with `roost user
/// import`.
pub fn import_users(data_dir: &Path, passwd: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), passwd).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["user", "import"])
        .arg(file.path())
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "roost user import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Delivers `message` to `name` with `roost deliver`.
pub fn deliver_with_cli(data_dir: &Path, name: &str, message: &[u8]) {
    let output = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_roost")).args(["deliver", name, "--data-dir", data_dir.to_str().unwrap()]),
        message,
    );
    assert!(
        output.status.success(),
        "roost deliver {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_with_stdin(command: &mut Command, stdin: &[u8]) -> std::process::Output {
    let mut child = command
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the roost binary starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a client program to the end, killing it after [`CLIENT_TIMEOUT`],
/// and fails the test with its output unless it exits with status 0.
/// Returns its stdout.
pub fn run_client(command: &mut Command) -> String {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {description} failed: {err}"));

    // Both pipes are drained on threads so a chatty client cannot block.
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!("{description} exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
        None => panic!("{description} timed out after {CLIENT_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A line-based IMAP client on a raw socket, for steps where the test
/// must see each response line as it arrives (IDLE, BYE).
pub struct ImapConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl ImapConnection {
    /// Connects, reads the greeting and logs in.
    pub fn login(address: SocketAddr, user: &str, password: &str) -> ImapConnection {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut connection = ImapConnection {
            reader: BufReader::new(stream),
            writer,
            next_tag: 1,
        };
        let greeting = connection.read_line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting:?}");
        connection.command(&format!("LOGIN {user} {password}"));
        connection
    }

    /// Sends a command and returns its untagged responses, failing the
    /// test unless the tagged response is OK. Literals are not supported.
    pub fn command(&mut self, command: &str) -> Vec<String> {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        self.send(&format!("{tag} {command}\r\n"));
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line();
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{command}: {line:?}");
                return untagged;
            }
            untagged.push(line);
        }
    }

    /// Sends IDLE and waits for the continuation request.
    pub fn start_idle(&mut self) {
        self.send("idle IDLE\r\n");
        let line = self.read_line();
        assert!(line.starts_with("+ "), "IDLE: expected a continuation, got {line:?}");
    }

    /// Reads lines until one equals `expected`, failing the test on EOF or
    /// after `timeout`. Returns the instant the line was read.
    pub fn wait_for_line(&mut self, expected: &str, timeout: Duration) -> Instant {
        let started = Instant::now();
        self.reader.get_ref().set_read_timeout(Some(timeout)).unwrap();
        loop {
            let line = self.read_line();
            if line == expected {
                let arrived = Instant::now();
                self.reader.get_ref().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                return arrived;
            }
            assert!(started.elapsed() < timeout, "no {expected:?} within {timeout:?}");
        }
    }

    pub fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Returns the buffered reader, for reads that may meet EOF.
    pub fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// Reads one response line without its CRLF; an empty string at EOF
    /// or on a reset, and a failed test on a timeout.
    pub fn read_line_or_eof(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) => line.trim_end_matches("\r\n").to_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => String::new(),
            Err(err) => panic!("reading from the server failed: {err}"),
        }
    }

    /// Reads one response line without its CRLF; fails on EOF or timeout.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => line.trim_end_matches("\r\n").to_owned(),
            Err(err) => panic!("reading from the server failed: {err}"),
        }
    }
}

/// Delivers one message over LMTP on a raw socket. Returns the instant at
/// which the final dot was sent, after checking every reply.
pub fn deliver_with_lmtp(address: SocketAddr, recipient: &str, message: &[u8]) -> Instant {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut expect_reply = |code: &str, step: &str| {
        // Multi-line replies continue with "250-" and end with "250 ".
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "LMTP {step}: expected {code}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    };
    expect_reply("220", "greeting");
    writer.write_all(b"LHLO client.test\r\n").unwrap();
    expect_reply("250", "LHLO");
    writer.write_all(b"MAIL FROM:<sender@example.net>\r\n").unwrap();
    expect_reply("250", "MAIL");
    writer
        .write_all(format!("RCPT TO:<{recipient}>\r\n").as_bytes())
        .unwrap();
    expect_reply("250", "RCPT");
    writer.write_all(b"DATA\r\n").unwrap();
    expect_reply("354", "DATA");
    writer.write_all(message).unwrap();
    let sent = Instant::now();
    writer.write_all(b".\r\n").unwrap();
    expect_reply("250", "end of data");
    writer.write_all(b"QUIT\r\n").unwrap();
    sent
}
