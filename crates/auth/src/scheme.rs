//! Password schemes: verifying a stored `{SCHEME}data` field and hashing
//! new passwords.
//!
//! This module owns the scheme names, their Dovecot spellings and the
//! constant-time comparisons. Files, user names and reloading are outside
//! it.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Scheme that [`hash_password`] writes for new passwords.
pub const NEW_PASSWORD_SCHEME: &str = "ARGON2ID";

/// Argon2id memory cost of new hashes, in KiB.
///
/// Every login pays the hash cost once, and after a server restart every
/// client of every user logs in again at the same moment. 7 MiB with 5
/// passes is about the same work as the minimum in the OWASP Password
/// Storage Cheat Sheet (19 MiB with 2 passes) but needs less memory per
/// login: 1,000 logins in flight hold about 7 GiB rather than 19 GiB.
/// Existing hashes keep their own parameters, so changing these later
/// affects only new passwords.
const ARGON2_MEMORY_KIB: u32 = 7 * 1024;
/// Argon2id passes of new hashes; see [`ARGON2_MEMORY_KIB`].
const ARGON2_PASSES: u32 = 5;
/// Argon2id lanes of new hashes. One lane keeps a login on one core, so the
/// blocking pool's threads, not one login, decide how many cores logins use.
const ARGON2_LANES: u32 = 1;

/// Base64 that accepts Dovecot's padded output and unpadded input alike.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A password field split into its scheme name and its data.
///
/// A field without a `{SCHEME}` prefix is `CRYPT`, which is the default
/// scheme of Dovecot's passwd-file driver.
pub(crate) struct PasswordField<'a> {
    /// Upper-case scheme name, including any `.B64` or `.HEX` suffix.
    pub scheme_name: String,
    pub data: &'a str,
}

