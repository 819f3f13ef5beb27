//! FETCH and UID FETCH (RFC 3501 section 6.4.5), with BINARY[],
//! BINARY.PEEK[] and BINARY.SIZE[] (RFC 3516).
//!
//! ENVELOPE, BODY and BODYSTRUCTURE come from the analysis stored at
//! delivery; sections are cut from the raw message with its stored part
//! offsets, and BINARY sections are decoded by roost-mime. Messages are read from the store in batches and the output is
//! written out as it grows, so a FETCH of a whole large mailbox holds only
//! one batch at a time.

use std::fmt::Write as _;
use std::sync::Arc;

use roost_mime::{BinaryError, Derived, SectionText};
use roost_proto::types::IntoStatic;
use roost_proto::types::core::AString;
use roost_proto::types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};
use roost_proto::types::sequence::SequenceSet;
use roost_store::{FlagOp, Flags, InternalDate, MessageRecord, system_flag};
use crate::transport::Transport;

use super::{Outcome, bad, no, ok};
use crate::imap::flags::write_flags;
use crate::imap::output::Output;
use crate::imap::sequence::resolve;
use crate::imap::session::Session;
use crate::imap::view::index_of;

/// Messages read from the store per batch.
const BATCH_MESSAGES: usize = 64;

pub async fn fetch(
    session: &mut Session,
    set: &SequenceSet,
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Outcome> {
    let ctx = Arc::clone(&session.ctx);
    let mut items: Vec<MessageDataItemName<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => m.expand().into_iter().map(IntoStatic::into_static).collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
    };
    if uid && !items.contains(&MessageDataItemName::Uid) {
        // UID FETCH always returns the UID (RFC 3501 section 6.4.8).
        items.insert(0, MessageDataItemName::Uid);
    }
    let Some(selected) = session.selected() else { return Ok(bad("No mailbox selected")) };
    let indexes = match resolve(&selected.view, set, uid) {
        Ok(indexes) => indexes,
        Err(text) => return Ok(bad(text)),
    };
    let sets_seen = !selected.read_only && items.iter().any(marks_seen);
    let wants_flags = items.contains(&MessageDataItemName::Flags);
    let needs_raw = items.iter().any(needs_raw);
    let mailbox = selected.id;
    let uids: Vec<u32> = indexes.iter().map(|&i| selected.view.messages[i].uid).collect();

    let checks_binary = sets_seen && items.iter().any(is_binary);
    let mime_limits = ctx.config.limits.mime();
    let mut missing = 0usize;
    for batch in uids.chunks(BATCH_MESSAGES) {
        // A message whose BINARY part cannot be decoded ends the command
        // with NO [UNKNOWN-CTE] and is not sent, so it must not get \Seen
        // either. Nor do the messages after it, which are not sent.
        let mut seen_uids = batch;
        if checks_binary {
            match first_unknown_encoding(&ctx, mailbox, batch, &items, &mime_limits).await {
                Ok(Some(position)) => seen_uids = &batch[..position],
                Ok(None) => {}
                Err(err) => return Ok(super::store_failure(session, err)),
            }
        }
        let mut newly_seen: Vec<u32> = Vec::new();
        if sets_seen && !seen_uids.is_empty() {
            match ctx.store.store_flags(mailbox, seen_uids, FlagOp::Add, &seen_flag(), None).await {
                Ok(changes) => {
                    newly_seen = changes.changed.iter().map(|entry| entry.uid).collect();
                    if let Some(selected) = session.selected_mut() {
                        selected.own_changes.extend(changes.changed.iter().map(|e| (e.uid, e.modseq)));
                    }
                }
                Err(err) => return Ok(super::store_failure(session, err)),
            }
        }
        let records = match ctx.store.messages(mailbox, batch).await {
            Ok(records) => records,
            Err(err) => return Ok(super::store_failure(session, err)),
        };
        missing += batch.len() - records.len();
        for record in records {
            let Some(selected) = session.selected() else { return Ok(bad("No mailbox selected")) };
            let Some(index) = index_of(&selected.view, record.uid) else { continue };
            let recent = selected.recent.binary_search(&record.uid).is_ok();
            let raw = if needs_raw {
                match ctx.store.read_raw(record.blob).await {
                    Ok(raw) => Some(raw),
                    Err(err) => return Ok(super::store_failure(session, err)),
                }
            } else {
                None
            };
            let include_flags = wants_flags || newly_seen.binary_search(&record.uid).is_ok();
            let message = Message { record: &record, raw: raw.as_deref(), recent, mime_limits: mime_limits.clone() };
            let line_start = out.buf.len();
            if let Err(BinaryError::UnknownEncoding(encoding)) =
                write_message(out, index as u32 + 1, &items, include_flags, &message, &ctx).await
            {
                // The message's line is dropped and the command fails, as
                // RFC 3516 section 4.3 requires. Earlier lines were sent.
                out.buf.truncate(line_start);
                let text = format!("Message UID {} has an unknown Content-Transfer-Encoding: {encoding}", record.uid);
                return Ok(no(Some("UNKNOWN-CTE"), text));
            }
            out.flush_if_large(stream).await?;
        }
    }
    if missing > 0 {
        return Ok(no(Some("EXPUNGEISSUED"), "Some of the requested messages no longer exist"));
    }
    Ok(ok("FETCH completed"))
}

