//! Seeded random-input tests: corpus messages are truncated, bit-flipped,
//! spliced and nested, then run through every public entry point. Nothing
//! may panic, and every result must stay within a bound linear in the
//! input, so a delivered message cannot make the server allocate without
//! limit. Each run is bounded in case count and in wall time, and a failure
//! prints the seed and case number that reproduce it.

use std::time::{Duration, Instant};

use roost_mime::{
    Derived, Limits, Section, SectionText, TextLimits, binary_section, derive, header_values, search_text, section,
};
use roost_testkit::corpus;

const LIMITS: Limits = Limits { depth_max: 32, parts_max: 10_000 };
const TEXT_LIMITS: TextLimits = TextLimits { bytes_max: 4096 };
const SEED: u64 = 0x5eed_0f_7e57_0001;
const CASES_MAX: usize = 3000;
const TIME_MAX: Duration = Duration::from_secs(30);

/// A small deterministic generator (SplitMix64), so a failing case can be
/// replayed from its seed without an extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..bound`, or 0 when `bound` is 0.
    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 { 0 } else { (self.next() % bound as u64) as usize }
    }
}

/// Finds the boundary lines (`--` at the start of a line) in `raw`, as
/// `(start, end)` offsets with the line end included.
fn boundary_lines(raw: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
        if raw[pos..end].starts_with(b"--") {
            out.push((pos, end));
        }
        pos = end;
    }
    out
}

/// Applies one or more random mutations to `raw`.
fn mutate(rng: &mut Rng, raw: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(8) {
            0 => out.truncate(rng.below(out.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(8) {
                    if !out.is_empty() {
                        let index = rng.below(out.len());
                        out[index] ^= 1 << rng.below(8);
                    }
                }
            }
            2 => {
                // Duplicate a boundary line many times: many empty parts.
                let lines = boundary_lines(&out);
                if !lines.is_empty() {
                    let (start, end) = lines[rng.below(lines.len())];
                    let line = out[start..end].to_vec();
                    let copies = 1 + rng.below(2000);
                    let tail = out.split_off(end);
                    for _ in 0..copies {
                        out.extend_from_slice(&line);
                    }
                    out.extend_from_slice(&tail);
                }
            }
            3 => {
                // Drop a boundary line, so parts run into each other.
                let lines = boundary_lines(&out);
                if !lines.is_empty() {
                    let (start, end) = lines[rng.below(lines.len())];
                    out.drain(start..end);
                }
            }
            4 => {
                // Splice a slice of another message in at a random point.
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(out.len() + 1);
                out.splice(at..at, other[from..to].iter().copied());
            }
            5 => {
                // Insert bytes that matter to the parsers.
                const PIECES: &[&[u8]] = &[
                    b"\r\n\r\n",
                    b"\n",
                    b"--",
                    b"(",
                    b")",
                    b"\"",
                    b"\\",
                    b"=?utf-8?q?=C3",
                    b"=?x?b?",
                    b"<",
                    b":;",
                    b"Content-Type: message/rfc822\r\n\r\n",
                    b"Content-Type: multipart/mixed; boundary*=utf-8''%41%\r\n\r\n",
                    b"Content-Transfer-Encoding: base64\r\n",
                    b"Content-Transfer-Encoding: quoted-printable\r\n",
                    b"=\r\n=4",
                    b"\0\xff\xfe",
                ];
                let piece = PIECES[rng.below(PIECES.len())];
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece.iter().copied());
            }
            6 => {
                // Cut a random range out.
                let from = rng.below(out.len() + 1);
                let to = from + rng.below(out.len() - from + 1);
                out.drain(from..to);
            }
            _ => out = nest(rng, &out),
        }
    }
    out
}

