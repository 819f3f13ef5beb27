//! Certificate files: reading a PEM chain and key, and creating the
//! self-signed certificate used when none is configured.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use chrono::Datelike as _;
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Folder under the data folder that contains the generated certificate.
pub const GENERATED_DIR: &str = "tls";
/// File name of the generated certificate, in [`GENERATED_DIR`].
pub const GENERATED_CERTIFICATE_FILE: &str = "certificate.pem";
/// File name of the generated private key, in [`GENERATED_DIR`].
pub const GENERATED_KEY_FILE: &str = "key.pem";

/// Names the generated certificate is valid for.
const GENERATED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Years the generated certificate stays valid.
const GENERATED_VALIDITY_YEARS: i32 = 10;

/// A certificate chain and its private key, as read from PEM files.
pub struct CertificateFiles {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Reads the certificate chain (leaf first) and the private key (PKCS#8,
/// PKCS#1 or SEC1) from PEM files.
pub fn read_pem_files(
    certificate_path: &Path,
    key_path: &Path,
) -> Result<CertificateFiles, TlsError> {
    let certificate_pem = read_file(certificate_path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid_pem(certificate_path, "certificate", &err))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: certificate_path.to_owned(),
        });
    }

    let key_pem = read_file(key_path, "key")?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_owned(),
            });
        }
        Err(err) => return Err(invalid_pem(key_path, "key", &err)),
    };
    Ok(CertificateFiles { chain, key })
}

fn read_file(path: &Path, role: &'static str) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|cause| TlsError::Read {
        role,
        path: path.to_owned(),
        cause,
    })
}

fn invalid_pem(path: &Path, role: &'static str, err: &pem::Error) -> TlsError {
    let detail = match err {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "missing the line -----END {}-----",
                String::from_utf8_lossy(end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(detail) => format!("invalid base64: {detail}"),
        other => other.to_string(),
    };
    TlsError::InvalidPem {
        role,
        path: path.to_owned(),
        detail,
    }
}

/// Paths of the generated certificate and key under `data_dir`.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join(GENERATED_DIR);
    (
        dir.join(GENERATED_CERTIFICATE_FILE),
        dir.join(GENERATED_KEY_FILE),
    )
}

/// Creates a self-signed certificate for localhost, 127.0.0.1 and ::1
/// under `data_dir` unless both files already exist. Returns true when it
/// created them.
///
/// The key is written first, with mode 0600, and each file is written to a
/// temporary name and renamed, so a crash leaves either no certificate
/// (and the next start creates both again) or a whole pair.
pub fn ensure_generated(data_dir: &Path) -> Result<bool, TlsError> {
    let (certificate_path, key_path) = generated_paths(data_dir);
    if certificate_path.exists() && key_path.exists() {
        return Ok(false);
    }
    let dir = data_dir.join(GENERATED_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|cause| TlsError::Write {
            path: dir.clone(),
            cause,
        })?;

    let (certificate_pem, key_pem) = generate_self_signed()?;
    write_new_file(&key_path, key_pem.as_bytes(), 0o600)?;
    write_new_file(&certificate_path, certificate_pem.as_bytes(), 0o644)?;
    Ok(true)
}

/// Returns a new self-signed certificate and its ECDSA P-256 key, as PEM.
fn generate_self_signed() -> Result<(String, String), TlsError> {
    let names: Vec<String> = GENERATED_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut params = rcgen::CertificateParams::new(names).map_err(TlsError::Generate)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Roost self-signed certificate for localhost",
    );

    // Start the validity at the start of today (UTC) so a client whose
    // clock is a little behind still accepts the certificate. February 29
    // is moved to the 28th so that the end date exists.
    let today = chrono::Utc::now().date_naive();
    let day = if today.month() == 2 && today.day() == 29 {
        28
    } else {
        today.day()
    };
    let month = today.month() as u8;
    params.not_before = rcgen::date_time_ymd(today.year(), month, day as u8);
    params.not_after =
        rcgen::date_time_ymd(today.year() + GENERATED_VALIDITY_YEARS, month, day as u8);

    let key_pair = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let certificate = params.self_signed(&key_pair).map_err(TlsError::Generate)?;
    Ok((certificate.pem(), key_pair.serialize_pem()))
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let temporary = path.with_extension("pem.tmp");
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    };
    write().map_err(|cause| TlsError::Write {
        path: path.to_owned(),
        cause,
    })
}

/// Returns the SHA-256 fingerprint of a DER certificate as colon-separated
/// upper-case hex pairs (`AA:BB:...`), the form browsers and `openssl x509
/// -fingerprint -sha256` show.
pub fn fingerprint_sha256(certificate: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
    let pairs: Vec<String> = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    pairs.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_known_answer() {
        // SHA-256 of the empty input (FIPS 180-4 test vector).
        let fingerprint = fingerprint_sha256(b"");
        assert_eq!(
            fingerprint,
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn generated_key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_generated(dir.path()).unwrap());
        let (certificate_path, key_path) = generated_paths(dir.path());
        let key_mode = fs::metadata(&key_path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
            0o600
        );
        let files = read_pem_files(&certificate_path, &key_path).unwrap();
        assert_eq!(files.chain.len(), 1);
    }

    #[test]
    fn generated_certificate_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_generated(dir.path()).unwrap());
        let (certificate_path, _) = generated_paths(dir.path());
        let first = fs::read(&certificate_path).unwrap();
        assert!(!ensure_generated(dir.path()).unwrap());
        let second = fs::read(&certificate_path).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn half_generated_pair_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        ensure_generated(dir.path()).unwrap();
        let (certificate_path, key_path) = generated_paths(dir.path());
        fs::remove_file(&certificate_path).unwrap();
        assert!(ensure_generated(dir.path()).unwrap());
        assert!(read_pem_files(&certificate_path, &key_path).is_ok());
    }
}
