//! Prometheus metrics endpoint: a minimal HTTP/1.1 server for `GET
//! /metrics`, and [`MetricsText`], a writer for the text exposition format
//! (version 0.0.4).
//!
//! The server renders the text when a scrape arrives, through a function
//! the caller passes in, so metrics come from the server's live state and
//! no registry keeps copies. Every connection gets one response and is
//! then closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Function that renders the metrics text for one scrape. It runs on an
/// async worker thread, so it must not block.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Limits of the metrics endpoint.
#[derive(Debug, Clone)]
pub struct MetricsLimits {
    /// Maximum size of a request head (request line and header fields,
    /// with the blank line that ends them). Larger heads get 431.
    pub head_bytes_max: usize,
    /// Time a client has to send its request head.
    pub read_timeout: Duration,
    /// Time a client has to take the response.
    pub write_timeout: Duration,
    /// Maximum number of scrape connections served at once. Connections
    /// past it are closed as soon as they are accepted.
    pub connections_max: usize,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            head_bytes_max: 8192,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            connections_max: 16,
        }
    }
}

/// Maximum pause after failed accepts, which usually mean the process is
/// out of file descriptors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// After a response, the server half-closes, then reads and drops what the
/// client still sends, up to this many bytes or until this timeout. Closing
/// with unread bytes sends a TCP reset, which can destroy the response
/// before the client reads it (RFC 9112 section 9.6). A 431 leaves unread
/// bytes by definition.
// NOTE: on Linux loopback the client still reads the response after a
// reset, so the tests pass without the linger and do not cover it.
const LINGER_BYTES_MAX: usize = 64 * 1024;
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the metrics endpoint with [`MetricsLimits::default`] until
/// `shutdown` becomes true or its sender is dropped.
pub async fn serve_metrics(listener: TcpListener, render: RenderMetrics, shutdown: watch::Receiver<bool>) {
    serve_metrics_with(listener, render, shutdown, MetricsLimits::default()).await;
}

/// Serves the metrics endpoint until `shutdown` becomes true or its sender
/// is dropped, then closes the connections still open and returns.
pub async fn serve_metrics_with(
    listener: TcpListener,
    render: RenderMetrics,
    mut shutdown: watch::Receiver<bool>,
    limits: MetricsLimits,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let rejected = AtomicU64::new(0);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);

    while !*shutdown.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(10);
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        log_rejected(&rejected, limits.connections_max, peer);
                        drop(stream);
                        continue;
                    };
                    let render = Arc::clone(&render);
                    let limits = Arc::clone(&limits);
                    connections.spawn(async move {
                        serve_connection(stream, render, &limits).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    error!(%error, retry_in_ms = backoff.as_millis() as u64, "failed to accept a metrics connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(finished) = connections.join_next(), if !connections.is_empty() => log_connection_end(finished),
        }
    }

    drop(listener);
    connections.shutdown().await;
    info!("metrics listener stopped");
}

/// Logs the first connection rejected for the limit and every 100th after.
fn log_rejected(rejected: &AtomicU64, connections_max: usize, peer: std::net::SocketAddr) {
    let count = rejected.fetch_add(1, Ordering::Relaxed) + 1;
    if count == 1 || count.is_multiple_of(100) {
        warn!(%peer, connections_max, rejected_total = count, "metrics connection closed: too many scrape connections open");
    }
}

fn log_connection_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        warn!(%error, "metrics connection task failed");
    }
}

/// Outcome of reading a request head.
enum Head {
    /// The head, up to and including the blank line that ends it.
    Complete(Vec<u8>),
    /// The head did not end within the size limit.
    TooLarge,
    /// The client closed the connection before the head ended.
    Closed { received: usize },
}

