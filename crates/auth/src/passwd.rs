//! The passwd-file format: user-name rules, line splitting and parsing a
//! whole file into a map.
//!
//! This module owns the text format only. Locking, reloading and password
//! schemes are outside it, and the password field stays opaque text.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::error::AuthError;

/// Maximum user name length, in bytes of its UTF-8 form. It leaves room for
/// ordinary e-mail addresses used as user names.
pub const USER_NAME_BYTES_MAX: usize = 255;

/// Checks a user name against the passwd-file rules.
///
/// A name is 1 to [`USER_NAME_BYTES_MAX`] bytes of UTF-8 and contains no
/// `:` (the field separator), no whitespace and no control characters, so
/// it survives the file format, IMAP atoms and log lines unchanged. Names
/// are compared byte for byte, so `Alice` and `alice` are two users.
pub fn validate_user_name(name: &str) -> Result<(), AuthError> {
    let invalid = |reason| {
        Err(AuthError::InvalidUserName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("the name is empty");
    }
    if name.len() > USER_NAME_BYTES_MAX {
        return invalid("the name is longer than 255 bytes");
    }
    if name.contains(':') {
        return invalid("the name contains ':', the passwd-file field separator");
    }
    if name.chars().any(char::is_whitespace) {
        return invalid("the name contains whitespace");
    }
    if name.chars().any(char::is_control) {
        return invalid("the name contains a control character");
    }
    if name.starts_with('#') {
        return invalid("the name starts with '#', which marks a comment line");
    }
    Ok(())
}

/// One user line split at its first two `:` separators.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UserLine<'a> {
    pub name: &'a str,
    /// The password field, `{SCHEME}data` or a bare crypt string.
    pub password: &'a str,
    /// Everything after the password field, with its leading `:`, or "".
    pub rest: &'a str,
}

/// Returns true for lines that hold no user: blank lines and `#` comments.
pub(crate) fn is_comment_or_blank(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// Splits a user line. `line` must not contain its line ending.
pub(crate) fn split_user_line(line: &str) -> Result<UserLine<'_>, String> {
    let Some((name, after_name)) = line.split_once(':') else {
        return Err("missing ':' after the user name".to_owned());
    };
    validate_user_name(name).map_err(|err| err.to_string())?;
    let (password, rest) = match after_name.find(':') {
        Some(end) => (&after_name[..end], &after_name[end..]),
        None => (after_name, ""),
    };
    if password.is_empty() {
        return Err(format!("user {name:?} has an empty password field"));
    }
    Ok(UserLine {
        name,
        password,
        rest,
    })
}

/// Strips one trailing `\n` or `\r\n`.
pub(crate) fn strip_line_ending(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// A passwd-file parsed for lookups: user name to password field.
#[derive(Debug, Default)]
pub(crate) struct UserMap {
    pub passwords: HashMap<Box<str>, Box<str>>,
    /// Groups of the users whose line has a `groups=` extra field.
    pub groups: HashMap<Box<str>, Box<[Box<str>]>>,
    /// Lines that were skipped, as (line number, reason), for the log.
    pub skipped: Vec<(usize, String)>,
}

/// Most skipped-line reasons kept per parse; the log reports the rest as a
/// count so that a broken million-line file does not flood it.
const SKIPPED_REASONS_MAX: usize = 20;

/// Parses a whole passwd-file. Broken lines and repeated names are skipped
/// and reported, so that one bad edit does not lock every user out. For a
/// repeated name the first line wins, as in Dovecot.
pub(crate) fn parse_file(text: &str) -> (UserMap, usize) {
    let mut map = UserMap::default();
    let mut skipped_count = 0;
    let mut skip = |map: &mut UserMap, line_number, reason: String| {
        skipped_count += 1;
        if map.skipped.len() < SKIPPED_REASONS_MAX {
            map.skipped.push((line_number, reason));
        }
    };

    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = strip_line_ending(line);
        if is_comment_or_blank(line) {
            continue;
        }
        let user = match split_user_line(line) {
            Ok(user) => user,
            Err(reason) => {
                skip(&mut map, line_number, reason);
                continue;
            }
        };
        match map.passwords.entry(user.name.into()) {
            Entry::Occupied(_) => {
                skip(
                    &mut map,
                    line_number,
                    format!(
                        "user {:?} repeats an earlier line and is ignored",
                        user.name
                    ),
                );
            }
            Entry::Vacant(slot) => {
                slot.insert(user.password.into());
                let groups = extra_groups(user.rest);
                if !groups.is_empty() {
                    map.groups.insert(user.name.into(), groups);
                }
            }
        }
    }
    (map, skipped_count)
}

