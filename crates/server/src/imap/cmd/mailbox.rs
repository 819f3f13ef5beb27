//! CREATE (with CREATE-SPECIAL-USE, RFC 6154), DELETE, RENAME,
//! SUBSCRIBE, UNSUBSCRIBE and STATUS (with SIZE and DELETED, RFC 8438 and
//! RFC 9051, and APPENDLIMIT, RFC 7889). LIST and LSUB are in
//! [`super::list`].

use std::num::NonZeroU32;
use std::sync::Arc;

use roost_proto::extended::{CreateSpecialUse, ExtendedStatus, SpecialUse, StatusItem};
use roost_proto::response::rev2::{ListData, ListExtendedItem, StatusValue, encode_list, encode_status_data};
use roost_proto::types::mailbox::Mailbox;
use roost_proto::types::status::{StatusDataItem, StatusDataItemName};
use roost_store::{HIERARCHY_SEPARATOR, MailboxStatus};

use super::{Outcome, bad, name_error, no, ok};
use crate::imap::names;
use crate::imap::output::Output;
use crate::imap::session::Session;

fn account_id(session: &Session) -> Option<roost_store::AccountId> {
    session.account().map(|account| account.id)
}

/// Runs CREATE. `special_uses` are the attributes of a `USE (...)` list
/// (RFC 6154 section 3), empty for a plain CREATE.
pub async fn create(session: &mut Session, mailbox: &Mailbox<'_>, special_uses: &[SpecialUse], out: &mut Output) -> Outcome {
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
    let client_name = match names::from_wire_with_supplied(mailbox, &session.ctx.config.limits, names::encoding(session.enabled)) {
        Ok(client_name) => client_name,
        Err(err) => return name_error(err),
    };
    let name = &client_name.canonical;
    if name == "INBOX" {
        return no(Some("ALREADYEXISTS"), "INBOX always exists");
    }
    let special_use = match supported_special_use(special_uses) {
        Ok(special_use) => special_use,
        Err(outcome) => return outcome,
    };
    if let Err(err) = session.ctx.store.create_mailbox(account, name, special_use).await {
        return super::store_failure(session, err);
    }
    // RFC 9051 section 6.3.4: a server that normalised the name should
    // send LIST with the new name and the supplied one as OLDNAME.
    if let Some(supplied) = &client_name.supplied {
        if session.enabled.imap4rev2 {
            let attributes = super::list::mailbox_attributes(session, account, name).await.unwrap_or_default();
            write_old_name(session, &attributes, name, supplied, out);
        }
    }
    ok("CREATE completed")
}

/// Runs CREATE with a `USE` list.
pub async fn create_special_use(session: &mut Session, command: CreateSpecialUse, out: &mut Output) -> Outcome {
    create(session, &command.mailbox, &command.special_uses, out).await
}

/// Writes `* LIST (attributes) "/" name ("OLDNAME" (supplied))`, which
/// informs an IMAP4rev2 client that the server stored the name it sent as
/// `supplied` under the NFC form `name` (RFC 9051 section 6.3.9.7).
pub(super) fn write_old_name(session: &Session, attributes: &[String], name: &str, supplied: &str, out: &mut Output) {
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let items = [ListExtendedItem::OldName(supplied)];
    let data = ListData { attributes: &attributes, delimiter: Some(HIERARCHY_SEPARATOR), name, extended_items: &items };
    out.raw(&encode_list(&data, names::encoding(session.enabled)));
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

/// Runs DELETE. Deleting the selected mailbox also leaves it, as if by
/// UNSELECT, because its messages are gone and its sequence numbers
/// mean nothing any more. An IMAP4rev2 client receives OK [CLOSED]
/// (RFC 9051 section 7.1), which ends the old mailbox's responses. Other
/// sessions that have it selected are disconnected by their next command
/// (see [`super::selected_mailbox_gone`]).
pub async fn delete(session: &mut Session, mailbox: &Mailbox<'_>, out: &mut Output) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let client_name = match names::from_wire_with_supplied(mailbox, &session.ctx.config.limits, names::encoding(session.enabled)) {
        Ok(client_name) => client_name,
        Err(err) => return name_error(err),
    };
    let name = &client_name.canonical;
    if name == "INBOX" {
        return no(Some("CANNOT"), "INBOX cannot be deleted");
    }
    let doomed = match session.ctx.store.mailbox(account, name).await {
        Ok(info) => info.map(|info| info.id),
        Err(err) => return super::store_failure(session, err),
    };
    if let Err(err) = session.ctx.store.delete_mailbox(account, name).await {
        return super::store_failure(session, err);
    }
    if doomed.is_some() && session.selected().map(|selected| selected.id) == doomed {
        super::select::leave_deleted(session, out);
    }
    // RFC 9051 section 6.3.5: a server that normalised the name should
    // send LIST with \NonExistent, the new name and the supplied one as
    // OLDNAME.
    if let Some(supplied) = &client_name.supplied {
        if session.enabled.imap4rev2 {
            write_old_name(session, &["\\NonExistent".to_owned()], name, supplied, out);
        }
    }
    ok("DELETE completed")
}

/// Runs RENAME. An IMAP4rev2 session also gets a LIST response with
/// OLDNAME for each renamed mailbox, which RFC 9051 section 6.3.6 allows
/// as an untagged response to RENAME, so the client can follow the move
/// without listing again. When the old name was normalised to NFC, the
/// renamed mailbox's OLDNAME is the name as sent, as section 6.3.6 recommends.
///
/// A session that has the renamed mailbox selected, this one or another,
/// keeps it selected with the same UIDs and sequence numbers, because
/// the store keeps the mailbox's id across a rename.
pub async fn rename(session: &mut Session, from: &Mailbox<'_>, to: &Mailbox<'_>, out: &mut Output) -> Outcome {
    let Some(account) = account_id(session) else { return bad("Log in first") };
    let limits = &session.ctx.config.limits;
    let encoding = names::encoding(session.enabled);
    let from_name = names::from_wire_with_supplied(from, limits, encoding);
    let to_name = names::from_wire(to, limits, encoding);
    let (from, from_supplied, to) = match (from_name, to_name) {
        (Ok(from), Ok(to)) => (from.canonical, from.supplied, to),
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
    if session.enabled.imap4rev2 && from != "INBOX" {
        let top_old_name = from_supplied.as_deref().unwrap_or(&from);
        super::list::write_renamed(session, account, &from, top_old_name, &to, out).await;
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