async fn serve_connection(mut stream: TcpStream, render: RenderMetrics, limits: &MetricsLimits) {
    let head = match tokio::time::timeout(limits.read_timeout, read_head(&mut stream, limits.head_bytes_max)).await {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => {
            debug!(%error, "failed to read a metrics request");
            return;
        }
        Err(_) => {
            debug!(timeout = ?limits.read_timeout, "metrics request timed out");
            return;
        }
    };

    let response = match head {
        Head::Complete(head) => respond(&head, &render),
        Head::TooLarge => {
            debug!(head_bytes_max = limits.head_bytes_max, "metrics request head too large");
            let message = format!("request head is larger than {} bytes\n", limits.head_bytes_max);
            Response::error(431, "Request Header Fields Too Large", &message)
        }
        Head::Closed { received: 0 } => return,
        Head::Closed { .. } => Response::error(400, "Bad Request", "request head ended early\n"),
    };

    let written = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&response.into_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    match written {
        Ok(Ok(())) => linger(&mut stream).await,
        Ok(Err(error)) => debug!(%error, "failed to write a metrics response"),
        Err(_) => debug!(timeout = ?limits.write_timeout, "writing a metrics response timed out"),
    }
}

async fn read_head(stream: &mut TcpStream, head_bytes_max: usize) -> std::io::Result<Head> {
    let mut buffer = vec![0u8; head_bytes_max];
    let mut filled = 0;
    loop {
        if filled == head_bytes_max {
            return Ok(Head::TooLarge);
        }
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return Ok(Head::Closed { received: filled });
        }
        // The blank line may straddle the previous read.
        let search_from = filled.saturating_sub(3);
        filled += read;
        if let Some(end) = find_head_end(&buffer[search_from..filled]) {
            buffer.truncate(search_from + end);
            return Ok(Head::Complete(buffer));
        }
    }
}

/// Returns the length of the head in `bytes`, up to and including the
/// blank line. HTTP/1.1 (RFC 9112 section 2.2) lets a server accept a bare
/// LF as a line end, so `\n\n` ends a head too.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(index, &byte)| {
        if byte != b'\n' {
            return None;
        }
        let before = &bytes[..index];
        let blank_line = before.ends_with(b"\n") || before.ends_with(b"\n\r");
        blank_line.then_some(index + 1)
    })
}

/// Routes a complete request head to its response.
fn respond(head: &[u8], render: &RenderMetrics) -> Response {
    let line_end = head.iter().position(|&byte| byte == b'\n').unwrap_or(head.len());
    let request_line = head[..line_end].strip_suffix(b"\r").unwrap_or(&head[..line_end]);
    let Ok(request_line) = std::str::from_utf8(request_line) else {
        return Response::error(400, "Bad Request", "request line is not valid UTF-8\n");
    };

    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Response::error(400, "Bad Request", "request line must be METHOD TARGET HTTP-VERSION\n");
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        if version.starts_with("HTTP/") {
            return Response::error(505, "HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are supported\n");
        }
        return Response::error(400, "Bad Request", "request line must be METHOD TARGET HTTP-VERSION\n");
    }

    let is_head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut response = Response::error(405, "Method Not Allowed", "only GET and HEAD are allowed\n");
            response.allow = Some("GET, HEAD");
            return response;
        }
    };
    if target != "/metrics" && !target.starts_with("/metrics?") {
        return Response::error(404, "Not Found", "metrics are at /metrics\n");
    }

    Response { status: 200, reason: "OK", content_type: CONTENT_TYPE, body: render(), allow: None, omit_body: is_head }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    allow: Option<&'static str>,
    /// True for HEAD: the head carries the body's length, but no body follows.
    omit_body: bool,
}

impl Response {
    fn error(status: u16, reason: &'static str, body: &str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            allow: None,
            omit_body: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");

        let mut bytes = head.into_bytes();
        if !self.omit_body {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// Reads and drops what the client still sends, within the linger limits,
/// so that closing does not reset the connection before the client has
/// read the response.
async fn linger(stream: &mut TcpStream) {
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

/// Type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        }
    }
}

/// Writer for the Prometheus text exposition format, version 0.0.4.
///
/// Call [`family`](Self::family) once per metric, then
/// [`sample`](Self::sample) for each of its label sets, before the next
/// family: the format requires the samples of a family to be together.
/// Metric and label names are not escaped, so they must be valid
/// Prometheus names (`[a-zA-Z_:][a-zA-Z0-9_:]*`, labels without `:`).
#[derive(Debug, Default)]
pub struct MetricsText {
    text: String,
}

impl MetricsText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the `# HELP` and `# TYPE` lines of a metric family.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        push_escaped(&mut self.text, help, false);
        self.text.push_str("\n# TYPE ");
        self.text.push_str(name);
        self.text.push(' ');
        self.text.push_str(kind.as_str());
        self.text.push('\n');
    }

