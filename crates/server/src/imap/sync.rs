//! Bringing a selected session's view up to date and telling the client.
//!
//! RFC 3501 section 7.4.1 forbids EXPUNGE while no command runs and during
//! FETCH, STORE and SEARCH, because the client's sequence numbers would
//! shift under it. A sync that may not announce expunges still sends the
//! other updates (FLAGS, EXISTS, RECENT, FETCH) when nothing was expunged.
//! IMAP4rev2 sessions get no RECENT responses.
//! When something was, it leaves the view as it is, because the new view's
//! numbers only hold after the EXPUNGE responses. The next command that may
//! send them (NOOP, IDLE, CHECK, and every other command except those
//! three) catches up.

use std::fmt::Write as _;

use tracing::warn;

use super::flags::write_flags;
use super::output::Output;
use super::session::Session;
use super::view;

/// Announces changes to the selected mailbox since the session's view.
/// With `allow_expunge` false, nothing is announced if a message was
/// expunged (see the module doc).
pub async fn sync(session: &mut Session, out: &mut Output, allow_expunge: bool) {
    let ctx = std::sync::Arc::clone(&session.ctx);
    // IMAP4rev2 sessions claim no \Recent messages and get no RECENT
    // responses (RFC 9051 appendix E).
    let rev2 = session.enabled.imap4rev2;
    let Some(selected) = session.selected_mut() else {
        return;
    };
    let current = selected.changes.mark_seen();
    if current <= selected.view.highest_modseq {
        selected.own_changes.clear();
        return;
    }
    let new = match ctx.views.current(ctx.store.as_ref(), selected.id, current).await {
        Ok(new) => new,
        Err(err) => {
            warn!(mailbox = ?selected.id, error = %err, "could not refresh mailbox view");
            return;
        }
    };
    let delta = view::delta(&selected.view, &new);
    if !allow_expunge && !delta.expunged.is_empty() {
        return;
    }

    for seq in &delta.expunged {
        out.untagged(&format!("{seq} EXPUNGE"));
    }
    if !delta.expunged.is_empty() {
        let old = &selected.view;
        let gone: Vec<u32> = delta.expunged.iter().map(|&seq| old.messages[seq as usize - 1].uid).collect();
        selected.recent.retain(|uid| !gone.contains(uid));
    }
    if new.keywords != selected.view.keywords {
        write_flag_announcements(out, &new.keywords);
    }
    if let Some(exists) = delta.exists {
        out.untagged(&format!("{exists} EXISTS"));
        if !rev2 && !selected.read_only && !delta.added.is_empty() {
            match ctx.store.claim_recent(selected.id).await {
                Ok(mut claimed) => {
                    selected.recent.append(&mut claimed);
                    selected.recent.sort_unstable();
                    selected.recent.dedup();
                }
                Err(err) => warn!(mailbox = ?selected.id, error = %err, "could not claim recent messages"),
            }
        }
        if !rev2 {
            out.untagged(&format!("{} RECENT", selected.recent.len()));
        }
    }
    for &index in &delta.flag_changes {
        let entry = &new.messages[index];
        if selected.own_changes.contains(&(entry.uid, entry.modseq)) {
            continue;
        }
        let mut line = format!("{} FETCH (FLAGS ", index + 1);
        let recent = selected.recent.binary_search(&entry.uid).is_ok();
        write_flags(&mut line, &entry.flags, recent);
        line.push(')');
        out.untagged(&line);
    }
    selected.own_changes.clear();
    selected.view = new;
}

/// Writes the FLAGS and PERMANENTFLAGS responses for a mailbox's keywords.
pub fn write_flag_announcements(out: &mut Output, keywords: &[std::sync::Arc<str>]) {
    let mut flags = String::from("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for keyword in keywords {
        let _ = write!(flags, " {keyword}");
    }
    flags.push(')');
    out.untagged(&flags);
    let permanent = format!("OK [PERMANENT{} \\*)] Flags permitted", &flags[..flags.len() - 1]);
    out.untagged(&permanent);
}
