//! Editing the passwd-file: add, change, delete and import users.
//!
//! Every edit takes an exclusive `flock` on `users.lock` in the data
//! directory, re-reads the file, changes its lines and replaces it
//! atomically (temporary file, fsync, rename, fsync of the directory). So
//! two `roost user` commands run at once both land, a crash leaves either
//! the old or the new file, and a running server never reads half a file.
//! Comments, unknown lines and the trailing fields of untouched users are
//! kept as they were.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tracing::info;

use crate::db::{ImportSummary, UserDb, load_snapshot};
use crate::error::AuthError;
use crate::passwd::{is_comment_or_blank, split_user_line, strip_line_ending, validate_user_name};
use crate::scheme;
use crate::secret::Secret;

/// Name of the lock file next to the passwd-file.
const LOCK_FILE_NAME: &str = "users.lock";
/// Name of the temporary file that replaces the passwd-file on rename.
const TEMPORARY_FILE_NAME: &str = "users.tmp";

impl UserDb {
    /// Adds a user with a new Argon2id hash of `password`.
    pub fn add(&self, name: &str, password: &Secret) -> Result<(), AuthError> {
        validate_user_name(name)?;
        let field = self.hash_new_password(name, password)?;

        self.edit_lines(|lines| {
            if find_user(lines, name).is_some() {
                return Err(AuthError::UserExists(name.to_owned()));
            }
            lines.push(format!("{name}:{field}"));
            Ok(())
        })?;
        info!(user = name, "added user");
        Ok(())
    }

    /// Replaces the password of an existing user with a new Argon2id hash,
    /// keeping the line's other fields.
    pub fn set_password(&self, name: &str, password: &Secret) -> Result<(), AuthError> {
        validate_user_name(name)?;
        let field = self.hash_new_password(name, password)?;

        self.edit_lines(|lines| {
            let Some(index) = find_user(lines, name) else {
                return Err(AuthError::UserNotFound(name.to_owned()));
            };
            let rest = split_user_line(&lines[index])
                .map(|user| user.rest.to_owned())
                .unwrap_or_default();
            lines[index] = format!("{name}:{field}{rest}");
            Ok(())
        })?;
        info!(user = name, "changed password");
        Ok(())
    }

    /// Removes every line of a user. Only the login goes: the user's mail
    /// stays in the store, and adding the name again gives it back.
    pub fn delete(&self, name: &str) -> Result<(), AuthError> {
        validate_user_name(name)?;
        self.edit_lines(|lines| {
            let before = lines.len();
            lines.retain(|line| user_name_of(line) != Some(name));
            if lines.len() == before {
                return Err(AuthError::UserNotFound(name.to_owned()));
            }
            Ok(())
        })?;
        info!(user = name, "deleted user");
        Ok(())
    }

    /// Adds or replaces users from passwd-file lines.
    ///
    /// A user that already exists gets the imported line; when that line
    /// has only a name and a password, the old trailing fields are kept.
    ///
    /// A password field with a `{SCHEME}` prefix, or a bare SHA-crypt or
    /// bcrypt string (Dovecot's default `CRYPT` scheme), is stored as it is.
    /// A bare field with the shape of a crypt string this crate cannot
    /// verify (MD5-crypt `$1$…`, DES crypt's 13 characters) is rejected,
    /// because in a Dovecot file it is a hash, never a password. Any other
    /// bare field is taken as a plaintext password and stored as an
    /// Argon2id hash, which takes tens of milliseconds per user by design.
    /// The whole input is checked before anything is written: an unsupported
    /// scheme, an invalid name or a name given twice fails the import with
    /// its line number and changes nothing.
    pub fn import(&self, lines: &str) -> Result<ImportSummary, AuthError> {
        let imported = self.prepare_import(lines)?;

        let summary = self.edit_lines(|lines| {
            let mut index_by_name: HashMap<String, usize> = HashMap::with_capacity(lines.len());
            for (index, line) in lines.iter().enumerate() {
                if let Some(name) = user_name_of(line) {
                    index_by_name.entry(name.to_owned()).or_insert(index);
                }
            }

            let mut summary = ImportSummary {
                added: 0,
                updated: 0,
                names: Vec::with_capacity(imported.len()),
            };
            for user in imported {
                summary.names.push(user.name.clone());
                match index_by_name.get(&user.name) {
                    Some(&index) => {
                        // An import line without trailing fields keeps the
                        // existing user's uid, home and extra fields.
                        let rest = if user.rest.is_empty() {
                            split_user_line(&lines[index])
                                .map(|old| old.rest.to_owned())
                                .unwrap_or_default()
                        } else {
                            user.rest
                        };
                        lines[index] = format!("{}:{}{}", user.name, user.password, rest);
                        summary.updated += 1;
                    }
                    None => {
                        lines.push(format!("{}:{}{}", user.name, user.password, user.rest));
                        summary.added += 1;
                    }
                }
            }
            Ok(summary)
        })?;
        info!(
            added = summary.added,
            updated = summary.updated,
            "imported users"
        );
        Ok(summary)
    }

    fn hash_new_password(&self, name: &str, password: &Secret) -> Result<String, AuthError> {
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        if password.len() > self.options.password_bytes_max {
            return Err(AuthError::PasswordTooLong {
                user: name.to_owned(),
                len: password.len(),
                max: self.options.password_bytes_max,
            });
        }
        scheme::hash_password(password).map_err(AuthError::Hashing)
    }

