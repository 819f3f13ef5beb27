//! Real mail clients over TLS against the built `roost` binary: Python's
//! imaplib, mbsync (isync) and imapflow (Node.js), each over implicit TLS
//! and over STARTTLS, trusting only the self-signed certificate the server
//! generated in its data folder. Also SIGHUP and the fingerprint log line.
//!
//! The servers trust no network for cleartext logins (`trusted_networks =
//! []`), so a client that skipped STARTTLS could not log in at all.
//!
//! The tests need python3, mbsync and node on PATH, and the imapflow
//! package in `tests/clients/imapflow/node_modules`; `scripts/test`
//! installs them.

// The crate root is this file, so the module path is spelled out.
#[path = "clients/harness.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{ImapConnection, Server, run_client, scripts_dir};

/// The config every server here runs with: no cleartext logins anywhere.
const NO_TRUSTED_NETWORKS: &str = "trusted_networks = []\n";

/// Time the server gets to log a reloaded certificate after SIGHUP.
const RELOAD_LOG_TIMEOUT: Duration = Duration::from_secs(10);

fn python(script: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg(scripts_dir().join(script));
    command
}

/// Which TLS mode a client uses.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// TLS from the first byte, on the `imaps_listen` port.
    Imaps,
    /// Cleartext on the `imap_listen` port, then STARTTLS.
    StartTls,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Imaps => "imaps",
            Mode::StartTls => "starttls",
        }
    }

    fn port(self, server: &Server) -> u16 {
        match self {
            Mode::Imaps => server.imaps.expect("the implicit-TLS listener is on").port(),
            Mode::StartTls => server.imap.port(),
        }
    }
}

fn run_imaplib(mode: Mode) -> String {
    let server = Server::start_with_config(&[("alice", "secret")], NO_TRUSTED_NETWORKS);
    let output = run_client(
        python("imaplib_tls_session.py")
            .args([mode.name(), "127.0.0.1", &mode.port(&server).to_string(), "alice", "secret"])
            .arg(server.generated_certificate()),
    );
    assert!(output.contains("imaplib: LOGOUT"), "{output}");
    output
}

#[test]
fn imaplib_imaps_session() {
    let output = run_imaplib(Mode::Imaps);
    assert!(output.contains("imaplib: IMAP4_SSL connected"), "{output}");
}

#[test]
fn imaplib_starttls_session() {
    let output = run_imaplib(Mode::StartTls);
    let cleartext = output
        .lines()
        .find(|line| line.starts_with("imaplib: cleartext capabilities: "))
        .unwrap_or_else(|| panic!("no cleartext capabilities in the output:\n{output}"));
    assert!(cleartext.contains("LOGINDISABLED"), "{cleartext}");
    assert!(
        !cleartext.contains("AUTH="),
        "AUTH=PLAIN is advertised in cleartext next to LOGINDISABLED, although AUTHENTICATE gets \
         NO [PRIVACYREQUIRED] there; the list must drop AUTH= while login is disabled: {cleartext}"
    );
    assert!(output.contains("imaplib: STARTTLS completed"), "{output}");
}

/// Returns the folder of the imapflow project, failing the test with the
/// command to run when its packages are not installed.
fn imapflow_dir() -> PathBuf {
    let dir = scripts_dir().join("imapflow");
    assert!(
        dir.join("node_modules/imapflow/package.json").is_file(),
        "imapflow is not installed; run `npm ci` in {} (scripts/test does)",
        dir.display()
    );
    dir
}

fn run_imapflow(mode: Mode) -> String {
    let dir = imapflow_dir();
    let server = Server::start_with_config(&[("alice", "secret")], NO_TRUSTED_NETWORKS);
    let output = run_client(
        Command::new("node")
            .current_dir(&dir)
            .arg("session.mjs")
            .args([
                mode.name(),
                "127.0.0.1",
                &mode.port(&server).to_string(),
                &server.lmtp.port().to_string(),
                "alice",
                "secret",
            ])
            .arg(server.generated_certificate()),
    );
    assert!(output.contains("imapflow: session complete"), "{output}");
    output
}

#[test]
fn imapflow_imaps_session() {
    let output = run_imapflow(Mode::Imaps);
    assert!(output.contains("logged in over imaps"), "{output}");
}

#[test]
fn imapflow_starttls_session() {
    let output = run_imapflow(Mode::StartTls);
    assert!(output.contains("logged in over starttls"), "{output}");
}

/// Returns the mbsync keyword for the TLS mode. isync 1.4.4 (Debian 12)
/// rejects `TLSType` and accepts `SSLType`; isync 1.5 names it `TLSType`.
fn mbsync_tls_keyword() -> &'static str {
    let output = Command::new("mbsync").arg("--version").output().expect("mbsync runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("unexpected mbsync --version: {text}"));
    let mut numbers = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if major_minor >= (1, 5) { "TLSType" } else { "SSLType" }
}

/// Messages for the Maildir round trip, with LF line ends as mbsync
/// stores them, and their Maildir flags. One is large, so it spans many
/// TLS records in both directions.
fn maildir_messages() -> Vec<(String, Vec<u8>)> {
    let mut messages = Vec::new();
    for (index, flags) in ["", "S", "FS", "RS"].iter().enumerate() {
        let text = format!(
            "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: mbsync over TLS {index}\nMessage-ID: <mbsync-tls-{index}@example.org>\nDate: Mon, 1 Jan 2024 10:0{index}:00 +0000\n\nBody of message {index}.\n"
        );
        messages.push((flags.to_string(), text.into_bytes()));
    }
    let mut large = b"From: Alice <alice@example.org>\nSubject: large message over TLS\nMessage-ID: <mbsync-tls-large@example.org>\n\n".to_vec();
    for line in 0..6000 {
        large.extend_from_slice(format!("line {line:05} of a body that spans many TLS records, ABCDEFGHIJKLMNOPQRSTUVWXYZ\n").as_bytes());
    }
    messages.push(("S".to_owned(), large));
    messages
}