impl<'a> PasswordField<'a> {
    pub fn parse(field: &'a str) -> PasswordField<'a> {
        if let Some(rest) = field.strip_prefix('{')
            && let Some(end) = rest.find('}')
        {
            return PasswordField {
                scheme_name: rest[..end].to_ascii_uppercase(),
                data: &rest[end + 1..],
            };
        }
        PasswordField {
            scheme_name: "CRYPT".to_owned(),
            data: field,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DigestKind {
    Sha1,
    Sha256,
    Sha512,
}

impl DigestKind {
    fn output_len(self) -> usize {
        match self {
            DigestKind::Sha1 => 20,
            DigestKind::Sha256 => 32,
            DigestKind::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().to_vec()
        }
        match self {
            DigestKind::Sha1 => run::<Sha1>(parts),
            DigestKind::Sha256 => run::<Sha256>(parts),
            DigestKind::Sha512 => run::<Sha512>(parts),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Base64,
    Hex,
}

/// A scheme this crate can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Plain(Option<Encoding>),
    Sha512Crypt,
    Sha256Crypt,
    BlfCrypt,
    Argon2id,
    Argon2i,
    /// Unsalted digest, `{SHA}` and friends.
    Digest(DigestKind, Encoding),
    /// Digest of password then salt, stored as digest then salt.
    SaltedDigest(DigestKind, Encoding),
    /// Detected from the `$id$` prefix of the data.
    Crypt,
}

/// Resolves a scheme name the way Dovecot spells it (case-insensitive,
/// with an optional `.B64`, `.BASE64` or `.HEX` suffix on the schemes
/// that store raw bytes). Returns `None` for names this crate cannot verify.
fn resolve_scheme(name: &str) -> Option<Scheme> {
    let (base, encoding) = match name.rsplit_once('.') {
        Some((base, "B64" | "BASE64")) => (base, Some(Encoding::Base64)),
        Some((base, "HEX")) => (base, Some(Encoding::Hex)),
        Some(_) => return None,
        None => (name, None),
    };
    let digest_encoding = encoding.unwrap_or(Encoding::Base64);
    let scheme = match base {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain(encoding),
        "SHA" | "SHA1" => Scheme::Digest(DigestKind::Sha1, digest_encoding),
        "SHA256" => Scheme::Digest(DigestKind::Sha256, digest_encoding),
        "SHA512" => Scheme::Digest(DigestKind::Sha512, digest_encoding),
        "SSHA" => Scheme::SaltedDigest(DigestKind::Sha1, digest_encoding),
        "SSHA256" => Scheme::SaltedDigest(DigestKind::Sha256, digest_encoding),
        "SSHA512" => Scheme::SaltedDigest(DigestKind::Sha512, digest_encoding),
        _ if encoding.is_some() => return None,
        "SHA512-CRYPT" => Scheme::Sha512Crypt,
        "SHA256-CRYPT" => Scheme::Sha256Crypt,
        "BLF-CRYPT" => Scheme::BlfCrypt,
        "ARGON2ID" => Scheme::Argon2id,
        "ARGON2I" => Scheme::Argon2i,
        "CRYPT" => Scheme::Crypt,
        _ => return None,
    };
    Some(scheme)
}

/// Returns the scheme a `CRYPT` hash uses, detected from its `$id$` prefix,
/// or the Dovecot name of an unsupported one.
fn detect_crypt(data: &str) -> Result<Scheme, &'static str> {
    if data.starts_with("$6$") {
        Ok(Scheme::Sha512Crypt)
    } else if data.starts_with("$5$") {
        Ok(Scheme::Sha256Crypt)
    } else if data.starts_with("$2a$") || data.starts_with("$2b$") || data.starts_with("$2y$") {
        Ok(Scheme::BlfCrypt)
    } else if data.starts_with("$1$") {
        Err("MD5-CRYPT")
    } else if data.starts_with("$y$") {
        Err("CRYPT (yescrypt)")
    } else if data.starts_with('$') {
        Err("CRYPT (unknown $id$ prefix)")
    } else {
        Err("DES-CRYPT")
    }
}

/// Reason a stored password did not verify. The caller adds the user name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VerifyFailure {
    Mismatch,
    Unsupported(String),
    Malformed { scheme: String, reason: String },
}

/// Returns the name of the scheme of a stored field if this crate cannot
/// verify it, e.g. `MD5-CRYPT`.
pub(crate) fn unsupported_scheme(field: &str) -> Option<String> {
    let parsed = PasswordField::parse(field);
    match resolve_scheme(&parsed.scheme_name) {
        None => Some(parsed.scheme_name),
        Some(Scheme::Crypt) => detect_crypt(parsed.data).err().map(str::to_owned),
        Some(_) => None,
    }
}

/// Checks `password` against a stored `{SCHEME}data` field.
///
/// Every comparison of derived bytes is constant-time. The work done does
/// depend on the scheme and its parameters, which are not secret.
pub(crate) fn verify_password(field: &str, password: &Secret) -> Result<(), VerifyFailure> {
    let parsed = PasswordField::parse(field);
    let Some(mut scheme) = resolve_scheme(&parsed.scheme_name) else {
        return Err(VerifyFailure::Unsupported(parsed.scheme_name));
    };
    if scheme == Scheme::Crypt {
        scheme = detect_crypt(parsed.data)
            .map_err(|name| VerifyFailure::Unsupported(name.to_owned()))?;
    }
    let malformed = |reason: String| VerifyFailure::Malformed {
        scheme: parsed.scheme_name.clone(),
        reason,
    };
    let password = password.expose().as_bytes();
    let data = parsed.data;

    let matched = match scheme {
        Scheme::Plain(encoding) => {
            let stored = match encoding {
                None => data.as_bytes().to_vec(),
                Some(encoding) => decode(data, encoding).map_err(malformed)?,
            };
            equal_plaintext(&stored, password)
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            verify_sha_crypt(scheme, data, password).map_err(malformed)?
        }
        Scheme::BlfCrypt => verify_bcrypt(data, password).map_err(malformed)?,
        Scheme::Argon2id | Scheme::Argon2i => {
            verify_argon2(scheme, data, password).map_err(malformed)?
        }
        Scheme::Digest(kind, encoding) => {
            let stored = decode(data, encoding).map_err(malformed)?;
            if stored.len() != kind.output_len() {
                return Err(malformed(format!(
                    "digest is {} bytes, expected {}",
                    stored.len(),
                    kind.output_len()
                )));
            }
            bool::from(kind.digest(&[password]).ct_eq(&stored))
        }
        Scheme::SaltedDigest(kind, encoding) => {
            let stored = decode(data, encoding).map_err(malformed)?;
            if !(stored.len() > kind.output_len()) {
                return Err(malformed(format!(
                    "data is {} bytes, expected a {}-byte digest followed by a salt",
                    stored.len(),
                    kind.output_len()
                )));
            }
            let (digest, salt) = stored.split_at(kind.output_len());
            bool::from(kind.digest(&[password, salt]).ct_eq(digest))
        }
        Scheme::Crypt => unreachable!("CRYPT was resolved to a concrete scheme above"),
    };

    if matched {
        Ok(())
    } else {
        Err(VerifyFailure::Mismatch)
    }
}

/// Compares two plaintext passwords in constant time, including their
/// lengths: both sides are hashed to a fixed size first.
fn equal_plaintext(stored: &[u8], given: &[u8]) -> bool {
    let stored_digest = Sha512::digest(stored);
    let given_digest = Sha512::digest(given);
    bool::from(stored_digest.as_slice().ct_eq(given_digest.as_slice()))
}

fn decode(data: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Base64 => BASE64_ANY_PADDING
            .decode(data.trim())
            .map_err(|err| format!("invalid base64: {err}")),
        Encoding::Hex => decode_hex(data.trim()),
    }
}

fn decode_hex(data: &str) -> Result<Vec<u8>, String> {
    fn nibble(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            _ => None,
        }
    }
    let bytes = data.as_bytes();
    if bytes.len() % 2 != 0 {
        return Err("invalid hex: odd number of digits".to_owned());
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err("invalid hex: non-hex digit".to_owned()),
        })
        .collect()
}

