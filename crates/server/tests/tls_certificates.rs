//! Certificate loading, generation and reload, checked through the
//! certificate a real TLS client is shown.

mod tls_support;

use roost_server::{tls, transport};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tls::{TlsAcceptor, TlsError, TlsSettings};
use tls_support::{
    client_config, connect, listen, presented_fingerprint, round_trip, write_certificate,
};
use tokio::io::AsyncWriteExt;

fn settings(certificate: &Path, key: &Path) -> TlsSettings {
    TlsSettings {
        cert_path: Some(certificate.to_owned()),
        key_path: Some(key.to_owned()),
    }
}

/// Loads `settings` and returns the error's message, checking that it is
/// one line that names `path`.
fn load_error(settings: &TlsSettings, data_dir: &Path, path: Option<&Path>) -> (TlsError, String) {
    let err = match TlsAcceptor::load(settings, data_dir) {
        Ok(_) => panic!("loading {settings:?} succeeded"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
    if let Some(path) = path {
        assert!(
            message.contains(&path.display().to_string()),
            "message does not name {}: {message}",
            path.display()
        );
    }
    (err, message)
}

#[test]
fn missing_certificate_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key, _) = write_certificate(dir.path(), "server");
    let missing = dir.path().join("absent.pem");
    let (err, message) = load_error(&settings(&missing, &key), dir.path(), Some(&missing));
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(message.contains("check the path"), "{message}");
}

#[test]
fn unreadable_key_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, _, _) = write_certificate(dir.path(), "server");
    // A folder cannot be read as a file, even by root.
    let folder = dir.path().join("key-folder");
    fs::create_dir(&folder).unwrap();
    let (err, _) = load_error(&settings(&certificate, &folder), dir.path(), Some(&folder));
    assert!(matches!(err, TlsError::Read { role: "key", .. }), "{err:?}");
}

#[test]
fn certificate_without_pem_block_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key, _) = write_certificate(dir.path(), "server");
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, "not a certificate\n").unwrap();
    let (err, message) = load_error(&settings(&empty, &key), dir.path(), Some(&empty));
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(message.contains("CERTIFICATE"), "{message}");
}

#[test]
fn key_file_without_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, _, _) = write_certificate(dir.path(), "server");
    // A certificate where the key should be: valid PEM, but no key.
    let (err, message) = load_error(
        &settings(&certificate, &certificate),
        dir.path(),
        Some(&certificate),
    );
    assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");
    assert!(message.contains("PRIVATE KEY"), "{message}");
}

#[test]
fn truncated_pem_named() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key, _) = write_certificate(dir.path(), "server");
    let text = fs::read_to_string(&certificate).unwrap();
    let truncated = dir.path().join("truncated.pem");
    fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let (err, message) = load_error(&settings(&truncated, &key), dir.path(), Some(&truncated));
    assert!(matches!(err, TlsError::InvalidPem { .. }), "{err:?}");
    assert!(message.contains("END CERTIFICATE"), "{message}");
}

#[test]
fn mismatched_key_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, _, _) = write_certificate(dir.path(), "first");
    let (_, other_key, _) = write_certificate(dir.path(), "second");
    let (err, message) = load_error(
        &settings(&certificate, &other_key),
        dir.path(),
        Some(&other_key),
    );
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert!(
        message.contains(&certificate.display().to_string()),
        "{message}"
    );
}

#[test]
fn one_path_without_the_other_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key, _) = write_certificate(dir.path(), "server");
    let only_certificate = TlsSettings {
        cert_path: Some(certificate),
        key_path: None,
    };
    let (err, _) = load_error(&only_certificate, dir.path(), None);
    assert!(matches!(err, TlsError::KeyPathMissing), "{err:?}");
    let only_key = TlsSettings {
        cert_path: None,
        key_path: Some(key),
    };
    let (err, _) = load_error(&only_key, dir.path(), None);
    assert!(matches!(err, TlsError::CertificatePathMissing), "{err:?}");
}

#[test]
fn key_formats_all_load() {
    let dir = tempfile::tempdir().unwrap();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let certificate_path = dir.path().join("certificate.pem");
    fs::write(&certificate_path, certificate.pem()).unwrap();

    // rcgen writes PKCS#8; SEC1 is the same key in the EC PRIVATE KEY form.
    let pkcs8_path = dir.path().join("pkcs8.pem");
    fs::write(&pkcs8_path, key_pair.serialize_pem()).unwrap();
    assert!(TlsAcceptor::load(&settings(&certificate_path, &pkcs8_path), dir.path()).is_ok());

    let sec1 = sec1_from_pkcs8(&key_pair.serialize_der());
    let sec1_path = dir.path().join("sec1.pem");
    fs::write(&sec1_path, pem_block("EC PRIVATE KEY", &sec1)).unwrap();
    let loaded = TlsAcceptor::load(&settings(&certificate_path, &sec1_path), dir.path());
    assert!(loaded.is_ok(), "SEC1 key rejected: {:?}", loaded.err());
}