    /// Checks every import line and hashes the bare passwords, before the
    /// lock is taken, so the slow part does not block other edits.
    fn prepare_import(&self, text: &str) -> Result<Vec<ImportedUser>, AuthError> {
        let mut users = Vec::new();
        let mut line_by_name: HashMap<&str, usize> = HashMap::new();

        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line_error = |message: String| AuthError::ImportLine {
                line: line_number,
                message,
            };
            let line = strip_line_ending(line);
            if is_comment_or_blank(line) {
                continue;
            }

            let user = split_user_line(line).map_err(line_error)?;
            match line_by_name.entry(user.name) {
                Entry::Occupied(first) => {
                    return Err(line_error(format!(
                        "user {:?} was already given on line {}",
                        user.name,
                        first.get()
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(line_number);
                }
            }

            let password = if has_scheme_prefix(user.password)
                || scheme::looks_like_crypt_hash(user.password)
            {
                if let Some(unsupported) = scheme::unsupported_scheme(user.password) {
                    return Err(line_error(format!(
                        "unsupported password scheme {unsupported}; supported: {}",
                        crate::SUPPORTED_SCHEMES.join(", ")
                    )));
                }
                user.password.to_owned()
            } else if let Some(unsupported) = scheme::unsupported_crypt_shape(user.password) {
                return Err(line_error(format!(
                    "the bare password field has the shape of a {unsupported} hash, an unsupported password scheme; supported: {}; if it is a plaintext password, write it as {{PLAIN}}<password>",
                    crate::SUPPORTED_SCHEMES.join(", ")
                )));
            } else {
                self.hash_new_password(user.name, &Secret::from(user.password))
                    .map_err(|err| line_error(err.to_string()))?
            };

            users.push(ImportedUser {
                name: user.name.to_owned(),
                password,
                rest: user.rest.to_owned(),
            });
        }
        Ok(users)
    }

    /// Runs `change` on the lines of the passwd-file under the edit lock and
    /// writes the result back atomically. Nothing is written when `change`
    /// returns an error.
    fn edit_lines<T>(
        &self,
        change: impl FnOnce(&mut Vec<String>) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { path, source }
        };

        fs::create_dir_all(&self.data_dir).map_err(io_error(&self.data_dir))?;
        let _lock = lock_exclusive(&self.data_dir.join(LOCK_FILE_NAME))?;

        let (text, old_metadata) = match fs::read_to_string(&self.path) {
            Ok(text) => (text, fs::metadata(&self.path).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => (String::new(), None),
            Err(err) => return Err(io_error(&self.path)(err)),
        };
        let mut lines: Vec<String> = text
            .lines()
            .map(|line| strip_line_ending(line).to_owned())
            .collect();
        drop(text);

        let result = change(&mut lines)?;

        let temporary = self.data_dir.join(TEMPORARY_FILE_NAME);
        write_lines(&temporary, &lines, old_metadata.as_ref()).map_err(io_error(&temporary))?;
        fs::rename(&temporary, &self.path).map_err(io_error(&self.path))?;
        File::open(&self.data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.data_dir))?;

        // A server in this process gets the edit at once rather than at the
        // next check.
        self.replace_snapshot(load_snapshot(&self.path)?);
        Ok(result)
    }
}

/// One checked line of an import.
struct ImportedUser {
    name: String,
    password: String,
    rest: String,
}

fn has_scheme_prefix(field: &str) -> bool {
    field.starts_with('{') && field.contains('}')
}

/// Returns the user name of a user line, or `None` for comments, blank and
/// broken lines.
fn user_name_of(line: &str) -> Option<&str> {
    if is_comment_or_blank(line) {
        return None;
    }
    line.split_once(':').map(|(name, _)| name)
}

/// Returns the index of the line that lookups use for `name`: the first.
fn find_user(lines: &[String], name: &str) -> Option<usize> {
    lines
        .iter()
        .position(|line| user_name_of(line) == Some(name))
}

/// Takes an exclusive `flock` on `path`, waiting for other holders. The lock
/// is released when the returned file is closed, including when the process
/// dies, so a crashed command never leaves a stale lock.
fn lock_exclusive(path: &Path) -> Result<File, AuthError> {
    let io_error = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    loop {
        // SAFETY: flock takes a descriptor that `file` keeps open for the
        // duration of the call and touches no memory.
        let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if status == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(io_error(err));
        }
    }
}

/// Writes the passwd-file's new contents and flushes them to disk. A new
/// file is readable by its owner only because it contains password hashes.
/// A replaced file keeps the old file's mode and, where permitted, its owner.
fn write_lines(
    path: &Path,
    lines: &[String],
    old_metadata: Option<&fs::Metadata>,
) -> io::Result<()> {
    let mode = old_metadata.map_or(0o600, |metadata| metadata.permissions().mode() & 0o7777);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some(metadata) = old_metadata {
        use std::os::unix::fs::MetadataExt;
        // Only root may give a file away. For anyone else the new file
        // keeps their own owner, which an edit by them would have produced
        // anyway.
        let _ = std::os::unix::fs::fchown(&file, Some(metadata.uid()), Some(metadata.gid()));
    }

    let mut writer = BufWriter::with_capacity(1 << 16, file);
    for line in lines {
        writer.write_all(line.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    let file = writer.into_inner().map_err(|err| err.into_error())?;
    file.sync_all()
}
