//! Every corpus message, as stored (often bare LF) and with CRLF line
//! ends, goes through `derive`: nothing may panic, each part's section has
//! the size BODYSTRUCTURE reports, and the stored form reads back equal.

use roost_mime::{Derived, Limits, Section, SectionText, TextLimits, derive, search_text, section};
use roost_testkit::corpus;

const LIMITS: Limits = Limits { depth_max: 64, parts_max: 10_000 };

#[derive(Debug)]
enum Value {
    Nil,
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Value>),
}

/// Parses the IMAP value our own renderer wrote.
fn parse(input: &[u8], pos: &mut usize) -> Value {
    while input[*pos] == b' ' {
        *pos += 1;
    }
    match input[*pos] {
        b'(' => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                while input[*pos] == b' ' {
                    *pos += 1;
                }
                if input[*pos] == b')' {
                    *pos += 1;
                    return Value::List(items);
                }
                items.push(parse(input, pos));
            }
        }
        b'"' => {
            *pos += 1;
            let mut text = Vec::new();
            while input[*pos] != b'"' {
                if input[*pos] == b'\\' {
                    *pos += 1;
                }
                text.push(input[*pos]);
                *pos += 1;
            }
            *pos += 1;
            Value::Str(text)
        }
        b'{' => {
            let close = *pos + input[*pos..].iter().position(|&b| b == b'}').unwrap();
            let len: usize = std::str::from_utf8(&input[*pos + 1..close]).unwrap().parse().unwrap();
            let start = close + 3;
            *pos = start + len;
            Value::Str(input[start..start + len].to_vec())
        }
        _ => {
            let start = *pos;
            while !b" ()".contains(&input[*pos]) {
                *pos += 1;
            }
            let atom = String::from_utf8(input[start..*pos].to_vec()).unwrap();
            if atom == "NIL" { Value::Nil } else { Value::Atom(atom) }
        }
    }
}

/// Collects (part number, reported size) for every single part in a
/// BODYSTRUCTURE, numbering parts as RFC 3501 does.
fn sizes(body: &Value, path: &mut Vec<u32>, is_top: bool, out: &mut Vec<(Vec<u32>, u64)>) {
    let Value::List(items) = body else { panic!("body is not a list: {body:?}") };
    if matches!(items.first(), Some(Value::List(_))) {
        let children = items.iter().take_while(|item| matches!(item, Value::List(_)));
        for (index, child) in children.enumerate() {
            path.push(index as u32 + 1);
            sizes(child, path, false, out);
            path.pop();
        }
        return;
    }
    let own_path = if is_top { vec![1] } else { path.clone() };
    let Value::Atom(size) = &items[6] else { panic!("size is not a number: {items:?}") };
    out.push((own_path.clone(), size.parse().unwrap()));
    let is_message = matches!((&items[0], &items[1]), (Value::Str(t), Value::Str(s))
        if t.eq_ignore_ascii_case(b"message") && s.eq_ignore_ascii_case(b"rfc822"));
    if is_message && !is_top {
        let mut inner = own_path;
        sizes(&items[8], &mut inner, false, out);
        // The contained message's single body is part 1 below it.
        if let Value::List(inner_items) = &items[8]
            && !matches!(inner_items.first(), Some(Value::List(_)))
        {
            let last = out.pop().unwrap();
            let mut numbered = last.0;
            numbered.push(1);
            out.push((numbered, last.1));
        }
    }
}

fn check_message(name: &str, raw: &[u8]) {
    let derived = derive(raw, &LIMITS);

    let bodystructure = derived.bodystructure().as_bytes();
    let mut pos = 0;
    let value = parse(bodystructure, &mut pos);
    assert_eq!(pos, bodystructure.len(), "{name}: trailing bytes after BODYSTRUCTURE");
    let mut reported = Vec::new();
    sizes(&value, &mut Vec::new(), true, &mut reported);
    for (part, size) in reported {
        let bytes = section(raw, &derived, &Section { part: part.clone(), text: SectionText::Full });
        assert_eq!(bytes.len() as u64, size, "{name}: BODY[{part:?}] size differs from BODYSTRUCTURE");
    }

    let stored = derived.encode();
    let decoded = Derived::decode(&stored).unwrap_or_else(|e| panic!("{name}: decode failed: {e}"));
    assert_eq!(decoded, derived, "{name}: decode(encode) differs");

    let text = search_text(raw, &derived, &TextLimits { bytes_max: 1 << 20 });
    assert!(text.len() <= 1 << 20, "{name}: search text over its limit");
}

#[test]
fn corpus_as_stored() {
    let messages = corpus::load().expect("corpus");
    for message in &messages {
        check_message(&message.name, &message.raw);
    }
}

#[test]
fn corpus_with_crlf() {
    let messages = corpus::load().expect("corpus");
    for message in &messages {
        check_message(&message.name, &message.crlf());
    }
}

#[test]
fn corpus_prefixes_do_not_panic() {
    // Truncated copies exercise cut headers, boundaries and literals at
    // every kind of position; a step keeps the run short.
    let messages = corpus::load().expect("corpus");
    for message in &messages {
        let raw = message.crlf();
        for len in (0..raw.len()).step_by(97) {
            let derived = derive(&raw[..len], &LIMITS);
            for part in derived.part_numbers() {
                let _ = section(&raw[..len], &derived, &Section { part, text: SectionText::Mime });
            }
        }
    }
}
