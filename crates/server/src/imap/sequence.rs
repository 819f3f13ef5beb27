//! Sequence sets resolved against a session's view of its mailbox.

use roost_proto::types::sequence::{SeqOrUid, Sequence, SequenceSet};
use roost_store::Snapshot;

/// Resolves `set` to ascending, distinct indexes into `view.messages`.
///
/// With `uid`, numbers are UIDs: ones that do not exist are skipped and a
/// range matches whatever UIDs lie between its ends, in either order
/// (RFC 3501 section 6.4.8). Otherwise they are sequence numbers, and one
/// past the message count is an error. The work is bounded by the number
/// of ranges and messages, never by the numbers in the set.
pub fn resolve(view: &Snapshot, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
    let count = view.messages.len();
    let largest = if uid { view.messages.last().map_or(0, |m| m.uid) } else { count as u32 };
    let value = |item: &SeqOrUid| match item {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut indexes = Vec::new();
    for sequence in set.0.as_ref() {
        let (low, high) = match sequence {
            Sequence::Single(item) => (value(item), value(item)),
            Sequence::Range(a, b) => {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            }
        };
        if uid {
            let start = view.messages.partition_point(|m| m.uid < low);
            let end = view.messages.partition_point(|m| m.uid <= high);
            indexes.extend(start..end);
        } else {
            // `*` in an empty mailbox selects nothing, which clients such
            // as a first `FETCH 1:*` of a new mailbox rely on.
            if count == 0 && sequence_has_asterisk(sequence) {
                continue;
            }
            if low == 0 || high as usize > count {
                return Err("Invalid message sequence number".to_owned());
            }
            indexes.extend(low as usize - 1..high as usize);
        }
    }
    indexes.sort_unstable();
    indexes.dedup();
    Ok(indexes)
}

/// Resolves `set` like [`resolve`], but sequence numbers past the message
/// count are ignored instead of rejected, as SEARCH criteria need.
pub fn resolve_clamped(view: &Snapshot, set: &SequenceSet, uid: bool) -> Vec<usize> {
    if uid {
        return resolve(view, set, true).unwrap_or_default();
    }
    let count = view.messages.len() as u32;
    let mut indexes = Vec::new();
    for sequence in set.0.as_ref() {
        let value = |item: &SeqOrUid| match item {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => count,
        };
        let (low, high) = match sequence {
            Sequence::Single(item) => (value(item), value(item)),
            Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
        };
        let high = high.min(count);
        if low >= 1 && low <= high {
            indexes.extend(low as usize - 1..high as usize);
        }
    }
    indexes.sort_unstable();
    indexes.dedup();
    indexes
}

fn sequence_has_asterisk(sequence: &Sequence) -> bool {
    match sequence {
        Sequence::Single(item) => *item == SeqOrUid::Asterisk,
        Sequence::Range(a, b) => *a == SeqOrUid::Asterisk || *b == SeqOrUid::Asterisk,
    }
}

#[cfg(test)]
mod tests {
    use roost_store::{Flags, MailboxId, MessageEntry, Uid};

    use super::*;

    fn view(uids: &[Uid]) -> Snapshot {
        Snapshot {
            mailbox: MailboxId(1),
            uid_validity: 1,
            uid_next: uids.last().map_or(1, |u| u + 1),
            highest_modseq: 1,
            messages: uids.iter().map(|&uid| MessageEntry { uid, modseq: 1, flags: Flags::default() }).collect(),
            keywords: vec![],
        }
    }

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn uid_ranges_skip_missing_uids() {
        let view = view(&[2, 4, 6, 8]);
        assert_eq!(resolve(&view, &set("3:7"), true).unwrap(), vec![1, 2]);
        assert_eq!(resolve(&view, &set("7:3"), true).unwrap(), vec![1, 2]);
        assert_eq!(resolve(&view, &set("100:*"), true).unwrap(), vec![3]);
        assert_eq!(resolve(&view, &set("1:4294967295"), true).unwrap(), vec![0, 1, 2, 3]);
        assert!(resolve(&view, &set("9"), true).unwrap().is_empty());
    }

    #[test]
    fn sequence_numbers_past_the_count_are_invalid() {
        let view = view(&[2, 4, 6]);
        assert_eq!(resolve(&view, &set("1,3"), false).unwrap(), vec![0, 2]);
        assert_eq!(resolve(&view, &set("2:*"), false).unwrap(), vec![1, 2]);
        assert!(resolve(&view, &set("4"), false).is_err());
        assert!(resolve(&super::tests::view(&[]), &set("1:*"), false).unwrap().is_empty());
        assert!(resolve(&super::tests::view(&[]), &set("1"), false).is_err());
    }
}