/// Most groups read for one user, so one line cannot make the server hold
/// an unbounded list for every login.
pub const GROUPS_PER_USER_MAX: usize = 64;

/// Reads the `groups=a,b` extra field of a user line. Extra fields are the
/// eighth field of Dovecot's passwd-file format (after uid, gid, gecos,
/// home and shell), as space-separated `key=value` pairs.
fn extra_groups(rest: &str) -> Box<[Box<str>]> {
    let Some(extra) = rest.splitn(7, ':').nth(6) else {
        return Box::new([]);
    };
    extra
        .split_whitespace()
        .filter_map(|field| field.strip_prefix("groups="))
        .flat_map(|list| list.split(','))
        .filter(|group| !group.is_empty())
        .take(GROUPS_PER_USER_MAX)
        .map(Box::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_extra_field() {
        let (map, skipped) = parse_file(
            "alice:{PLAIN}x:1000:1000::/home/alice::userdb_quota=1G groups=staff,admins\nbob:{PLAIN}y\ncarol:{PLAIN}z:::::: groups=\n",
        );
        assert_eq!(skipped, 0);
        let alice: Vec<&str> = map.groups["alice"].iter().map(|group| &**group).collect();
        assert_eq!(alice, ["staff", "admins"]);
        assert!(!map.groups.contains_key("bob"));
        assert!(!map.groups.contains_key("carol"));
    }

    #[test]
    fn groups_are_capped() {
        let many: Vec<String> = (0..GROUPS_PER_USER_MAX + 1).map(|n| format!("g{n}")).collect();
        let (map, _) = parse_file(&format!("alice:{{PLAIN}}x:::::: groups={}\n", many.join(",")));
        assert_eq!(map.groups["alice"].len(), GROUPS_PER_USER_MAX);
    }

    #[test]
    fn user_name_rules() {
        assert!(validate_user_name("alice").is_ok());
        assert!(validate_user_name("alice@example.org").is_ok());
        assert!(validate_user_name("jörg").is_ok());
        assert!(validate_user_name(&"a".repeat(USER_NAME_BYTES_MAX)).is_ok());

        assert!(validate_user_name("").is_err());
        assert!(validate_user_name(&"a".repeat(USER_NAME_BYTES_MAX + 1)).is_err());
        assert!(validate_user_name("a:b").is_err());
        assert!(validate_user_name("a b").is_err());
        assert!(validate_user_name("a\tb").is_err());
        assert!(validate_user_name("a\u{7f}b").is_err());
        assert!(validate_user_name("a\u{a0}b").is_err());
        assert!(validate_user_name("#alice").is_err());
    }

    #[test]
    fn line_splitting_keeps_trailing_fields() {
        let line =
            split_user_line("bob:{PLAIN}pw:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G")
                .unwrap();

        assert_eq!(line.name, "bob");
        assert_eq!(line.password, "{PLAIN}pw");
        assert_eq!(
            line.rest,
            ":1000:1000::/home/bob::userdb_quota_rule=*:storage=1G"
        );
        assert_eq!(split_user_line("bob:{PLAIN}pw").unwrap().rest, "");
        assert!(split_user_line("bob").is_err());
        assert!(split_user_line("bob::1000").is_err());
    }

    #[test]
    fn file_parse_skips_bad_lines() {
        let text =
            "# users\n\nalice:{PLAIN}a\r\nbroken line\nalice:{PLAIN}second\nbob:{PLAIN}b:1:1\n";
        let (map, skipped) = parse_file(text);

        assert_eq!(map.passwords.len(), 2);
        assert_eq!(map.passwords.get("alice").map(|p| &**p), Some("{PLAIN}a"));
        assert_eq!(map.passwords.get("bob").map(|p| &**p), Some("{PLAIN}b"));
        assert_eq!(skipped, 2);
        assert_eq!(map.skipped[0].0, 4);
        assert_eq!(map.skipped[1].0, 5);
    }
}
