//! `UserDb`: lookups against the passwd-file, reloaded when it changes.
//!
//! This module owns the in-memory snapshot and the decision when to re-read
//! the file. IMAP and the server are outside it, and editing the file
//! lives in `edit`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::error::AuthError;
use crate::passwd;
use crate::scheme::{self, VerifyFailure};
use crate::secret::Secret;

/// File name of the passwd-file inside the data directory.
pub const USERS_FILE_NAME: &str = "users";

/// Tuning and bounds of a [`UserDb`].
#[derive(Clone, Debug)]
pub struct UserDbOptions {
    /// Minimum time between two checks of the passwd-file for changes. A
    /// check is one `stat`, and a re-read happens only when the inode, size
    /// or modification time changed.
    pub reload_interval: Duration,
    /// Maximum password length, in bytes, that `verify`, `add` and `set_password`
    /// accept. Longer passwords are rejected without hashing because
    /// SHA-crypt's work grows with the square of the password length, so a
    /// client could otherwise make one login cost seconds of CPU.
    pub password_bytes_max: usize,
}

impl Default for UserDbOptions {
    /// Returns a one-second reload interval, which limits a busy server to
    /// one `stat` per second while an edit takes effect almost at once, and
    /// a 1024-byte password limit, far above any typed passphrase.
    fn default() -> UserDbOptions {
        UserDbOptions {
            reload_interval: Duration::from_secs(1),
            password_bytes_max: 1024,
        }
    }
}

/// Identity of one version of the passwd-file. An atomic rename changes the
/// inode, and an in-place edit changes the size or the modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_seconds: i64,
    modified_nanoseconds: i64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_seconds: metadata.mtime(),
            modified_nanoseconds: metadata.mtime_nsec(),
        }
    }
}

/// The users as parsed from one version of the file.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// `None` when the file does not exist.
    pub stamp: Option<FileStamp>,
    pub passwords: HashMap<Box<str>, Box<str>>,
    pub groups: HashMap<Box<str>, Box<[Box<str>]>>,
}

/// The user database of one data directory.
///
/// Every lookup may re-read the passwd-file (see
/// [`UserDbOptions::reload_interval`]), and `verify` runs a password hash,
/// so async callers run these methods inside `spawn_blocking`.
#[derive(Debug)]
pub struct UserDb {
    pub(crate) data_dir: PathBuf,
    pub(crate) path: PathBuf,
    pub(crate) options: UserDbOptions,
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// When the file was last checked for changes.
    last_check: Mutex<Instant>,
}

/// Outcome of a successful [`UserDb::import`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// Users that did not exist before.
    pub added: usize,
    /// Existing users whose line was replaced.
    pub updated: usize,
    /// The names of the users imported, added or updated, in file order.
    pub names: Vec<String>,
}

impl UserDb {
    /// Opens the user database in `data_dir` with default options.
    ///
    /// A missing passwd-file is an empty database, not an error; the first
    /// edit creates it.
    pub fn open(data_dir: &Path) -> Result<UserDb, AuthError> {
        UserDb::open_with_options(data_dir, UserDbOptions::default())
    }

    /// Opens the user database in `data_dir`.
    pub fn open_with_options(data_dir: &Path, options: UserDbOptions) -> Result<UserDb, AuthError> {
        let path = data_dir.join(USERS_FILE_NAME);
        let snapshot = load_snapshot(&path)?;
        Ok(UserDb {
            data_dir: data_dir.to_path_buf(),
            path,
            options,
            snapshot: RwLock::new(Arc::new(snapshot)),
            last_check: Mutex::new(Instant::now()),
        })
    }

    /// Returns the path of the passwd-file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns true if a user of that name exists.
    pub fn exists(&self, name: &str) -> bool {
        self.current().passwords.contains_key(name)
    }

    /// Returns the groups the passwd-file gives a user in its `groups=`
    /// extra field, in file order.
    pub fn groups(&self, name: &str) -> Vec<String> {
        let snapshot = self.current();
        snapshot.groups.get(name).map(|groups| groups.iter().map(|group| group.to_string()).collect()).unwrap_or_default()
    }

