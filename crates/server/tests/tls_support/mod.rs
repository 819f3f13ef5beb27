//! Helpers shared by the TLS tests: certificates made with rcgen at test
//! time, a rustls client over loopback and an echo server on `Transport`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls::{TlsAcceptor, TlsSettings};
use crate::transport::{RECORD_BYTES_MAX, TlsLimits, Transport};

/// Limits for test servers: a short handshake timeout so a stalled test
/// fails fast, and room for a large ClientHello.
pub fn limits() -> TlsLimits {
    TlsLimits {
        handshake_timeout: Duration::from_secs(10),
        incoming_bytes_max: 65536 + RECORD_BYTES_MAX,
    }
}

/// Bound on every client-side wait, so a broken server fails the test
/// instead of hanging it.
pub const CLIENT_WAIT: Duration = Duration::from_secs(10);

/// Writes a new certificate for localhost and its key as PEM files into
/// `dir`, named after `name`. Returns the paths and the DER certificate.
pub fn write_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let certificate = params.self_signed(&key_pair).unwrap();
    let certificate_path = dir.join(format!("{name}-certificate.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    fs::write(&certificate_path, certificate.pem()).unwrap();
    fs::write(&key_path, key_pair.serialize_pem()).unwrap();
    (certificate_path, key_path, certificate.der().clone())
}

/// Creates an acceptor for a new certificate in `dir`. Returns it with
/// that certificate.
pub fn acceptor(dir: &Path) -> (Arc<TlsAcceptor>, CertificateDer<'static>) {
    let (certificate_path, key_path, der) = write_certificate(dir, "server");
    let settings = TlsSettings {
        cert_path: Some(certificate_path),
        key_path: Some(key_path),
    };
    let acceptor = TlsAcceptor::load(&settings, dir).unwrap();
    (Arc::new(acceptor), der)
}

/// Builds a client config that trusts exactly `certificates`.
pub fn client_config(certificates: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate.clone()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Opens a TLS connection to `address` as a client of `localhost`.
pub async fn connect(
    address: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpStream::connect(address).await?;
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(CLIENT_WAIT, connector.connect(name, socket))
        .await
        .expect("TLS client handshake hung")
}

/// Reads from `transport` the way the IMAP session driver does: wait for
/// readability, then read without blocking. Returns 0 at the end of the
/// stream.
pub async fn read_some(transport: &mut Transport, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        transport.release_buffers();
        std::future::poll_fn(|cx| transport.poll_read_ready(cx)).await?;
        match transport.try_read(buf) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Echoes everything read back until the end of the stream, releasing
/// buffers before every wait, then closes. Returns the bytes echoed.
pub async fn echo(mut transport: Transport) -> std::io::Result<usize> {
    let mut buf = vec![0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = read_some(&mut transport, &mut buf).await?;
        if n == 0 {
            break;
        }
        transport.write_all(&buf[..n]).await?;
        total += n;
    }
    transport.shutdown().await?;
    Ok(total)
}

/// Binds a loopback listener. Returns it with its address.
pub async fn listen() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// Serves one implicit-TLS echo connection on `listener`.
pub fn spawn_echo_server(
    listener: TcpListener,
    acceptor: Arc<TlsAcceptor>,
) -> tokio::task::JoinHandle<std::io::Result<usize>> {
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        let transport = Transport::accept_tls(socket, &acceptor, &limits()).await?;
        echo(transport).await
    })
}

/// Sends `message` and reads back as many bytes.
pub async fn round_trip(client: &mut TlsStream<TcpStream>, message: &[u8]) -> Vec<u8> {
    client.write_all(message).await.unwrap();
    let mut echoed = vec![0; message.len()];
    tokio::time::timeout(CLIENT_WAIT, client.read_exact(&mut echoed))
        .await
        .expect("echo hung")
        .unwrap();
    echoed
}

/// Returns the SHA-256 fingerprint of the certificate the server presented.
pub fn presented_fingerprint(client: &TlsStream<TcpStream>) -> String {
    let certificates = client
        .get_ref()
        .1
        .peer_certificates()
        .expect("server presented no certificate");
    crate::tls::certificate::fingerprint_sha256(&certificates[0])
}
