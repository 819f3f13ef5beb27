//! The `Secret` wrapper that keeps passwords out of logs and clears them
//! from memory.
//!
//! This module owns only the redaction and the clearing. Schemes and the
//! passwd-file are outside it.

use std::fmt;

use zeroize::Zeroize;

/// A password as the client or the administrator typed it.
///
/// `Debug` and `Display` print `/* redacted */`, so a `Secret` inside an
/// error, a log field or a `dbg!` never shows the password. Code that needs
/// the bytes calls [`Secret::expose`] at the one place it hashes them.
/// Dropping a `Secret` overwrites its buffer with zeros; copies made
/// through `expose` are the caller's to clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(password: String) -> Secret {
        Secret(password)
    }

    /// Returns the password. Call it only to hash or compare the password,
    /// never to format or log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the password length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true for the empty password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(password: String) -> Secret {
        Secret(password)
    }
}

impl From<&str> for Secret {
    fn from(password: &str) -> Secret {
        Secret(password.to_owned())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/* redacted */")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/* redacted */")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_formatting_redacts() {
        let secret = Secret::from("hunter2");

        assert_eq!(format!("{secret:?}"), "/* redacted */");
        assert_eq!(format!("{secret}"), "/* redacted */");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(/* redacted */)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
