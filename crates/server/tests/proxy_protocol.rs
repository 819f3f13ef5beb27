//! PROXY protocol headers read from real loopback connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roost_server::proxy_protocol::{DEFAULT_MAX_HEADER_BYTES, ProxyError, read_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(5);
const COMMAND: &[u8] = b"a001 CAPABILITY\r\n";

/// Connects a client to a fresh listener and returns both ends.
async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Returns everything the client sends after the header, until it closes.
async fn rest_of_stream(mut server: TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, server.read_to_end(&mut rest)).await.unwrap().unwrap();
    rest
}

fn v2_ipv4_header() -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 7]);
    header.extend_from_slice(&[203, 0, 113, 7, 127, 0, 0, 1]);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&143u16.to_be_bytes());
    header.extend_from_slice(&[0x04, 0x00, 0x04, b'p', b'a', b'd', b'!']);
    header
}

async fn assert_header_then_command(header: &[u8], expected_source: Option<SocketAddr>) {
    let (mut client, server) = connected_pair().await;
    let mut payload = header.to_vec();
    payload.extend_from_slice(COMMAND);
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap();

    let source = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await.unwrap();
    assert_eq!(source, expected_source);
    assert_eq!(rest_of_stream(server).await, COMMAND);
}

#[tokio::test]
async fn v1_tcp4_leaves_command_unread() {
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 143\r\n";
    assert_header_then_command(header, Some("203.0.113.7:40000".parse().unwrap())).await;
}

#[tokio::test]
async fn v1_tcp6_leaves_command_unread() {
    let header = b"PROXY TCP6 2001:db8::7 ::1 40000 143\r\n";
    assert_header_then_command(header, Some("[2001:db8::7]:40000".parse().unwrap())).await;
}

#[tokio::test]
async fn v1_unknown_returns_none() {
    assert_header_then_command(b"PROXY UNKNOWN\r\n", None).await;
}

#[tokio::test]
async fn v2_with_tlv_leaves_command_unread() {
    assert_header_then_command(&v2_ipv4_header(), Some("203.0.113.7:40000".parse().unwrap())).await;
}

#[tokio::test]
async fn v2_local_returns_none() {
    let header = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    assert_header_then_command(header, None).await;
}

#[tokio::test]
async fn header_split_across_writes() {
    for header in [b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 143\r\n".to_vec(), v2_ipv4_header()] {
        let (mut client, server) = connected_pair().await;
        let writer = tokio::spawn(async move {
            // Split inside the signature, inside the fixed part and at the
            // last byte, so every parser state sees a partial header.
            let cuts = [3, 13, header.len() - 1];
            let mut start = 0;
            for cut in cuts {
                client.write_all(&header[start..cut]).await.unwrap();
                client.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                start = cut;
            }
            let mut last = header[start..].to_vec();
            last.extend_from_slice(COMMAND);
            client.write_all(&last).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });

        let source = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await.unwrap();
        assert_eq!(source, Some("203.0.113.7:40000".parse().unwrap()));
        assert_eq!(rest_of_stream(server).await, COMMAND);
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn partial_header_times_out() {
    let (mut client, server) = connected_pair().await;
    client.write_all(b"PROXY TCP4 203.0.113.7").await.unwrap();

    let started = Instant::now();
    let result = read_header(&server, DEFAULT_MAX_HEADER_BYTES, Duration::from_millis(200)).await;
    assert!(matches!(result, Err(ProxyError::TimedOut(_))), "{result:?}");
    assert!(started.elapsed() < TIMEOUT);
    drop(client);
}

#[tokio::test]
async fn silent_client_times_out() {
    let (client, server) = connected_pair().await;
    let result = read_header(&server, DEFAULT_MAX_HEADER_BYTES, Duration::from_millis(200)).await;
    assert!(matches!(result, Err(ProxyError::TimedOut(_))), "{result:?}");
    drop(client);
}

#[tokio::test]
async fn close_before_header_end() {
    let (mut client, server) = connected_pair().await;
    client.write_all(b"PROXY TCP4 203.0.113.7").await.unwrap();
    client.shutdown().await.unwrap();

    let result = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await;
    match result {
        Err(ProxyError::Closed { received }) => assert_eq!(received, 22),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_rejected_with_message() {
    let (mut client, server) = connected_pair().await;
    client.write_all(COMMAND).await.unwrap();

    let error = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await.unwrap_err();
    assert!(matches!(error, ProxyError::Invalid(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("invalid PROXY header: "), "{message}");
    assert!(message.contains("a001 CAPABILITY"), "{message}");
}

#[tokio::test]
async fn invalid_address_rejected_with_message() {
    let (mut client, server) = connected_pair().await;
    client.write_all(b"PROXY TCP4 203.0.113 127.0.0.1 40000 143\r\n").await.unwrap();

    let error = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PROXY v1 header has an invalid source address \"203.0.113\""), "{message}");
}

#[tokio::test]
async fn v2_header_at_and_past_limit() {
    let limit = 64;
    for (tlv_bytes, fits) in [(limit - 28, true), (limit - 27, false)] {
        let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
        header.extend_from_slice(&u16::try_from(12 + tlv_bytes).unwrap().to_be_bytes());
        header.extend_from_slice(&[203, 0, 113, 7, 127, 0, 0, 1, 0x9c, 0x40, 0, 143]);
        header.extend_from_slice(&[0x04]);
        header.extend_from_slice(&u16::try_from(tlv_bytes - 3).unwrap().to_be_bytes());
        header.extend(std::iter::repeat_n(b'x', tlv_bytes - 3));

        let (mut client, server) = connected_pair().await;
        client.write_all(&header).await.unwrap();
        client.write_all(COMMAND).await.unwrap();
        let result = read_header(&server, limit, TIMEOUT).await;
        if fits {
            assert_eq!(header.len(), limit);
            assert_eq!(result.unwrap(), Some("203.0.113.7:40000".parse().unwrap()));
            client.shutdown().await.unwrap();
            assert_eq!(rest_of_stream(server).await, COMMAND);
        } else {
            assert_eq!(header.len(), limit + 1);
            assert!(matches!(result, Err(ProxyError::TooLong { limit: 64 })), "{result:?}");
        }
    }
}

#[tokio::test]
async fn v1_line_without_end_too_long() {
    let (mut client, server) = connected_pair().await;
    client.write_all(b"PROXY ").await.unwrap();
    client.write_all(&[b'x'; 200]).await.unwrap();

    let result = read_header(&server, DEFAULT_MAX_HEADER_BYTES, TIMEOUT).await;
    assert!(matches!(result, Err(ProxyError::TooLong { limit: 107 })), "{result:?}");
}