/// Returns a message's bytes without the `X-TUID:` header field that
/// mbsync adds to every message it uploads, to find it again.
fn without_tuid(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut removed = false;
    for line in bytes.split_inclusive(|&byte| byte == b'\n') {
        if !removed && line.starts_with(b"X-TUID: ") {
            removed = true;
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// Returns (message without X-TUID, Maildir flags) of every message in a
/// Maildir folder, sorted.
fn maildir_contents(folder: &Path) -> Vec<(Vec<u8>, String)> {
    let mut contents = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name.split_once(":2,").map(|(_, flags)| flags.to_owned()).unwrap_or_default();
            contents.push((without_tuid(&fs::read(&path).unwrap()), flags));
        }
    }
    contents.sort();
    contents
}

/// Pushes a small Maildir to Roost with mbsync over `mode`, pulls it into
/// an empty Maildir and checks that every message and flag came back.
fn mbsync_round_trip(mode: Mode) {
    let server = Server::start_with_config(&[("frank", "secret")], NO_TRUSTED_NETWORKS);
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("source");
    let target = temp.path().join("target");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(source.join("INBOX").join(sub)).unwrap();
    }
    fs::create_dir_all(&target).unwrap();
    let messages = maildir_messages();
    for (index, (flags, message)) in messages.iter().enumerate() {
        fs::write(source.join("INBOX/cur").join(format!("{index}.tls:2,{flags}")), message).unwrap();
    }

    let tls_type = match mode {
        Mode::Imaps => "IMAPS",
        Mode::StartTls => "STARTTLS",
    };
    let account = format!(
        "IMAPAccount roost\nHost 127.0.0.1\nPort {}\nUser frank\nPass secret\n{} {tls_type}\nCertificateFile {}\nAuthMechs PLAIN\n\nIMAPStore roost\nAccount roost\n\n",
        mode.port(&server),
        mbsync_tls_keyword(),
        server.generated_certificate().display(),
    );
    let store = |name: &str, path: &Path| {
        format!("MaildirStore {name}\nPath {}/\nInbox {}/INBOX\n\n", path.display(), path.display())
    };
    let channel = |name: &str, near: &str| {
        format!("Channel {name}\nFar :roost:\nNear :{near}:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n\n")
    };
    let config = temp.path().join("mbsyncrc");
    let text = account + &store("source", &source) + &store("target", &target) + &channel("push", "source") + &channel("pull", "target");
    fs::write(&config, text).unwrap();

    run_client(Command::new("mbsync").arg("-c").arg(&config).arg("push"));
    run_client(Command::new("mbsync").arg("-c").arg(&config).arg("pull"));

    let mut expected: Vec<(Vec<u8>, String)> =
        messages.into_iter().map(|(flags, message)| (message, flags)).collect();
    expected.sort();
    let pulled = maildir_contents(&target.join("INBOX"));
    assert_eq!(pulled.len(), expected.len(), "message count after push and pull over {mode:?}");
    for (got, want) in pulled.iter().zip(&expected) {
        assert!(got.0 == want.0, "a pulled message differs from the pushed one over {mode:?}");
        assert_eq!(got.1, want.1, "flags of a message after push and pull over {mode:?}");
    }
    assert_eq!(maildir_contents(&source.join("INBOX")).len(), expected.len(), "source after the sync");
}

#[test]
fn mbsync_imaps_round_trip() {
    mbsync_round_trip(Mode::Imaps);
}

#[test]
fn mbsync_starttls_round_trip() {
    mbsync_round_trip(Mode::StartTls);
}

/// Returns the fingerprint in a `TLS certificate loaded` or `reloaded`
/// log line.
fn logged_fingerprint(line: &str) -> String {
    let start = line.find("fingerprint=").unwrap_or_else(|| panic!("no fingerprint in {line:?}")) + "fingerprint=".len();
    line[start..].split_whitespace().next().unwrap().to_owned()
}

fn presented_fingerprint(server: &Server) -> String {
    let port = server.imaps.expect("the implicit-TLS listener is on").port().to_string();
    run_client(python("tls_fingerprint.py").args(["127.0.0.1", &port])).trim().to_owned()
}

#[test]
fn sighup_reloads_certificate() {
    let server = Server::start(&[("grace", "secret")]);
    let loaded = server.wait_for_log("TLS certificate loaded", 0, RELOAD_LOG_TIMEOUT);
    assert!(loaded.contains("self_signed=true"), "{loaded}");
    let first = logged_fingerprint(&loaded);
    assert_eq!(presented_fingerprint(&server), first, "the logged fingerprint is not the served one");

    // A session open during the reload must keep working. Loopback is
    // trusted here, so it logs in without TLS.
    let mut open = ImapConnection::login(server.imap, "grace", "secret");
    open.command("SELECT INBOX");

    // With the generated pair gone, the reload creates a new one.
    let certificate = server.generated_certificate();
    fs::remove_file(&certificate).unwrap();
    fs::remove_file(certificate.with_file_name("key.pem")).unwrap();
    let logged_before = server.log().len();
    server.reload();
    let reloaded = server.wait_for_log("TLS certificate reloaded", logged_before, RELOAD_LOG_TIMEOUT);
    let second = logged_fingerprint(&reloaded);
    assert_ne!(second, first, "SIGHUP did not replace the deleted certificate");
    assert!(certificate.is_file(), "no certificate at {} after the reload", certificate.display());
    assert_eq!(presented_fingerprint(&server), second, "new connections get the old certificate");

    open.command("NOOP");
    open.command("LOGOUT");
}
