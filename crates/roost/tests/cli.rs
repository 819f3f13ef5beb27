//! Runs the built `roost` binary: config checking, the user commands
//! through stdin, import, and the exit codes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use roost_auth::{Secret, UserDb};
use roost_store::MailStore;

fn roost(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the roost binary starts");
    // A command that does not read stdin may exit before the write, which
    // is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn check_config_accepts_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(
        &file,
        "data_dir = \"/var/lib/roost\"\nimap_listen = \"[::1]:143\"\nlmtp_listen = \"off\"\nshutdown_grace = \"30s\"\n\n[imap]\ntimeout_authenticated = \"45m\"\n\n[limits]\nmessage_bytes_max = 104857600\n",
    )
    .unwrap();

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{}: ok\n", file.display()));
}

#[test]
fn check_config_rejects_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(&file, "[limits]\nline_bytes_max = \"abc\"\n").unwrap();

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "roost: config {}: key limits.line_bytes_max: invalid value \"abc\": expected a whole number of bytes of at least 1024, e.g. 65536\n",
            file.display()
        )
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn check_config_rejects_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(&file, "[imap]\nidle_timeout = \"5m\"\n").unwrap();

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "roost: config {}: unknown key imap.idle_timeout: valid keys in [imap] are idle_keepalive, timeout_authenticated, timeout_unauthenticated, default_mailboxes\n",
            file.display()
        )
    );
}

#[test]
fn check_config_rejects_bad_toml() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(&file, "data_dir = \"x\"\nimap_listen = \n").unwrap();

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "roost: config {}: invalid TOML at line 2, column",
            file.display()
        )),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn check_config_reports_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent.toml");

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with(&format!(
        "roost: config {}: reading failed:",
        file.display()
    )));
}

#[test]
fn unknown_subcommand_is_usage_error() {
    let output = roost(&["frobnicate"], b"");

    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn serve_rejects_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(&file, "shutdown_grace = \"soon\"\n").unwrap();

    let output = roost(&["serve", "--config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "roost: config {}: key shutdown_grace: invalid value \"soon\": expected a duration such as \"30s\", \"10m\", \"2h\" or \"1h30m\"\n",
            file.display()
        )
    );
}

#[test]
fn serve_rejects_bad_listen_flag() {
    let output = roost(&["serve", "--imap-listen", "localhost:143"], b"");

    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("expected IP:PORT"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn user_commands_through_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = path_arg(&data_dir);

    let added = roost(
        &["user", "add", "alice", "--data-dir", data],
        b"first secret\r\n",
    );
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    let users_file = data_dir.join("users");
    assert_eq!(stdout(&added), format!("added user alice to {}\n", users_file.display()));
    assert!(
        UserDb::open(&data_dir)
            .unwrap()
            .verify("alice", &Secret::from("first secret"))
            .is_ok()
    );

    let again = roost(&["user", "add", "alice", "--data-dir", data], b"other\n");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        format!(
            "roost: user \"alice\" already exists in {}; change the password with `roost user passwd alice`\n",
            users_file.display()
        )
    );

    let changed = roost(
        &["user", "passwd", "alice", "--data-dir", data],
        b"second\nignored line\n",
    );
    assert_eq!(changed.status.code(), Some(0), "{}", stderr(&changed));
    let db = UserDb::open(&data_dir).unwrap();
    assert!(db.verify("alice", &Secret::from("second")).is_ok());
    assert!(db.verify("alice", &Secret::from("first secret")).is_err());

    let added_bob = roost(&["user", "add", "bob", "--data-dir", data], b"pw");
    assert_eq!(added_bob.status.code(), Some(0), "{}", stderr(&added_bob));

    let listed = roost(&["user", "list", "--data-dir", data], b"");
    assert_eq!(listed.status.code(), Some(0));
    assert_eq!(stdout(&listed), "alice\nbob\n");

    let deleted = roost(&["user", "delete", "alice", "--data-dir", data], b"");
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert!(
        stdout(&deleted).contains("the mail stays in"),
        "{}",
        stdout(&deleted)
    );
    assert_eq!(
        stdout(&roost(&["user", "list", "--data-dir", data], b"")),
        "bob\n"
    );

    let missing = roost(&["user", "delete", "alice", "--data-dir", data], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        format!(
            "roost: user \"alice\" not found in {}; add it with `roost user add alice`, or point --data-dir or --config at the server's data folder\n",
            users_file.display()
        )
    );
}

