//! LIST and LSUB: the basic forms of RFC 3501, and the extended form of
//! LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154) and LIST-STATUS
//! (RFC 5819) that IMAP4rev2 (RFC 9051 section 6.3.9) makes the only one.
//!
//! Every form works on one table of names built from the account's
//! mailboxes and subscriptions: existing mailboxes, subscribed names that
//! may not exist, and the parents those imply. The forms differ only in
//! which names they pick from the table and which attributes they write.
//! A rev1 session's basic LIST and every LSUB keep their RFC 3501 output.
//! An extended LIST, and any LIST in a rev2 session, uses the RFC 5258
//! attributes (`\NonExistent` in place of `\Noselect` for a name that does
//! not exist).

use std::collections::BTreeMap;
use std::sync::Arc;

use roost_proto::extended::{ExtendedList, ListReturnOptions, ListSelection};
use roost_proto::response::rev2::{ChildInfoCriteria, ListData, ListExtendedItem, MailboxNameEncoding, encode_list};
use roost_proto::types::IntoStatic;
use roost_proto::types::mailbox::{ListMailbox, Mailbox};
use roost_store::{AccountId, HIERARCHY_SEPARATOR};

use super::{Outcome, bad, ok};
use crate::imap::names;
use crate::imap::output::Output;
use crate::imap::session::Session;

/// One name a LIST or LSUB response may carry.
#[derive(Default)]
struct Entry {
    /// The mailbox exists and can be selected.
    exists: bool,
    subscribed: bool,
    /// Some existing mailbox lies below this one.
    has_children: bool,
    special_use: Option<String>,
}

/// The table of names, in name order, so responses come out sorted.
type Table = BTreeMap<String, Entry>;

/// The form of a LIST command, which picks the attributes written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// RFC 3501 LIST in an IMAP4rev1 session.
    Basic,
    /// RFC 3501 LSUB.
    Lsub,
    /// RFC 5258 LIST, or any LIST in an IMAP4rev2 session.
    Extended,
}

/// Runs LIST or LSUB in the RFC 3501 syntax. In an IMAP4rev2 session LIST
/// is the extended LIST without options (RFC 9051 section 6.3.9).
pub async fn list(
    session: &mut Session,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
    out: &mut Output,
) -> Outcome {
    // LSUB keeps its RFC 3501 form after ENABLE IMAP4rev2 as well, because
    // RFC 9051 deprecates it without having servers reject it.
    let form = match (lsub, session.enabled.imap4rev2) {
        (true, _) => Form::Lsub,
        (false, false) => Form::Basic,
        (false, true) => Form::Extended,
    };
    let request = Request {
        reference: reference.clone().into_static(),
        patterns: vec![pattern.clone().into_static()],
        selection: ListSelection::default(),
        returns: ListReturnOptions::default(),
    };
    run(session, request, form, out).await
}

/// Runs a LIST command in the RFC 5258 syntax.
pub async fn list_extended(session: &mut Session, command: ExtendedList, out: &mut Output) -> Outcome {
    let request = Request {
        reference: command.reference,
        patterns: command.patterns,
        selection: command.selection,
        returns: command.return_options,
    };
    run(session, request, Form::Extended, out).await
}

struct Request {
    reference: Mailbox<'static>,
    patterns: Vec<ListMailbox<'static>>,
    selection: ListSelection,
    returns: ListReturnOptions,
}

async fn run(session: &mut Session, request: Request, form: Form, out: &mut Output) -> Outcome {
    let Some(account) = session.account().map(|account| account.id) else { return bad("Log in first") };
    let command = if form == Form::Lsub { "LSUB" } else { "LIST" };
    let encoding = names::encoding(session.enabled);
    let reference = match &request.reference {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(other) => match names::decode(other.as_ref(), encoding) {
            Some(reference) => reference,
            None => return bad("Reference name is not a valid mailbox name"),
        },
    };
    let mut patterns = Vec::with_capacity(request.patterns.len());
    for pattern in &request.patterns {
        let bytes: &[u8] = match pattern {
            ListMailbox::Token(token) => token.as_ref(),
            ListMailbox::String(string) => string.as_ref(),
        };
        let Some(pattern) = names::decode(bytes, encoding) else {
            return bad("Mailbox pattern is not a valid mailbox name");
        };
        patterns.push(pattern);
    }

    // An empty pattern requests the hierarchy separator and the root
    // (RFC 3501 section 6.3.8). When other patterns are given too, they
    // are listed as usual.
    if patterns.iter().all(String::is_empty) {
        out.untagged(&format!("{command} (\\Noselect) \"/\" \"\""));
        return ok(format!("{command} completed"));
    }
    let full_patterns: Vec<String> = patterns
        .into_iter()
        .filter(|pattern| !pattern.is_empty())
        .map(|pattern| prefix_reference(&reference, pattern))
        .collect();

    let table = match load_table(session, account).await {
        Ok(table) => table,
        Err(outcome) => return outcome,
    };
    let matches = |name: &str| full_patterns.iter().any(|pattern| matches_pattern(pattern, name));
    match form {
        Form::Basic => write_basic(&table, &matches, encoding, out),
        Form::Lsub => write_lsub(&table, &matches, &full_patterns, encoding, out),
        Form::Extended => {
            let listed = write_extended(&table, &matches, request.selection, &request.returns, encoding, out);
            if let Some(items) = &request.returns.status {
                super::mailbox::write_list_status(session, account, &listed, items, out).await;
            }
        }
    }
    ok(format!("{command} completed"))
}

