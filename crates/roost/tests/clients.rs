//! End-to-end tests with real client programs against the built `roost`
//! binary: Python's imaplib and smtplib, mbsync (isync), and raw sockets
//! for IDLE and shutdown timing. Each test starts its own server with a
//! temporary data directory and port-0 listeners.
//!
//! The tests need python3 and mbsync on PATH and the corpus from
//! `scripts/fetch-corpus`; `scripts/test` installs and fetches them.

// The crate root is this file, so the module path is spelled out.
#[path = "clients/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{ImapConnection, Server, corpus_dir, corpus_messages, run_client, scripts_dir};

/// Time after which an IDLE client must have seen a delivery made through
/// the running server's LMTP listener.
const IDLE_NOTIFY_MAX: Duration = Duration::from_secs(1);

/// Time after which an IDLE client must have seen a delivery made by a
/// separate `roost deliver` process. The server notices another process's
/// writes to the store by polling about once a second.
const IDLE_NOTIFY_OTHER_PROCESS_MAX: Duration = Duration::from_secs(2);

/// The default `shutdown_grace`: the longest a SIGTERM'd server may take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn python(script: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg(scripts_dir().join(script));
    command
}

#[test]
fn imaplib_full_session() {
    let server = Server::start(&[("alice", "secret")]);

    let output = run_client(
        python("imaplib_session.py")
            .args(["127.0.0.1", &server.imap.port().to_string(), "alice", "secret"])
            .arg(corpus_dir()),
    );

    assert!(output.contains("imaplib: UNSELECT and LOGOUT"), "{output}");
}

#[test]
fn smtplib_lmtp_roundtrip() {
    let server = Server::start(&[("bob", "secret")]);

    let output = run_client(
        python("lmtp_roundtrip.py")
            .args([
                "127.0.0.1",
                &server.lmtp.port().to_string(),
                &server.imap.port().to_string(),
                "bob",
                "secret",
            ])
            .arg(corpus_dir()),
    );

    assert!(output.contains("messages read back over IMAP match"), "{output}");
}

#[test]
fn idle_sees_lmtp_delivery() {
    let server = Server::start(&[("carol", "secret")]);
    let mut idle = ImapConnection::login(server.imap, "carol", "secret");
    let untagged = idle.command("SELECT INBOX");
    assert!(untagged.contains(&"* 0 EXISTS".to_owned()), "{untagged:?}");
    idle.start_idle();

    let sent = harness::deliver_with_lmtp(server.lmtp, "carol@example.org", b"Subject: idle\r\n\r\nhello\r\n");
    let arrived = idle.wait_for_line("* 1 EXISTS", Duration::from_secs(10));

    let delay = arrived.duration_since(sent);
    assert!(
        delay < IDLE_NOTIFY_MAX,
        "* 1 EXISTS came {delay:?} after the LMTP delivery"
    );
    idle.send("DONE\r\n");
}

#[test]
fn idle_sees_deliver_command() {
    let server = Server::start(&[("dave", "secret")]);
    let mut idle = ImapConnection::login(server.imap, "dave", "secret");
    idle.command("SELECT INBOX");
    idle.start_idle();

    harness::deliver_with_cli(&server.data_dir, "dave", b"Subject: from roost deliver\n\nhello\n");
    let delivered = Instant::now();
    let arrived = idle.wait_for_line("* 1 EXISTS", Duration::from_secs(10));

    let delay = arrived.saturating_duration_since(delivered);
    assert!(
        delay < IDLE_NOTIFY_OTHER_PROCESS_MAX,
        "* 1 EXISTS came {delay:?} after roost deliver exited"
    );
    idle.send("DONE\r\n");
}

#[test]
fn sigterm_ends_idle_with_bye() {
    let mut server = Server::start(&[("erin", "secret")]);
    let mut idle = ImapConnection::login(server.imap, "erin", "secret");
    idle.command("SELECT INBOX");
    idle.start_idle();

    let stopped = server.terminate(harness::STOP_TIMEOUT);

    let (status, elapsed) = stopped.expect("roost serve did not exit after SIGTERM; it was killed");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(elapsed <= SHUTDOWN_GRACE, "exit took {elapsed:?}, past shutdown_grace");
    // The BYE stays readable in the socket buffer after the process exits.
    let line = idle.read_line();
    assert!(line.starts_with("* BYE"), "expected * BYE, got {line:?}");
}