    /// Returns all user names, sorted.
    pub fn list(&self) -> Vec<String> {
        let snapshot = self.current();
        let mut names: Vec<String> = snapshot
            .passwords
            .keys()
            .map(|name| name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Returns true if the database has no users.
    pub fn is_empty(&self) -> bool {
        self.current().passwords.is_empty()
    }

    /// Returns the number of users.
    pub fn len(&self) -> usize {
        self.current().passwords.len()
    }

    /// Checks a login.
    ///
    /// A user who does not exist costs about as much time as a wrong
    /// password, so response times do not reveal which names exist. A
    /// stored hash of an unsupported scheme fails the login and logs the
    /// scheme name; the password and the hash are never logged.
    pub fn verify(&self, name: &str, password: &Secret) -> Result<(), AuthError> {
        if password.len() > self.options.password_bytes_max {
            return Err(AuthError::PasswordTooLong {
                user: name.to_owned(),
                len: password.len(),
                max: self.options.password_bytes_max,
            });
        }

        let snapshot = self.current();
        let Some(field) = snapshot.passwords.get(name) else {
            scheme::verify_nonexistent_user(password);
            return Err(AuthError::UserNotFound(name.to_owned()));
        };

        match scheme::verify_password(field, password) {
            Ok(()) => Ok(()),
            Err(VerifyFailure::Mismatch) => {
                debug!(user = name, "password mismatch");
                Err(AuthError::PasswordMismatch(name.to_owned()))
            }
            Err(VerifyFailure::Unsupported(scheme)) => {
                warn!(user = name, scheme = %scheme, file = %self.path.display(),
                    "login failed: the stored password uses an unsupported scheme; set a new password with `roost user passwd`");
                Err(AuthError::UnsupportedScheme {
                    user: name.to_owned(),
                    scheme,
                })
            }
            Err(VerifyFailure::Malformed { scheme, reason }) => {
                warn!(user = name, scheme = %scheme, reason = %reason, file = %self.path.display(),
                    "login failed: the stored password hash is malformed");
                Err(AuthError::MalformedHash {
                    user: name.to_owned(),
                    scheme,
                    reason,
                })
            }
        }
    }

    /// Returns the current snapshot, re-reading the file first if the check
    /// is due and the file changed.
    fn current(&self) -> Arc<Snapshot> {
        self.reload_if_changed();
        self.loaded()
    }

    /// Returns the snapshot in memory without checking the file.
    pub(crate) fn loaded(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn replace_snapshot(&self, snapshot: Snapshot) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    fn reload_if_changed(&self) {
        // Only the caller that finds the check due runs it. The others keep
        // using the snapshot they have, so a slow re-read of a big file
        // blocks one lookup, not all of them.
        {
            let mut last_check = self
                .last_check
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last_check.elapsed() < self.options.reload_interval {
                return;
            }
            *last_check = Instant::now();
        }

        let stamp = match std::fs::metadata(&self.path) {
            Ok(metadata) => Some(FileStamp::of(&metadata)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => {
                warn!(file = %self.path.display(), error = %err, "checking the passwd-file failed; keeping the users loaded before");
                return;
            }
        };
        if stamp == self.loaded().stamp {
            return;
        }

        match load_snapshot(&self.path) {
            Ok(snapshot) => {
                info!(file = %self.path.display(), users = snapshot.passwords.len(), "reloaded the passwd-file");
                self.replace_snapshot(snapshot);
            }
            Err(err) => {
                warn!(error = %err, "reloading the passwd-file failed; keeping the users loaded before");
            }
        }
    }
}

/// Reads and parses the passwd-file. The stamp comes from the open file
/// handle, so it always matches the text that was read.
pub(crate) fn load_snapshot(path: &Path) -> Result<Snapshot, AuthError> {
    let io_error = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };

    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(err) => return Err(io_error(err)),
    };
    let metadata = file.metadata().map_err(io_error)?;
    let mut text = String::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_string(&mut text).map_err(io_error)?;

    let (map, skipped_count) = passwd::parse_file(&text);
    for (line, reason) in &map.skipped {
        warn!(file = %path.display(), line, reason = %reason, "skipped a passwd-file line");
    }
    if skipped_count > map.skipped.len() {
        warn!(file = %path.display(), more = skipped_count - map.skipped.len(), "skipped more passwd-file lines");
    }
    report_unsupported_schemes(path, &map.passwords);

    Ok(Snapshot {
        stamp: Some(FileStamp::of(&metadata)),
        passwords: map.passwords,
        groups: map.groups,
    })
}

/// Logs one line per unsupported scheme with the number of users that have
/// it, so an administrator learns of the problem before those users try to log in.
fn report_unsupported_schemes(path: &Path, passwords: &HashMap<Box<str>, Box<str>>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for field in passwords.values() {
        if let Some(scheme) = scheme::unsupported_scheme(field) {
            *counts.entry(scheme).or_default() += 1;
        }
    }
    for (scheme, users) in counts {
        warn!(file = %path.display(), scheme = %scheme, users, "users with an unsupported password scheme cannot log in");
    }
}
