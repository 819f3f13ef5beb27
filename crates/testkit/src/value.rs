//! A parser for the IMAP values in server responses (atoms, strings,
//! literals, NIL and parenthesised lists), for tests that compare what two
//! servers send. Quoted strings and literals with the same content parse
//! to the same value, so encodings that differ only in form compare equal.

/// One IMAP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nil,
    Atom(Vec<u8>),
    Str(Vec<u8>),
    List(Vec<Value>),
}

/// Parses one IMAP value at `pos`; returns it and the position after it.
pub fn parse_value(input: &[u8], mut pos: usize) -> Option<(Value, usize)> {
    while input.get(pos) == Some(&b' ') {
        pos += 1;
    }
    match *input.get(pos)? {
        b'(' => {
            let mut items = Vec::new();
            pos += 1;
            loop {
                while input.get(pos) == Some(&b' ') {
                    pos += 1;
                }
                if *input.get(pos)? == b')' {
                    return Some((Value::List(items), pos + 1));
                }
                let (item, next) = parse_value(input, pos)?;
                items.push(item);
                pos = next;
            }
        }
        b'"' => {
            let mut text = Vec::new();
            pos += 1;
            loop {
                match *input.get(pos)? {
                    b'"' => return Some((Value::Str(text), pos + 1)),
                    b'\\' => {
                        text.push(*input.get(pos + 1)?);
                        pos += 2;
                    }
                    b => {
                        text.push(b);
                        pos += 1;
                    }
                }
            }
        }
        b'{' => {
            let close = pos + input[pos..].iter().position(|&b| b == b'}')?;
            let len: usize = std::str::from_utf8(&input[pos + 1..close]).ok()?.parse().ok()?;
            let start = close + 3;
            let text = input.get(start..start + len)?.to_vec();
            Some((Value::Str(text), start + len))
        }
        _ => {
            let start = pos;
            let mut depth = 0;
            while let Some(&b) = input.get(pos) {
                match b {
                    b'[' => depth += 1,
                    b']' => depth -= 1,
                    b' ' | b')' | b'(' if depth == 0 => break,
                    _ => {}
                }
                pos += 1;
            }
            let atom = input[start..pos].to_vec();
            if atom.eq_ignore_ascii_case(b"NIL") {
                Some((Value::Nil, pos))
            } else {
                Some((Value::Atom(atom), pos))
            }
        }
    }
}

/// Splits `* n FETCH (KEY value KEY value ...)` into its pairs, with keys
/// in upper case.
pub fn fetch_items(response: &[u8]) -> Vec<(String, Value)> {
    let Some(open) = response.iter().position(|&b| b == b'(') else { return Vec::new() };
    let Some((Value::List(items), _)) = parse_value(response, open) else { return Vec::new() };
    let mut pairs = Vec::new();
    let mut iter = items.into_iter();
    while let (Some(Value::Atom(key)), Some(value)) = (iter.next(), iter.next()) {
        pairs.push((String::from_utf8_lossy(&key).to_ascii_uppercase(), value));
    }
    pairs
}

/// Renders a value for a failure message, with control bytes escaped.
pub fn show(value: &Value) -> String {
    match value {
        Value::Nil => "NIL".to_owned(),
        Value::Atom(atom) => String::from_utf8_lossy(atom).into_owned(),
        Value::Str(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        Value::List(items) => format!("({})", items.iter().map(show).collect::<Vec<_>>().join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_quoted_compare_equal() {
        let quoted = parse_value(b"\"ab\"", 0).unwrap().0;
        let literal = parse_value(b"{2}\r\nab", 0).unwrap().0;
        assert_eq!(quoted, literal);
    }

    #[test]
    fn fetch_pairs_are_split() {
        let pairs = fetch_items(b"* 1 FETCH (UID 4 BODY[1.MIME] {3}\r\nabc FLAGS (\\Seen))");
        assert_eq!(pairs[0], ("UID".to_owned(), Value::Atom(b"4".to_vec())));
        assert_eq!(pairs[1], ("BODY[1.MIME]".to_owned(), Value::Str(b"abc".to_vec())));
        assert_eq!(pairs[2], ("FLAGS".to_owned(), Value::List(vec![Value::Atom(b"\\Seen".to_vec())])));
    }
}
