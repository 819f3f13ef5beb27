//! SELECT, EXAMINE, UNSELECT (RFC 3691) and CLOSE.

use std::sync::Arc;

use roost_proto::response::rev2::{ListData, ListExtendedItem, encode_list};
use roost_proto::types::mailbox::Mailbox;
use roost_store::{HIERARCHY_SEPARATOR, StoreError, system_flag};

use super::{Outcome, bad, no, ok, ok_code};
use crate::imap::names;
use crate::imap::output::Output;
use crate::imap::session::{Account, Selected, Session, State};
use crate::imap::sync::write_flag_announcements;

/// Leaves the selected mailbox, if any, and returns the account.
fn leave_mailbox(session: &mut Session) -> Option<Box<Account>> {
    match std::mem::replace(&mut session.state, State::Logout) {
        State::Authenticated(account) | State::Selected(account, _) => Some(account),
        other => {
            session.state = other;
            None
        }
    }
}

pub async fn select(session: &mut Session, mailbox: &Mailbox<'_>, read_only: bool, out: &mut Output) -> Outcome {
    // A SELECT that fails still leaves the previous mailbox (RFC 3501
    // section 6.3.1), so the state drops to Authenticated first. An
    // IMAP4rev2 client receives OK [CLOSED] (RFC 9051 section 7.1),
    // which marks where the old mailbox's responses end.
    let was_selected = session.selected().is_some();
    let Some(account) = leave_mailbox(session) else {
        return bad("Log in first");
    };
    if was_selected && session.enabled.imap4rev2 {
        out.untagged("OK [CLOSED] Previous mailbox is now closed");
    }
    let account_id = account.id;
    session.state = State::Authenticated(account);

    let ctx = Arc::clone(&session.ctx);
    let (name, supplied) = match names::from_wire_with_supplied(mailbox, &ctx.config.limits, names::encoding(session.enabled)) {
        Ok(client_name) => (client_name.canonical, client_name.supplied),
        Err(err) => return super::name_error(err),
    };
    let info = match ctx.store.mailbox(account_id, &name).await {
        Ok(Some(info)) => info,
        Ok(None) => return no(Some("NONEXISTENT"), "No such mailbox"),
        Err(err) => return super::store_failure(session, err),
    };
    let mut changes = ctx.store.watch(info.id);
    let current = changes.mark_seen();
    let view = match ctx.views.current(ctx.store.as_ref(), info.id, current).await {
        Ok(view) => view,
        Err(err) => return super::store_failure(session, err),
    };
    // An IMAP4rev2 session has no \Recent (RFC 9051 appendix E), so it
    // leaves recent messages for rev1 sessions to claim.
    let rev2 = session.enabled.imap4rev2;
    let (recent, recent_count) = if rev2 {
        (Vec::new(), 0)
    } else if view.messages.is_empty() && !read_only {
        // Nothing to claim, so the store's writer is skipped. A message
        // that arrives later is claimed when the session reports it.
        (Vec::new(), 0)
    } else if read_only {
        match ctx.store.status(info.id).await {
            Ok(status) => (Vec::new(), status.recent as usize),
            Err(err) => return super::store_failure(session, err),
        }
    } else {
        match ctx.store.claim_recent(info.id).await {
            Ok(recent) => {
                let count = recent.len();
                (recent, count)
            }
            Err(err) => return super::store_failure(session, err),
        }
    };

    write_flag_announcements(out, &view.keywords);
    if read_only {
        // Drop the PERMANENTFLAGS line: nothing can be changed in EXAMINE.
        let flags_line_end = out.buf.windows(2).position(|w| w == b"\r\n").map_or(0, |i| i + 2);
        out.buf.truncate(flags_line_end);
        out.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox");
    }
    out.untagged(&format!("{} EXISTS", view.messages.len()));
    // RFC 9051 drops the RECENT response and the UNSEEN code from SELECT
    // and adds a LIST response for the selected mailbox.
    if !rev2 {
        out.untagged(&format!("{recent_count} RECENT"));
        if let Some(index) = view.messages.iter().position(|m| m.flags.system & system_flag::SEEN == 0) {
            out.untagged(&format!("OK [UNSEEN {}] First unseen message", index + 1));
        }
    }
    out.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid", view.uid_validity));
    out.untagged(&format!("OK [UIDNEXT {}] Predicted next UID", view.uid_next));
    // RFC 9051 section 6.3.2 requires the attributes of this LIST response
    // to be accurate, so they are those `LIST "" name` would send. A name
    // normalised to NFC also requires OLDNAME with the name as sent.
    if rev2 {
        let attributes = match super::list::mailbox_attributes(session, account_id, &name).await {
            Ok(attributes) => attributes,
            Err(outcome) => return outcome,
        };
        let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
        let old_name: Vec<ListExtendedItem> = supplied.as_deref().map(ListExtendedItem::OldName).into_iter().collect();
        let data = ListData { attributes: &attributes, delimiter: Some(HIERARCHY_SEPARATOR), name: &name, extended_items: &old_name };
        out.raw(&encode_list(&data, names::encoding(session.enabled)));
    }

    let Some(account) = leave_mailbox(session) else {
        return bad("Log in first");
    };
    let selected = Selected {
        id: info.id,
        name: name.into_boxed_str(),
        read_only,
        view,
        recent,
        changes,
        own_changes: Vec::new(),
        saved_search: None,
    };
    session.state = State::Selected(account, Box::new(selected));
    if read_only {
        ok_code("READ-ONLY", "EXAMINE completed")
    } else {
        ok_code("READ-WRITE", "SELECT completed")
    }
}

pub fn unselect(session: &mut Session) -> Outcome {
    if let Some(account) = leave_mailbox(session) {
        session.state = State::Authenticated(account);
    }
    ok("UNSELECT completed")
}

/// Leaves the selected mailbox after this session deleted it. An
/// IMAP4rev2 client gets OK [CLOSED], the boundary after which no
/// response refers to the old mailbox (RFC 9051 section 7.1).
pub(super) fn leave_deleted(session: &mut Session, out: &mut Output) {
    if let Some(account) = leave_mailbox(session) {
        session.state = State::Authenticated(account);
    }
    if session.enabled.imap4rev2 {
        out.untagged("OK [CLOSED] Deleted mailbox is now closed");
    }
}

/// CLOSE removes `\Deleted` messages without EXPUNGE responses, unless the
/// mailbox was opened with EXAMINE, then leaves it. A mailbox another
/// session deleted has nothing left to expunge, so CLOSE still succeeds
/// and leaves it.
pub async fn close(session: &mut Session) -> Outcome {
    let target = session.selected().filter(|s| !s.read_only).map(|s| s.id);
    if let Some(mailbox) = target {
        match session.ctx.store.expunge(mailbox, None).await {
            Ok(_) | Err(StoreError::MailboxGone(_)) => {}
            Err(err) => return super::store_failure(session, err),
        }
    }
    if let Some(account) = leave_mailbox(session) {
        session.state = State::Authenticated(account);
    }
    ok("CLOSE completed")
}
