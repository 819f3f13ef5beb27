//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB and STATUS.

use std::collections::BTreeMap;
use std::sync::Arc;

use roost_proto::mutf7;
use roost_proto::types::mailbox::{ListMailbox, Mailbox};
use roost_proto::types::status::StatusDataItemName;
use roost_store::HIERARCHY_SEPARATOR;

use super::{Outcome, bad, name_error, no, ok};
use crate::imap::names;
use crate::imap::output::Output;
use roost_proto::response::write_astring;
use crate::imap::session::Session;

fn account_id(session: &Session) -> Option<roost_store::AccountId> {
    session.account().map(|account| account.id)
}

pub async fn create(session: &mut Session, mailbox: &Mailbox<'_>) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    // A trailing separator declares that the name will have children
    // (RFC 3501 section 6.3.3); the mailbox itself is created without it.
    let stripped;
    let mailbox = match mailbox {
        Mailbox::Other(other) if other.as_ref().ends_with(b"/") && other.as_ref().len() > 1 => {
            let bytes = &other.as_ref()[..other.as_ref().len() - 1];
            stripped = Mailbox::try_from(bytes.to_vec()).ok();
            match &stripped {
                Some(mailbox) => mailbox,
                None => return bad("Invalid mailbox name"),
            }
        }
        other => other,
    };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    if name == "INBOX" {
        return no(Some("ALREADYEXISTS"), "INBOX always exists");
    }
    match session.ctx.store.create_mailbox(account, &name, None).await {
        Ok(_) => ok("CREATE completed"),
        Err(err) => super::store_failure(session, err),
    }
}

pub async fn delete(session: &mut Session, mailbox: &Mailbox<'_>) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    if name == "INBOX" {
        return no(Some("CANNOT"), "INBOX cannot be deleted");
    }
    match session.ctx.store.delete_mailbox(account, &name).await {
        Ok(()) => ok("DELETE completed"),
        Err(err) => super::store_failure(session, err),
    }
}

pub async fn rename(session: &mut Session, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let limits = &session.ctx.config.limits;
    let (from, to) = match (names::from_wire(from, limits), names::from_wire(to, limits)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(err), _) | (_, Err(err)) => return name_error(err),
    };
    if to == "INBOX" {
        return no(Some("ALREADYEXISTS"), "INBOX always exists");
    }
    match session.ctx.store.rename_mailbox(account, &from, &to).await {
        Ok(()) => ok("RENAME completed"),
        Err(err) => super::store_failure(session, err),
    }
}

pub async fn subscribe(session: &mut Session, mailbox: &Mailbox<'_>, subscribed: bool) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    match session.ctx.store.set_subscribed(account, &name, subscribed).await {
        Ok(()) if subscribed => ok("SUBSCRIBE completed"),
        Ok(()) => ok("UNSUBSCRIBE completed"),
        Err(err) => super::store_failure(session, err),
    }
}

/// One name a LIST or LSUB response may carry, with its attributes.
#[derive(Default)]
struct Entry {
    /// The mailbox exists and can be selected.
    selectable: bool,
    /// The name is subscribed (LSUB).
    subscribed: bool,
    has_children: bool,
    special_use: Option<String>,
}