#[test]
fn user_add_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_arg(dir.path());

    let empty = roost(&["user", "add", "alice", "--data-dir", data], b"\n");
    assert_eq!(empty.status.code(), Some(2));
    assert_eq!(
        stderr(&empty),
        "roost: empty password rejected: type one at the prompt, or put it on the first line of stdin; nothing was changed\n"
    );

    let no_input = roost(&["user", "add", "alice", "--data-dir", data], b"");
    assert_eq!(no_input.status.code(), Some(2));

    let bad_name = roost(&["user", "add", "a:b", "--data-dir", data], b"pw\n");
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(
        stderr(&bad_name).contains("invalid user name \"a:b\""),
        "{}",
        stderr(&bad_name)
    );

    let too_long = vec![b'p'; 1025];
    let long = roost(&["user", "add", "alice", "--data-dir", data], &too_long);
    assert_eq!(long.status.code(), Some(2), "{}", stderr(&long));

    let at_limit = vec![b'p'; 1024];
    let fits = roost(&["user", "add", "alice", "--data-dir", data], &at_limit);
    assert_eq!(fits.status.code(), Some(0), "{}", stderr(&fits));
}

#[test]
fn user_commands_take_data_dir_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    fs::write(&file, "data_dir = \"mail-data\"\n").unwrap();

    let added = roost(
        &["user", "add", "carol", "--config", path_arg(&file)],
        b"pw\n",
    );

    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    assert!(
        UserDb::open(&dir.path().join("mail-data"))
            .unwrap()
            .exists("carol")
    );
}

#[test]
fn import_mixed_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = dir.path().join("users.import");
    fs::write(
        &file,
        concat!(
            "# from the old server\n",
            "plain:{PLAIN}secret\n",
            // doveadm pw -s SHA512-CRYPT -p secret
            "crypt:{SHA512-CRYPT}$6$i4RxgobiSn.vUzwI$OX8DwwYm73oUofu80wU7qEhCQTf7jr.aSUtMYPdjWlNyYEAS5rn0ccAvx2nX7hy/0oF8EQdCpn6867zF2/pbV.:1000:1000::/home/crypt\n",
            // doveadm pw -s SSHA256 -p secret
            "ssha:{SSHA256}NUmpo7GPYc/tYML0CKRDOdwQpzy0eIZ1QiQm+3jaJSPz9xOp\n",
            "bare:secret\n",
        ),
    )
    .unwrap();

    let output = roost(
        &[
            "user",
            "import",
            path_arg(&file),
            "--data-dir",
            path_arg(&data_dir),
        ],
        b"",
    );

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "imported 4 users: 4 added, 0 updated; created 4 accounts with their default mailboxes\n"
    );
    let db = UserDb::open(&data_dir).unwrap();
    for user in ["plain", "crypt", "ssha", "bare"] {
        assert!(db.verify(user, &Secret::from("secret")).is_ok(), "{user}");
        assert!(db.verify(user, &Secret::from("wrong")).is_err(), "{user}");
    }
    assert_eq!(
        account_mailboxes(&data_dir, "crypt"),
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );

    // A second import updates the users and finds their accounts there.
    let again = roost(
        &["user", "import", path_arg(&file), "--data-dir", path_arg(&data_dir)],
        b"",
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        stdout(&again),
        "imported 4 users: 0 added, 4 updated; created 0 accounts with their default mailboxes\n"
    );
}

/// Returns the mailbox names of `user`'s account in the store in
/// `data_dir`, sorted.
fn account_mailboxes(data_dir: &Path, user: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = roost_store::sqlite::SqliteStore::open(data_dir).unwrap();
        let account = store.account(user, &[]).await.unwrap();
        let mut names: Vec<String> = store.mailboxes(account).await.unwrap().into_iter().map(|mailbox| mailbox.name).collect();
        names.sort();
        names
    })
}

#[test]
fn import_rejects_unsupported_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.import");
    // doveadm pw -s MD5-CRYPT -p secret
    fs::write(
        &file,
        "ok:{PLAIN}x\nold:{MD5-CRYPT}$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981\n",
    )
    .unwrap();

    let output = roost(
        &[
            "user",
            "import",
            path_arg(&file),
            "--data-dir",
            path_arg(dir.path()),
        ],
        b"",
    );

    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "roost: {}: line 2: unsupported password scheme MD5-CRYPT; supported: ARGON2ID,",
            file.display()
        )),
        "{message}"
    );
    assert!(message.ends_with("; nothing was imported\n"), "{message}");
    assert!(UserDb::open(dir.path()).unwrap().is_empty());
}