/// Extracts the SEC1 ECPrivateKey from a PKCS#8 P-256 key as rcgen and
/// ring encode it: the privateKey OCTET STRING is its last element.
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    // The SEC1 structure starts with SEQUENCE, INTEGER 1 (30 .. 02 01 01).
    let start = pkcs8
        .windows(5)
        .position(|window| window[0] == 0x30 && window[2..] == [0x02, 0x01, 0x01])
        .expect("no ECPrivateKey in the PKCS#8 key");
    let length = pkcs8[start + 1] as usize;
    pkcs8[start..start + 2 + length].to_vec()
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[test]
fn self_signed_created_once_and_reused() {
    let data_dir = tempfile::tempdir().unwrap();
    let first = TlsAcceptor::load(&TlsSettings::default(), data_dir.path()).unwrap();
    let certificate_path = data_dir.path().join("tls").join("certificate.pem");
    assert_eq!(first.certificate_path(), certificate_path);

    let fingerprint = first.fingerprint();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    assert!(fingerprint.split(':').all(|pair| {
        pair.len() == 2
            && pair
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    }));

    let second = TlsAcceptor::load(&TlsSettings::default(), data_dir.path()).unwrap();
    assert_eq!(second.fingerprint(), fingerprint);
}

#[tokio::test]
async fn self_signed_certificate_serves_localhost() {
    let data_dir = tempfile::tempdir().unwrap();
    let acceptor = Arc::new(TlsAcceptor::load(&TlsSettings::default(), data_dir.path()).unwrap());
    let pem = fs::read(acceptor.certificate_path()).unwrap();
    let certificate = {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap()
    };
    let (listener, address) = listen().await;
    let server = tls_support::spawn_echo_server(listener, Arc::clone(&acceptor));

    let mut client = connect(address, client_config(&[certificate]))
        .await
        .unwrap();
    assert_eq!(presented_fingerprint(&client), acceptor.fingerprint());
    assert_eq!(round_trip(&mut client, b"s NOOP\r\n").await, b"s NOOP\r\n");
    client.shutdown().await.unwrap();
    assert!(server.await.unwrap().is_ok());
}

/// Replaces the certificate and key at the given paths with a new pair.
fn replace_certificate(
    dir: &Path,
    certificate: &PathBuf,
    key: &PathBuf,
    name: &str,
) -> rustls::pki_types::CertificateDer<'static> {
    let (new_certificate, new_key, der) = write_certificate(dir, name);
    fs::rename(new_certificate, certificate).unwrap();
    fs::rename(new_key, key).unwrap();
    der
}

#[tokio::test]
async fn reload_switches_certificate_for_new_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate_path, key_path, old) = write_certificate(dir.path(), "old");
    let acceptor =
        Arc::new(TlsAcceptor::load(&settings(&certificate_path, &key_path), dir.path()).unwrap());
    let old_fingerprint = acceptor.fingerprint();

    let (listener, address) = listen().await;
    let first_server = tls_support::spawn_echo_server(listener, Arc::clone(&acceptor));
    let mut first = connect(address, client_config(std::slice::from_ref(&old)))
        .await
        .unwrap();
    assert_eq!(presented_fingerprint(&first), old_fingerprint);

    let new = replace_certificate(dir.path(), &certificate_path, &key_path, "new");
    acceptor.reload().unwrap();
    let new_fingerprint = acceptor.fingerprint();
    assert_ne!(new_fingerprint, old_fingerprint);

    let (listener, address) = listen().await;
    let second_server = tls_support::spawn_echo_server(listener, Arc::clone(&acceptor));
    let mut second = connect(address, client_config(&[old, new])).await.unwrap();
    assert_eq!(presented_fingerprint(&second), new_fingerprint);

    // The session opened before the reload goes on with its own keys.
    assert_eq!(round_trip(&mut first, b"o NOOP\r\n").await, b"o NOOP\r\n");
    assert_eq!(round_trip(&mut second, b"n NOOP\r\n").await, b"n NOOP\r\n");
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    assert!(first_server.await.unwrap().is_ok());
    assert!(second_server.await.unwrap().is_ok());
}

#[tokio::test]
async fn failed_reload_keeps_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate_path, key_path, old) = write_certificate(dir.path(), "old");
    let acceptor =
        Arc::new(TlsAcceptor::load(&settings(&certificate_path, &key_path), dir.path()).unwrap());
    let old_fingerprint = acceptor.fingerprint();

    // A new certificate without its key: the pair no longer matches.
    let (new_certificate, _, _) = write_certificate(dir.path(), "new");
    fs::rename(new_certificate, &certificate_path).unwrap();
    let err = acceptor.reload().unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert_eq!(acceptor.fingerprint(), old_fingerprint);

    let (listener, address) = listen().await;
    let server = tls_support::spawn_echo_server(listener, Arc::clone(&acceptor));
    let mut client = connect(address, client_config(&[old])).await.unwrap();
    assert_eq!(presented_fingerprint(&client), old_fingerprint);
    client.shutdown().await.unwrap();
    assert!(server.await.unwrap().is_ok());
}
