//! Resolution of sequence sets against a selected mailbox, and the compact
//! form of UID sets used in COPYUID and APPENDUID responses.
//!
//! Resolving works on ranges, never on single numbers, so the work depends
//! on the number of ranges the client sent and not on their width: a set of
//! `1:4294967295` against three messages is one range, clamped to `1:3`.
//!
//! This module has no access to storage. The server passes the message
//! count or the largest UID, and for UIDs the mailbox's sorted UID list.

use std::ops::RangeInclusive;

use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// A resolved set: sorted, disjoint, non-adjacent inclusive ranges of
/// numbers that are all at least 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedSet {
    ranges: Vec<RangeInclusive<u32>>,
}

/// A sequence set that names a message that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// A message sequence number is greater than the number of messages.
    #[error(
        "message sequence number {number} is invalid: the mailbox has {message_count} messages"
    )]
    OutOfRange { number: u32, message_count: u32 },
    /// `*` was used while the mailbox has no messages.
    #[error("message sequence number * is invalid: the mailbox is empty")]
    EmptyMailbox,
}

/// Resolves message sequence numbers against a mailbox of `message_count`
/// messages, where `*` is the last message.
///
/// A number greater than `message_count`, or `*` in an empty mailbox, is an
/// error. The seq-number rule in RFC 3501's formal syntax states that the server
/// should respond to it with BAD.
pub fn resolve_sequence_numbers(
    set: &SequenceSet,
    message_count: u32,
) -> Result<ResolvedSet, SequenceError> {
    let mut ranges = Vec::with_capacity(set.0.as_ref().len());
    for sequence in set.0.as_ref() {
        let (first, last) = endpoints(sequence);
        let first = sequence_number(first, message_count)?;
        let last = sequence_number(last, message_count)?;
        ranges.push(first.min(last)..=first.max(last));
    }
    Ok(ResolvedSet::from_ranges(ranges))
}

/// Resolves UIDs against a mailbox whose largest UID is `uid_max`, or 0 when
/// the mailbox is empty, where `*` is `uid_max`.
///
/// UIDs above `uid_max` name no message and are left out, which is not an
/// error. A range may be given in either order, and `n:*` always includes
/// the largest UID, even when `n` is greater (seq-range in RFC 3501's
/// formal syntax).
pub fn resolve_uids(set: &SequenceSet, uid_max: u32) -> ResolvedSet {
    if uid_max == 0 {
        return ResolvedSet::default();
    }
    let mut ranges = Vec::with_capacity(set.0.as_ref().len());
    for sequence in set.0.as_ref() {
        let (first, last) = endpoints(sequence);
        let first = uid(first, uid_max);
        let last = uid(last, uid_max);
        let low = first.min(last);
        let high = first.max(last).min(uid_max);
        if low <= high {
            ranges.push(low..=high);
        }
    }
    ResolvedSet::from_ranges(ranges)
}

impl ResolvedSet {
    /// Sorts and merges ranges whose numbers are all at least 1.
    fn from_ranges(mut ranges: Vec<RangeInclusive<u32>>) -> Self {
        ranges.sort_unstable_by_key(|range| *range.start());
        let mut merged: Vec<RangeInclusive<u32>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            debug_assert!(*range.start() >= 1 && range.start() <= range.end());
            match merged.last_mut() {
                Some(last) if *range.start() <= last.end().saturating_add(1) => {
                    let end = *last.end().max(range.end());
                    *last = *last.start()..=end;
                }
                _ => merged.push(range),
            }
        }
        Self { ranges: merged }
    }

    /// Returns the merged ranges, in ascending order.
    pub fn ranges(&self) -> &[RangeInclusive<u32>] {
        &self.ranges
    }

    /// Returns whether the set contains no number.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Returns how many numbers the set contains.
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|range| u64::from(range.end() - range.start()) + 1)
            .sum()
    }

    /// Returns whether the set contains `number`, in O(log ranges).
    pub fn contains(&self, number: u32) -> bool {
        let index = self.ranges.partition_point(|range| *range.end() < number);
        self.ranges
            .get(index)
            .is_some_and(|range| range.contains(&number))
    }

    /// Iterates over every number in ascending order.
    ///
    /// For message sequence numbers this is bounded by the message count.
    /// For UIDs use [`ResolvedSet::matching_indices`] instead, because UIDs
    /// can be sparse and a range can span billions of unused UIDs.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(RangeInclusive::clone)
    }

    /// Iterates, in ascending order, over the indices in `sorted_uids` whose
    /// UID is in the set. A message's sequence number is its index plus one.
    /// The work is O(ranges × log messages + matches).
    pub fn matching_indices<'a>(
        &'a self,
        sorted_uids: &'a [u32],
    ) -> impl Iterator<Item = usize> + 'a {
        debug_assert!(sorted_uids.windows(2).all(|pair| pair[0] < pair[1]));
        self.ranges.iter().flat_map(move |range| {
            let start = sorted_uids.partition_point(|uid| uid < range.start());
            let end = sorted_uids.partition_point(|uid| uid <= range.end());
            start..end.max(start)
        })
    }
}

fn endpoints(sequence: &Sequence) -> (&SeqOrUid, &SeqOrUid) {
    match sequence {
        Sequence::Single(value) => (value, value),
        Sequence::Range(first, last) => (first, last),
    }
}