/// Puts the reference in front of the pattern (RFC 3501 section 6.3.8)
/// unless the pattern starts at the root.
fn prefix_reference(reference: &str, pattern: String) -> String {
    if pattern.starts_with(HIERARCHY_SEPARATOR) || reference.is_empty() {
        pattern
    } else {
        format!("{reference}{pattern}")
    }
}

async fn load_table(session: &Session, account: AccountId) -> Result<Table, Outcome> {
    let ctx = Arc::clone(&session.ctx);
    let mailboxes = ctx.store.mailboxes(account).await.map_err(|err| super::store_failure(session, err))?;
    let subscriptions = ctx.store.subscriptions(account).await.map_err(|err| super::store_failure(session, err))?;

    let mut table = Table::new();
    for mailbox in mailboxes {
        let entry = table.entry(mailbox.name).or_default();
        entry.exists = true;
        entry.special_use = mailbox.special_use;
    }
    for name in subscriptions {
        table.entry(name).or_default().subscribed = true;
    }
    // Parents implied by deeper names are in the table too, as names that
    // do not exist. Only an existing mailbox gives its parents children
    // (RFC 3348): a subscribed name that does not exist does not.
    let names: Vec<(String, bool)> = table.iter().map(|(name, entry)| (name.clone(), entry.exists)).collect();
    for (name, exists) in &names {
        let mut end = 0;
        while let Some(offset) = name[end..].find(HIERARCHY_SEPARATOR) {
            let parent = table.entry(name[..end + offset].to_owned()).or_default();
            parent.has_children |= *exists;
            end += offset + 1;
        }
    }
    Ok(table)
}

/// The names below `name` in the table, in order.
fn descendants<'a>(table: &'a Table, name: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
    table
        .range(format!("{name}{HIERARCHY_SEPARATOR}")..)
        .take_while(move |(child, _)| child.starts_with(name) && child.as_bytes().get(name.len()) == Some(&b'/'))
}

fn write_basic(table: &Table, matches: &dyn Fn(&str) -> bool, encoding: MailboxNameEncoding, out: &mut Output) {
    for (name, entry) in table {
        if !matches(name) || (!entry.exists && !entry.has_children) {
            continue;
        }
        let mut attributes: Vec<&str> = Vec::new();
        if !entry.exists {
            attributes.push("\\Noselect");
        }
        attributes.push(if entry.has_children { "\\HasChildren" } else { "\\HasNoChildren" });
        if let Some(special_use) = &entry.special_use {
            attributes.push(special_use);
        }
        write_line("LIST", &attributes, name, encoding, out);
    }
}

fn write_lsub(
    table: &Table,
    matches: &dyn Fn(&str) -> bool,
    patterns: &[String],
    encoding: MailboxNameEncoding,
    out: &mut Output,
) {
    for (name, entry) in table {
        if !matches(name) {
            continue;
        }
        if !entry.subscribed {
            // A `%` that stops at an unsubscribed parent of a subscribed
            // name lists the parent as \Noselect (RFC 3501 section 6.3.9).
            let has_subscribed_child = descendants(table, name).any(|(_, child)| child.subscribed);
            let ends_with_percent = patterns.iter().any(|pattern| pattern.ends_with('%'));
            if !(ends_with_percent && has_subscribed_child) {
                continue;
            }
        }
        let attributes: &[&str] = if entry.subscribed { &[] } else { &["\\Noselect"] };
        write_line("LSUB", attributes, name, encoding, out);
    }
}