#[test]
fn newcomer_first_start() {
    let temp = tempfile::tempdir().unwrap();
    let cwd = temp.path().to_path_buf();

    // The defaults are 127.0.0.1:1143 and 127.0.0.1:2424. Another program
    // may hold them on a shared machine, and then that listener gets port 0.
    let imap_free = TcpListener::bind("127.0.0.1:1143").is_ok();
    let lmtp_free = TcpListener::bind("127.0.0.1:2424").is_ok();
    let mut args = vec!["serve"];
    if !imap_free {
        args.extend(["--imap-listen", "127.0.0.1:0"]);
    }
    if !lmtp_free {
        args.extend(["--lmtp-listen", "127.0.0.1:0"]);
    }
    if TcpListener::bind("127.0.0.1:1993").is_err() {
        args.extend(["--imaps-listen", "127.0.0.1:0"]);
    }
    if TcpListener::bind("127.0.0.1:9143").is_err() {
        args.extend(["--metrics-listen", "127.0.0.1:0"]);
    }
    let server = Server::spawn(&args, &cwd, cwd.join("roost-data"), temp);

    if imap_free {
        assert_eq!(server.imap.to_string(), "127.0.0.1:1143");
    }
    if lmtp_free {
        assert_eq!(server.lmtp.to_string(), "127.0.0.1:2424");
    }
    assert!(cwd.join("roost-data").is_dir(), "no ./roost-data after the first start");
    let log = server.log().join("\n");
    assert!(
        log.contains("roost user add NAME --data-dir"),
        "no hint on how to add a user in the log:\n{log}"
    );
}

/// Returns a message with LF line ends, the form mbsync stores in Maildir.
fn maildir_bytes(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len());
    let mut i = 0;
    while i < crlf.len() {
        if crlf[i] == b'\r' && crlf.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(crlf[i]);
        i += 1;
    }
    out
}

/// Returns every message file of a Maildir folder, by file name.
fn maildir_files(folder: &Path) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            files.insert(path.file_name().unwrap().to_string_lossy().into_owned(), path);
        }
    }
    files
}

/// Returns a message's bytes without the `X-TUID:` header field that
/// mbsync 1.4 adds to every message it uploads, to find it again.
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

fn sorted_contents(folder: &Path) -> Vec<Vec<u8>> {
    let mut contents: Vec<Vec<u8>> = maildir_files(folder)
        .values()
        .map(|path| without_tuid(&fs::read(path).unwrap()))
        .collect();
    contents.sort();
    contents
}

/// Finds the file in a Maildir folder whose message equals `message`.
fn find_message(folder: &Path, message: &[u8]) -> Option<PathBuf> {
    maildir_files(folder)
        .into_values()
        .find(|path| without_tuid(&fs::read(path).unwrap()) == message)
}

fn mbsync(config: &Path, channel: &str) {
    run_client(Command::new("mbsync").arg("-c").arg(config).arg(channel));
}

