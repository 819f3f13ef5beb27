//! Message bodies as immutable files under `blobs/`.
//!
//! A body is written to a temporary file, synced, linked to its final name
//! and its folder synced, all before the index row that references it is
//! committed. A crash at any point therefore leaves at most a file that no
//! row references, and [`BlobDir::remove_orphans`] deletes those.
//!
//! This module handles file names and durability, not the index schema.
//! The caller decides which ids are referenced.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{BlobId, Result, StoreError};

/// The folder of body files, fanned out into 256 subfolders by the id's
/// low byte so no folder grows past a few thousand entries per million
/// messages.
#[derive(Clone, Debug)]
pub struct BlobDir {
    root: PathBuf,
}

const TEMP_SUFFIX: &str = ".tmp";

impl BlobDir {
    /// Opens or creates `root` and its subfolders, syncing each new folder.
    pub fn open(root: PathBuf) -> Result<Self> {
        let created = create_dir(&root)?;
        if created && let Some(parent) = root.parent() {
            sync_dir(parent)?;
        }
        let mut any_created = false;
        for fanout in 0..=255u8 {
            any_created |= create_dir(&root.join(format!("{fanout:02x}")))?;
        }
        if any_created {
            sync_dir(&root)?;
        }
        Ok(Self { root })
    }

    pub fn path(&self, id: BlobId) -> PathBuf {
        self.root
            .join(format!("{:02x}", id.0 & 0xff))
            .join(format!("{:016x}", id.0))
    }

    /// Writes `bytes` under a new random id and makes the file and its
    /// name durable. The id is chosen so that it never replaces a file of
    /// another id, including one written by another process.
    pub fn write(&self, bytes: &[u8]) -> Result<BlobId> {
        loop {
            let id = random_id()?;
            let path = self.path(id);
            let temp = path.with_extension(&TEMP_SUFFIX[1..]);
            let mut file = File::options().write(true).create_new(true).open(&temp)?;
            let written = file.write_all(bytes).and_then(|()| file.sync_all());
            drop(file);
            if let Err(err) = written {
                let _ = fs::remove_file(&temp);
                return Err(err.into());
            }

            // A hard link fails rather than replaces when the name exists,
            // which a rename would not. The id is then drawn again.
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    sync_dir(path.parent().expect("blob paths have a parent"))?;
                    return Ok(id);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    pub fn read(&self, id: BlobId) -> Result<Vec<u8>> {
        fs::read(self.path(id)).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(id),
            _ => StoreError::Io(err),
        })
    }

    /// Deletes a body file whose last reference was committed away. A file
    /// that is already gone counts as deleted.
    pub fn remove(&self, id: BlobId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Deletes body files and temporary files that `is_referenced` does not
    /// claim and that were last modified more than `grace` ago. The grace
    /// period protects files that another process has written but not yet
    /// committed. Files that vanish meanwhile (removed by another process)
    /// are skipped. Stops early when `stop` returns true, which is checked
    /// before each file. Returns the number of files deleted.
    pub fn remove_orphans(
        &self,
        grace: Duration,
        mut is_referenced: impl FnMut(BlobId) -> Result<bool>,
        stop: impl Fn() -> bool,
    ) -> Result<u64> {
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        for fanout in 0..=255u8 {
            if stop() {
                break;
            }
            let folder = self.root.join(format!("{fanout:02x}"));
            for entry in fs::read_dir(&folder)? {
                if stop() {
                    break;
                }
                let entry = entry?;
                let modified = match entry.metadata().and_then(|metadata| metadata.modified()) {
                    Ok(modified) => modified,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(err.into()),
                };
                if modified > cutoff {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let orphan = if name.ends_with(TEMP_SUFFIX) {
                    true
                } else {
                    match u64::from_str_radix(name, 16) {
                        Ok(id) => !is_referenced(BlobId(id))?,
                        // Files this store did not name are left alone.
                        Err(_) => false,
                    }
                };
                if !orphan {
                    continue;
                }
                tracing::info!(path = %entry.path().display(), "removing unreferenced message body file");
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(removed)
    }
}

/// Creates a folder, returning whether it was new.
fn create_dir(path: &Path) -> Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Makes a folder's entries (new, renamed or linked names) durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Draws a random id that fits SQLite's signed 64-bit integer and is not 0.
fn random_id() -> io::Result<BlobId> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail of
        // `bytes`, which outlives the call.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    let id = u64::from_le_bytes(bytes) & (i64::MAX as u64);
    Ok(BlobId(id.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path().join("blobs")).unwrap();
        let id = blobs.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        assert_eq!(blobs.read(id).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        assert!(!blobs.path(id).with_extension("tmp").exists());
    }

    #[test]
    fn remove_orphans_keeps_recent_and_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path().join("blobs")).unwrap();
        let kept = blobs.write(b"kept").unwrap();
        let orphan = blobs.write(b"orphan").unwrap();
        let fresh = blobs.write(b"fresh").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for id in [kept, orphan] {
            File::options()
                .write(true)
                .open(blobs.path(id))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }

        let removed = blobs
            .remove_orphans(Duration::from_secs(60), |id| Ok(id == kept), || false)
            .unwrap();

        assert_eq!(removed, 1);
        assert!(blobs.path(kept).exists());
        assert!(!blobs.path(orphan).exists());
        assert!(blobs.path(fresh).exists());
    }

    #[test]
    fn read_missing_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path().join("blobs")).unwrap();
        assert!(matches!(
            blobs.read(BlobId(42)),
            Err(StoreError::BlobNotFound(BlobId(42)))
        ));
    }
}
