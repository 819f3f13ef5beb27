//! Measures the heap one more logged-in session costs the server, stage by
//! stage (after LOGIN, after SELECT, in IDLE), with a counting global
//! allocator over a real server and real sockets. The clients use blocking
//! standard-library sockets read into a buffer on the stack, which
//! allocate nothing per connection, so the counted bytes are the server's.
//!
//! The bound pinned here is on the heap alone; kernel socket memory and
//! allocator overhead come on top and are measured by `scripts/bench-idle`.
//! Run with `--nocapture` to see the numbers.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::TestServer;

/// Heap one idle session may cost the server: the connection's task and
/// session state, its control, its selected mailbox's snapshot and change
/// channel, and the governor's records of the connection and the user.
// NOTE: about 1.4 KiB measured. The idle-session target is 2 KiB of the
// whole process tree, allocator overhead and page caches included, so the
// heap has little more room than this bound.
const IDLE_SESSION_HEAP_BYTES_MAX: isize = 1664;

/// Sessions per measured stage; enough that per-session costs dominate.
const SESSIONS: usize = 400;

struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(pointer, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Connection {
    stream: TcpStream,
}

impl Connection {
    /// Reads until a line starting with `until` has arrived in full.
    fn read_until(&mut self, until: &[u8]) {
        let mut buffer = [0u8; 8192];
        let mut filled = 0;
        loop {
            let read = self.stream.read(&mut buffer[filled..]).unwrap();
            assert!(read > 0, "the server closed the connection");
            filled += read;
            let text = &buffer[..filled];
            let mut line_start = 0;
            for end in 0..text.len().saturating_sub(1) {
                if text[end] == b'\r' && text[end + 1] == b'\n' {
                    let line = &text[line_start..end];
                    if line.starts_with(until) {
                        assert!(!line.windows(4).any(|w| w == b" NO " || w == b" BAD"), "{}", String::from_utf8_lossy(line));
                        return;
                    }
                    line_start = end + 2;
                }
            }
            assert!(filled < buffer.len(), "response larger than the test's buffer");
        }
    }

    fn command(&mut self, tag: &str, command: &str, until: &str) {
        let mut line = [0u8; 128];
        let mut cursor = std::io::Cursor::new(&mut line[..]);
        write!(cursor, "{tag} {command}\r\n").unwrap();
        let length = cursor.position() as usize;
        self.stream.write_all(&line[..length]).unwrap();
        self.read_until(until.as_bytes());
    }
}

/// Waits until the live heap stops moving, so that work the server still
/// does for the last client is counted.
fn settled_live_bytes() -> isize {
    let mut last = LIVE_BYTES.load(Ordering::Relaxed);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = LIVE_BYTES.load(Ordering::Relaxed);
        if (now - last).abs() < 4096 {
            return now;
        }
        last = now;
    }
}

#[test]
fn idle_session_heap_stays_small() {
    let server = TestServer::start_with(|config| config.imaps_listen = None);
    let users = roost_auth::UserDb::open(&server.data_dir).unwrap();
    let lines: String = (0..2 * SESSIONS).map(|n| format!("user{n}:{{PLAIN}}secret\n")).collect();
    users.import(&lines).unwrap();
    // The server rereads the passwd-file at most once a second.
    std::thread::sleep(Duration::from_millis(1100));

    let connect = || {
        let stream = TcpStream::connect(server.imap).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut connection = Connection { stream };
        connection.read_until(b"* OK");
        connection
    };
    let open = |user: usize| {
        let mut connection = connect();
        connection.command("a", &format!("LOGIN user{user} secret"), "a ");
        connection
    };
    let mut sessions: Vec<Connection> = Vec::with_capacity(SESSIONS);

    // Warm-up: the first sessions pay for one-time growth (tables, caches).
    let mut warm: Vec<Connection> = (SESSIONS..2 * SESSIONS).map(open).collect();
    for connection in &mut warm {
        connection.command("b", "SELECT INBOX", "b ");
        connection.command("c", "IDLE", "+");
    }

    let start = settled_live_bytes();
    sessions.extend((0..SESSIONS).map(|_| connect()));
    let connected = settled_live_bytes();
    for (user, connection) in sessions.iter_mut().enumerate() {
        connection.command("a", &format!("LOGIN user{user} secret"), "a ");
    }
    let logged_in = settled_live_bytes();
    for connection in &mut sessions {
        connection.command("b", "SELECT INBOX", "b ");
    }
    let selected = settled_live_bytes();
    for connection in &mut sessions {
        connection.command("c", "IDLE", "+");
    }
    let idle = settled_live_bytes();

    let per_session = |from: isize, to: isize| (to - from) / SESSIONS as isize;
    println!(
        "heap per session: connected {} B, +LOGIN {} B, +SELECT {} B, +IDLE {} B, idle total {} B",
        per_session(start, connected),
        per_session(connected, logged_in),
        per_session(logged_in, selected),
        per_session(selected, idle),
        per_session(start, idle)
    );
    assert!(per_session(start, idle) <= IDLE_SESSION_HEAP_BYTES_MAX, "an idle session costs {} B", per_session(start, idle));
    drop(sessions);
    drop(warm);
}
