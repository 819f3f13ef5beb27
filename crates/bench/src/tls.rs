//! The rustls client configuration for `--tls`: verification against a CA
//! file, or none at all for a server with a self-signed certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::messages::TlsJob;

/// Builds the client configuration and the server name of `job`.
pub fn client_config(job: &TlsJob) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    let config = match &job.ca_file {
        Some(path) => builder
            .with_root_certificates(read_roots(path)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    let name = ServerName::try_from(job.server_name.clone()).map_err(|err| {
        format!(
            "--server-name {}: invalid TLS server name: {err}",
            job.server_name
        )
    })?;
    Ok((Arc::new(config), name))
}

/// Returns ring, the provider the server uses too: aws-lc-rs, rustls'
/// default, needs cmake and nasm to build.
// NOTE: rustls 0.23.48 deprecates its ring provider because ring has no
// post-quantum key exchange, so sessions use X25519 or a NIST curve.
#[allow(deprecated)]
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("--ca {}: reading failed: {err}", path.display()))?;
    for certificate in certificates {
        let certificate =
            certificate.map_err(|err| format!("--ca {}: invalid PEM: {err}", path.display()))?;
        roots
            .add(certificate)
            .map_err(|err| format!("--ca {}: invalid certificate: {err}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--ca {}: no CERTIFICATE block found; pass a PEM file with the CA certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// Accepts any server certificate but still checks the handshake
/// signatures, so the connection is encrypted but unauthenticated. Only
/// for loopback benchmarks against a server with a self-signed
/// certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
