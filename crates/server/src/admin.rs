//! Admin socket: a Unix socket at `DATA_DIR/admin.sock` through which
//! local commands such as `roost who` query the running server.
//!
//! The client sends one command line, and the server replies with text
//! lines and closes the connection. A reply that starts with `error: `
//! reports a failed command.
//! [`Commands`] maps command names to handlers, so that more commands fit
//! without changing the socket code. The socket file has mode 0600, so
//! only the server's user (and root) can connect.

use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// File name of the admin socket inside the data folder.
pub const SOCKET_FILE_NAME: &str = "admin.sock";

/// Maximum length of a command line, without its line end.
pub const REQUEST_LINE_BYTES_MAX: usize = 1024;

/// Maximum length of a reply that [`request`] accepts.
pub const REPLY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Time [`request`] waits to connect, send and receive the whole reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time [`bind_admin`] waits for a server on an existing socket to accept.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Maximum pause after failed accepts, which usually mean the process is
/// out of file descriptors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// After a reply, the server half-closes, then reads and drops what the
/// client still sends, up to this many bytes or until this timeout.
/// Closing a Unix socket with unread bytes makes the client's next read
/// fail with ECONNRESET, even when the reply is waiting (Linux).
const LINGER_BYTES_MAX: usize = 64 * 1024;
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// Function that runs one command line and returns the reply text, or an
/// error message that the client receives after `error: `. It runs on an
/// async worker thread, so it must not block.
pub type AdminHandler = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Limits of the admin socket server.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// Maximum length of a command line, without its line end.
    pub request_line_bytes_max: usize,
    /// Time a client has to send its command line, and then to take the reply.
    pub timeout: Duration,
    /// Maximum number of admin connections served at once. Connections
    /// past it get an error line and are closed.
    pub connections_max: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            request_line_bytes_max: REQUEST_LINE_BYTES_MAX,
            timeout: Duration::from_secs(10),
            connections_max: 8,
        }
    }
}

/// Returns the path of the admin socket of the server using `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE_NAME)
}

/// Admin command handler, called with the arguments after the command name.
type CommandHandler = Box<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Table of admin commands by name.
#[derive(Default)]
pub struct Commands {
    commands: Vec<(&'static str, CommandHandler)>,
}

impl Commands {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the command `name`. Its handler gets the rest of the line after
    /// the name, without surrounding whitespace.
    pub fn add(
        mut self,
        name: &'static str,
        run: impl Fn(&str) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        self.commands.push((name, Box::new(run)));
        self
    }

    /// Runs the command that `line` names.
    pub fn dispatch(&self, line: &str) -> Result<String, String> {
        let line = line.trim();
        let (name, arguments) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match self.commands.iter().find(|(known, _)| *known == name) {
            Some((_, run)) => run(arguments.trim()),
            None if name.is_empty() => Err(format!("empty command; known commands: {}", self.names())),
            None => Err(format!("unknown command {name:?}; known commands: {}", self.names())),
        }
    }

    /// Returns the dispatcher as a handler for [`serve_admin`].
    pub fn into_handler(self) -> AdminHandler {
        Arc::new(move |line: &str| self.dispatch(line))
    }

    fn names(&self) -> String {
        self.commands.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }
}

/// Creates the admin socket `DATA_DIR/admin.sock` with mode 0600.
///
/// A socket file left by a server that stopped is replaced. If a server
/// still accepts connections on it, this fails with "another server is
/// running with data folder ...". Must be called inside a Tokio runtime.
// NOTE: two servers that start at the same moment on one data folder can
// both find the old socket stale, and the second one then removes the
// first one's socket. The mode also follows the umask for the moment
// between bind and chmod, so keep the data folder private.
pub fn bind_admin(data_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(data_dir);
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) if error.kind() == ErrorKind::AddrInUse => {
            remove_stale_socket(data_dir, &path)?;
            std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("failed to create the admin socket {}", path.display()))?
        }
        Err(error) => {
            return Err(error).with_context(|| format!("failed to create the admin socket {}", path.display()));
        }
    };

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("failed to set mode 0600 on the admin socket {}", path.display()))?;
    listener.set_nonblocking(true).context("failed to make the admin socket non-blocking")?;
    UnixListener::from_std(listener).context("failed to register the admin socket with the Tokio runtime")
}

