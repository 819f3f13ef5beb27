//! STORE, COPY, MOVE (RFC 6851) and EXPUNGE, with their UID forms
//! (UID EXPUNGE from RFC 4315).

use std::sync::Arc;

use roost_proto::types::flag::{Flag, StoreResponse, StoreType};
use roost_proto::types::mailbox::Mailbox;
use roost_proto::types::sequence::SequenceSet;
use roost_store::FlagOp;

use super::{Outcome, bad, no, ok, ok_code};
use crate::imap::flags::{self, write_flags};
use crate::imap::names;
use crate::imap::output::Output;
use crate::imap::session::Session;
use crate::imap::sequence::resolve;
use roost_proto::sequence::compact;

const READ_ONLY: &str = "Mailbox is open read-only (EXAMINE)";

pub async fn store(
    session: &mut Session,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flag_list: &[Flag<'_>],
    uid: bool,
    out: &mut Output,
) -> Outcome {
    let ctx = Arc::clone(&session.ctx);
    let Some(selected) = session.selected_mut() else { return bad("No mailbox selected") };
    if selected.read_only {
        return no(Some("CANNOT"), READ_ONLY);
    }
    let indexes = match resolve(&selected.view, set, uid) {
        Ok(indexes) => indexes,
        Err(text) => return bad(text),
    };
    let new_flags = match flags::from_imap(flag_list, &selected.view.keywords) {
        Ok(flags) => flags,
        Err(flags::FlagError::NotSettable(name)) => return bad(format!("Flag {name} cannot be stored")),
    };
    let op = match kind {
        StoreType::Replace => FlagOp::Replace,
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
    };
    let uids: Vec<u32> = indexes.iter().map(|&i| selected.view.messages[i].uid).collect();
    let changes = match ctx.store.store_flags(selected.id, &uids, op, &new_flags, None).await {
        Ok(changes) => changes,
        Err(err) => return super::store_failure(session, err),
    };
    let Some(selected) = session.selected_mut() else { return bad("No mailbox selected") };
    selected.own_changes.extend(changes.changed.iter().map(|entry| (entry.uid, entry.modseq)));
    // Sync before the FETCH responses, so that a keyword new to the mailbox
    // is announced in FLAGS before a FETCH carries it. The FETCH lines then
    // use the sequence numbers the client has just been given. Only UID
    // STORE may send EXPUNGE (RFC 3501 section 7.4.1).
    crate::imap::sync::sync(session, out, uid).await;
    if response == StoreResponse::Answer {
        // Report the flags of every message in the set as they are now,
        // changed or not, as RFC 3501 section 6.4.6 describes.
        let Some(mailbox) = session.selected().map(|selected| selected.id) else { return bad("No mailbox selected") };
        let records = match ctx.store.messages(mailbox, &uids).await {
            Ok(records) => records,
            Err(err) => return super::store_failure(session, err),
        };
        let Some(selected) = session.selected() else { return bad("No mailbox selected") };
        for record in records {
            let Some(index) = crate::imap::view::index_of(&selected.view, record.uid) else { continue };
            let recent = selected.recent.binary_search(&record.uid).is_ok();
            let mut line = format!("{} FETCH (", index + 1);
            if uid {
                line.push_str(&format!("UID {} ", record.uid));
            }
            line.push_str("FLAGS ");
            write_flags(&mut line, &record.flags, recent);
            line.push(')');
            out.untagged(&line);
        }
    }
    ok("STORE completed")
}

pub async fn copy(
    session: &mut Session,
    set: &SequenceSet,
    mailbox: &Mailbox<'_>,
    uid: bool,
    is_move: bool,
    out: &mut Output,
) -> Outcome {
    let ctx = Arc::clone(&session.ctx);
    let command = if is_move { "MOVE" } else { "COPY" };
    let Some(account) = session.account().map(|a| a.id) else { return bad("Log in first") };
    let target_name = match names::from_wire(mailbox, &ctx.config.limits, names::encoding(session.enabled)) {
        Ok(name) => name,
        Err(err) => return super::name_error(err),
    };
    let Some(selected) = session.selected() else { return bad("No mailbox selected") };
    if is_move && selected.read_only {
        return no(Some("CANNOT"), READ_ONLY);
    }
    let indexes = match resolve(&selected.view, set, uid) {
        Ok(indexes) => indexes,
        Err(text) => return bad(text),
    };
    let uids: Vec<u32> = indexes.iter().map(|&i| selected.view.messages[i].uid).collect();
    let source = selected.id;
    let target = match ctx.store.mailbox(account, &target_name).await {
        Ok(Some(target)) => target,
        Ok(None) => return no(Some("TRYCREATE"), "Target mailbox does not exist"),
        Err(err) => return super::store_failure(session, err),
    };
    let result = if is_move {
        ctx.store.move_messages(source, &uids, target.id).await
    } else {
        ctx.store.copy(source, &uids, target.id).await
    };
    let copied = match result {
        Ok(copied) => copied,
        Err(err) => return super::store_failure(session, err),
    };
    if copied.uids.is_empty() {
        return ok(format!("{command} completed; no messages"));
    }
    let sources: Vec<u32> = copied.uids.iter().map(|pair| pair.0).collect();
    let targets: Vec<u32> = copied.uids.iter().map(|pair| pair.1).collect();
    let code = format!("COPYUID {} {} {}", copied.uid_validity, compact(&sources), compact(&targets));
    if is_move {
        // RFC 6851: COPYUID goes in an untagged OK before the EXPUNGEs.
        out.untagged(&format!("OK [{code}] Moved"));
        return ok("MOVE completed");
    }
    ok_code(code, "COPY completed")
}

pub async fn expunge(session: &mut Session, uid_set: Option<&SequenceSet>, _out: &mut Output) -> Outcome {
    let ctx = Arc::clone(&session.ctx);
    let Some(selected) = session.selected() else { return bad("No mailbox selected") };
    if selected.read_only {
        return no(Some("CANNOT"), READ_ONLY);
    }
    let uids: Option<Vec<u32>> = match uid_set {
        None => None,
        Some(set) => match resolve(&selected.view, set, true) {
            Ok(indexes) => Some(indexes.iter().map(|&i| selected.view.messages[i].uid).collect()),
            Err(text) => return bad(text),
        },
    };
    // The EXPUNGE responses come from the sync that follows every command.
    match ctx.store.expunge(selected.id, uids.as_deref()).await {
        Ok(_) => ok("EXPUNGE completed"),
        Err(err) => super::store_failure(session, err),
    }
}
