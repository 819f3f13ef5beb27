//! The admin socket over real Unix sockets in temporary data folders.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roost_server::admin::{
    AdminHandler, AdminLimits, Commands, REQUEST_LINE_BYTES_MAX, WhoRow, bind_admin, format_who, request,
    serve_admin_with, socket_path,
};
use tokio::sync::watch;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin socket server on its own runtime thread.
struct AdminServer {
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    fn start(data_dir: &Path, handler: AdminHandler, limits: AdminLimits) -> AdminServer {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = {
            let _context = runtime.enter();
            bind_admin(data_dir).unwrap()
        };
        let (shutdown, receiver) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve_admin_with(listener, handler, receiver, limits));
        });
        AdminServer { shutdown, thread: Some(thread) }
    }

    /// Stops the server and waits for it to return.
    fn stop(mut self) {
        self.shutdown.send(true).unwrap();
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "admin server did not stop within 5 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap();
    }
}

/// Returns the `who` table of two fixed sessions, and records each
/// command line the handler gets.
fn who_commands(seen: Arc<Mutex<Vec<String>>>) -> AdminHandler {
    Commands::new()
        .add("who", move |arguments| {
            seen.lock().unwrap().push(arguments.to_owned());
            if !arguments.is_empty() {
                return Err(format!("who takes no arguments, got {arguments:?}"));
            }
            Ok(format_who(&[
                WhoRow {
                    user: Some("alice".to_owned()),
                    class: "trusted".to_owned(),
                    source: "127.0.0.1".parse().unwrap(),
                    state: "idle".to_owned(),
                    since_secs: 75,
                },
                WhoRow {
                    user: None,
                    class: "public".to_owned(),
                    source: "203.0.113.9".parse().unwrap(),
                    state: "not-authenticated".to_owned(),
                    since_secs: 3,
                },
            ]))
        })
        .into_handler()
}

fn start_who_server(data_dir: &Path, limits: AdminLimits) -> (AdminServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = AdminServer::start(data_dir, who_commands(Arc::clone(&seen)), limits);
    (server, seen)
}

/// Sends raw bytes on the socket, half-closes it, and returns the reply
/// read until the server closes.
fn raw_exchange(data_dir: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket_path(data_dir)).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    // The server stops reading at the line limit and may close first.
    if let Err(error) = stream.write_all(bytes) {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

fn error_text(result: anyhow::Result<String>) -> String {
    match result {
        Ok(reply) => panic!("expected an error, got the reply {reply:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn who_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (server, seen) = start_who_server(dir.path(), AdminLimits::default());

    let reply = request(dir.path(), "who").unwrap();
    let expected = "\
USER   CLASS    SOURCE       STATE              SINCE
-      public   203.0.113.9  not-authenticated     3s
alice  trusted  127.0.0.1    idle               1m15s
2 sessions
";
    assert_eq!(reply, expected);
    assert_eq!(*seen.lock().unwrap(), [""]);

    // CRLF line ends work too, for clients such as socat.
    assert_eq!(raw_exchange(dir.path(), b"who\r\n"), expected);
    server.stop();
}

#[test]
fn unknown_command_lists_known() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_who_server(dir.path(), AdminLimits::default());

    let raw = raw_exchange(dir.path(), b"kick alice\n");
    assert_eq!(raw, "error: unknown command \"kick\"; known commands: who\n");

    let message = error_text(request(dir.path(), "kick alice"));
    assert_eq!(message, "unknown command \"kick\"; known commands: who");

    let message = error_text(request(dir.path(), "who everyone"));
    assert_eq!(message, "who takes no arguments, got \"everyone\"");
    server.stop();
}

#[test]
fn line_at_limit_reaches_handler() {
    let dir = tempfile::tempdir().unwrap();
    let (server, seen) = start_who_server(dir.path(), AdminLimits::default());

    let arguments = "x".repeat(REQUEST_LINE_BYTES_MAX - "who ".len());
    let line = format!("who {arguments}");
    assert_eq!(line.len(), REQUEST_LINE_BYTES_MAX);
    let message = error_text(request(dir.path(), &line));
    assert!(message.starts_with("who takes no arguments"), "{message}");
    assert_eq!(*seen.lock().unwrap(), [arguments]);

    // The limit does not count the line end, so CRLF fits as well.
    let raw = raw_exchange(dir.path(), format!("{line}\r\n").as_bytes());
    assert!(raw.starts_with("error: who takes no arguments"), "{raw}");
    server.stop();
}

#[test]
fn line_past_limit_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (server, seen) = start_who_server(dir.path(), AdminLimits::default());

    let line = format!("who {}", "x".repeat(REQUEST_LINE_BYTES_MAX - 3));
    assert_eq!(line.len(), REQUEST_LINE_BYTES_MAX + 1);
    let raw = raw_exchange(dir.path(), format!("{line}\n").as_bytes());
    assert_eq!(raw, "error: command line is longer than 1024 bytes\n");

    // Without a line end, and ten times the limit.
    let raw = raw_exchange(dir.path(), "y".repeat(10 * REQUEST_LINE_BYTES_MAX).as_bytes());
    assert_eq!(raw, "error: command line is longer than 1024 bytes\n");
    assert!(seen.lock().unwrap().is_empty());

    // The client checks the limit before it connects.
    let message = error_text(request(dir.path(), &line));
    assert_eq!(message, "admin command is longer than 1024 bytes");
    server.stop();
}

#[test]
fn bad_lines_get_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (server, seen) = start_who_server(dir.path(), AdminLimits::default());

    assert_eq!(raw_exchange(dir.path(), b"\n"), "error: empty command; known commands: who\n");
    assert_eq!(raw_exchange(dir.path(), b"wh\xff\n"), "error: command line is not valid UTF-8\n");
    // End of stream ends the line as well.
    assert!(raw_exchange(dir.path(), b"who").starts_with("USER"));
    assert_eq!(seen.lock().unwrap().len(), 1);

    let message = error_text(request(dir.path(), "who\nwho"));
    assert_eq!(message, "admin command must be a single line");
    server.stop();
}