fn verify_sha_crypt(scheme: Scheme, data: &str, password: &[u8]) -> Result<bool, String> {
    let prefix = if scheme == Scheme::Sha512Crypt {
        "$6$"
    } else {
        "$5$"
    };
    if !data.starts_with(prefix) {
        return Err(format!("expected a crypt string starting with {prefix}"));
    }
    match sha_crypt::ShaCrypt::default().verify_password(password, data) {
        Ok(()) => Ok(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}

fn verify_bcrypt(data: &str, password: &[u8]) -> Result<bool, String> {
    if !(data.starts_with("$2a$") || data.starts_with("$2b$") || data.starts_with("$2y$")) {
        return Err("expected a crypt string starting with $2a$, $2b$ or $2y$".to_owned());
    }
    bcrypt::verify(password, data).map_err(|err| err.to_string())
}

fn verify_argon2(scheme: Scheme, data: &str, password: &[u8]) -> Result<bool, String> {
    let hash =
        argon2::PasswordHash::new(data).map_err(|err| format!("invalid PHC string: {err}"))?;
    let expected = if scheme == Scheme::Argon2id {
        "argon2id"
    } else {
        "argon2i"
    };
    if hash.algorithm.as_str() != expected {
        return Err(format!(
            "PHC string names {}, expected {expected}",
            hash.algorithm.as_str()
        ));
    }
    match Argon2::default().verify_password(password, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}

fn new_password_hasher() -> Argon2<'static> {
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .expect("the Argon2id constants are within the library's bounds");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a new password with Argon2id and a random salt, returning the
/// whole passwd-file field, `{ARGON2ID}$argon2id$v=19$...`.
pub(crate) fn hash_password(password: &Secret) -> Result<String, String> {
    let salt: [u8; 16] = rand::random();
    let hash = new_password_hasher()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map_err(|err| err.to_string())?;
    Ok(format!("{{{NEW_PASSWORD_SCHEME}}}{hash}"))
}

/// Spends about the time of one Argon2id verification, so that a login
/// for a user who does not exist takes as long as a wrong password.
pub(crate) fn verify_nonexistent_user(password: &Secret) {
    let salt = [0u8; 16];
    let mut output = [0u8; 32];
    // The result is discarded: only the time spent matters.
    let _ =
        new_password_hasher().hash_password_into(password.expose().as_bytes(), &salt, &mut output);
}

/// Returns true when `data` is a whole crypt string of a supported scheme,
/// which an import keeps as a hash rather than hashing it as a password.
pub(crate) fn looks_like_crypt_hash(data: &str) -> bool {
    let Ok(scheme) = detect_crypt(data) else {
        return false;
    };
    let fields: Vec<&str> = data.split('$').collect();
    match scheme {
        // $6$salt$hash or $6$rounds=N$salt$hash, hash of 86 or 43 characters.
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            let hash_len = if scheme == Scheme::Sha512Crypt {
                86
            } else {
                43
            };
            (fields.len() == 4 || (fields.len() == 5 && fields[2].starts_with("rounds=")))
                && fields
                    .last()
                    .is_some_and(|hash| hash.len() == hash_len && is_crypt_base64(hash))
        }
        // $2y$NN$ then 53 characters of salt and hash.
        Scheme::BlfCrypt => {
            data.len() == 60
                && fields.len() == 4
                && fields[2].len() == 2
                && fields[2].bytes().all(|byte| byte.is_ascii_digit())
                && is_crypt_base64(fields[3])
        }
        _ => false,
    }
}

/// Returns the Dovecot name of the scheme when `data` has the shape of a
/// whole crypt string this crate cannot verify. The shapes are
/// `$id$salt$hash` (such as MD5-crypt `$1$` or yescrypt `$y$`) and 13
/// characters of the crypt alphabet (DES crypt). In a Dovecot passwd-file
/// such a bare field is a hash, so an import must not take it as a
/// password.
pub(crate) fn unsupported_crypt_shape(data: &str) -> Option<&'static str> {
    if data.len() == 13 && is_crypt_base64(data) {
        return Some("DES-CRYPT");
    }
    let fields: Vec<&str> = data.split('$').collect();
    let shaped = fields.len() >= 4
        && fields[0].is_empty()
        && !fields[1].is_empty()
        && fields[1].bytes().all(|byte| byte.is_ascii_alphanumeric())
        && fields.last().is_some_and(|hash| hash.len() >= 13 && is_crypt_base64(hash));
    if !shaped {
        return None;
    }
    detect_crypt(data).err()
}

fn is_crypt_base64(text: &str) -> bool {
    text.bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_detection_by_prefix() {
        assert_eq!(detect_crypt("$6$salt$x"), Ok(Scheme::Sha512Crypt));
        assert_eq!(detect_crypt("$5$salt$x"), Ok(Scheme::Sha256Crypt));
        assert_eq!(detect_crypt("$2y$05$x"), Ok(Scheme::BlfCrypt));
        assert_eq!(detect_crypt("$2b$05$x"), Ok(Scheme::BlfCrypt));
        assert_eq!(detect_crypt("$2a$05$x"), Ok(Scheme::BlfCrypt));
        assert_eq!(detect_crypt("$1$salt$x"), Err("MD5-CRYPT"));
        assert_eq!(detect_crypt("abJnggxhB/yWI"), Err("DES-CRYPT"));
    }

    #[test]
    fn scheme_names_with_suffixes() {
        assert_eq!(
            resolve_scheme("SHA256.HEX"),
            Some(Scheme::Digest(DigestKind::Sha256, Encoding::Hex))
        );
        assert_eq!(
            resolve_scheme("PLAIN.B64"),
            Some(Scheme::Plain(Some(Encoding::Base64)))
        );
        assert_eq!(resolve_scheme("SHA512-CRYPT.HEX"), None);
        assert_eq!(resolve_scheme("MD5"), None);
        assert_eq!(resolve_scheme("SHA.ROT13"), None);
    }

    #[test]
    fn hex_decoding_rejects_bad_digits() {
        assert_eq!(decode_hex("00ff10"), Ok(vec![0, 255, 16]));
        assert!(decode_hex("0").is_err());
        assert!(decode_hex("zz").is_err());
    }

    #[test]
    fn new_hash_verifies() {
        let field = hash_password(&Secret::from("correct horse")).unwrap();

        assert!(
            field.starts_with("{ARGON2ID}$argon2id$v=19$m=7168,t=5,p=1$"),
            "{field}"
        );
        assert_eq!(
            verify_password(&field, &Secret::from("correct horse")),
            Ok(())
        );
        assert_eq!(
            verify_password(&field, &Secret::from("wrong horse")),
            Err(VerifyFailure::Mismatch)
        );
    }

    #[test]
    fn crypt_hash_shapes_for_import() {
        let sha512 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(looks_like_crypt_hash(sha512));
        assert!(looks_like_crypt_hash(
            "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"
        ));
        assert!(!looks_like_crypt_hash("$6$short"));
        assert!(!looks_like_crypt_hash("hunter2"));
        assert!(!looks_like_crypt_hash("$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981"));
    }
}
