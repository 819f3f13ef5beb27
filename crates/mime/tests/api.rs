//! Known-answer tests of the public API on small hand-written messages.
//! Expected strings are what Dovecot 2.3 returns for the same bytes.

use roost_mime::{
    DecodeError, Derived, Limits, Section, SectionText, TextLimits, decode_charset, derive, header_values,
    search_text, section,
};

const LIMITS: Limits = Limits { depth_max: 16, parts_max: 10_000 };

fn get<'a>(raw: &'a [u8], derived: &Derived, part: &[u32], text: SectionText) -> std::borrow::Cow<'a, [u8]> {
    section(raw, derived, &Section { part: part.to_vec(), text })
}

const MIXED: &[u8] = b"From: \"Joe Q. Public\" <joe@example.com>\r\n\
To: undisclosed-recipients:;\r\n\
Cc: a@example.org, B <b@example.org>\r\n\
Subject: =?utf-8?q?caf=C3=A9?= menu\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
Message-ID: <1@example.com>\r\n\
Content-Type: multipart/mixed; boundary=\"xx\"\r\n\
\r\n\
preamble\r\n\
--xx\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
hello\r\n\
--xx\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--xx--\r\n";

#[test]
fn envelope_has_groups_and_defaults() {
    let derived = derive(MIXED, &LIMITS);
    assert_eq!(
        derived.envelope(),
        "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"=?utf-8?q?caf=C3=A9?= menu\" \
         ((\"Joe Q. Public\" NIL \"joe\" \"example.com\")) \
         ((\"Joe Q. Public\" NIL \"joe\" \"example.com\")) \
         ((\"Joe Q. Public\" NIL \"joe\" \"example.com\")) \
         ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
         ((NIL NIL \"a\" \"example.org\")(\"B\" NIL \"b\" \"example.org\")) \
         NIL NIL \"<1@example.com>\")"
    );
}

#[test]
fn bodystructure_of_mixed_message() {
    let derived = derive(MIXED, &LIMITS);
    assert_eq!(
        derived.bodystructure(),
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)\
         (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 28 \
         (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) \
         \"mixed\" (\"boundary\" \"xx\") NIL NIL NIL)"
    );
    assert_eq!(
        derived.body(),
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0)\
         (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 28 \
         (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
         (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0) 2) \"mixed\")"
    );
}

#[test]
fn sections_of_mixed_message() {
    let derived = derive(MIXED, &LIMITS);
    assert_eq!(&*get(MIXED, &derived, &[1], SectionText::Full), b"hello");
    assert_eq!(&*get(MIXED, &derived, &[1], SectionText::Mime), b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
    assert_eq!(&*get(MIXED, &derived, &[2, 1], SectionText::Full), b"inner body");
    assert_eq!(&*get(MIXED, &derived, &[2], SectionText::Header), b"Subject: inner\r\n\r\n");
    assert_eq!(&*get(MIXED, &derived, &[2], SectionText::Text), b"inner body");
    assert_eq!(&*get(MIXED, &derived, &[], SectionText::Full), MIXED);
    assert!(get(MIXED, &derived, &[3], SectionText::Full).is_empty());
    assert!(get(MIXED, &derived, &[1], SectionText::Header).is_empty());
    assert!(get(MIXED, &derived, &[], SectionText::Mime).is_empty());
    assert_eq!(derived.part_numbers(), vec![vec![1], vec![2], vec![2, 1]]);
}

#[test]
fn header_fields_keep_order_and_end() {
    let derived = derive(MIXED, &LIMITS);
    let fields = SectionText::HeaderFields(vec!["SUBJECT".into(), "from".into()]);
    assert_eq!(
        &*get(MIXED, &derived, &[], fields),
        b"From: \"Joe Q. Public\" <joe@example.com>\r\nSubject: =?utf-8?q?caf=C3=A9?= menu\r\n\r\n"
    );
    let not = SectionText::HeaderFieldsNot(vec!["content-type".into(), "message-id".into(), "date".into(), "cc".into(), "to".into(), "subject".into()]);
    assert_eq!(&*get(MIXED, &derived, &[], not), b"From: \"Joe Q. Public\" <joe@example.com>\r\n\r\n");
}

#[test]
fn single_part_message_numbers() {
    let raw = b"Subject: x\r\n\r\nbody\r\n";
    let derived = derive(raw, &LIMITS);
    assert_eq!(&*get(raw, &derived, &[1], SectionText::Full), b"body\r\n");
    assert_eq!(&*get(raw, &derived, &[1], SectionText::Mime), b"Subject: x\r\n\r\n");
    assert!(get(raw, &derived, &[2], SectionText::Full).is_empty());
    assert_eq!(
        derived.bodystructure(),
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"
    );
}

/// RFC 2045 section 5.2: an invalid Content-Type means text/plain in
/// US-ASCII, as a missing one does. Dovecot 2.3 gives `"" ""` here.
#[test]
fn invalid_content_type_means_text_plain() {
    let raw = b"Content-Type: text; charset=iso-8859-1\r\n\r\nbody\r\n";
    let derived = derive(raw, &LIMITS);
    assert_eq!(derived.body(), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
}

/// An RFC 2231 encoded boundary delimits the parts by its decoded value.
#[test]
fn rfc2231_boundary_is_decoded() {
    let raw = b"Content-Type: multipart/mixed; boundary*=us-ascii''a%20b\r\n\r\n--a b\r\n\r\none\r\n--a b\r\n\r\ntwo\r\n--a b--\r\n";
    let derived = derive(raw, &LIMITS);
    assert_eq!(derived.part_numbers(), vec![vec![1], vec![2]]);
    assert_eq!(&*get(raw, &derived, &[2], SectionText::Full), b"two");
}

#[test]
fn rfc2231_continuations_are_joined() {
    let raw = b"Content-Type: application/octet-stream;\r\n name*0=\"a\"; name*1=\"b.txt\";\r\n title*0*=utf-8''%C3%A9; title*1*=t\r\n\r\nx";
    let derived = derive(raw, &LIMITS);
    assert_eq!(
        derived.body(),
        "(\"application\" \"octet-stream\" (\"name\" \"ab.txt\" \"title*\" \"utf-8''%C3%A9t\") NIL NIL \"7bit\" 1)"
    );
}

#[test]
fn eight_bit_and_quotes_use_literal_or_escape() {
    let raw = "Subject: caf\u{e9} \"q\"\r\n\r\n".as_bytes();
    let derived = derive(raw, &LIMITS);
    assert!(derived.envelope().starts_with("(NIL {9}\r\ncafé \"q\" NIL"), "{}", derived.envelope());
    let raw = b"Subject: say \"hi\"\r\n\r\n";
    let derived = derive(raw, &LIMITS);
    assert!(derived.envelope().starts_with("(NIL \"say \\\"hi\\\"\" NIL"), "{}", derived.envelope());
}

#[test]
fn header_values_decode_rfc2047() {
    let derived = derive(MIXED, &LIMITS);
    assert_eq!(header_values(MIXED, &derived, "subject"), vec!["café menu".to_owned()]);
    assert_eq!(header_values(MIXED, &derived, "cc"), vec!["a@example.org, B <b@example.org>".to_owned()]);
    assert!(header_values(MIXED, &derived, "x-missing").is_empty());
}

#[test]
fn sent_date_parses_date_header() {
    let derived = derive(MIXED, &LIMITS);
    assert_eq!(derived.sent_date(), Some(760686745));
    let derived = derive(b"Date: not a date\r\n\r\n", &LIMITS);
    assert_eq!(derived.sent_date(), None);
    let derived = derive(b"Subject: none\r\n\r\n", &LIMITS);
    assert_eq!(derived.sent_date(), None);
}

#[test]
fn search_text_decodes_and_is_bounded() {
    let raw = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 au lait\r\n";
    let derived = derive(raw, &LIMITS);
    let text = search_text(raw, &derived, &TextLimits { bytes_max: 1000 });
    assert!(text.starts_with("café au lait"), "{text:?}");
    // "café" is 5 bytes in UTF-8: at the limit it fits, one byte short cuts
    // before the two-byte character.
    assert_eq!(search_text(raw, &derived, &TextLimits { bytes_max: 5 }), "café");
    assert_eq!(search_text(raw, &derived, &TextLimits { bytes_max: 4 }), "caf");
}

#[test]
fn decode_charset_known_and_unknown() {
    assert_eq!(decode_charset(b"caf\xe9", "ISO-8859-1").as_deref(), Some("café"));
    assert_eq!(decode_charset(b"abc", "us-ascii").as_deref(), Some("abc"));
    assert_eq!(decode_charset("é".as_bytes(), "utf-8").as_deref(), Some("é"));
    assert_eq!(decode_charset(b"\xa4\x40", "big5").as_deref(), Some("一"));
    assert_eq!(decode_charset(b"abc", "x-no-such-charset"), None);
}

/// Builds a message whose multiparts nest `levels` deep around one text
/// part, so the text part sits at depth `levels`.
fn nested(levels: usize) -> Vec<u8> {
    let mut raw = Vec::new();
    for level in 0..levels {
        raw.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\nleaf\r\n");
    for level in (0..levels).rev() {
        raw.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
    }
    raw
}

#[test]
fn depth_limit_at_and_past() {
    let raw = nested(4);
    let at_limit = derive(&raw, &Limits { depth_max: 4, parts_max: 10_000 });
    assert_eq!(at_limit.part_numbers().len(), 4);
    assert!(at_limit.bodystructure().contains("\"text\" \"plain\""));

    // One level short: the innermost multipart becomes an opaque part and
    // the text part gets no number.
    let past_limit = derive(&raw, &Limits { depth_max: 3, parts_max: 10_000 });
    assert_eq!(past_limit.part_numbers().len(), 3);
    assert!(!past_limit.bodystructure().contains("\"text\" \"plain\""));
    let opaque = get(&raw, &past_limit, &[1, 1, 1], SectionText::Full);
    assert!(opaque.starts_with(b"--b3\r\nContent-Type: text/plain"), "{:?}", String::from_utf8_lossy(&opaque));
}

#[test]
fn decode_rejects_bad_records() {
    let derived = derive(MIXED, &LIMITS);
    let stored = derived.encode();
    assert_eq!(Derived::decode(&stored).unwrap(), derived);
    assert_eq!(Derived::decode(&stored[..stored.len() - 1]), Err(DecodeError::Truncated));
    assert_eq!(Derived::decode(&[]), Err(DecodeError::Truncated));
    let mut wrong_version = stored.clone();
    wrong_version[0] = 99;
    assert_eq!(Derived::decode(&wrong_version), Err(DecodeError::UnknownVersion(99)));
    let mut trailing = stored;
    trailing.push(0);
    assert!(matches!(Derived::decode(&trailing), Err(DecodeError::Invalid(_))));
}

#[test]
fn garbage_does_not_panic() {
    let inputs: [&[u8]; 6] = [
        b"",
        b"\r\n",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"From: <<<@@@>>>, \"unterminated\r\nTo: (((\r\n\r\n",
        b"\xff\xfe\x00:\x00\r\n\r\n\x00",
    ];
    for raw in inputs {
        let derived = derive(raw, &LIMITS);
        assert!(derived.envelope().starts_with('('));
        for part in derived.part_numbers() {
            let _ = get(raw, &derived, &part, SectionText::Mime);
        }
    }
}

/// Builds a multipart message with `count` empty text parts.
fn many_parts(count: usize) -> Vec<u8> {
    let mut raw = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n".to_vec();
    for _ in 0..count {
        raw.extend_from_slice(b"--p\r\n\r\nx\r\n");
    }
    raw.extend_from_slice(b"--p--\r\n");
    raw
}

#[test]
fn part_count_at_and_past_limit() {
    // The root counts as one part, so 9,999 children reach the limit.
    let at_limit = derive(&many_parts(9_999), &LIMITS);
    assert_eq!(at_limit.part_numbers().len(), 9_999);

    let past_limit = derive(&many_parts(10_000), &LIMITS);
    assert_eq!(past_limit.part_numbers().len(), 9_999);
}

#[test]
fn search_text_covers_encoded_parts() {
    let raw = b"Content-Type: multipart/mixed; boundary=s\r\n\r\n\
--s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naMOpbGxv\r\n\
--s\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\naGlkZGVu\r\n\
--s\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nwrap =3D x\r\n\
--s--\r\n";
    let derived = derive(raw, &LIMITS);
    let text = search_text(raw, &derived, &TextLimits { bytes_max: 1000 });
    assert_eq!(text, "héllo\nsoftwrap = x");
}

/// A multipart with as many parts as `parts_max` allows keeps them all;
/// past it, the rest stays in the multipart's body without part numbers.
#[test]
fn parts_limit_at_and_past() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for n in 0..4 {
        raw.extend_from_slice(format!("--b\r\n\r\npart {n}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"--b--\r\n");

    // The root counts, so five parts in all fit a limit of five.
    let at_limit = derive(&raw, &Limits { depth_max: 8, parts_max: 5 });
    assert_eq!(at_limit.part_numbers().len(), 4);

    let past_limit = derive(&raw, &Limits { depth_max: 8, parts_max: 4 });
    assert_eq!(past_limit.part_numbers().len(), 3);
    assert_eq!(&*get(&raw, &past_limit, &[3], SectionText::Full), b"part 2");
    assert!(get(&raw, &past_limit, &[4], SectionText::Full).is_empty());
    let body = get(&raw, &past_limit, &[], SectionText::Text);
    assert!(body.windows(6).any(|w| w == b"part 3"), "{:?}", String::from_utf8_lossy(&body));
}
