//! CREATE (with CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME,
//! SUBSCRIBE, UNSUBSCRIBE and STATUS (with SIZE and DELETED, RFC 8438 and
//! RFC 9051, and APPENDLIMIT, RFC 7889). LIST and LSUB are in
//! [`super::list`].

use std::num::NonZeroU32;
use std::sync::Arc;

use roost_proto::extended::{CreateSpecialUse, ExtendedStatus, SpecialUse, StatusItem};
use roost_proto::response::rev2::{StatusValue, encode_status_data};
use roost_proto::types::mailbox::Mailbox;
use roost_proto::types::status::{StatusDataItem, StatusDataItemName};
use roost_store::MailboxStatus;

use super::{Outcome, bad, name_error, no, ok};
use crate::imap::names;
use crate::imap::output::Output;
use crate::imap::session::Session;

fn account_id(session: &Session) -> Option<roost_store::AccountId> {
    session.account().map(|account| account.id)
}

/// Runs CREATE. `special_uses` are the attributes of a `USE (...)` list
/// (RFC 6154 section 3), empty for a plain CREATE.
pub async fn create(session: &mut Session, mailbox: &Mailbox<'_>, special_uses: &[SpecialUse]) -> Outcome {
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
    let name = match names::from_wire(mailbox, &session.ctx.config.limits, names::encoding(session.enabled)) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    if name == "INBOX" {
        return no(Some("ALREADYEXISTS"), "INBOX always exists");
    }
    let special_use = match supported_special_use(special_uses) {
        Ok(special_use) => special_use,
        Err(outcome) => return outcome,
    };
    match session.ctx.store.create_mailbox(account, &name, special_use).await {
        Ok(_) => ok("CREATE completed"),
        Err(err) => super::store_failure(session, err),
    }
}

/// Runs CREATE with a `USE` list.
pub async fn create_special_use(session: &mut Session, command: CreateSpecialUse) -> Outcome {
    create(session, &command.mailbox, &command.special_uses).await
}

/// Picks the one special use a new mailbox gets. The store keeps at most
/// one per mailbox, and `\All` and `\Flagged` name virtual mailboxes that
/// Roost cannot build, so those requests get NO [USEATTR] (RFC 6154
/// section 3), as does an attribute RFC 6154 does not define.
fn supported_special_use(special_uses: &[SpecialUse]) -> Result<Option<&str>, Outcome> {
    match special_uses {
        [] => Ok(None),
        [SpecialUse::Archive | SpecialUse::Drafts | SpecialUse::Junk | SpecialUse::Sent | SpecialUse::Trash] => {
            Ok(Some(special_uses[0].as_str()))
        }
        [SpecialUse::All | SpecialUse::Flagged] => Err(no(
            Some("USEATTR"),
            format!("{} mailboxes are not supported: use \\Archive, \\Drafts, \\Junk, \\Sent or \\Trash", special_uses[0].as_str()),
        )),
        [SpecialUse::Other(flag)] => Err(no(Some("USEATTR"), format!("{flag} is not a special-use attribute"))),
        _ => Err(no(Some("USEATTR"), "A mailbox can have only one special-use attribute")),
    }
}

pub async fn delete(session: &mut Session, mailbox: &Mailbox<'_>) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits, names::encoding(session.enabled)) {
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

/// Runs RENAME. An IMAP4rev2 session also gets a LIST response with
/// OLDNAME for each renamed mailbox, which RFC 9051 section 6.3.6 allows
/// as an untagged response to RENAME, so the client can follow the move
/// without listing again.
pub async fn rename(session: &mut Session, from: &Mailbox<'_>, to: &Mailbox<'_>, out: &mut Output) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let limits = &session.ctx.config.limits;
    let encoding = names::encoding(session.enabled);
    let (from, to) = match (names::from_wire(from, limits, encoding), names::from_wire(to, limits, encoding)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(err), _) | (_, Err(err)) => return name_error(err),
    };
    if to == "INBOX" {
        return no(Some("ALREADYEXISTS"), "INBOX always exists");
    }
    if let Err(err) = session.ctx.store.rename_mailbox(account, &from, &to).await {
        return super::store_failure(session, err);
    }
    // Renaming INBOX moves its messages to a new mailbox and leaves INBOX
    // in place, so no mailbox had its name changed and OLDNAME would
    // mislead.
    // NOTE: names are stored as sent, without Unicode normalization (NFC),
    // although RFC 9051 section 6.3.4 requires a server to reject or
    // normalize a name that is not Net-Unicode. Once names are normalized,
    // CREATE, DELETE and SELECT must also send OLDNAME when a name changed.
    if session.enabled.imap4rev2 && from != "INBOX" {
        super::list::write_renamed(session, account, &from, &to, out).await;
    }
    ok("RENAME completed")
}

pub async fn subscribe(session: &mut Session, mailbox: &Mailbox<'_>, subscribed: bool) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &session.ctx.config.limits, names::encoding(session.enabled)) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    match session.ctx.store.set_subscribed(account, &name, subscribed).await {
        Ok(()) if subscribed => ok("SUBSCRIBE completed"),
        Ok(()) => ok("UNSUBSCRIBE completed"),
        Err(err) => super::store_failure(session, err),
    }
}

