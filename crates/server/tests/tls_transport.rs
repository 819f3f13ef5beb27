//! TLS sessions through `Transport` over loopback, against a rustls client
//! and hand-made records.

mod tls_support;

use roost_server::{tls, transport};

use std::io::ErrorKind;
use std::time::Duration;

use tls_support::{
    CLIENT_WAIT, acceptor, client_config, connect, limits, listen, read_some, round_trip,
    spawn_echo_server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use transport::{RECORD_BYTES_MAX, TlsLimits, Transport};

#[tokio::test]
async fn echo_over_tls13() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    for line in [&b"a1 NOOP\r\n"[..], b"a2 CAPABILITY\r\n", b"a3 LOGOUT\r\n"] {
        assert_eq!(round_trip(&mut client, line).await, line);
    }
    client.shutdown().await.unwrap();

    let echoed = server.await.unwrap().unwrap();
    assert_eq!(echoed, 9 + 15 + 11);
}

#[tokio::test]
async fn echo_over_tls12() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client = connect(address, config).await.unwrap();
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        round_trip(&mut client, b"t1 NOOP\r\n").await,
        b"t1 NOOP\r\n"
    );
    client.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap().unwrap(), 9);
}

#[tokio::test]
async fn large_write_spans_many_records() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut transport = Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .unwrap();
        transport.write_all(&sent).await.unwrap();
        transport.shutdown().await.unwrap();
    });

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(CLIENT_WAIT, client.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "received bytes differ from those sent");
    server.await.unwrap();
}

#[tokio::test]
async fn close_notify_ends_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    client.write_all(b"x LOGOUT\r\n").await.unwrap();
    // The client's shutdown sends close_notify; the server reads the end of
    // the stream after the data, echoes and sends its own.
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(CLIENT_WAIT, client.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_ok(), "client saw no clean close_notify: {read:?}");
    assert_eq!(rest, b"x LOGOUT\r\n");
    assert_eq!(server.await.unwrap().unwrap(), 10);
}

#[tokio::test]
async fn close_notify_alone_ends_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    client.write_all(b"y LOGOUT\r\n").await.unwrap();
    // close_notify while the TCP connection stays open in both directions.
    client.get_mut().1.send_close_notify();
    client.flush().await.unwrap();

    let echoed = tokio::time::timeout(CLIENT_WAIT, server).await;
    assert_eq!(echoed.unwrap().unwrap().unwrap(), 10);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(CLIENT_WAIT, client.read_to_end(&mut rest)).await;
    assert_eq!(rest, b"y LOGOUT\r\n");
    assert!(read.unwrap().is_ok());
}

#[tokio::test]
async fn client_key_update_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    for round in 0..3 {
        // A TLS 1.3 KeyUpdate with update_requested: the server must switch
        // its own sending keys, or the client fails to decrypt the echo.
        client.get_mut().1.refresh_traffic_keys().unwrap();
        let line = format!("k{round} NOOP\r\n");
        assert_eq!(
            round_trip(&mut client, line.as_bytes()).await,
            line.as_bytes()
        );
    }
    client.shutdown().await.unwrap();
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn tls11_client_hello_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .map(|_| ())
    });

    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(&client_hello(0x0302)).await.unwrap();
    let mut alert = [0u8; 7];
    tokio::time::timeout(CLIENT_WAIT, client.read_exact(&mut alert))
        .await
        .unwrap()
        .unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert_eq!(
        alert[0], 21,
        "expected an alert record, got {alert:?}; server: {err}"
    );
    assert_eq!(alert[5], 2, "alert is not fatal: {alert:?}");
    assert_eq!(
        alert[6], 70,
        "alert is not protocol_version: {alert:?}; server: {err}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidData);
}