/// Removes the socket file at `path` if no server accepts connections on it.
fn remove_stale_socket(data_dir: &Path, path: &Path) -> anyhow::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("failed to inspect {}", path.display())),
    };
    if !metadata.file_type().is_socket() {
        bail!("{} exists and is not a socket; move it out of the data folder and start again", path.display());
    }

    match connect_with_timeout(path, PROBE_TIMEOUT) {
        Ok(_) => bail!("another server is running with data folder {}", data_dir.display()),
        Err(error) if error.kind() == ErrorKind::TimedOut => bail!(
            "another server is running with data folder {} (its admin socket {} does not accept connections)",
            data_dir.display(),
            path.display()
        ),
        Err(error) if matches!(error.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("failed to check whether a server listens on {}", path.display()));
        }
    }

    info!(path = %path.display(), "removing the admin socket left by a server that stopped");
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to remove the stale admin socket {}", path.display())),
    }
}

/// Connects to a Unix socket, giving up after `timeout`.
///
/// A blocking connect waits without limit when the listener's backlog is
/// full, so the connect runs on its own thread. After a timeout that
/// thread may stay blocked until the listener accepts or goes away.
fn connect_with_timeout(path: &Path, timeout: Duration) -> std::io::Result<std::os::unix::net::UnixStream> {
    let (sender, receiver) = mpsc::channel();
    let path = path.to_owned();
    std::thread::Builder::new().name("admin-connect".to_owned()).spawn(move || {
        let _ = sender.send(std::os::unix::net::UnixStream::connect(&path));
    })?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(ErrorKind::TimedOut, format!("connect timed out after {timeout:?}"))),
    }
}

/// Serves admin commands with [`AdminLimits::default`] until `shutdown`
/// becomes true or its sender is dropped, then removes the socket file.
pub async fn serve_admin(listener: UnixListener, handler: AdminHandler, shutdown: watch::Receiver<bool>) {
    serve_admin_with(listener, handler, shutdown, AdminLimits::default()).await;
}

/// Serves admin commands until `shutdown` becomes true or its sender is
/// dropped, then closes the connections still open and removes the socket
/// file.
pub async fn serve_admin_with(
    listener: UnixListener,
    handler: AdminHandler,
    mut shutdown: watch::Receiver<bool>,
    limits: AdminLimits,
) {
    let path = listener.local_addr().ok().and_then(|address| address.as_pathname().map(Path::to_owned));
    if let Some(path) = &path {
        info!(path = %path.display(), "admin socket listening");
    }
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    // Rejecting takes a short task, so that the error line arrives before
    // the close. These tasks have a limit of their own.
    let rejection_permits = Arc::new(Semaphore::new(limits.connections_max));
    let rejected = AtomicU64::new(0);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);

    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(10);
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        log_rejected(&rejected, limits.connections_max);
                        // Past the second limit too, the connection is
                        // closed without a reply.
                        if let Ok(permit) = Arc::clone(&rejection_permits).try_acquire_owned() {
                            let connections_max = limits.connections_max;
                            connections.spawn(async move {
                                reject_connection(stream, connections_max).await;
                                drop(permit);
                            });
                        }
                        continue;
                    };
                    let handler = Arc::clone(&handler);
                    let limits = Arc::clone(&limits);
                    connections.spawn(async move {
                        serve_connection(stream, handler, &limits).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    error!(%error, retry_in_ms = backoff.as_millis() as u64, "failed to accept an admin connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    warn!(%error, "admin connection task failed");
                }
            }
        }
    }

    drop(listener);
    connections.shutdown().await;
    if let Some(path) = path
        && let Err(error) = std::fs::remove_file(&path)
    {
        warn!(path = %path.display(), %error, "failed to remove the admin socket");
    }
    info!("admin socket stopped");
}