#[test]
fn import_of_100000_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = dir.path().join("users.import");
    let count = 100_000;
    let mut text = String::with_capacity(count * 40);
    for index in 0..count {
        text.push_str(&format!(
            "user{index}@example.org:{{PLAIN}}password{index}\n"
        ));
    }
    fs::write(&file, text).unwrap();

    let output = roost(
        &[
            "user",
            "import",
            path_arg(&file),
            "--data-dir",
            path_arg(&data_dir),
        ],
        b"",
    );

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "imported {count} users: {count} added, 0 updated; created {count} accounts with their default mailboxes\n"
        )
    );
    let db = UserDb::open(&data_dir).unwrap();
    assert_eq!(db.len(), count);
    assert!(
        db.verify("user99999@example.org", &Secret::from("password99999"))
            .is_ok()
    );
}

#[test]
fn deliver_to_unknown_user_fails() {
    let dir = tempfile::tempdir().unwrap();

    let output = roost(
        &["deliver", "nobody", "--data-dir", path_arg(dir.path())],
        b"Subject: hi\r\n\r\nbody\r\n",
    );

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "roost: user \"nobody\" not found in {}; add it with `roost user add nobody`, or point --data-dir or --config at the server's data folder\n",
            dir.path().join("users").display()
        )
    );
}

#[test]
fn deliver_to_existing_user() {
    use roost_store::MailStore;

    let dir = tempfile::tempdir().unwrap();
    let data = path_arg(dir.path());
    let added = roost(&["user", "add", "alice", "--data-dir", data], b"pw\n");
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));

    let output = roost(
        &["deliver", "alice", "--data-dir", data],
        b"Subject: hi\r\n\r\nbody\r\n",
    );

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let messages = runtime.block_on(async {
        let store = roost_store::sqlite::SqliteStore::open(dir.path()).unwrap();
        let account = store.account("alice", &[]).await.unwrap();
        let inbox = store
            .mailbox(account, "INBOX")
            .await
            .unwrap()
            .expect("INBOX exists");
        store.status(inbox.id).await.unwrap().messages
    });
    assert_eq!(messages, 1);
}

#[test]
fn deliver_rejects_empty_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_arg(dir.path());
    let added = roost(&["user", "add", "alice", "--data-dir", data], b"pw\n");
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));

    let output = roost(&["deliver", "alice", "--data-dir", data], b"");

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "roost: the message on stdin is empty; nothing was delivered\n"
    );
}

#[test]
fn serve_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args([
            "serve",
            "--data-dir",
            path_arg(dir.path()),
            "--imap-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "off",
            "--imaps-listen",
            "off",
            "--metrics-listen",
            "off",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The start-up line is logged before the listeners open, so reading it
    // shows the signal handlers are in place before SIGTERM is sent.
    let mut stderr_reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr_reader, &mut line).unwrap();
    assert!(line.contains("starting roost"), "{line}");
    // SAFETY: kill sends a signal to the child this test started and owns.
    let status = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(status, 0);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("roost serve did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr_reader, &mut rest).unwrap();
    assert_eq!(exit.code(), Some(0), "{rest}");
    assert!(rest.contains("received SIGTERM"), "{rest}");
}

#[test]
fn check_config_loads_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roost.toml");
    std::fs::write(&file, "[tls]\ncert_file = \"missing-cert.pem\"\nkey_file = \"missing-key.pem\"\n").unwrap();

    let output = roost(&["check-config", path_arg(&file)], b"");

    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.starts_with(&format!("roost: config {}: keys tls.cert_file and tls.key_file: failed to read the TLS certificate file", file.display())), "{message}");
    assert_eq!(message.matches("No such file").count(), 1, "{message}");
}

#[test]
fn created_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let added = roost(&["user", "add", "alice", "--data-dir", path_arg(&data_dir)], b"pw\n");
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));

    let folder_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    let users_mode = std::fs::metadata(data_dir.join("users")).unwrap().permissions().mode() & 0o777;
    assert_eq!(folder_mode, 0o700);
    assert_eq!(users_mode, 0o600);
}

fn scenario_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name).to_str().unwrap().to_owned()
}

#[test]
fn simulate_prints_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let scenario = scenario_path("proxy-storm-small.toml");
    let output = roost(&["simulate", &scenario, "--policies", "proxy-cap,roost", "--json", path_arg(&json)], b"");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("class campus"), "{stdout}");
    assert!(stdout.contains("roost"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["policies"].as_array().unwrap().iter().map(|policy| policy["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["proxy-cap", "roost"]);
}

#[test]
fn simulate_bad_scenario_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    fs::write(&file, "[scenario]\nname = \"bad\"\nduration = \"soon\"\n").unwrap();
    let output = roost(&["simulate", path_arg(&file)], b"");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("duration"), "{stderr}");
}

#[test]
fn simulate_missing_scenario_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent.toml");
    let output = roost(&["simulate", path_arg(&file)], b"");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("absent.toml: cannot read the file"), "{stderr}");
}