/// A TLS ClientHello offering only `version` (0x0302 is TLS 1.1), with the
/// cipher suites and extensions an OpenSSL client of that version sends.
fn client_hello(version: u16) -> Vec<u8> {
    let mut extensions = Vec::new();
    // supported_groups: x25519, secp256r1.
    extensions.extend_from_slice(&[0x00, 0x0a, 0, 6, 0, 4, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed.
    extensions.extend_from_slice(&[0x00, 0x0b, 0, 2, 1, 0]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pkcs1_sha256.
    extensions.extend_from_slice(&[0x00, 0x0d, 0, 6, 0, 4, 0x04, 0x03, 0x04, 0x01]);

    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA.
    body.extend_from_slice(&[0, 4, 0xc0, 0x09, 0x00, 0x2f]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);

    let mut handshake = vec![1, 0, 0, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn untrusted_certificate_alert_fails_accept() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .map(|_| ())
    });

    // A client that trusts another certificate rejects the server's and
    // sends a fatal alert.
    let other = tempfile::tempdir().unwrap();
    let (_, other_certificate) = tls_support::acceptor(other.path());
    let client = connect(address, client_config(&[other_certificate])).await;
    assert!(client.is_err());

    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(err.to_string().contains("alert"), "unexpected error: {err}");
}

#[tokio::test]
async fn corrupt_record_fails_read_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    assert_eq!(
        round_trip(&mut client, b"c1 NOOP\r\n").await,
        b"c1 NOOP\r\n"
    );
    // An application-data record that cannot decrypt, sent past the
    // client's TLS layer.
    let mut record = vec![23, 3, 3, 0, 32];
    record.extend_from_slice(&[0u8; 32]);
    client.get_mut().0.write_all(&record).await.unwrap();

    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(CLIENT_WAIT, client.read(&mut buf))
        .await
        .unwrap();
    assert!(
        read.is_err(),
        "client read {read:?} instead of the server's alert"
    );
}

#[tokio::test]
async fn stalled_handshake_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let limits = TlsLimits {
            handshake_timeout: Duration::from_millis(200),
            ..limits()
        };
        Transport::accept_tls(socket, &acceptor, &limits)
            .await
            .map(|_| ())
    });

    // Half a record header, then nothing.
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(&[22, 3]).await.unwrap();

    let err = tokio::time::timeout(CLIENT_WAIT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    drop(client);
}

#[tokio::test]
async fn peer_closing_mid_handshake_is_eof() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .map(|_| ())
    });

    let mut client = TcpStream::connect(address).await.unwrap();
    let hello = client_hello(0x0303);
    client.write_all(&hello[..10]).await.unwrap();
    drop(client);

    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn incoming_limit_below_one_record_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let _client = TcpStream::connect(address).await.unwrap();
    let (socket, _) = listener.accept().await.unwrap();

    let limits = TlsLimits {
        incoming_bytes_max: RECORD_BYTES_MAX - 1,
        ..limits()
    };
    let result = Transport::accept_tls(socket, &acceptor, &limits).await;
    assert_eq!(
        result.err().map(|err| err.kind()),
        Some(ErrorKind::InvalidInput)
    );
}

#[tokio::test]
async fn incoming_limit_of_one_record_carries_full_records() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let limits = TlsLimits {
            incoming_bytes_max: RECORD_BYTES_MAX,
            ..limits()
        };
        let transport = Transport::accept_tls(socket, &acceptor, &limits).await?;
        tls_support::echo(transport).await
    });

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    let payload = vec![b'x'; 4 * 16384];
    assert!(round_trip(&mut client, &payload).await == payload);
    client.shutdown().await.unwrap();
    assert_eq!(server.await.unwrap().unwrap(), payload.len());
}