pub async fn list(
    session: &mut Session,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
    out: &mut Output,
) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let command = if lsub { "LSUB" } else { "LIST" };
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(other) => match decode_wire(other.as_ref()) {
            Some(reference) => reference,
            None => return bad("Reference is not valid modified UTF-7"),
        },
    };
    let pattern_bytes: &[u8] = match pattern {
        ListMailbox::Token(token) => token.as_ref(),
        ListMailbox::String(string) => string.as_ref(),
    };
    let Some(pattern) = decode_wire(pattern_bytes) else {
        return bad("Pattern is not valid modified UTF-7");
    };

    // An empty pattern asks for the hierarchy separator and the root.
    if pattern.is_empty() {
        out.untagged(&format!("{command} (\\Noselect) \"/\" \"\""));
        return ok(format!("{command} completed"));
    }
    // The reference is a prefix for the pattern (RFC 3501 section 6.3.8)
    // unless the pattern starts at the root.
    let full_pattern = if pattern.starts_with(HIERARCHY_SEPARATOR) || reference.is_empty() {
        pattern
    } else {
        format!("{reference}{pattern}")
    };

    let ctx = Arc::clone(&session.ctx);
    let mailboxes = match ctx.store.mailboxes(account).await {
        Ok(mailboxes) => mailboxes,
        Err(err) => return super::store_failure(session, err),
    };
    let subscriptions = if lsub {
        match ctx.store.subscriptions(account).await {
            Ok(subscriptions) => subscriptions,
            Err(err) => return super::store_failure(session, err),
        }
    } else {
        Vec::new()
    };

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for mailbox in &mailboxes {
        let entry = entries.entry(mailbox.name.clone()).or_default();
        entry.selectable = true;
        entry.special_use = mailbox.special_use.clone();
    }
    for name in &subscriptions {
        entries.entry(name.clone()).or_default().subscribed = true;
    }
    // Parents implied by deeper names exist as \Noselect entries.
    let names: Vec<String> = entries.keys().cloned().collect();
    for name in &names {
        let mut end = 0;
        while let Some(offset) = name[end..].find(HIERARCHY_SEPARATOR) {
            let parent = &name[..end + offset];
            entries.entry(parent.to_owned()).or_default().has_children = true;
            end += offset + 1;
        }
    }

    for (name, entry) in &entries {
        if !matches_pattern(&full_pattern, name) {
            continue;
        }
        if lsub && !entry.subscribed {
            // A `%` that stops at an unsubscribed parent of a subscribed
            // name lists the parent as \Noselect (RFC 3501 section 6.3.9).
            let has_subscribed_child = entries
                .range(format!("{name}{HIERARCHY_SEPARATOR}")..)
                .take_while(|(child, _)| child.starts_with(name.as_str()))
                .any(|(child, e)| e.subscribed && child.as_bytes().get(name.len()) == Some(&b'/'));
            if !(full_pattern.ends_with('%') && has_subscribed_child) {
                continue;
            }
        }
        let mut attributes: Vec<&str> = Vec::new();
        if !entry.selectable && !lsub {
            attributes.push("\\Noselect");
        }
        if lsub && !entry.subscribed {
            attributes.push("\\Noselect");
        }
        if !lsub {
            attributes.push(if entry.has_children { "\\HasChildren" } else { "\\HasNoChildren" });
            if let Some(special_use) = &entry.special_use {
                attributes.push(special_use);
            }
        }
        let mut line = format!("* {command} ({}) \"/\" ", attributes.join(" ")).into_bytes();
        write_astring(&mut line, names::to_wire(name).as_bytes());
        line.extend_from_slice(b"\r\n");
        out.raw(&line);
    }
    ok(format!("{command} completed"))
}

fn decode_wire(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    mutf7::decode(text).ok()
}

/// Matches a LIST pattern: `*` matches any characters, `%` any except the
/// hierarchy separator. A leading `INBOX` matches case-insensitively.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let pattern = fold_inbox(pattern);
    let name = fold_inbox(name);
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Dynamic programming over (pattern position, name position) keeps the
    // work at most the product of the lengths, whatever the wildcards.
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for &p in &pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            '*' | '%' => {
                let mut open = false;
                for i in 0..=name.len() {
                    open = open || reachable[i];
                    next[i] = open;
                    if p == '%' && i < name.len() && name[i] == HIERARCHY_SEPARATOR {
                        open = false;
                    }
                }
            }
            c => {
                for i in 0..name.len() {
                    if reachable[i] && name[i] == c {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[name.len()]
}

fn fold_inbox(name: &str) -> std::borrow::Cow<'_, str> {
    let first_level_end = name.find(HIERARCHY_SEPARATOR).unwrap_or(name.len());
    if name[..first_level_end].eq_ignore_ascii_case("INBOX") && &name[..first_level_end] != "INBOX" {
        std::borrow::Cow::Owned(format!("INBOX{}", &name[first_level_end..]))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

pub async fn status(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    items: &[StatusDataItemName],
    out: &mut Output,
) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    let ctx = Arc::clone(&session.ctx);
    let info = match ctx.store.mailbox(account, &name).await {
        Ok(Some(info)) => info,
        Ok(None) => return no(Some("NONEXISTENT"), "No such mailbox"),
        Err(err) => return super::store_failure(session, err),
    };
    let status = match ctx.store.status(info.id).await {
        Ok(status) => status,
        Err(err) => return super::store_failure(session, err),
    };
    let mut values = Vec::new();
    for item in items {
        let value = match item {
            StatusDataItemName::Messages => format!("MESSAGES {}", status.messages),
            StatusDataItemName::Recent => format!("RECENT {}", status.recent),
            StatusDataItemName::UidNext => format!("UIDNEXT {}", status.uid_next),
            StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", status.uid_validity),
            StatusDataItemName::Unseen => format!("UNSEEN {}", status.unseen),
            StatusDataItemName::Deleted => format!("DELETED {}", status.deleted),
            other => return bad(format!("STATUS item {other:?} is not supported")),
        };
        values.push(value);
    }
    let mut line = b"* STATUS ".to_vec();
    write_astring(&mut line, names::to_wire(&name).as_bytes());
    line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    out.raw(&line);
    ok("STATUS completed")
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn list_wildcards() {
        let cases = [
            ("*", "INBOX", true),
            ("*", "a/b/c", true),
            ("%", "a", true),
            ("%", "a/b", false),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("inbox", "INBOX", true),
            ("Inbox/%", "INBOX/x", true),
            ("%/b", "a/b", true),
            ("a*c", "abc", true),
            ("a*c", "ab", false),
            ("a%c", "a/c", false),
            ("", "a", false),
            ("Sent", "sent", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches_pattern(pattern, name), expected, "pattern {pattern:?} against {name:?}");
        }
    }
}