/// Returns the position in `batch` of the first message for which a
/// BINARY or BINARY.SIZE item of `items` meets an unknown
/// Content-Transfer-Encoding, or `None` when every message decodes.
async fn first_unknown_encoding(
    ctx: &crate::imap::ImapContext,
    mailbox: roost_store::MailboxId,
    batch: &[u32],
    items: &[MessageDataItemName<'static>],
    mime_limits: &roost_mime::Limits,
) -> Result<Option<usize>, roost_store::StoreError> {
    let records = ctx.store.messages(mailbox, batch).await?;
    for record in records {
        let raw = ctx.store.read_raw(record.blob).await?;
        let message = Message { record: &record, raw: Some(&raw), recent: false, mime_limits: mime_limits.clone() };
        let derived = message.derived();
        let decodes = items.iter().all(|item| match item {
            MessageDataItemName::Binary { section, .. } | MessageDataItemName::BinarySize { section } => {
                let part: Vec<u32> = section.iter().map(|number| number.get()).collect();
                roost_mime::binary_section(&raw, &derived, &part).is_ok()
            }
            _ => true,
        });
        if !decodes {
            return Ok(batch.iter().position(|&uid| uid == record.uid));
        }
    }
    Ok(None)
}

fn is_binary(item: &MessageDataItemName<'_>) -> bool {
    matches!(item, MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. })
}

fn seen_flag() -> Flags {
    Flags { system: system_flag::SEEN, keywords: Vec::new() }
}

/// Checks whether fetching `item` sets `\Seen` (RFC 3501 section 6.4.5).
fn marks_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Binary { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

fn needs_raw(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { .. }
            | MessageDataItemName::Binary { .. }
            | MessageDataItemName::BinarySize { .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Header
            | MessageDataItemName::Rfc822Text
    )
}

/// One message's data for the response.
struct Message<'a> {
    record: &'a MessageRecord,
    raw: Option<&'a [u8]>,
    recent: bool,
    mime_limits: roost_mime::Limits,
}

impl Message<'_> {
    fn derived(&self) -> Derived {
        match Derived::decode(&self.record.derived) {
            Ok(derived) => derived,
            // An analysis that cannot be read (an older format, or a failed
            // one at delivery) is redone from the message itself.
            Err(_) => roost_mime::derive(self.raw.unwrap_or_default(), &self.mime_limits),
        }
    }
}