/// Wraps `inner` in many levels of message/rfc822 or multipart, deeper
/// than `LIMITS.depth_max`.
fn nest(rng: &mut Rng, inner: &[u8]) -> Vec<u8> {
    let levels = 1 + rng.below(400);
    let mut out = Vec::new();
    if rng.below(2) == 0 {
        for _ in 0..levels {
            out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        out.extend_from_slice(inner);
        return out;
    }
    for level in 0..levels {
        out.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n").as_bytes());
    }
    out.extend_from_slice(inner);
    for level in (0..levels).rev() {
        out.extend_from_slice(format!("\r\n--b{level}--\r\n").as_bytes());
    }
    out
}

/// Returns the maximum rendered length for a message of `len` bytes. Each part
/// renders as at most a few hundred bytes plus its header, and a part needs
/// at least a boundary line, so the bound is linear in the input.
fn rendered_max(len: usize) -> usize {
    64 * len + 4096
}

/// Runs every public entry point on `raw` and checks the size of each
/// result. Returns the number of parts found, for the caller's statistics.
fn exercise(raw: &[u8], rng: &mut Rng) -> usize {
    let derived = derive(raw, &LIMITS);
    let bound = rendered_max(raw.len());
    assert!(derived.envelope().len() <= bound, "ENVELOPE of {} bytes", derived.envelope().len());
    assert!(derived.bodystructure().len() <= bound, "BODYSTRUCTURE of {} bytes", derived.bodystructure().len());
    assert!(derived.body().len() <= bound, "BODY of {} bytes", derived.body().len());

    let decoded = Derived::decode(&derived.encode()).expect("stored form reads back");
    assert_eq!(decoded, derived, "stored form round trip");

    let text = search_text(raw, &derived, &TEXT_LIMITS);
    assert!(text.len() <= TEXT_LIMITS.bytes_max, "search text of {} bytes", text.len());

    for name in ["subject", "from", "to", "content-type", "x-missing"] {
        let total: usize = header_values(raw, &derived, name).iter().map(String::len).sum();
        assert!(total <= bound, "{name} values of {total} bytes");
    }

    let mut numbers = derived.part_numbers();
    let count = numbers.len();
    // Also ask for parts that do not exist and numbers at the edges.
    numbers.push(vec![0]);
    numbers.push(vec![u32::MAX]);
    numbers.push(vec![1, u32::MAX, 1]);
    numbers.push(vec![1; 1 + rng.below(200)]);
    numbers.push(Vec::new());
    let picks: Vec<Vec<u32>> = (0..8).map(|_| numbers[rng.below(numbers.len())].clone()).collect();
    for part in picks.iter().chain(&numbers[count..]) {
        for text in [
            SectionText::Full,
            SectionText::Header,
            SectionText::Text,
            SectionText::Mime,
            SectionText::HeaderFields(vec!["Subject".into(), "FROM".into()]),
            SectionText::HeaderFieldsNot(vec!["received".into()]),
        ] {
            let bytes = section(raw, &derived, &Section { part: part.clone(), text });
            // Filtered fields gain at most a CRLF each and a final CRLF.
            assert!(bytes.len() <= 2 * raw.len() + 2, "section {part:?} of {} bytes", bytes.len());
        }
        if let Ok(bytes) = binary_section(raw, &derived, part) {
            assert!(bytes.len() <= raw.len(), "binary section {part:?} of {} bytes", bytes.len());
        }
    }
    count
}

#[test]
fn mutated_corpus_neither_panics_nor_grows() {
    let messages = corpus::load().expect("the corpus is fetched");
    let mut rng = Rng(SEED);
    let started = Instant::now();
    let mut cases = 0;
    let mut parts_max = 0;
    while cases < CASES_MAX && started.elapsed() < TIME_MAX {
        let base = &messages[rng.below(messages.len())];
        let other = &messages[rng.below(messages.len())];
        let raw = if rng.below(2) == 0 { base.crlf() } else { base.raw.clone() };
        let mutated = mutate(&mut rng, &raw, &other.raw);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exercise(&mutated, &mut rng)));
        match outcome {
            Ok(parts) => parts_max = parts_max.max(parts),
            Err(_) => {
                let path = std::env::temp_dir().join(format!("roost-mime-robustness-{cases}.eml"));
                let _ = std::fs::write(&path, &mutated);
                panic!("case {cases} from {} with seed {SEED:#x} failed; input saved to {}", base.name, path.display());
            }
        }
        cases += 1;
    }
    assert!(cases >= 100, "only {cases} cases ran in {TIME_MAX:?}");
    assert!(parts_max > 1, "no mutated message had more than one part");
}

#[test]
fn deep_nesting_stops_at_depth_limit() {
    let mut rng = Rng(SEED ^ 1);
    for levels in [LIMITS.depth_max - 1, LIMITS.depth_max, LIMITS.depth_max + 1, 10_000] {
        let mut raw = Vec::new();
        for _ in 0..levels {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n");
        exercise(&raw, &mut rng);
        let derived = derive(&raw, &LIMITS);
        let deepest = derived.part_numbers().iter().map(Vec::len).max().unwrap_or(0);
        assert!(deepest <= LIMITS.depth_max + 1, "{levels} levels gave part numbers {deepest} long");
    }
}

#[test]
fn many_empty_parts_stay_bounded() {
    let mut rng = Rng(SEED ^ 2);
    let mut raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
    for _ in 0..200_000 {
        raw.extend_from_slice(b"--x\r\n");
    }
    let parts = exercise(&raw, &mut rng);
    assert!(parts <= 10_000, "{parts} parts");
}
