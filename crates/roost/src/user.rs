//! The `roost user` and `roost deliver` commands: editing the user
//! database from the shell and delivering one message from stdin.
//!
//! This module owns reading passwords from a terminal or stdin and the
//! messages printed to the administrator. The file format and the password
//! hashing belong to `roost_auth`.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::Path;

use roost_auth::{AuthError, Secret, UserDb, UserDbOptions};

use crate::CliError;
use crate::config::Settings;

/// Reads a new password: from a prompt without echo, asked twice, when
/// stdin is a terminal, else from the first line of stdin.
fn read_new_password(name: &str, password_bytes_max: usize) -> Result<Secret, CliError> {
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .map_err(|err| CliError::Runtime(format!("reading the password failed: {err}")))?;
        let second = rpassword::prompt_password("Repeat the password: ")
            .map_err(|err| CliError::Runtime(format!("reading the password failed: {err}")))?;
        if first != second {
            return Err(CliError::Usage(
                "the two passwords differ; nothing was changed".to_owned(),
            ));
        }
        first
    } else {
        read_first_line(io::stdin().lock(), password_bytes_max)?
    };

    if password.is_empty() {
        return Err(CliError::Usage(
            "empty password rejected: type one at the prompt, or put it on the first line of stdin; nothing was changed"
                .to_owned(),
        ));
    }
    Ok(Secret::new(password))
}

