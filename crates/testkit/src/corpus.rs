//! The test mail corpus that `scripts/fetch-corpus` puts in
//! `tests/corpus/.cache`: every message, as stored and with CRLF line ends.

use std::path::{Path, PathBuf};

/// One corpus message.
#[derive(Debug, Clone)]
pub struct CorpusMessage {
    /// Path relative to the corpus folder, such as `cpython/msg_01.txt`.
    pub name: String,
    /// The bytes as stored, without a leading mbox `From ` line.
    pub raw: Vec<u8>,
}

impl CorpusMessage {
    /// Returns the message with every line ending turned into CRLF, the
    /// form IMAP and SMTP carry.
    pub fn crlf(&self) -> Vec<u8> {
        to_crlf(&self.raw)
    }
}

/// Returns the corpus folder, `tests/corpus` at the workspace root.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

/// Loads every corpus message, sorted by name. Fails with a message naming
/// the script to run when the corpus has not been fetched.
pub fn load() -> Result<Vec<CorpusMessage>, String> {
    let dir = corpus_dir();
    let mut files = Vec::new();
    collect_files(&dir, &mut files);
    if files.is_empty() {
        return Err(format!(
            "no corpus messages under {}; run scripts/fetch-corpus first",
            dir.display()
        ));
    }
    files.sort();
    let mut messages = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
        let name = path.strip_prefix(&dir).unwrap_or(&path);
        let name = name.strip_prefix(".cache").unwrap_or(name);
        messages.push(CorpusMessage {
            name: name.to_string_lossy().into_owned(),
            raw: strip_mbox_from(&bytes).to_vec(),
        });
    }
    Ok(messages)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// Drops a leading mbox `From ` separator line, which is not part of the
/// message.
pub fn strip_mbox_from(bytes: &[u8]) -> &[u8] {
    if !bytes.starts_with(b"From ") {
        return bytes;
    }
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[end + 1..],
        None => &[],
    }
}

/// Turns bare LF and bare CR into CRLF and keeps existing CRLF.
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if bytes.get(index + 1) == Some(&b'\n') {
                    index += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_normalises_all_line_ends() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
    }

    #[test]
    fn mbox_from_line_is_stripped() {
        assert_eq!(strip_mbox_from(b"From x@y Mon\nSubject: s\n"), b"Subject: s\n");
        assert_eq!(strip_mbox_from(b"Subject: s\n"), b"Subject: s\n");
    }
}
