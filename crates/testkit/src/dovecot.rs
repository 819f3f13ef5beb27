//! A throwaway Dovecot (Debian's `dovecot-imapd`) on 127.0.0.1, the
//! reference server for differential tests. Each instance has its own
//! config, run and state folders, log, passwd-file and maildir in a
//! temporary folder, reads nothing from /etc/dovecot, and is stopped on
//! drop.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientLimits};

/// The test user of every instance.
pub const USER: &str = "roost";
pub const PASSWORD: &str = "roost-test";

/// An invalid Content-Type means text/plain in US-ASCII (RFC 2045 section
/// 5.2); Dovecot 2.3 sends an empty type and subtype instead.
const INVALID_CONTENT_TYPE: &str = "RFC 2045 section 5.2 default for an invalid Content-Type";

/// RFC 2231 applies to every parameter, so an encoded `boundary*` is decoded
/// and its parts found; Dovecot 2.3 does not decode it and finds no parts.
const ENCODED_BOUNDARY: &str = "RFC 2231 encoded boundary decoded";

/// Where Roost's MIME answers differ from Dovecot 2.3's on purpose, because
/// Dovecot departs from the RFC: (corpus message, FETCH item, reason). The
/// differential tests accept exactly these.
pub const RFC_DEPARTURES: &[(&str, &str, &str)] = &[
    ("cpython/msg_14.txt", "BODYSTRUCTURE", INVALID_CONTENT_TYPE),
    ("cpython/msg_14.txt", "BODY", INVALID_CONTENT_TYPE),
    ("enmime/mail-mime-bad-content-type.raw", "BODYSTRUCTURE", INVALID_CONTENT_TYPE),
    ("enmime/mail-mime-bad-content-type.raw", "BODY", INVALID_CONTENT_TYPE),
    ("enmime/mail-mime-blank-media-name.raw", "BODYSTRUCTURE", INVALID_CONTENT_TYPE),
    ("enmime/mail-mime-blank-media-name.raw", "BODY", INVALID_CONTENT_TYPE),
    ("enmime/parts-barren-content-type.raw", "BODYSTRUCTURE", INVALID_CONTENT_TYPE),
    ("enmime/parts-barren-content-type.raw", "BODY", INVALID_CONTENT_TYPE),
    ("enmime/parts-empty-ctype-bad-content.raw", "BODYSTRUCTURE", INVALID_CONTENT_TYPE),
    ("enmime/parts-empty-ctype-bad-content.raw", "BODY", INVALID_CONTENT_TYPE),
    ("cpython/msg_33.txt", "BODYSTRUCTURE", ENCODED_BOUNDARY),
    ("cpython/msg_33.txt", "BODY", ENCODED_BOUNDARY),
    ("cpython/msg_33.txt", "BODY[1]", ENCODED_BOUNDARY),
    ("cpython/msg_33.txt", "BODY[1.MIME]", ENCODED_BOUNDARY),
    ("cpython/msg_33.txt", "BODY[2]", ENCODED_BOUNDARY),
    ("cpython/msg_33.txt", "BODY[2.MIME]", ENCODED_BOUNDARY),
];

/// How long start-up and shutdown may take before the instance is treated
/// as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Dovecot instance.
pub struct Dovecot {
    dir: tempfile::TempDir,
    config: PathBuf,
    address: SocketAddr,
    master_pid: Option<u32>,
}

impl Dovecot {
    /// Starts an instance. Fails with a message saying what to install
    /// when Dovecot is missing.
    pub fn start() -> Result<Dovecot, String> {
        let binary = ["/usr/sbin/dovecot", "/usr/bin/dovecot"].into_iter().find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            return Err("dovecot is not installed; run the project's test script, which installs \
                        the Debian packages dovecot-imapd and dovecot-lmtpd"
                .to_owned());
        };
        let dir = tempfile::Builder::new()
            .prefix("roost-dovecot-")
            .tempdir()
            .map_err(|e| format!("failed to create a temporary folder: {e}"))?;
        let port = free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let config = write_config(dir.path(), port)?;

        // The daemon keeps its inherited descriptors open, so its output
        // goes to a file: reading a pipe would wait for the daemon to exit.
        let stderr_path = dir.path().join("start.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("failed to create {}: {e}", stderr_path.display()))?;
        let status = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .map_err(|e| format!("failed to run {binary}: {e}"))?;
        let mut dovecot = Dovecot { dir, config, address, master_pid: None };
        if !status.success() {
            return Err(format!(
                "dovecot failed to start ({status}): {}{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                dovecot.log()
            ));
        }
        let ready = dovecot.wait_ready();
        dovecot.master_pid = dovecot.read_master_pid();
        ready?;
        Ok(dovecot)
    }