#[test]
fn mbsync_push_pull_flags_delete() {
    let server = Server::start(&[("frank", "secret")]);
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("source");
    let target = temp.path().join("target");

    // The source Maildir holds the corpus with LF line ends, as mbsync
    // stores messages; the target starts empty.
    // mbsync 1.4 skips messages without an empty line after the header
    // ("incomplete header"), so those stay out of the comparison.
    let messages: Vec<Vec<u8>> = corpus_messages()
        .iter()
        .map(|(_, crlf)| maildir_bytes(crlf))
        .filter(|message| message.starts_with(b"\n") || message.windows(2).any(|pair| pair == b"\n\n"))
        .collect();
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(source.join("INBOX").join(sub)).unwrap();
    }
    for (index, message) in messages.iter().enumerate() {
        fs::write(source.join("INBOX/cur").join(format!("{index}.corpus:2,")), message).unwrap();
    }
    fs::create_dir_all(&target).unwrap();

    let config = temp.path().join("mbsyncrc");
    let store = |name: &str, path: &Path| {
        format!(
            "MaildirStore {name}\nPath {}/\nInbox {}/INBOX\n\n",
            path.display(),
            path.display()
        )
    };
    let channel = |name: &str, near: &str| {
        format!(
            "Channel {name}\nFar :roost:\nNear :{near}:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n\n"
        )
    };
    // LOGIN over plaintext is acceptable here because the traffic stays on
    // the loopback interface.
    let account = format!(
        "IMAPAccount roost\nHost 127.0.0.1\nPort {}\nUser frank\nPass secret\nSSLType None\nAuthMechs LOGIN\n\nIMAPStore roost\nAccount roost\n\n",
        server.imap.port()
    );
    let text = account
        + &store("source", &source)
        + &store("target", &target)
        + &channel("push", "source")
        + &channel("pull", "target");
    fs::write(&config, text).unwrap();

    // Push the corpus to Roost, then pull it into the empty Maildir.
    mbsync(&config, "push");
    mbsync(&config, "pull");
    let mut expected = messages.clone();
    expected.sort();
    let pulled = sorted_contents(&target.join("INBOX"));
    assert_eq!(pulled.len(), expected.len(), "message count after push and pull");
    assert!(pulled == expected, "pulled messages differ from the pushed ones");

    // Flag a message in the target Maildir and sync it through Roost to
    // the source Maildir. Maildir flags follow ":2,": F is \Flagged, S is
    // \Seen (the Maildir specification, cr.yp.to/proto/maildir.html).
    let flagged = &messages[0];
    let path = find_message(&target.join("INBOX"), flagged).expect("first message in the target");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split(":2,").next().unwrap();
    fs::rename(&path, target.join("INBOX/cur").join(format!("{base}:2,FS"))).unwrap();
    mbsync(&config, "pull");

    let mut imap = ImapConnection::login(server.imap, "frank", "secret");
    imap.command("SELECT INBOX");
    let found = imap.command("UID SEARCH FLAGGED SEEN");
    assert_eq!(found.len(), 1, "{found:?}");
    let uids: Vec<&str> = found[0].strip_prefix("* SEARCH").unwrap().split_whitespace().collect();
    assert_eq!(uids.len(), 1, "UID SEARCH FLAGGED SEEN after the sync: {found:?}");
    let uid = uids[0].to_owned();

    mbsync(&config, "push");
    let source_path = find_message(&source.join("INBOX"), flagged).expect("flagged message in the source");
    let source_name = source_path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        source_name.ends_with(":2,FS"),
        "flags did not reach the source Maildir: {source_name}"
    );

    // Delete the message in Roost; the next sync removes it locally.
    imap.command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
    imap.command("EXPUNGE");
    imap.command("LOGOUT");
    mbsync(&config, "pull");
    assert!(
        find_message(&target.join("INBOX"), flagged).is_none(),
        "the message deleted in Roost is still in the target"
    );
    assert_eq!(sorted_contents(&target.join("INBOX")).len(), messages.len() - 1);
    mbsync(&config, "push");
    assert!(
        find_message(&source.join("INBOX"), flagged).is_none(),
        "the message deleted in Roost is still in the source"
    );
}

#[test]
fn who_lists_live_sessions() {
    let server = Server::start(&[("alice", "wonderland")]);
    let mut alice = ImapConnection::login(server.imap, "alice", "wonderland");
    alice.command("SELECT INBOX");
    alice.start_idle();
    let _waiting = std::net::TcpStream::connect(server.imap).unwrap();
    // Let the server record the IDLE and the new connection.
    std::thread::sleep(Duration::from_millis(300));

    let output = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["who", "--data-dir", server.data_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "roost who failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].split_whitespace().eq(["USER", "CLASS", "SOURCE", "STATE", "SINCE"]), "{table}");
    let alice_row: Vec<&str> = lines.iter().find(|line| line.starts_with("alice")).expect("alice is listed").split_whitespace().collect();
    assert_eq!(alice_row[1..4], ["default", "127.0.0.1", "idle"], "{table}");
    assert!(lines.iter().any(|line| line.starts_with('-') && line.contains("preauth")), "{table}");
}

#[test]
fn who_without_server_names_socket() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roost")).args(["who", "--data-dir", dir.path().to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.starts_with("roost: no server is running with data folder"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
