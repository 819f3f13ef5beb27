//! Pins the heap an idle connection owns, measured with a counting global
//! allocator: the bytes freed when the connection is dropped, after traffic
//! in both directions and `release_buffers`.
//!
//! It also measures rustls' buffered `ServerConnection` driven the same
//! way in memory, which is the design the transport does not use, so the
//! difference stays visible. Run with `--nocapture` to see the numbers.

mod tls_support;

use roost_server::{tls, transport};

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use tls_support::{acceptor, client_config, connect, limits, listen, read_some};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport::Transport;

/// Heap an idle TLS 1.2 or 1.3 session may own: rustls' connection state (the
/// handshake state machine's final state, the record layer's AES-GCM keys
/// and the key schedule) plus this crate's boxed state, with no buffers.
const IDLE_TLS_HEAP_BYTES_MAX: usize = 4096;

/// Heap an idle plaintext transport may own. The socket's registration
/// lives in tokio's driver, not in the transport.
const IDLE_PLAIN_HEAP_BYTES_MAX: usize = 64;

/// Bytes sent each way before measuring, enough to need several full
/// records and so to grow every buffer.
const TRAFFIC_BYTES: usize = 64 * 1024;

struct CountingAllocator;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread. Counting per
    /// thread keeps tests that run in parallel out of each other's numbers.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: the counter may already be gone while the thread exits.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(|live| live.get())
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Returns the bytes freed by dropping `value` on this thread.
fn heap_owned<T>(value: T) -> isize {
    let before = live_bytes();
    drop(value);
    before - live_bytes()
}

/// Echoes `TRAFFIC_BYTES` on `transport`, releases its buffers and
/// returns it idle.
async fn exchange_then_idle(mut transport: Transport) -> Transport {
    let mut buf = vec![0; 16 * 1024];
    let mut echoed = 0;
    while echoed < TRAFFIC_BYTES {
        let n = read_some(&mut transport, &mut buf).await.unwrap();
        assert!(n > 0, "stream ended early");
        transport.write_all(&buf[..n]).await.unwrap();
        echoed += n;
    }
    transport.release_buffers();
    transport
}

async fn client_exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(client: &mut S) {
    client.write_all(&vec![b'm'; TRAFFIC_BYTES]).await.unwrap();
    let mut reply = vec![0; TRAFFIC_BYTES];
    client.read_exact(&mut reply).await.unwrap();
}

/// Returns the inline size and the heap of an idle server transport after
/// a TLS session with a client using `config`.
///
/// Call it on a current-thread runtime: server and client then run on this
/// thread, so every allocation of the server's transport is counted here.
async fn idle_tls_heap(
    acceptor: std::sync::Arc<tls::TlsAcceptor>,
    config: rustls::ClientConfig,
) -> (usize, isize) {
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let transport = Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .unwrap();
        exchange_then_idle(transport).await
    });
    let mut client = connect(address, config).await.unwrap();
    client_exchange(&mut client).await;
    let transport = server.await.unwrap();

    let Transport::Tls(session) = &transport else {
        panic!("transport is not TLS")
    };
    assert_eq!(session.buffer_capacity(), 0);
    let inline = std::mem::size_of_val(&transport);
    let heap = heap_owned(transport);
    assert!(
        heap > 0,
        "dropping the TLS transport freed nothing, so the count is broken"
    );
    drop(client);
    (inline, heap)
}

#[tokio::test(flavor = "current_thread")]
async fn idle_tls13_transport_heap() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (inline, heap) = idle_tls_heap(acceptor, client_config(&[certificate])).await;
    eprintln!("idle TLS 1.3 transport: {inline} bytes inline, {heap} bytes of heap");
    assert!(
        heap as usize <= IDLE_TLS_HEAP_BYTES_MAX,
        "idle TLS 1.3 transport owns {heap} bytes of heap"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn idle_tls12_transport_heap() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (inline, heap) = idle_tls_heap(acceptor, config).await;
    eprintln!("idle TLS 1.2 transport: {inline} bytes inline, {heap} bytes of heap");
    assert!(
        heap as usize <= IDLE_TLS_HEAP_BYTES_MAX,
        "idle TLS 1.2 transport owns {heap} bytes of heap"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn idle_plain_transport_heap() {
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        exchange_then_idle(Transport::Plain(socket)).await
    });
    let mut client = TcpStream::connect(address).await.unwrap();
    client_exchange(&mut client).await;
    let transport = server.await.unwrap();

    let inline = std::mem::size_of_val(&transport);
    let heap = heap_owned(transport);
    eprintln!("idle plaintext transport: {inline} bytes inline, {heap} bytes of heap");
    assert!(
        heap <= IDLE_PLAIN_HEAP_BYTES_MAX as isize,
        "idle plaintext transport owns {heap} bytes of heap"
    );
    drop(client);
}

/// Moves every TLS byte `from` has to send into `to`.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut wire = &wire[..];
    while !wire.is_empty() {
        to.read_tls(&mut wire).unwrap();
        to.process_new_packets().unwrap();
    }
}

/// Measures the design the transport does not use: rustls' buffered
/// `ServerConnection`, idle after the same traffic. It keeps a receive
/// buffer of at least 4 KiB (rustls 0.23's read size) that the caller
/// cannot free, so it is expected to own more than the transport.
#[test]
fn idle_buffered_server_connection_heap() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client: rustls::Connection =
        rustls::ClientConnection::new(Arc::new(client_config(&[certificate])), name)
            .unwrap()
            .into();
    let mut server: rustls::Connection = rustls::ServerConnection::new(acceptor.server_config())
        .unwrap()
        .into();

    let mut rounds = 0;
    while client.is_handshaking() || server.is_handshaking() {
        rounds += 1;
        assert!(rounds < 16, "in-memory handshake did not finish");
        pump(&mut client, &mut server);
        pump(&mut server, &mut client);
    }
    // rustls limits the unread plaintext it keeps, so the traffic goes in
    // 8 KiB pieces, each read and echoed before the next.
    let mut buf = vec![0; 16 * 1024];
    for _ in 0..TRAFFIC_BYTES / 8192 {
        client.writer().write_all(&[b'm'; 8192]).unwrap();
        pump(&mut client, &mut server);
        let mut received = 0;
        while received < 8192 {
            let n = server.reader().read(&mut buf).unwrap();
            server.writer().write_all(&buf[..n]).unwrap();
            received += n;
        }
        pump(&mut server, &mut client);
        while client.reader().read(&mut buf).is_ok() {}
    }
    drop(buf);

    let inline = std::mem::size_of::<rustls::ServerConnection>();
    let heap = heap_owned(server);
    eprintln!("idle buffered rustls ServerConnection: {inline} bytes inline, {heap} bytes of heap");
    assert!(
        heap >= 4096,
        "buffered ServerConnection owns only {heap} bytes; the comparison is stale"
    );
}