    /// Returns the PID of Dovecot's master process, read at start-up.
    pub fn master_pid(&self) -> Option<u32> {
        self.master_pid
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connects and logs in as the test user.
    pub fn login(&self) -> std::io::Result<Client> {
        let mut client = Client::connect(self.address, ClientLimits::for_tests())?;
        client.login(USER, PASSWORD)?;
        Ok(client)
    }

    /// Returns Dovecot's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn read_master_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("run/master.pid")).ok()?;
        text.trim().parse().ok()
    }

    /// Waits until the IMAP listener accepts and greets.
    fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok()
                && Client::connect(self.address, ClientLimits::for_tests()).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("dovecot did not accept on {} within {:?}; log:\n{}", self.address, START_TIMEOUT, self.log()))
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let Some(pid) = self.master_pid else { return };
        let started = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && started.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("dovecot master {pid} did not stop within {STOP_TIMEOUT:?}; sending SIGTERM");
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// Asks the kernel for a free loopback port. Another process could take it
/// before Dovecot binds; start-up then fails with Dovecot's bind error.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("failed to bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Writes the passwd-file, the mail folder and the config; returns the
/// config path.
fn write_config(dir: &Path, port: u16) -> Result<PathBuf, String> {
    let io_error = |what: &str, e: std::io::Error| format!("failed to {what}: {e}");
    for sub in ["run", "state", "mail"] {
        std::fs::create_dir(dir.join(sub)).map_err(|e| io_error("create a Dovecot folder", e))?;
    }
    // Dovecot rejects root as the mail user, so under root the mail folder
    // belongs to uid 65534 and mail processes run as that user.
    let (uid, gid) = running_ids();
    let (mail_uid, mail_gid) = if uid == 0 { (65534, 65534) } else { (uid, gid) };
    if uid == 0 {
        std::os::unix::fs::chown(dir.join("mail"), Some(mail_uid), Some(mail_gid))
            .map_err(|e| io_error("chown the mail folder", e))?;
        // The temporary folder is private to its owner, and uid 65534
        // must be able to reach the mail folder inside it.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(|e| io_error("open the temporary folder", e))?;
    }
    let passwd = dir.join("users.passwd");
    std::fs::write(&passwd, format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"))
        .map_err(|e| io_error("write the passwd-file", e))?;

    let d = dir.display();
    let mut config = String::new();
    let _ = writeln!(config, "protocols = imap");
    let _ = writeln!(config, "listen = 127.0.0.1");
    let _ = writeln!(config, "base_dir = {d}/run");
    let _ = writeln!(config, "state_dir = {d}/state");
    let _ = writeln!(config, "instance_name = roost-test-{port}");
    let _ = writeln!(config, "log_path = {d}/dovecot.log");
    let _ = writeln!(config, "info_log_path = {d}/dovecot.log");
    let _ = writeln!(config, "ssl = no");
    let _ = writeln!(config, "disable_plaintext_auth = no");
    let _ = writeln!(config, "auth_mechanisms = plain login");
    if uid != 0 {
        // Unprivileged: every Dovecot process runs as the current user.
        let name = user_name(uid);
        let _ = writeln!(config, "default_internal_user = {name}");
        let _ = writeln!(config, "default_internal_group = {}", group_name(gid));
        let _ = writeln!(config, "default_login_user = {name}");
    }
    let _ = writeln!(config, "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {}\n}}", passwd.display());
    let _ = writeln!(
        config,
        "userdb {{\n  driver = passwd-file\n  args = username_format=%u {}\n  default_fields = uid={mail_uid} gid={mail_gid} home={d}/mail/%u\n}}",
        passwd.display()
    );
    let _ = writeln!(config, "mail_location = maildir:~/Maildir");
    let _ = writeln!(config, "namespace inbox {{\n  inbox = yes\n}}");
    let _ = writeln!(
        config,
        "service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}"
    );
    let path = dir.join("dovecot.conf");
    std::fs::write(&path, config).map_err(|e| io_error("write the Dovecot config", e))?;
    Ok(path)
}

fn running_ids() -> (u32, u32) {
    match std::fs::metadata("/proc/self") {
        Ok(meta) => (meta.uid(), meta.gid()),
        Err(_) => (0, 0),
    }
}

/// Looks up a name in /etc/passwd or /etc/group by numeric id.
fn name_for_id(file: &str, id: u32) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_owned())
        })
        .unwrap_or_else(|| id.to_string())
}

fn user_name(uid: u32) -> String {
    name_for_id("/etc/passwd", uid)
}

fn group_name(gid: u32) -> String {
    name_for_id("/etc/group", gid)
}