/// Reads the first line of `input` without its `\n` or `\r\n`. At most
/// `password_bytes_max` bytes plus the line ending are read, so a password
/// piped from a huge file is rejected rather than buffered.
fn read_first_line(input: impl BufRead, password_bytes_max: usize) -> Result<String, CliError> {
    let read_limit = u64::try_from(password_bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(2);
    let mut line = Vec::new();
    input
        .take(read_limit)
        .read_until(b'\n', &mut line)
        .map_err(|err| {
            CliError::Runtime(format!("reading the password from stdin failed: {err}"))
        })?;

    let had_newline = line.last() == Some(&b'\n');
    if had_newline {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.len() > password_bytes_max || (!had_newline && line.len() as u64 == read_limit) {
        return Err(CliError::Usage(format!(
            "the password is longer than the maximum of {password_bytes_max} bytes; nothing was changed"
        )));
    }
    String::from_utf8(line).map_err(|_| {
        CliError::Usage("the password is not valid UTF-8; nothing was changed".to_owned())
    })
}

fn open_db(data_dir: &Path) -> Result<UserDb, CliError> {
    UserDb::open(data_dir).map_err(auth_error)
}

/// Sorts user-database errors into bad input (exit code 2) and failures
/// while running (exit code 1).
fn auth_error(err: AuthError) -> CliError {
    match err {
        AuthError::InvalidUserName { .. }
        | AuthError::EmptyPassword
        | AuthError::PasswordTooLong { .. }
        | AuthError::ImportLine { .. } => CliError::Usage(err.to_string()),
        _ => CliError::Runtime(err.to_string()),
    }
}

pub fn add(data_dir: &Path, name: &str) -> Result<(), CliError> {
    roost_auth::validate_user_name(name).map_err(auth_error)?;
    let db = open_db(data_dir)?;
    if db.exists(name) {
        return Err(CliError::Runtime(format!(
            "user {name:?} already exists in {}; change the password with `roost user passwd {name}`",
            db.path().display()
        )));
    }
    let password = read_new_password(name, UserDbOptions::default().password_bytes_max)?;
    db.add(name, &password).map_err(auth_error)?;
    // The file is named so an administrator who ran this in the wrong
    // folder notices that the server's users were not changed.
    println!("added user {name} to {}", db.path().display());
    Ok(())
}

/// Builds the error for a user that is not in the users file, naming the file and
/// the ways to fix it.
fn user_not_found(db: &UserDb, name: &str) -> CliError {
    CliError::Runtime(format!(
        "user {name:?} not found in {}; add it with `roost user add {name}`, or point --data-dir or --config at the server's data folder",
        db.path().display()
    ))
}

pub fn passwd(data_dir: &Path, name: &str) -> Result<(), CliError> {
    roost_auth::validate_user_name(name).map_err(auth_error)?;
    let db = open_db(data_dir)?;
    if !db.exists(name) {
        return Err(user_not_found(&db, name));
    }
    let password = read_new_password(name, UserDbOptions::default().password_bytes_max)?;
    db.set_password(name, &password).map_err(auth_error)?;
    println!("changed the password of user {name}");
    Ok(())
}

pub fn delete(data_dir: &Path, name: &str) -> Result<(), CliError> {
    let db = open_db(data_dir)?;
    db.delete(name).map_err(|err| match err {
        AuthError::UserNotFound(_) => user_not_found(&db, name),
        other => auth_error(other),
    })?;
    println!(
        "deleted user {name}: the login is gone, but the mail stays in {}; adding {name} again gives it back",
        data_dir.display()
    );
    Ok(())
}

pub fn list(data_dir: &Path) -> Result<(), CliError> {
    let db = open_db(data_dir)?;
    let mut stdout = io::stdout().lock();
    for name in db.list() {
        writeln!(stdout, "{name}").map_err(output_error)?;
    }
    stdout.flush().map_err(output_error)
}

/// Imports users from a passwd-file and creates their store accounts with
/// the default mailboxes.
pub fn import(settings: &Settings, file: &Path) -> Result<(), CliError> {
    let data_dir = &settings.server.data_dir;
    let text = if file == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| CliError::Usage(format!("reading stdin failed: {err}")))?;
        text
    } else {
        std::fs::read_to_string(file)
            .map_err(|err| CliError::Usage(format!("{}: reading failed: {err}", file.display())))?
    };

    let db = open_db(data_dir)?;
    let summary = db.import(&text).map_err(|err| match err {
        AuthError::ImportLine { line, message } => CliError::Usage(format!(
            "{}: line {line}: {message}; nothing was imported",
            file.display()
        )),
        other => auth_error(other),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Runtime(format!("starting the tokio runtime failed: {err}")))?;
    let created = runtime
        .block_on(roost_server::delivery::create_accounts(&settings.server, summary.names))
        .map_err(|err| {
            CliError::Runtime(format!(
                "{err:#}; the users were imported, and their accounts are created at first login"
            ))
        })?;
    println!(
        "imported {} users: {} added, {} updated; created {created} accounts with their default mailboxes",
        summary.added + summary.updated,
        summary.added,
        summary.updated
    );
    Ok(())
}

/// Maps a write error on stdout to an error, treating a closed pipe (as
/// in `roost user list | head`) as a normal end.
fn output_error(err: io::Error) -> CliError {
    if err.kind() == io::ErrorKind::BrokenPipe {
        CliError::Quiet
    } else {
        CliError::Runtime(format!("writing to stdout failed: {err}"))
    }
}

/// Delivers the message on stdin to `name`'s INBOX. At most
/// `limits.message_bytes_max` bytes are read, so a runaway pipe cannot
/// fill memory.
pub fn deliver(settings: &Settings, name: &str) -> Result<(), CliError> {
    let config = &settings.server;
    let db = open_db(&config.data_dir)?;
    if !db.exists(name) {
        return Err(user_not_found(&db, name));
    }
    drop(db);

    let message_bytes_max = config.limits.message_bytes_max;
    let mut message = Vec::new();
    io::stdin()
        .lock()
        .take(
            u64::try_from(message_bytes_max)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut message)
        .map_err(|err| {
            CliError::Runtime(format!("reading the message from stdin failed: {err}"))
        })?;
    if message.len() > message_bytes_max {
        return Err(CliError::Runtime(format!(
            "the message is larger than limits.message_bytes_max ({message_bytes_max} bytes); nothing was delivered"
        )));
    }
    if message.is_empty() {
        return Err(CliError::Usage(
            "the message on stdin is empty; nothing was delivered".to_owned(),
        ));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Runtime(format!("starting the tokio runtime failed: {err}")))?;
    runtime
        .block_on(roost_server::delivery::deliver_local(config, name, message))
        .map_err(|err| CliError::Runtime(format!("{err:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_strips_line_endings() {
        assert_eq!(read_first_line(&b"pw\nsecond\n"[..], 64).unwrap(), "pw");
        assert_eq!(read_first_line(&b"pw\r\n"[..], 64).unwrap(), "pw");
        assert_eq!(read_first_line(&b"pw"[..], 64).unwrap(), "pw");
        assert_eq!(read_first_line(&b"\n"[..], 64).unwrap(), "");
        assert_eq!(read_first_line(&b"p\rw\n"[..], 64).unwrap(), "p\rw");
    }

    #[test]
    fn first_line_length_limit() {
        assert_eq!(
            read_first_line(&b"12345678\r\n"[..], 8).unwrap(),
            "12345678"
        );
        assert_eq!(read_first_line(&b"12345678"[..], 8).unwrap(), "12345678");
        assert!(read_first_line(&b"123456789\n"[..], 8).is_err());
        assert!(read_first_line(&b"123456789"[..], 8).is_err());
        assert!(read_first_line(&b"1234567890123"[..], 8).is_err());
    }
}