#[test]
fn silent_client_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AdminLimits { timeout: Duration::from_millis(200), ..AdminLimits::default() };
    let (server, _) = start_who_server(dir.path(), limits);

    let started = Instant::now();
    let mut stream = UnixStream::connect(socket_path(dir.path())).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "error: timed out after 200ms waiting for a command line\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop();
}

#[test]
fn connections_past_limit_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AdminLimits { connections_max: 2, ..AdminLimits::default() };
    let (server, _) = start_who_server(dir.path(), limits);

    // The server accepts in queue order, so the idle connections take both
    // permits before it accepts the request.
    let idle: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(socket_path(dir.path())).unwrap()).collect();
    let message = error_text(request(dir.path(), "who"));
    assert_eq!(message, "too many admin connections (limit 2); try again");

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    while request(dir.path(), "who").is_err() {
        assert!(Instant::now() < deadline, "admin requests not served again within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
}

#[test]
fn socket_mode_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_who_server(dir.path(), AdminLimits::default());
    let mode = std::fs::metadata(socket_path(dir.path())).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    server.stop();
}

#[test]
fn stale_socket_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    // A listener that is dropped leaves its socket file behind, as a server
    // that crashed does.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let message = error_text(request(dir.path(), "who"));
    assert!(message.starts_with("no server is running with data folder"), "{message}");

    let (server, _) = start_who_server(dir.path(), AdminLimits::default());
    assert!(request(dir.path(), "who").unwrap().starts_with("USER"));
    server.stop();
}

#[test]
fn second_server_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_who_server(dir.path(), AdminLimits::default());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = {
        let _context = runtime.enter();
        bind_admin(dir.path())
    };
    let message = format!("{:#}", result.unwrap_err());
    assert_eq!(message, format!("another server is running with data folder {}", dir.path().display()));

    // The first server still owns the socket.
    assert!(request(dir.path(), "who").unwrap().starts_with("USER"));
    server.stop();
}

#[test]
fn non_socket_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    std::fs::write(&path, "not a socket").unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = {
        let _context = runtime.enter();
        bind_admin(dir.path())
    };
    let message = format!("{:#}", result.unwrap_err());
    assert!(message.contains("exists and is not a socket"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn no_server_message() {
    let dir = tempfile::tempdir().unwrap();
    let message = error_text(request(dir.path(), "who"));
    let data_dir = dir.path().display();
    assert_eq!(
        message,
        format!("no server is running with data folder {data_dir} (no admin socket at {data_dir}/admin.sock)")
    );
}

#[test]
fn shutdown_removes_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_who_server(dir.path(), AdminLimits::default());
    assert!(socket_path(dir.path()).exists());
    server.stop();
    assert!(!socket_path(dir.path()).exists());

    // A new server starts on the same folder after the first one stopped.
    let (server, _) = start_who_server(dir.path(), AdminLimits::default());
    assert!(request(dir.path(), "who").is_ok());
    server.stop();
}