/// Sends the error line for a connection past the limit and closes it.
async fn reject_connection(mut stream: UnixStream, connections_max: usize) {
    let message = format!("error: too many admin connections (limit {connections_max}); try again\n");
    let written = tokio::time::timeout(LINGER_TIMEOUT, async {
        stream.write_all(message.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if let Ok(Ok(())) = written {
        linger(&mut stream).await;
    }
}

/// Logs the first connection rejected for the limit and every 100th after.
fn log_rejected(rejected: &AtomicU64, connections_max: usize) {
    let count = rejected.fetch_add(1, Ordering::Relaxed) + 1;
    if count == 1 || count.is_multiple_of(100) {
        warn!(connections_max, rejected_total = count, "admin connection rejected: too many admin connections open");
    }
}

/// Outcome of reading a command line.
enum Line {
    Complete(String),
    TooLong,
    NotUtf8,
}

async fn serve_connection(mut stream: UnixStream, handler: AdminHandler, limits: &AdminLimits) {
    let read = tokio::time::timeout(limits.timeout, read_line(&mut stream, limits.request_line_bytes_max)).await;
    let reply = match read {
        Ok(Ok(Line::Complete(line))) => {
            debug!(command = %line, "admin command");
            match handler(&line) {
                Ok(text) => text,
                Err(message) => format!("error: {message}"),
            }
        }
        Ok(Ok(Line::TooLong)) => format!("error: command line is longer than {} bytes", limits.request_line_bytes_max),
        Ok(Ok(Line::NotUtf8)) => "error: command line is not valid UTF-8".to_owned(),
        Ok(Err(error)) => {
            debug!(%error, "failed to read an admin command");
            return;
        }
        Err(_) => {
            debug!(timeout = ?limits.timeout, "admin command timed out");
            format!("error: timed out after {:?} waiting for a command line", limits.timeout)
        }
    };

    let mut reply = reply.into_bytes();
    if !reply.is_empty() && !reply.ends_with(b"\n") {
        reply.push(b'\n');
    }
    let written = tokio::time::timeout(limits.timeout, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
    match written {
        Ok(Ok(())) => linger(&mut stream).await,
        Ok(Err(error)) => debug!(%error, "failed to write an admin reply"),
        Err(_) => debug!(timeout = ?limits.timeout, "writing an admin reply timed out"),
    }
}

/// Reads and drops what the client still sends, within the linger limits.
async fn linger(stream: &mut UnixStream) {
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES_MAX {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIMEOUT, drain).await;
}

/// Reads one line, ended by LF, CRLF or the end of the stream. Bytes after
/// the line end are ignored.
async fn read_line(stream: &mut UnixStream, line_bytes_max: usize) -> std::io::Result<Line> {
    // Room for the longest line, an optional CR, and one byte to see that a
    // line is too long.
    let buffer_len = line_bytes_max + 2;
    let mut buffer = vec![0u8; buffer_len];
    let mut filled = 0;
    let line_end = loop {
        if let Some(newline) = buffer[..filled].iter().position(|&byte| byte == b'\n') {
            break newline;
        }
        if filled == buffer_len {
            return Ok(Line::TooLong);
        }
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break filled;
        }
        filled += read;
    };

    let mut line = &buffer[..line_end];
    if let Some(without_cr) = line.strip_suffix(b"\r") {
        line = without_cr;
    }
    if line.len() > line_bytes_max {
        return Ok(Line::TooLong);
    }
    match std::str::from_utf8(line) {
        Ok(text) => Ok(Line::Complete(text.to_owned())),
        Err(_) => Ok(Line::NotUtf8),
    }
}

/// Sends `command` to the server using `data_dir` and returns its reply.
/// A reply that starts with `error: ` becomes an error with the rest of
/// the reply as its message. Blocks for at most about 10 seconds.
pub fn request(data_dir: &Path, command: &str) -> anyhow::Result<String> {
    if command.contains(['\n', '\r']) {
        bail!("admin command must be a single line");
    }
    if command.len() > REQUEST_LINE_BYTES_MAX {
        bail!("admin command is longer than {REQUEST_LINE_BYTES_MAX} bytes");
    }

    let path = socket_path(data_dir);
    let mut stream = match connect_with_timeout(&path, CLIENT_TIMEOUT) {
        Ok(stream) => stream,
        Err(error) if error.kind() == ErrorKind::NotFound => bail!(
            "no server is running with data folder {} (no admin socket at {})",
            data_dir.display(),
            path.display()
        ),
        Err(error) if error.kind() == ErrorKind::ConnectionRefused => bail!(
            "no server is running with data folder {} (nothing accepts connections on the admin socket {})",
            data_dir.display(),
            path.display()
        ),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => bail!(
            "permission denied on the admin socket {}; run this command as the user the server runs as",
            path.display()
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to connect to the admin socket {}", path.display()));
        }
    };

    let reply = exchange(&mut stream, command)
        .with_context(|| format!("admin command {command:?} failed on {}", path.display()))?;
    match reply.strip_prefix("error: ") {
        Some(message) => bail!("{}", message.trim_end()),
        None => Ok(reply),
    }
}

/// Sends the command line and returns the whole reply.
fn exchange(stream: &mut std::os::unix::net::UnixStream, command: &str) -> anyhow::Result<String> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    // A server may write an error line and close before it reads the
    // command, so after a broken pipe the reply can still be waiting.
    if let Err(error) = stream.write_all(format!("{command}\n").as_bytes())
        && error.kind() != ErrorKind::BrokenPipe
    {
        return Err(error.into());
    }

    let mut reply = Vec::new();
    let limit = u64::try_from(REPLY_BYTES_MAX).unwrap_or(u64::MAX) + 1;
    stream.take(limit).read_to_end(&mut reply)?;
    if reply.len() > REPLY_BYTES_MAX {
        bail!("reply is longer than {REPLY_BYTES_MAX} bytes");
    }
    String::from_utf8(reply).context("reply is not valid UTF-8")
}

/// One session in the `who` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoRow {
    /// Logged-in user, or `None` before login.
    pub user: Option<String>,
    /// Connection class the session counts against.
    pub class: String,
    /// Client address, after any PROXY header.
    pub source: IpAddr,
    /// Session state, such as "authenticated" or "idle".
    pub state: String,
    /// Seconds since the client connected.
    pub since_secs: u64,
}

/// Formats sessions as an aligned table with the header `USER CLASS SOURCE
/// STATE SINCE`, sorted by class and then user, and a last line with the
/// number of sessions. A user that has not logged in shows as `-`.
pub fn format_who(rows: &[WhoRow]) -> String {
    let mut sorted: Vec<&WhoRow> = rows.iter().collect();
    sorted
        .sort_by(|a, b| (&a.class, &a.user, a.source, b.since_secs).cmp(&(&b.class, &b.user, b.source, a.since_secs)));

    let header = ["USER", "CLASS", "SOURCE", "STATE", "SINCE"].map(str::to_owned);
    let mut table = vec![header];
    for row in sorted {
        table.push([
            printable(row.user.as_deref().unwrap_or("-")),
            printable(&row.class),
            row.source.to_string(),
            printable(&row.state),
            format_duration(row.since_secs),
        ]);
    }

    let mut widths = [0usize; 5];
    for cells in &table {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut text = String::new();
    for cells in &table {
        let [user, class, source, state, since] = cells;
        let line = format!(
            "{user:<user_width$}  {class:<class_width$}  {source:<source_width$}  {state:<state_width$}  {since:>since_width$}",
            user_width = widths[0],
            class_width = widths[1],
            source_width = widths[2],
            state_width = widths[3],
            since_width = widths[4],
        );
        text.push_str(&line);
        text.push('\n');
    }
    let count = rows.len();
    text.push_str(&format!("{count} {}\n", if count == 1 { "session" } else { "sessions" }));
    text
}

/// Replaces control characters and whitespace, which would break the
/// table's lines and columns, with `?`.
fn printable(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|character| if character.is_control() || character.is_whitespace() { '?' } else { character })
        .collect();
    if cleaned.is_empty() { "-".to_owned() } else { cleaned }
}

/// Formats seconds as `42s`, `3m12s`, `1h04m` or `2d03h`.
fn format_duration(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    if seconds < MINUTE {
        format!("{seconds}s")
    } else if seconds < HOUR {
        format!("{}m{:02}s", seconds / MINUTE, seconds % MINUTE)
    } else if seconds < DAY {
        format!("{}h{:02}m", seconds / HOUR, seconds % HOUR / MINUTE)
    } else {
        format!("{}d{:02}h", seconds / DAY, seconds % DAY / HOUR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: Option<&str>, class: &str, source: &str, state: &str, since_secs: u64) -> WhoRow {
        WhoRow {
            user: user.map(str::to_owned),
            class: class.to_owned(),
            source: source.parse().unwrap(),
            state: state.to_owned(),
            since_secs,
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (192, "3m12s"),
            (3599, "59m59s"),
            (3600, "1h00m"),
            (3840, "1h04m"),
            (86_399, "23h59m"),
            (86_400, "1d00h"),
            (3 * 86_400 + 5 * 3600 + 59, "3d05h"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(format_duration(seconds), expected, "{seconds} s");
        }
    }

    #[test]
    fn who_table_aligned_and_sorted() {
        let rows = [
            row(Some("bob"), "public", "203.0.113.7", "authenticated", 3840),
            row(None, "trusted", "127.0.0.1", "not-authenticated", 5),
            row(Some("alice"), "public", "2001:db8::1", "idle", 192),
            row(None, "public", "198.51.100.20", "not-authenticated", 42),
        ];
        let expected = "\
USER   CLASS    SOURCE         STATE              SINCE
-      public   198.51.100.20  not-authenticated    42s
alice  public   2001:db8::1    idle               3m12s
bob    public   203.0.113.7    authenticated      1h04m
-      trusted  127.0.0.1      not-authenticated     5s
4 sessions
";
        assert_eq!(format_who(&rows), expected);
    }

    #[test]
    fn who_table_empty_and_single() {
        assert_eq!(format_who(&[]), "USER  CLASS  SOURCE  STATE  SINCE\n0 sessions\n");
        let single = format_who(&[row(Some("alice"), "c", "::1", "s", 1)]);
        assert!(single.ends_with("\n1 session\n"), "{single}");
    }

    #[test]
    fn who_table_unprintable_cells() {
        let text = format_who(&[row(Some("eve\nUSER x"), "a\tb", "::1", "", 1)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("eve?USER?x  a?b"), "{text}");
        assert!(lines[1].contains("  -  "), "{text}");
    }

    #[test]
    fn dispatch_known_and_unknown() {
        let commands = Commands::new()
            .add("who", |arguments| Ok(format!("who with {arguments:?}")))
            .add("stats", |_| Err("not ready".to_owned()));
        assert_eq!(commands.dispatch("who"), Ok("who with \"\"".to_owned()));
        assert_eq!(commands.dispatch("  who   all  "), Ok("who with \"all\"".to_owned()));
        assert_eq!(commands.dispatch("stats"), Err("not ready".to_owned()));
        assert_eq!(commands.dispatch("kick x"), Err("unknown command \"kick\"; known commands: who, stats".to_owned()));
        assert_eq!(commands.dispatch("WHO"), Err("unknown command \"WHO\"; known commands: who, stats".to_owned()));
        assert_eq!(commands.dispatch(" "), Err("empty command; known commands: who, stats".to_owned()));
    }
}
