//! TLS configuration: the server certificate and key, the rustls settings
//! every handshake uses, and reloading them while the server runs.
//!
//! [`TlsAcceptor`] holds the current `rustls::ServerConfig` behind a lock
//! and swaps it whole on [`TlsAcceptor::reload`]. A handshake takes the
//! config that is current when it starts and keeps it, so sessions that are
//! already open are never affected by a reload.
//!
//! This module reads certificate files and builds rustls configs. It must
//! not know sockets or sessions (that is [`crate::transport`]) or IMAP.

pub mod certificate;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rustls::ServerConfig;
use rustls::server::ProducesTickets;
use tracing::info;

/// The source of the server certificate: files, or a generated one.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first. With `key_path`
    /// unset too, a self-signed certificate is created under the data
    /// folder and used instead.
    pub cert_path: Option<PathBuf>,
    /// PEM file with the private key of the leaf certificate, as PKCS#8,
    /// PKCS#1 (RSA) or SEC1 (EC).
    pub key_path: Option<PathBuf>,
}

/// A certificate or key problem, as one line naming the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "the TLS certificate path is set but the key path is not: set both, or neither to use a generated self-signed certificate"
    )]
    KeyPathMissing,
    #[error(
        "the TLS key path is set but the certificate path is not: set both, or neither to use a generated self-signed certificate"
    )]
    CertificatePathMissing,
    // The inner errors are named `cause`, not `source`, so they are shown
    // once in the message and not again as an error source in a chain.
    #[error("failed to read the TLS {role} file {}: {cause}; check the path and that roost may read it", path.display())]
    Read {
        role: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("the TLS {role} file {} is not valid PEM ({detail}); replace it with a PEM file", path.display())]
    InvalidPem {
        role: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "the TLS certificate file {} contains no CERTIFICATE block; put the PEM certificate chain in it, leaf first",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "the TLS key file {} contains no private key; put a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in it",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error(
        "the TLS key file {} does not match the certificate in {}; use the key the certificate was issued for",
        key.display(),
        certificate.display()
    )]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error("the TLS certificate {} or key {} was rejected: {cause}", certificate.display(), key.display())]
    Rejected {
        certificate: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
    #[error("failed to write {}: {cause}; check that the data folder is writable", path.display())]
    Write { path: PathBuf, cause: io::Error },
    #[error("failed to generate a self-signed TLS certificate: {0}")]
    Generate(rcgen::Error),
    #[error("failed to set up TLS session tickets: {0}")]
    Tickets(rustls::Error),
}

/// ALPN protocol name of IMAP (IANA's TLS ALPN registry). A client that
/// offers ALPN without it is rejected, which stops a TLS connection meant
/// for another protocol from being served as IMAP (the ALPACA attack).
/// Clients that offer no ALPN are accepted.
const ALPN_IMAP: &[u8] = b"imap";

/// The TLS settings new handshakes use, replaceable while the server runs.
pub struct TlsAcceptor {
    source: CertificateSource,
    /// Shared by every config so that session tickets issued before a
    /// reload stay valid after it.
    ticketer: Arc<dyn ProducesTickets>,
    current: RwLock<Loaded>,
}

/// The certificate and key files, configured or generated.
struct CertificateSource {
    certificate_path: PathBuf,
    key_path: PathBuf,
    /// The data folder, when the pair is the generated self-signed one
    /// (created again there if it goes missing).
    generated_in: Option<PathBuf>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

impl TlsAcceptor {
    /// Loads the configured certificate, or creates (on first start) and
    /// then reuses a self-signed one in `DATA_DIR/tls/`. Logs the
    /// certificate's SHA-256 fingerprint. Reads files, so a running server
    /// calls it from a blocking task.
    pub fn load(settings: &TlsSettings, data_dir: &Path) -> Result<TlsAcceptor, TlsError> {
        let (certificate_path, key_path, generated_in) =
            match (&settings.cert_path, &settings.key_path) {
                (Some(certificate), Some(key)) => (certificate.clone(), key.clone(), None),
                (Some(_), None) => return Err(TlsError::KeyPathMissing),
                (None, Some(_)) => return Err(TlsError::CertificatePathMissing),
                (None, None) => {
                    let (certificate, key) = certificate::generated_paths(data_dir);
                    (certificate, key, Some(data_dir.to_owned()))
                }
            };
        let source = CertificateSource {
            certificate_path,
            key_path,
            generated_in,
        };
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Tickets)?;
        let loaded = source.read(&ticketer)?;
        Ok(TlsAcceptor {
            source,
            ticketer,
            current: RwLock::new(loaded),
        })
    }

    /// Rereads the certificate and key (for SIGHUP). New handshakes use the
    /// new pair; sessions already open keep theirs. On failure the current
    /// pair stays in use and the error is returned for the caller to log.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = self.source.read(&self.ticketer)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded;
        Ok(())
    }

    /// Returns the config for a handshake that starts now.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current().config)
    }

    /// Returns the SHA-256 fingerprint of the current leaf certificate, as
    /// `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        self.current().fingerprint.clone()
    }

    /// Returns the certificate file in use, configured or generated.
    pub fn certificate_path(&self) -> &Path {
        &self.source.certificate_path
    }

    fn current(&self) -> RwLockReadGuard<'_, Loaded> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CertificateSource {
    fn read(&self, ticketer: &Arc<dyn ProducesTickets>) -> Result<Loaded, TlsError> {
        let generated = match &self.generated_in {
            Some(data_dir) => certificate::ensure_generated(data_dir)?,
            None => false,
        };
        let files = certificate::read_pem_files(&self.certificate_path, &self.key_path)?;
        let fingerprint = certificate::fingerprint_sha256(&files.chain[0]);
        let config = self.build_config(files, ticketer)?;
        info!(
            certificate = %self.certificate_path.display(),
            fingerprint = %fingerprint,
            self_signed = self.generated_in.is_some(),
            generated,
            "TLS certificate loaded"
        );
        Ok(Loaded {
            config: Arc::new(config),
            fingerprint,
        })
    }

    fn build_config(
        &self,
        files: certificate::CertificateFiles,
        ticketer: &Arc<dyn ProducesTickets>,
    ) -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|source| self.rejected(source))?
            .with_no_client_auth()
            .with_single_cert(files.chain, files.key)
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch {
                        certificate: self.certificate_path.clone(),
                        key: self.key_path.clone(),
                    }
                }
                source => self.rejected(source),
            })?;
        config.ticketer = Arc::clone(ticketer);
        config.alpn_protocols = vec![ALPN_IMAP.to_vec()];
        Ok(config)
    }

    fn rejected(&self, cause: rustls::Error) -> TlsError {
        TlsError::Rejected {
            certificate: self.certificate_path.clone(),
            key: self.key_path.clone(),
            cause,
        }
    }
}

/// Returns the crypto provider of every TLS session: ring, because
/// aws-lc-rs (rustls' default provider) needs cmake and nasm to build.
// NOTE: rustls 0.23.48 deprecates its ring provider because ring has no
// post-quantum key exchange, so sessions use X25519 or a NIST curve.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