    /// Writes one sample line: the name, the labels if any, and the value.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, label_value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(label), "invalid label name {label:?}");
                if index > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                push_escaped(&mut self.text, label_value, true);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }

    /// Returns the text written so far.
    pub fn finish(self) -> String {
        self.text
    }
}

/// Appends `text` escaped for HELP text (backslash and newline) or, with
/// `quote`, for a label value (also the double quote).
fn push_escaped(out: &mut String, text: &str, quote: bool) {
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            other => out.push(other),
        }
    }
}

/// Formats a sample value as the format expects, with `NaN`, `+Inf` and
/// `-Inf` for the special values.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    let Some(first) = characters.next() else { return false };
    (first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    let Some(first) = characters.next() else { return false };
    (first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples() {
        let mut text = MetricsText::new();
        text.family("roost_sessions", MetricKind::Gauge, "Open IMAP sessions.");
        text.sample("roost_sessions", &[("class", "trusted")], 3.0);
        text.sample("roost_sessions", &[("class", "public"), ("state", "auth")], 0.0);
        text.family("roost_rejected_total", MetricKind::Counter, "Rejected connections.");
        text.sample("roost_rejected_total", &[], 12.0);
        let expected = "\
# HELP roost_sessions Open IMAP sessions.
# TYPE roost_sessions gauge
roost_sessions{class=\"trusted\"} 3
roost_sessions{class=\"public\",state=\"auth\"} 0
# HELP roost_rejected_total Rejected connections.
# TYPE roost_rejected_total counter
roost_rejected_total 12
";
        assert_eq!(text.finish(), expected);
    }

    #[test]
    fn label_value_escaping() {
        let mut text = MetricsText::new();
        text.sample("m", &[("user", "a\\b\"c\nd")], 1.0);
        assert_eq!(text.finish(), "m{user=\"a\\\\b\\\"c\\nd\"} 1\n");
    }

    #[test]
    fn help_escaping_keeps_quotes() {
        let mut text = MetricsText::new();
        text.family("m", MetricKind::Gauge, "path C:\\x \"quoted\"\nsecond line");
        let output = text.finish();
        assert_eq!(output.lines().next(), Some("# HELP m path C:\\\\x \"quoted\"\\nsecond line"));
        assert_eq!(output.lines().count(), 2);
    }

    #[test]
    fn special_values() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(-7.0), "-7");
        assert_eq!(format_value(9_007_199_254_740_992.0), "9007199254740992");
    }

    #[test]
    fn name_checks() {
        assert!(is_metric_name("roost:sessions_total"));
        assert!(!is_metric_name("1abc"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("_class"));
        assert!(!is_label_name("a:b"));
    }

    #[test]
    fn head_end_forms() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(find_head_end(b"\r\n"), None);
    }

    fn render_fixed() -> RenderMetrics {
        Arc::new(|| "m 1\n".to_owned())
    }

    #[test]
    fn routing() {
        let render = render_fixed();
        let cases: &[(&[u8], u16)] = &[
            (b"GET /metrics HTTP/1.1\r\n\r\n", 200),
            (b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", 200),
            (b"HEAD /metrics HTTP/1.1\r\n\r\n", 200),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
            (b"GET / HTTP/1.1\r\n\r\n", 404),
            (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
            (b"get /metrics HTTP/1.1\r\n\r\n", 405),
            (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
            (b"GET /metrics\r\n\r\n", 400),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
            (b"GET /metrics FTP/1.1\r\n\r\n", 400),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(respond(head, &render).status, *status, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn head_request_has_no_body() {
        let bytes = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &render_fixed()).into_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Content-Length: 4\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
