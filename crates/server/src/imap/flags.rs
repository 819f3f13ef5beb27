//! Message flags between their IMAP form and the store's [`Flags`].

use std::fmt::Write as _;
use std::sync::Arc;

use roost_proto::types::flag::Flag;
use roost_store::{Flags, system_flag};

/// Writes a parenthesised flag list body (without the parentheses' opening
/// item name), e.g. `(\Seen $Forwarded)`, adding `\Recent` when asked.
pub fn write_flags(out: &mut String, flags: &Flags, recent: bool) {
    out.push('(');
    let mut first = true;
    let mut item = |out: &mut String, text: &str| {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(text);
    };
    for (bit, name) in SYSTEM_FLAGS {
        if flags.system & bit != 0 {
            item(out, name);
        }
    }
    if recent {
        item(out, "\\Recent");
    }
    for keyword in &flags.keywords {
        item(out, keyword);
    }
    let _ = write!(out, ")");
}

const SYSTEM_FLAGS: [(u8, &str); 5] = [
    (system_flag::SEEN, "\\Seen"),
    (system_flag::ANSWERED, "\\Answered"),
    (system_flag::FLAGGED, "\\Flagged"),
    (system_flag::DELETED, "\\Deleted"),
    (system_flag::DRAFT, "\\Draft"),
];

/// The reason a flag list was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `\Recent` or another system flag that cannot be set by a client.
    NotSettable(String),
}

/// Converts a client's flag list to store flags. Keywords that match an
/// existing keyword of the mailbox case-insensitively take its spelling, so
/// `$label1` and `$Label1` stay one keyword.
pub fn from_imap(flags: &[Flag<'_>], existing: &[Arc<str>]) -> Result<Flags, FlagError> {
    let mut result = Flags::default();
    for flag in flags {
        match flag {
            Flag::Seen => result.system |= system_flag::SEEN,
            Flag::Answered => result.system |= system_flag::ANSWERED,
            Flag::Flagged => result.system |= system_flag::FLAGGED,
            Flag::Deleted => result.system |= system_flag::DELETED,
            Flag::Draft => result.system |= system_flag::DRAFT,
            Flag::Extension(_) => return Err(FlagError::NotSettable(flag.to_string())),
            Flag::Keyword(atom) => {
                let name = atom.as_ref();
                let keyword = existing
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .cloned()
                    .unwrap_or_else(|| Arc::from(name));
                if !result.keywords.iter().any(|k| k.eq_ignore_ascii_case(&keyword)) {
                    result.keywords.push(keyword);
                }
            }
        }
    }
    result.keywords.sort();
    Ok(result)
}

/// Checks whether `flags` carries `keyword`, compared case-insensitively.
pub fn has_keyword(flags: &Flags, keyword: &str) -> bool {
    flags.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_written_in_fixed_order() {
        let flags = Flags { system: system_flag::DELETED | system_flag::SEEN, keywords: vec![Arc::from("$Junk")] };
        let mut out = String::new();
        write_flags(&mut out, &flags, true);
        assert_eq!(out, "(\\Seen \\Deleted \\Recent $Junk)");
    }

    #[test]
    fn keywords_take_existing_spelling() {
        let flag = Flag::try_from("$label1").unwrap();
        let flags = from_imap(&[flag], &[Arc::from("$Label1")]).unwrap();
        assert_eq!(flags.keywords, vec![Arc::from("$Label1")]);
    }

    #[test]
    fn recent_is_not_settable() {
        let flag = Flag::try_from("\\Recent").unwrap();
        assert!(from_imap(&[flag], &[]).is_err());
    }
}
