//! APPEND, with APPENDUID (RFC 4315).
//!
//! The message's MIME structure is analysed once here, on the blocking pool,
//! and stored with it. The tagged OK is sent only once the store reports
//! the message durable.

use std::sync::Arc;

use roost_proto::types::extensions::binary::LiteralOrLiteral8;
use roost_proto::types::datetime::DateTime;
use roost_proto::types::flag::Flag;
use roost_proto::types::mailbox::Mailbox;
use roost_store::{InternalDate, NewMessage};

use super::{Outcome, bad, no, ok_code};
use crate::imap::flags;
use crate::imap::names;
use crate::imap::session::Session;

pub async fn append(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    flag_list: &[Flag<'_>],
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'_>,
) -> Outcome {
    let ctx = Arc::clone(&session.ctx);
    let Some(account) = session.account().map(|a| a.id) else { return bad("Log in first") };
    let name = match names::from_wire(mailbox, &ctx.config.limits, names::encoding(session.enabled)) {
        Ok(name) => name,
        Err(err) => return super::name_error(err),
    };
    let raw: Arc<[u8]> = match &message {
        LiteralOrLiteral8::Literal(literal) => Arc::from(literal.data()),
        LiteralOrLiteral8::Literal8(literal) => Arc::from(literal.data.as_ref()),
    };
    if raw.is_empty() {
        return no(Some("CANNOT"), "An empty message cannot be appended");
    }
    let max = ctx.config.limits.message_bytes_max;
    if raw.len() > max {
        return no(Some("TOOBIG"), format!("Message is larger than {max} bytes"));
    }
    let flags = match flags::from_imap(flag_list, &[]) {
        Ok(flags) => flags,
        Err(flags::FlagError::NotSettable(name)) => return bad(format!("Flag {name} cannot be set by APPEND")),
    };
    let target = match ctx.store.mailbox(account, &name).await {
        Ok(Some(target)) => target,
        Ok(None) => return no(Some("TRYCREATE"), "Target mailbox does not exist"),
        Err(err) => return super::store_failure(session, err),
    };
    let internal_date = match date {
        Some(date) => {
            let date = date.as_ref();
            InternalDate { unix_seconds: date.timestamp(), offset_minutes: (date.offset().local_minus_utc() / 60) as i16 }
        }
        None => now(),
    };
    let derived = derive(Arc::clone(&raw), ctx.config.limits.mime()).await;
    let new = NewMessage { raw, internal_date, flags, derived };
    match ctx.store.append(target.id, vec![new]).await {
        Ok(appended) => {
            let Some(first) = appended.first() else {
                return no(Some("SERVERBUG"), "The store returned no UID");
            };
            ok_code(format!("APPENDUID {} {}", first.uid_validity, first.uid), "APPEND completed")
        }
        Err(err) => super::store_failure(session, err),
    }
}

/// Returns the current time in the server's local offset, as INTERNALDATE.
pub fn now() -> InternalDate {
    let now = chrono::Local::now();
    InternalDate { unix_seconds: now.timestamp(), offset_minutes: (now.offset().local_minus_utc() / 60) as i16 }
}

/// Analyses a message's MIME structure off the async threads.
pub async fn derive(raw: Arc<[u8]>, limits: roost_mime::Limits) -> Arc<[u8]> {
    let encoded = tokio::task::spawn_blocking(move || {
        roost_mime::derive(&raw, &limits).encode()
    })
    .await;
    match encoded {
        Ok(encoded) => Arc::from(encoded),
        // roost-mime is written and fuzzed not to panic. If it does, the
        // message is still stored, with an empty analysis that FETCH and
        // SEARCH cannot decode, so they analyse the message again.
        Err(err) => {
            tracing::error!(error = %err, "MIME analysis failed; storing the message without it");
            Arc::from(Vec::new())
        }
    }
}