async fn write_message(
    out: &mut Output,
    seq: u32,
    items: &[MessageDataItemName<'static>],
    include_flags: bool,
    message: &Message<'_>,
    _ctx: &crate::imap::ImapContext,
) -> Result<(), BinaryError> {
    let mut derived: Option<Derived> = None;
    let buf = &mut out.buf;
    buf.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    let mut first = true;
    let mut separator = |buf: &mut Vec<u8>| {
        if !first {
            buf.push(b' ');
        }
        first = false;
    };
    if include_flags && !items.contains(&MessageDataItemName::Flags) {
        separator(buf);
        write_flags_item(buf, &message.record.flags, message.recent);
    }
    for item in items {
        separator(buf);
        match item {
            MessageDataItemName::Flags => write_flags_item(buf, &message.record.flags, message.recent),
            MessageDataItemName::Uid => buf.extend_from_slice(format!("UID {}", message.record.uid).as_bytes()),
            MessageDataItemName::InternalDate => {
                buf.extend_from_slice(format!("INTERNALDATE \"{}\"", format_internal_date(message.record.internal_date)).as_bytes())
            }
            MessageDataItemName::Rfc822Size => buf.extend_from_slice(format!("RFC822.SIZE {}", message.record.size).as_bytes()),
            MessageDataItemName::Envelope => {
                let derived = derived.get_or_insert_with(|| message.derived());
                buf.extend_from_slice(b"ENVELOPE ");
                buf.extend_from_slice(derived.envelope().as_bytes());
            }
            MessageDataItemName::BodyStructure => {
                let derived = derived.get_or_insert_with(|| message.derived());
                buf.extend_from_slice(b"BODYSTRUCTURE ");
                buf.extend_from_slice(derived.bodystructure().as_bytes());
            }
            MessageDataItemName::Body => {
                let derived = derived.get_or_insert_with(|| message.derived());
                buf.extend_from_slice(b"BODY ");
                buf.extend_from_slice(derived.body().as_bytes());
            }
            MessageDataItemName::Rfc822 => {
                buf.extend_from_slice(b"RFC822 ");
                write_literal(buf, message.raw.unwrap_or_default());
            }
            MessageDataItemName::Rfc822Header | MessageDataItemName::Rfc822Text => {
                let derived = derived.get_or_insert_with(|| message.derived());
                let (name, text) = if *item == MessageDataItemName::Rfc822Header {
                    ("RFC822.HEADER ", SectionText::Header)
                } else {
                    ("RFC822.TEXT ", SectionText::Text)
                };
                let section = roost_mime::Section { part: Vec::new(), text };
                let data = roost_mime::section(message.raw.unwrap_or_default(), derived, &section);
                buf.extend_from_slice(name.as_bytes());
                write_literal(buf, &data);
            }
            MessageDataItemName::BodyExt { section, partial, .. } => {
                let derived = derived.get_or_insert_with(|| message.derived());
                let mime_section = to_mime_section(section.as_ref());
                let data = roost_mime::section(message.raw.unwrap_or_default(), derived, &mime_section);
                buf.extend_from_slice(b"BODY[");
                write_section_spec(buf, section.as_ref());
                buf.push(b']');
                let data: &[u8] = match partial {
                    Some((start, length)) => {
                        buf.extend_from_slice(format!("<{start}>").as_bytes());
                        let start = (*start as usize).min(data.len());
                        let end = start.saturating_add(length.get() as usize).min(data.len());
                        &data[start..end]
                    }
                    None => &data,
                };
                buf.push(b' ');
                write_literal(buf, data);
            }
            MessageDataItemName::Binary { section, partial, .. } => {
                let derived = derived.get_or_insert_with(|| message.derived());
                let part: Vec<u32> = section.iter().map(|number| number.get()).collect();
                let data = roost_mime::binary_section(message.raw.unwrap_or_default(), derived, &part)?;
                buf.extend_from_slice(b"BINARY[");
                write_part_numbers(buf, &part);
                buf.push(b']');
                let data: &[u8] = match partial {
                    Some((start, length)) => {
                        buf.extend_from_slice(format!("<{start}>").as_bytes());
                        let start = (*start as usize).min(data.len());
                        let end = start.saturating_add(length.get() as usize).min(data.len());
                        &data[start..end]
                    }
                    None => &data,
                };
                buf.push(b' ');
                write_literal8(buf, data);
            }
            MessageDataItemName::BinarySize { section } => {
                let derived = derived.get_or_insert_with(|| message.derived());
                let part: Vec<u32> = section.iter().map(|number| number.get()).collect();
                let data = roost_mime::binary_section(message.raw.unwrap_or_default(), derived, &part)?;
                buf.extend_from_slice(b"BINARY.SIZE[");
                write_part_numbers(buf, &part);
                buf.extend_from_slice(format!("] {}", data.len()).as_bytes());
            }
        }
    }
    buf.extend_from_slice(b")\r\n");
    Ok(())
}

fn write_part_numbers(buf: &mut Vec<u8>, part: &[u32]) {
    let numbers: Vec<String> = part.iter().map(u32::to_string).collect();
    buf.extend_from_slice(numbers.join(".").as_bytes());
}

/// Writes decoded content as a literal, or as a literal8 (`~{n}`) when it
/// contains NUL, which RFC 3516 section 4.2 requires.
fn write_literal8(buf: &mut Vec<u8>, data: &[u8]) {
    if data.contains(&0) {
        buf.push(b'~');
    }
    write_literal(buf, data);
}

fn write_flags_item(buf: &mut Vec<u8>, flags: &Flags, recent: bool) {
    let mut text = String::from("FLAGS ");
    write_flags(&mut text, flags, recent);
    buf.extend_from_slice(text.as_bytes());
}

fn write_literal(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    buf.extend_from_slice(data);
}

/// Formats INTERNALDATE as `date-time` (RFC 3501), e.g.
/// ` 7-Feb-1994 21:52:25 -0800`, in the offset it was given in.
pub fn format_internal_date(date: InternalDate) -> String {
    let offset = chrono::FixedOffset::east_opt(i32::from(date.offset_minutes) * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"));
    let time = chrono::DateTime::from_timestamp(date.unix_seconds, 0).unwrap_or_default().with_timezone(&offset);
    time.format("%e-%b-%Y %H:%M:%S %z").to_string()
}

fn part_numbers(part: &Part) -> Vec<u32> {
    part.0.as_ref().iter().map(|n| n.get()).collect()
}

fn header_names(names: &[AString<'_>]) -> Vec<String> {
    names.iter().map(|name| String::from_utf8_lossy(name.as_ref()).into_owned()).collect()
}

fn to_mime_section(section: Option<&Section<'_>>) -> roost_mime::Section {
    let (part, text) = match section {
        None => (Vec::new(), SectionText::Full),
        Some(Section::Part(part)) => (part_numbers(part), SectionText::Full),
        Some(Section::Header(part)) => (part.as_ref().map(part_numbers).unwrap_or_default(), SectionText::Header),
        Some(Section::HeaderFields(part, names)) => (
            part.as_ref().map(part_numbers).unwrap_or_default(),
            SectionText::HeaderFields(header_names(names.as_ref())),
        ),
        Some(Section::HeaderFieldsNot(part, names)) => (
            part.as_ref().map(part_numbers).unwrap_or_default(),
            SectionText::HeaderFieldsNot(header_names(names.as_ref())),
        ),
        Some(Section::Text(part)) => (part.as_ref().map(part_numbers).unwrap_or_default(), SectionText::Text),
        Some(Section::Mime(part)) => (part_numbers(part), SectionText::Mime),
    };
    roost_mime::Section { part, text }
}

/// Writes the section spec as the response names it, e.g.
/// `1.2.HEADER.FIELDS (FROM TO)`.
fn write_section_spec(buf: &mut Vec<u8>, section: Option<&Section<'_>>) {
    let mut spec = String::new();
    let write_part = |spec: &mut String, part: &Option<Part>, dot: bool| {
        if let Some(part) = part {
            let numbers: Vec<String> = part_numbers(part).iter().map(u32::to_string).collect();
            spec.push_str(&numbers.join("."));
            if dot {
                spec.push('.');
            }
        }
    };
    let write_names = |spec: &mut String, names: &[AString<'_>]| {
        let names: Vec<String> = header_names(names).iter().map(|n| n.to_ascii_uppercase()).collect();
        let _ = write!(spec, " ({})", names.join(" "));
    };
    match section {
        None => {}
        Some(Section::Part(part)) => write_part(&mut spec, &Some(part.clone()), false),
        Some(Section::Header(part)) => {
            write_part(&mut spec, part, true);
            spec.push_str("HEADER");
        }
        Some(Section::HeaderFields(part, names)) => {
            write_part(&mut spec, part, true);
            spec.push_str("HEADER.FIELDS");
            write_names(&mut spec, names.as_ref());
        }
        Some(Section::HeaderFieldsNot(part, names)) => {
            write_part(&mut spec, part, true);
            spec.push_str("HEADER.FIELDS.NOT");
            write_names(&mut spec, names.as_ref());
        }
        Some(Section::Text(part)) => {
            write_part(&mut spec, part, true);
            spec.push_str("TEXT");
        }
        Some(Section::Mime(part)) => {
            write_part(&mut spec, &Some(part.clone()), true);
            spec.push_str("MIME");
        }
    }
    buf.extend_from_slice(spec.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_date_keeps_its_offset() {
        let date = InternalDate { unix_seconds: 760_686_745, offset_minutes: -480 };
        assert_eq!(format_internal_date(date), " 7-Feb-1994 21:52:25 -0800");
    }
}
