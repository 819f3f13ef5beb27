//! The metrics endpoint scraped over real loopback sockets by a plain
//! `std` client.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roost_server::metrics::{CONTENT_TYPE, MetricKind, MetricsLimits, MetricsText, RenderMetrics, serve_metrics_with};
use tokio::sync::watch;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const HEAD_BYTES_MAX: usize = 8192;

/// A metrics endpoint on its own runtime thread.
struct Endpoint {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    fn start(render: RenderMetrics, limits: MetricsLimits) -> Endpoint {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, receiver) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve_metrics_with(listener, render, receiver, limits));
        });
        Endpoint { address, shutdown, thread: Some(thread) }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream
    }

    /// Sends `request` and returns the whole response, read until the
    /// server closes.
    fn exchange(&self, request: &[u8]) -> Response {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        Response::parse(&raw)
    }

    /// Stops the server and waits for it to return.
    fn stop(mut self) {
        self.shutdown.send(true).unwrap();
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "metrics server did not stop within 5 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let text = String::from_utf8(raw.to_vec()).expect("response is UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head end in {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        Response { status, headers, body: body.to_owned() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
    }
}

/// Renders a counter of scrapes, so each scrape gets fresh text.
fn counting_render() -> (RenderMetrics, Arc<AtomicU64>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&scrapes);
    let render: RenderMetrics = Arc::new(move || {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut text = MetricsText::new();
        text.family("test_scrapes_total", MetricKind::Counter, "Scrapes served.");
        text.sample("test_scrapes_total", &[("listener", "a \"quoted\" name")], count as f64);
        text.finish()
    });
    (render, scrapes)
}

/// Builds a GET request whose head is exactly `head_len` bytes, padded by
/// one header field.
fn request_with_head_len(head_len: usize) -> Vec<u8> {
    let start = "GET /metrics HTTP/1.1\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let padding = head_len - start.len() - end.len();
    let request = format!("{start}{}{end}", "p".repeat(padding));
    assert_eq!(request.len(), head_len);
    request.into_bytes()
}

#[test]
fn scrape_returns_rendered_text() {
    let (render, scrapes) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());

    let response = endpoint.exchange(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some(CONTENT_TYPE));
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("content-length"), Some(response.body.len().to_string().as_str()));
    let expected = "# HELP test_scrapes_total Scrapes served.\n\
                    # TYPE test_scrapes_total counter\n\
                    test_scrapes_total{listener=\"a \\\"quoted\\\" name\"} 1\n";
    assert_eq!(response.body, expected);

    let second = endpoint.exchange(b"GET /metrics?name[]=test_scrapes_total HTTP/1.1\r\n\r\n");
    assert_eq!(second.status, 200);
    assert!(second.body.ends_with("} 2\n"), "{}", second.body);
    assert_eq!(scrapes.load(Ordering::SeqCst), 2);
    endpoint.stop();
}

#[test]
fn head_request_without_body() {
    let (render, _) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    let response = endpoint.exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "");
    let length: usize = response.header("content-length").unwrap().parse().unwrap();
    assert!(length > 0);
    endpoint.stop();
}

#[test]
fn other_path_not_found() {
    let (render, scrapes) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    for path in ["/", "/metricsx", "/metrics/", "/favicon.ico"] {
        let response = endpoint.exchange(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(response.status, 404, "{path}");
    }
    assert_eq!(scrapes.load(Ordering::SeqCst), 0);
    endpoint.stop();
}

#[test]
fn other_method_not_allowed() {
    let (render, _) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let response = endpoint.exchange(format!("{method} /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").as_bytes());
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
    }
    endpoint.stop();
}

#[test]
fn head_at_size_limit_served() {
    let (render, _) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    let response = endpoint.exchange(&request_with_head_len(HEAD_BYTES_MAX));
    assert_eq!(response.status, 200);
    endpoint.stop();
}

#[test]
fn head_past_size_limit_rejected() {
    let (render, scrapes) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    let response = endpoint.exchange(&request_with_head_len(HEAD_BYTES_MAX + 1));
    assert_eq!(response.status, 431);
    assert!(response.body.contains("8192"), "{}", response.body);

    // A client that keeps sending far past the limit still gets the 431.
    let mut huge = request_with_head_len(HEAD_BYTES_MAX * 4);
    huge.truncate(HEAD_BYTES_MAX * 4 - 4);
    let response = endpoint.exchange(&huge);
    assert_eq!(response.status, 431);
    assert_eq!(scrapes.load(Ordering::SeqCst), 0);
    endpoint.stop();
}

#[test]
fn garbage_gets_bad_request() {
    let (render, _) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    let inputs: [&[u8]; 4] = [
        b"\x00\x01\x02\r\n\r\n",
        b"GET\r\n\r\n",
        b"\xff\xff /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost",
    ];
    for input in inputs {
        let mut stream = endpoint.connect();
        stream.write_all(input).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        assert_eq!(Response::parse(&raw).status, 400, "{input:?}");
    }

    // The server keeps serving after garbage.
    assert_eq!(endpoint.exchange(b"GET /metrics HTTP/1.1\r\n\r\n").status, 200);
    endpoint.stop();
}

#[test]
fn silent_client_closed_after_timeout() {
    let (render, _) = counting_render();
    let limits = MetricsLimits { read_timeout: Duration::from_millis(200), ..MetricsLimits::default() };
    let endpoint = Endpoint::start(render, limits);

    let mut stream = endpoint.connect();
    stream.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    assert!(raw.is_empty(), "{raw:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    endpoint.stop();
}

#[test]
fn connections_past_limit_closed() {
    let (render, _) = counting_render();
    let limits = MetricsLimits { connections_max: 4, ..MetricsLimits::default() };
    let endpoint = Endpoint::start(render, limits);

    // Four idle connections hold every permit. The server accepts in queue
    // order, so they take the permits before it accepts the extra one.
    let idle: Vec<TcpStream> = (0..4).map(|_| endpoint.connect()).collect();
    let mut extra = endpoint.connect();
    extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    match extra.read_to_end(&mut raw) {
        Ok(_) => assert!(raw.is_empty(), "connection past the limit got {:?}", String::from_utf8_lossy(&raw)),
        // Closing with the request unread may reset the connection.
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset),
    }

    // Once the idle connections close, scrapes are served again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = endpoint.connect();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        if stream.read_to_end(&mut raw).is_ok() && !raw.is_empty() {
            assert_eq!(Response::parse(&raw).status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "scrapes not served again within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    endpoint.stop();
}

#[test]
fn shutdown_stops_listener() {
    let (render, _) = counting_render();
    let endpoint = Endpoint::start(render, MetricsLimits::default());
    let address = endpoint.address;
    let idle = endpoint.connect();
    endpoint.stop();
    assert!(TcpStream::connect(address).is_err(), "listener still open after shutdown");
    drop(idle);
}
