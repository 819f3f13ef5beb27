//! Sequence sets resolved against a session's view of its mailbox.

use std::ops::Range;

use roost_proto::types::sequence::{SeqOrUid, Sequence, SequenceSet};
use roost_store::Snapshot;

/// Resolves `set` to ascending, distinct indexes into `view.messages`.
///
/// With `uid`, numbers are UIDs: ones that do not exist are skipped and a
/// range matches whatever UIDs lie between its ends, in either order
/// (RFC 3501 section 6.4.8). Otherwise they are sequence numbers, and one
/// past the message count is an error. The work is bounded by the number
/// of ranges and messages, never by the numbers in the set, and the result
/// never has more entries than the view has messages, however often the
/// set repeats a range.
pub fn resolve(view: &Snapshot, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
    let ranges = index_ranges(view, set, uid, false)?;
    Ok(ranges.into_iter().flatten().collect())
}

/// Resolves `set` like [`resolve`], but sequence numbers past the message
/// count are ignored instead of rejected, as SEARCH criteria need.
pub fn resolve_clamped(view: &Snapshot, set: &SequenceSet, uid: bool) -> Vec<usize> {
    resolve_clamped_ranges(view, set, uid).into_iter().flatten().collect()
}

/// Resolves `set` like [`resolve_clamped`] into ascending, disjoint ranges
/// of indexes. Their number is at most the number of ranges in `set`, so a
/// SEARCH with many sequence-set keys keeps memory linear in its size.
pub fn resolve_clamped_ranges(view: &Snapshot, set: &SequenceSet, uid: bool) -> Vec<Range<usize>> {
    index_ranges(view, set, uid, true).unwrap_or_default()
}

/// Maps each range of `set` to a range of indexes into `view.messages`,
/// then sorts and merges them.
fn index_ranges(view: &Snapshot, set: &SequenceSet, uid: bool, clamp: bool) -> Result<Vec<Range<usize>>, String> {
    let count = view.messages.len();
    let largest = if uid { view.messages.last().map_or(0, |m| m.uid) } else { count as u32 };
    let value = |item: &SeqOrUid| match item {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut ranges = Vec::new();
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
            ranges.push(start..end);
        } else if clamp {
            let high = (high as usize).min(count);
            if low >= 1 && low as usize <= high {
                ranges.push(low as usize - 1..high);
            }
        } else {
            // `*` in an empty mailbox selects nothing, which clients such
            // as a first `FETCH 1:*` of a new mailbox rely on.
            if count == 0 && sequence_has_asterisk(sequence) {
                continue;
            }
            if low == 0 || high as usize > count {
                return Err("Invalid message sequence number".to_owned());
            }
            ranges.push(low as usize - 1..high as usize);
        }
    }
    Ok(merge(ranges))
}

/// Sorts `ranges` and merges those that overlap or touch, dropping empty ones.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.retain(|range| !range.is_empty());
    ranges.sort_unstable_by_key(|range| range.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
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

    #[test]
    fn repeated_ranges_resolve_once() {
        let view = view(&[2, 4, 6]);
        let repeated = vec!["1:*"; 1000].join(",");
        assert_eq!(resolve(&view, &set(&repeated), false).unwrap(), vec![0, 1, 2]);
        assert_eq!(resolve(&view, &set(&repeated), true).unwrap(), vec![0, 1, 2]);
        assert_eq!(resolve_clamped(&view, &set(&repeated), false), vec![0, 1, 2]);
        assert_eq!(resolve_clamped_ranges(&view, &set(&repeated), true), vec![0..3]);
    }

    #[test]
    fn clamped_ranges_merge_and_skip_past_count() {
        let view = view(&[2, 4, 6, 8]);
        assert_eq!(resolve_clamped_ranges(&view, &set("4,1,2,9:7,100"), false), vec![0..2, 3..4]);
        assert_eq!(resolve_clamped_ranges(&view, &set("5:7,1"), true), vec![2..3]);
        assert!(resolve_clamped_ranges(&view, &set("5:9"), false).is_empty());
    }
}