#[tokio::test]
async fn alpn_other_than_imap_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());

    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor.clone());
    let mut config = client_config(std::slice::from_ref(&certificate));
    config.alpn_protocols = vec![b"imap".to_vec()];
    let mut client = connect(address, config).await.unwrap();
    assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"imap"[..]));
    client.shutdown().await.unwrap();
    assert!(server.await.unwrap().is_ok());

    let (listener, address) = listen().await;
    let server = spawn_echo_server(listener, acceptor);
    let mut config = client_config(&[certificate]);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    assert!(connect(address, config).await.is_err());
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn release_buffers_frees_after_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut transport = Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .unwrap();
        let mut buf = vec![0; 16 * 1024];
        let mut received = 0;
        while received < 40_000 {
            let n = read_some(&mut transport, &mut buf).await.unwrap();
            assert!(n > 0, "stream ended early");
            received += n;
        }
        transport.write_all(&vec![b'y'; 40_000]).await.unwrap();
        let Transport::Tls(session) = &mut transport else {
            panic!("transport is not TLS")
        };
        let capacity_after_traffic = session.buffer_capacity();
        session.release_buffers();
        (capacity_after_traffic, session.buffer_capacity())
    });

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    client.write_all(&vec![b'x'; 40_000]).await.unwrap();
    let mut reply = vec![0; 40_000];
    tokio::time::timeout(CLIENT_WAIT, client.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let (capacity_after_traffic, capacity_after_release) = server.await.unwrap();
    assert!(
        capacity_after_traffic > 0,
        "no buffer was held after traffic, so the test proves nothing"
    );
    assert_eq!(capacity_after_release, 0);
}

/// Reads from a plaintext transport until `received` contains `lines` CRLF
/// lines, one byte at a time when `bytewise` is set.
async fn read_lines(transport: &mut Transport, lines: usize, bytewise: bool) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = vec![0; if bytewise { 1 } else { 4096 }];
    while received.windows(2).filter(|pair| pair == b"\r\n").count() < lines {
        let n = read_some(transport, &mut buf).await.unwrap();
        assert!(n > 0, "stream ended early");
        received.extend_from_slice(&buf[..n]);
    }
    received
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut transport = Transport::Plain(socket);
        let mut received = read_lines(&mut transport, 2, false).await;
        let line_end = received
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .unwrap()
            + 2;
        let after_starttls = received.split_off(line_end);
        assert_eq!(after_starttls, b"b LOGIN injected secret\r\n");
        transport
            .write_all(b"a OK Begin TLS negotiation now\r\n")
            .await
            .unwrap();

        let mut transport = transport
            .start_tls(&acceptor, &limits(), after_starttls)
            .await
            .unwrap();
        assert!(transport.is_tls());
        let mut buf = vec![0; 4096];
        let n = read_some(&mut transport, &mut buf).await.unwrap();
        buf.truncate(n);
        buf
    });

    let mut socket = TcpStream::connect(address).await.unwrap();
    socket
        .write_all(b"a STARTTLS\r\nb LOGIN injected secret\r\n")
        .await
        .unwrap();
    let mut reply = vec![0; b"a OK Begin TLS negotiation now\r\n".len()];
    socket.read_exact(&mut reply).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config(&[certificate])));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = connector.connect(name, socket).await.unwrap();
    client.write_all(b"c NOOP\r\n").await.unwrap();

    let first_after_tls = server.await.unwrap();
    assert_eq!(first_after_tls, b"c NOOP\r\n");
}

#[tokio::test]
async fn starttls_fails_on_plaintext_left_in_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut transport = Transport::Plain(socket);
        // Only the STARTTLS line is read, so the pipelined command stays
        // in the socket and reaches the handshake.
        let received = read_lines(&mut transport, 1, true).await;
        assert_eq!(received, b"a STARTTLS\r\n");
        transport
            .write_all(b"a OK Begin TLS negotiation now\r\n")
            .await
            .unwrap();
        transport
            .start_tls(&acceptor, &limits(), Vec::new())
            .await
            .map(|_| ())
    });

    let mut socket = TcpStream::connect(address).await.unwrap();
    socket
        .write_all(b"a STARTTLS\r\nb LOGIN injected secret\r\n")
        .await
        .unwrap();

    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
}

#[tokio::test]
async fn starttls_twice_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, certificate) = acceptor(dir.path());
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let transport = Transport::accept_tls(socket, &acceptor, &limits())
            .await
            .unwrap();
        transport
            .start_tls(&acceptor, &limits(), Vec::new())
            .await
            .map(|_| ())
    });

    let _client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