/// Runs STATUS in the form imap-codec parses, which has no APPENDLIMIT.
pub async fn status(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    items: &[StatusDataItemName],
    out: &mut Output,
) -> Outcome {
    let items: Vec<StatusItem> = items.iter().cloned().map(StatusItem::Standard).collect();
    status_items_of(session, mailbox, &items, out).await
}

/// Runs STATUS with the APPENDLIMIT item.
pub async fn status_extended(session: &mut Session, command: ExtendedStatus, out: &mut Output) -> Outcome {
    status_items_of(session, &command.mailbox, &command.items, out).await
}

async fn status_items_of(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    items: &[StatusItem],
    out: &mut Output,
) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let encoding = names::encoding(session.enabled);
    let name = match names::from_wire(mailbox, &session.ctx.config.limits, encoding) {
        Ok(name) => name,
        Err(err) => return name_error(err),
    };
    if let Err(text) = check_status_items(items, session.enabled.imap4rev2) {
        return bad(text);
    }
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
    let values = status_values(&status, items, append_limit(session));
    out.raw(&encode_status_data(&name, &values, encoding));
    ok("STATUS completed")
}

/// Rejects STATUS items Roost does not support. RECENT is not an item in
/// IMAP4rev2 (RFC 9051 section 6.3.11), so a rev2 session may not ask for
/// it. DELETED-STORAGE belongs to QUOTA (RFC 9208), which Roost does not
/// offer.
fn check_status_items(items: &[StatusItem], imap4rev2: bool) -> Result<(), String> {
    for item in items {
        let StatusItem::Standard(item) = item else { continue };
        match item {
            StatusDataItemName::Recent if imap4rev2 => {
                return Err("STATUS RECENT is not valid after ENABLE IMAP4rev2".to_owned());
            }
            StatusDataItemName::Messages
            | StatusDataItemName::Recent
            | StatusDataItemName::UidNext
            | StatusDataItemName::UidValidity
            | StatusDataItemName::Unseen
            | StatusDataItemName::Deleted
            | StatusDataItemName::Size => {}
            other => return Err(format!("STATUS item {other:?} is not supported")),
        }
    }
    Ok(())
}

/// Returns the APPENDLIMIT of every mailbox. Roost has one limit for all
/// of them, the one the APPENDLIMIT capability announces, so STATUS never
/// sends NIL.
fn append_limit(session: &Session) -> Option<u64> {
    Some(session.ctx.config.limits.message_bytes_max as u64)
}

/// Returns the values of `items`, which [`check_status_items`] accepted,
/// in the order asked.
fn status_values(status: &MailboxStatus, items: &[StatusItem], append_limit: Option<u64>) -> Vec<StatusValue> {
    let uid_next = NonZeroU32::new(status.uid_next).unwrap_or(NonZeroU32::MIN);
    let uid_validity = NonZeroU32::new(status.uid_validity).unwrap_or(NonZeroU32::MIN);
    items
        .iter()
        .filter_map(|item| match item {
            StatusItem::AppendLimit => Some(StatusValue::AppendLimit(append_limit)),
            StatusItem::Standard(item) => standard_value(status, item, uid_next, uid_validity).map(StatusValue::from),
        })
        .collect()
}

fn standard_value(
    status: &MailboxStatus,
    item: &StatusDataItemName,
    uid_next: NonZeroU32,
    uid_validity: NonZeroU32,
) -> Option<StatusDataItem> {
    match item {
        StatusDataItemName::Messages => Some(StatusDataItem::Messages(status.messages)),
        StatusDataItemName::Recent => Some(StatusDataItem::Recent(status.recent)),
        StatusDataItemName::UidNext => Some(StatusDataItem::UidNext(uid_next)),
        StatusDataItemName::UidValidity => Some(StatusDataItem::UidValidity(uid_validity)),
        StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(status.unseen)),
        StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(status.deleted)),
        StatusDataItemName::Size => Some(StatusDataItem::Size(status.size)),
        _ => None,
    }
}

/// Writes the STATUS responses of LIST RETURN (STATUS (...)) (RFC 5819)
/// for the existing mailboxes the LIST listed. A mailbox deleted since it
/// was listed is skipped, and an invalid item list gets no STATUS at all,
/// because LIST itself succeeded.
pub async fn write_list_status(
    session: &Session,
    account: roost_store::AccountId,
    listed: &[String],
    items: &[StatusItem],
    out: &mut Output,
) {
    if check_status_items(items, session.enabled.imap4rev2).is_err() {
        return;
    }
    let encoding = names::encoding(session.enabled);
    for name in listed {
        let Ok(Some(info)) = session.ctx.store.mailbox(account, name).await else { continue };
        let Ok(status) = session.ctx.store.status(info.id).await else { continue };
        let values = status_values(&status, items, append_limit(session));
        out.raw(&encode_status_data(name, &values, encoding));
    }
}