/// Writes the LIST responses of RFC 5258 and returns the names of the
/// listed mailboxes that exist, for the STATUS return option.
fn write_extended(
    table: &Table,
    matches: &dyn Fn(&str) -> bool,
    selection: ListSelection,
    returns: &ListReturnOptions,
    encoding: MailboxNameEncoding,
    out: &mut Output,
) -> Vec<String> {
    // The SUBSCRIBED selection option implies the SUBSCRIBED return option
    // (RFC 5258 section 3.1).
    let return_subscribed = returns.subscribed || selection.subscribed;
    let selected = |entry: &Entry| -> bool {
        let base = if selection.subscribed { entry.subscribed } else { entry.exists };
        base && (!selection.special_use || entry.special_use.is_some())
    };

    let mut listed = Vec::new();
    for (name, entry) in table {
        if !matches(name) {
            continue;
        }
        let is_selected = selected(entry);
        // RECURSIVEMATCH also lists a matching name whose descendant meets
        // the selection criteria but not the pattern (RFC 5258 section 3),
        // and CHILDINFO names the selection options that descendant meets.
        let child_info = selection.recursive_match
            && descendants(table, name).any(|(child, child_entry)| selected(child_entry) && !matches(child));
        let plain_parent = !selection.subscribed && !selection.special_use && !entry.exists && entry.has_children;
        if !(is_selected || child_info || plain_parent) {
            continue;
        }

        let attributes = extended_attributes(entry, return_subscribed, returns.children);
        let criteria = ChildInfoCriteria { subscribed: selection.subscribed, special_use: selection.special_use };
        let items: &[ListExtendedItem<'_>] = if child_info { &[ListExtendedItem::ChildInfo(criteria)] } else { &[] };
        let data = ListData { attributes: &attributes, delimiter: Some(HIERARCHY_SEPARATOR), name, extended_items: items };
        out.raw(&encode_list(&data, encoding));
        if entry.exists {
            listed.push(name.clone());
        }
    }
    listed
}

/// Returns the RFC 5258 attributes of one name. `\Subscribed` is added
/// only when `show_subscribed` is set.
fn extended_attributes(entry: &Entry, show_subscribed: bool, show_children: bool) -> Vec<&str> {
    let mut attributes: Vec<&str> = Vec::new();
    if !entry.exists {
        attributes.push("\\NonExistent");
    }
    if show_subscribed && entry.subscribed {
        attributes.push("\\Subscribed");
    }
    // Children attributes are sent without the CHILDREN option too,
    // which RFC 5258 section 4 allows, because clients use them. A
    // name that does not exist gets them only when asked.
    if entry.exists || show_children {
        attributes.push(if entry.has_children { "\\HasChildren" } else { "\\HasNoChildren" });
    }
    if let Some(special_use) = &entry.special_use {
        attributes.push(special_use);
    }
    attributes
}

/// Returns the attributes that `LIST "" name` without options writes for
/// the mailbox `name` in an IMAP4rev2 session, for the LIST response of
/// SELECT and EXAMINE.
pub(super) async fn mailbox_attributes(session: &Session, account: AccountId, name: &str) -> Result<Vec<String>, Outcome> {
    let table = load_table(session, account).await?;
    let attributes = match table.get(name) {
        Some(entry) => extended_attributes(entry, false, false).into_iter().map(str::to_owned).collect(),
        None => vec!["\\NonExistent".to_owned()],
    };
    Ok(attributes)
}

/// Writes a LIST response with OLDNAME for the mailbox renamed from `from`
/// to `to` and for each mailbox below it, which RENAME moved too. The
/// mailbox `to` itself gets `top_old_name` as its OLDNAME, which is the
/// name the client sent when that differs from `from`. A store failure
/// writes nothing, because the RENAME itself succeeded.
pub(super) async fn write_renamed(
    session: &Session,
    account: AccountId,
    from: &str,
    top_old_name: &str,
    to: &str,
    out: &mut Output,
) {
    let Ok(table) = load_table(session, account).await else { return };
    let encoding = names::encoding(session.enabled);
    let renamed = table.get_key_value(to).into_iter().chain(descendants(&table, to));
    for (name, entry) in renamed.filter(|(_, entry)| entry.exists) {
        let old_name = match name.len() == to.len() {
            true => top_old_name.to_owned(),
            false => format!("{from}{}", &name[to.len()..]),
        };
        let attributes = extended_attributes(entry, false, false);
        let items = [ListExtendedItem::OldName(&old_name)];
        let data = ListData { attributes: &attributes, delimiter: Some(HIERARCHY_SEPARATOR), name, extended_items: &items };
        out.raw(&encode_list(&data, encoding));
    }
}

fn write_line(command: &str, attributes: &[&str], name: &str, encoding: MailboxNameEncoding, out: &mut Output) {
    let mut line = format!("* {command} ({}) \"/\" ", attributes.join(" ")).into_bytes();
    names::write(&mut line, name, encoding);
    line.extend_from_slice(b"\r\n");
    out.raw(&line);
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