fn sequence_number(value: &SeqOrUid, message_count: u32) -> Result<u32, SequenceError> {
    match value {
        SeqOrUid::Asterisk if message_count == 0 => Err(SequenceError::EmptyMailbox),
        SeqOrUid::Asterisk => Ok(message_count),
        SeqOrUid::Value(number) if number.get() > message_count => Err(SequenceError::OutOfRange {
            number: number.get(),
            message_count,
        }),
        SeqOrUid::Value(number) => Ok(number.get()),
    }
}

fn uid(value: &SeqOrUid, uid_max: u32) -> u32 {
    match value {
        SeqOrUid::Asterisk => uid_max,
        SeqOrUid::Value(number) => number.get(),
    }
}

/// Writes strictly ascending numbers as a compact set such as `1:3,5`, the
/// form of the UID sets in COPYUID and APPENDUID. Returns an empty string
/// for no numbers.
pub fn compact(numbers: &[u32]) -> String {
    debug_assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]));
    let mut compacted = String::new();
    let mut index = 0;
    while index < numbers.len() {
        let first = numbers[index];
        let mut last = first;
        while index + 1 < numbers.len() && Some(numbers[index + 1]) == last.checked_add(1) {
            index += 1;
            last = numbers[index];
        }
        if !compacted.is_empty() {
            compacted.push(',');
        }
        match first == last {
            true => compacted.push_str(&first.to_string()),
            false => compacted.push_str(&format!("{first}:{last}")),
        }
        index += 1;
    }
    compacted
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn set(text: &str) -> SequenceSet {
        SequenceSet::from_str(text).unwrap_or_else(|error| panic!("{text:?}: {error:?}"))
    }

    #[test]
    fn sequence_numbers_resolve() {
        let cases: &[(&str, u32, &[u32])] = &[
            ("1", 3, &[1]),
            ("*", 3, &[3]),
            ("1:*", 3, &[1, 2, 3]),
            ("3:1", 3, &[1, 2, 3]),
            ("*:2", 3, &[2, 3]),
            ("2,1,2,3", 3, &[1, 2, 3]),
            ("1,3", 5, &[1, 3]),
            ("1:2,2:4,5", 5, &[1, 2, 3, 4, 5]),
        ];
        for (text, message_count, expected) in cases {
            let resolved = resolve_sequence_numbers(&set(text), *message_count).unwrap();
            assert_eq!(
                resolved.iter().collect::<Vec<_>>(),
                *expected,
                "{text:?} of {message_count}"
            );
            assert_eq!(
                resolved.count(),
                expected.len() as u64,
                "{text:?} of {message_count}"
            );
        }
    }

    #[test]
    fn sequence_numbers_past_count() {
        assert_eq!(
            resolve_sequence_numbers(&set("1:4294967295"), 3),
            Err(SequenceError::OutOfRange {
                number: 4294967295,
                message_count: 3
            })
        );
        assert_eq!(
            resolve_sequence_numbers(&set("4"), 3),
            Err(SequenceError::OutOfRange {
                number: 4,
                message_count: 3
            })
        );
        assert_eq!(
            resolve_sequence_numbers(&set("*"), 0),
            Err(SequenceError::EmptyMailbox)
        );
        assert_eq!(
            resolve_sequence_numbers(&set("1:*"), 0),
            Err(SequenceError::OutOfRange {
                number: 1,
                message_count: 0
            })
        );
    }

    #[test]
    fn uids_resolve() {
        let cases: &[(&str, u32, &[RangeInclusive<u32>])] = &[
            ("1:4294967295", 3, &[1..=3]),
            ("*", 7, &[7..=7]),
            ("559:*", 500, &[500..=500]),
            ("9:4", 20, &[4..=9]),
            ("600", 500, &[]),
            ("1,3,2,10:12,11:15", 100, &[1..=3, 10..=15]),
            ("1:*", 0, &[]),
        ];
        for (text, uid_max, expected) in cases {
            let resolved = resolve_uids(&set(text), *uid_max);
            assert_eq!(
                resolved.ranges(),
                *expected,
                "{text:?} with largest UID {uid_max}"
            );
        }
    }

    #[test]
    fn uids_match_sparse_mailbox() {
        let uids = [3, 7, 100, 4_000_000_000];
        let resolved = resolve_uids(&set("1:*"), 4_000_000_000);
        assert_eq!(
            resolved.matching_indices(&uids).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );

        let resolved = resolve_uids(&set("4:99,4000000000"), 4_000_000_000);
        assert_eq!(resolved.matching_indices(&uids).collect::<Vec<_>>(), [1, 3]);

        let resolved = resolve_uids(&set("8:99"), 4_000_000_000);
        assert_eq!(resolved.matching_indices(&uids).count(), 0);
    }

    #[test]
    fn resolved_set_contains() {
        let resolved = resolve_uids(&set("2:4,8"), 10);
        let members: Vec<u32> = (0..=11)
            .filter(|&number| resolved.contains(number))
            .collect();
        assert_eq!(members, [2, 3, 4, 8]);
    }

    #[test]
    fn compact_writes_ranges() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[5], "5"),
            (&[1, 2, 3, 5], "1:3,5"),
            (&[1, 3, 5], "1,3,5"),
            (&[4294967294, 4294967295], "4294967294:4294967295"),
            (&[1, 2, 4, 5, 6, 9], "1:2,4:6,9"),
        ];
        for (numbers, expected) in cases {
            assert_eq!(compact(numbers), *expected, "{numbers:?}");
        }
    }
}
