use super::*;

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        local_domains: vec!["example.org".into()],
        line_bytes_max: 40,
        message_bytes_max: 20,
        recipients_max: 2,
    }
}

fn user_status(name: &str) -> UserStatus {
    match name {
        "alice" | "bob" => UserStatus::Exists(name.to_string()),
        "broken" => UserStatus::LookupFailed,
        _ => UserStatus::Unknown,
    }
}

/// What a run of a session produced.
#[derive(Debug, Default, PartialEq)]
struct Transcript {
    /// Every reply in wire form, in order.
    output: String,
    /// Every message handed over for delivery.
    messages: Vec<Vec<u8>>,
    /// The users of every delivery, in RCPT order.
    users: Vec<Vec<String>>,
    /// The size of every message rejected as too big.
    rejected_sizes: Vec<u64>,
    closed: bool,
}

/// Feeds `chunks` to a new session the way the connection does and reports
/// every delivery with `outcome`.
fn run_with(config: SessionConfig, chunks: &[&[u8]], outcome: Outcome) -> Transcript {
    let mut session = Session::new(config.clone());
    let mut transcript = Transcript::default();
    let mut pending = Vec::new();
    let mut replies = Vec::new();

    'chunks: for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let step = session.receive(&pending, &mut replies);
            pending.drain(..step.consumed);
            match step.event {
                Some(Event::CheckUser(user)) => session.user_checked(user_status(&user), &mut replies),
                Some(Event::Rejected { size, .. }) => transcript.rejected_sizes.push(size),
                Some(Event::Deliver(delivery)) => {
                    let outcomes = vec![outcome; delivery.recipients.len()];
                    transcript.messages.push(delivery.message);
                    transcript.users.push(delivery.recipients.into_iter().map(|recipient| recipient.user).collect());
                    session.delivered(&outcomes, &mut replies);
                }
                Some(Event::Close) => {
                    transcript.closed = true;
                    break 'chunks;
                }
                None if step.consumed == 0 => break,
                None => {}
            }
            assert!(pending.len() < config.line_bytes_max + 2 + chunk.len(), "unused input grew to {}", pending.len());
        }
    }

    let mut wire = Vec::new();
    for reply in &replies {
        reply.encode(&mut wire);
    }
    transcript.output = String::from_utf8(wire).unwrap();
    transcript
}

/// Runs `input` whole and split into two chunks at every byte offset, checks
/// that every run gives the same transcript and returns it.
fn run(input: &str) -> Transcript {
    let input = input.as_bytes();
    let whole = run_with(config(), &[input], Outcome::Delivered);
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let split_run = run_with(config(), &[first, second], Outcome::Delivered);
        assert_eq!(split_run, whole, "input split at {split}");
    }
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_with(config(), &bytewise, Outcome::Delivered), whole, "input fed byte by byte");
    whole
}

const LHLO_REPLY: &str = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 20\r\n250 ENHANCEDSTATUSCODES\r\n";

#[test]
fn greeting_names_host() {
    let mut wire = Vec::new();
    Session::new(config()).greeting().encode(&mut wire);
    assert_eq!(wire, b"220 mx.test LMTP Roost ready\r\n");
}

#[test]
fn pipelined_transaction_to_two_recipients() {
    let transcript = run("LHLO client\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob>\r\nDATA\r\nHi\n..\r\n.\r\nQUIT\r\n");
    let expected = format!(
        "{LHLO_REPLY}250 2.1.0 Sender OK\r\n\
         250 2.1.5 <alice@example.org> Recipient OK\r\n\
         250 2.1.5 <bob> Recipient OK\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n\
         250 2.0.0 <alice@example.org> Delivered\r\n\
         250 2.0.0 <bob> Delivered\r\n\
         221 2.0.0 mx.test Closing connection\r\n"
    );
    assert_eq!(transcript.output, expected);
    assert_eq!(transcript.messages, vec![b"Hi\r\n.\r\n".to_vec()]);
    assert_eq!(transcript.users, [["alice", "bob"]]);
    assert!(transcript.closed);
}

#[test]
fn replies_per_command() {
    // Each case: the input after LHLO and the replies after the LHLO reply.
    let cases: &[(&str, &str)] = &[
        ("HELO x\r\n", "500 5.5.1 LMTP requires LHLO\r\n"),
        ("EHLO x\r\n", "500 5.5.1 LMTP requires LHLO\r\n"),
        ("FOO\r\n", "500 5.5.2 Unknown command\r\n"),
        ("MAIL FROM:x\r\n", "501 5.5.4 Address must be enclosed in <>\r\n"),
        ("MAIL FROM:<> XYZ=1\r\n", "555 5.5.4 Unsupported parameter XYZ\r\n"),
        ("RCPT TO:<alice>\r\n", "503 5.5.1 Send MAIL first\r\n"),
        ("DATA\r\n", "503 5.5.1 Send MAIL first\r\n"),
        ("MAIL FROM:<>\r\nDATA\r\n", "250 2.1.0 Sender OK\r\n503 5.5.1 No valid recipients\r\n"),
        ("MAIL FROM:<>\r\nMAIL FROM:<>\r\n", "250 2.1.0 Sender OK\r\n503 5.5.1 Nested MAIL command\r\n"),
        ("MAIL FROM:<> SIZE=20\r\n", "250 2.1.0 Sender OK\r\n"),
        ("MAIL FROM:<> SIZE=21\r\n", "552 5.3.4 Message size exceeds fixed maximum message size\r\n"),
        ("MAIL FROM:<>\r\nRCPT TO:<carol@example.org>\r\n", "250 2.1.0 Sender OK\r\n550 5.1.1 <carol@example.org> User unknown\r\n"),
        ("MAIL FROM:<>\r\nRCPT TO:<alice@other.example>\r\n", "250 2.1.0 Sender OK\r\n550 5.1.2 <alice@other.example> Domain is not local\r\n"),
        ("MAIL FROM:<>\r\nRCPT TO:<alice@EXAMPLE.ORG>\r\n", "250 2.1.0 Sender OK\r\n250 2.1.5 <alice@example.org> Recipient OK\r\n"),
        ("MAIL FROM:<>\r\nRCPT TO:<broken>\r\n", "250 2.1.0 Sender OK\r\n451 4.3.0 <broken> Temporary failure, try again later\r\n"),
        ("MAIL FROM:<>\r\nRCPT TO:<>\r\n", "250 2.1.0 Sender OK\r\n501 5.5.4 Recipient address is empty\r\n"),
        ("MAIL FROM:<>\r\nRSET\r\nRCPT TO:<alice>\r\n", "250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n503 5.5.1 Send MAIL first\r\n"),
        ("NOOP\r\nVRFY alice\r\n", "250 2.0.0 OK\r\n252 2.5.0 Cannot verify users, send RCPT instead\r\n"),
        ("EXPN all\r\n", "502 5.5.1 EXPN is not implemented\r\n"),
        ("HELP\r\n", "214 2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY\r\n"),
        ("QUIT now\r\n", "501 5.5.4 This command takes no argument\r\n"),
        ("NOOP\nNOOP\r\n", "250 2.0.0 OK\r\n250 2.0.0 OK\r\n"),
        ("\r\n", "500 5.5.2 Unknown command\r\n"),
    ];
    for (input, expected) in cases {
        let transcript = run(&format!("LHLO c\r\n{input}"));
        assert_eq!(transcript.output, format!("{LHLO_REPLY}{expected}"), "input {input:?}");
    }
}

#[test]
fn commands_before_lhlo() {
    let transcript = run("MAIL FROM:<>\r\nRCPT TO:<alice>\r\nNOOP\r\nLHLO c\r\nMAIL FROM:<>\r\n");
    let expected = format!("503 5.5.1 Send LHLO first\r\n503 5.5.1 Send MAIL first\r\n250 2.0.0 OK\r\n{LHLO_REPLY}250 2.1.0 Sender OK\r\n");
    assert_eq!(transcript.output, expected);
}

#[test]
fn lhlo_resets_transaction() {
    let transcript = run("LHLO c\r\nMAIL FROM:<>\r\nLHLO c\r\nRCPT TO:<alice>\r\n");
    let expected = format!("{LHLO_REPLY}250 2.1.0 Sender OK\r\n{LHLO_REPLY}503 5.5.1 Send MAIL first\r\n");
    assert_eq!(transcript.output, expected);
}

#[test]
fn recipients_at_limit_and_past() {
    let transcript = run("LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nRCPT TO:<alice>\r\nDATA\r\n.\r\n");
    let expected = format!(
        "{LHLO_REPLY}250 2.1.0 Sender OK\r\n\
         250 2.1.5 <alice> Recipient OK\r\n\
         250 2.1.5 <bob> Recipient OK\r\n\
         452 4.5.3 Too many recipients\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n\
         250 2.0.0 <alice> Delivered\r\n\
         250 2.0.0 <bob> Delivered\r\n"
    );
    assert_eq!(transcript.output, expected);
}

#[test]
fn unknown_recipients_do_not_count_toward_limit() {
    let transcript = run("LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x>\r\nRCPT TO:<y>\r\nRCPT TO:<alice>\r\n");
    let expected = format!(
        "{LHLO_REPLY}250 2.1.0 Sender OK\r\n\
         550 5.1.1 <x> User unknown\r\n\
         550 5.1.1 <y> User unknown\r\n\
         250 2.1.5 <alice> Recipient OK\r\n"
    );
    assert_eq!(transcript.output, expected);
}

#[test]
fn message_at_size_limit_is_delivered() {
    // Eighteen bytes and CRLF make twenty, the limit.
    let transcript = run("LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n123456789012345678\r\n.\r\n");
    assert!(transcript.output.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 <alice> Delivered\r\n"), "{}", transcript.output);
    assert_eq!(transcript.messages, vec![b"123456789012345678\r\n".to_vec()]);
}

#[test]
fn message_past_size_limit_is_rejected_per_recipient() {
    let transcript = run("LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n1234567890123456789\r\n.\r\nNOOP\r\n");
    let expected = "354 End data with <CR><LF>.<CR><LF>\r\n\
                    552 5.3.4 <alice> Message too big\r\n\
                    552 5.3.4 <bob> Message too big\r\n\
                    250 2.0.0 OK\r\n";
    assert!(transcript.output.ends_with(expected), "{}", transcript.output);
    assert!(transcript.messages.is_empty());
    assert_eq!(transcript.rejected_sizes, [21]);
}

#[test]
fn line_at_limit_and_past() {
    // "NOOP " and 35 bytes is 40 bytes, the limit; one more is past it.
    let at_limit = format!("NOOP {}\r\n", "x".repeat(35));
    let past_limit = format!("NOOP {}\r\n", "x".repeat(36));
    let transcript = run(&format!("{at_limit}{past_limit}NOOP\r\n"));
    assert_eq!(transcript.output, "250 2.0.0 OK\r\n500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn very_long_line_is_dropped_in_bounded_memory() {
    let long_line = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(10_000));
    let chunks: Vec<&[u8]> = long_line.as_bytes().chunks(100).collect();
    let transcript = run_with(config(), &chunks, Outcome::Delivered);
    assert_eq!(transcript.output, "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn delivery_outcomes_map_to_replies() {
    let input: &[u8] = b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nx\r\n.\r\n";
    let cases = [
        (Outcome::Delivered, "250 2.0.0 <alice> Delivered\r\n"),
        (Outcome::UnknownUser, "550 5.1.1 <alice> User unknown\r\n"),
        (Outcome::TooBig, "552 5.3.4 <alice> Message too big\r\n"),
        (Outcome::TemporaryFailure, "451 4.3.0 <alice> Temporary failure, try again later\r\n"),
    ];
    for (outcome, expected) in cases {
        let transcript = run_with(config(), &[input], outcome);
        assert!(transcript.output.ends_with(expected), "{outcome:?}: {}", transcript.output);
    }
}

#[test]
fn data_state_is_reported() {
    let mut session = Session::new(config());
    let mut replies = Vec::new();
    let input = b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n";
    let mut offset = 0;
    while offset < input.len() {
        assert!(!session.is_in_data());
        let step = session.receive(&input[offset..], &mut replies);
        if let Some(Event::CheckUser(user)) = step.event {
            session.user_checked(user_status(&user), &mut replies);
        }
        offset += step.consumed;
    }
    assert!(session.is_in_data());

    let step = session.receive(b"x\r\n.\r\n", &mut replies);
    assert!(matches!(step.event, Some(Event::Deliver(_))));
    assert!(session.is_in_data(), "a session waiting for delivery is still in DATA");
    session.delivered(&[Outcome::Delivered], &mut replies);
    assert!(!session.is_in_data());
}

#[test]
fn any_domain_is_local_without_a_list() {
    let config = SessionConfig { local_domains: Vec::new(), ..config() };
    let transcript = run_with(config, &[b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@anywhere.example>\r\n"], Outcome::Delivered);
    assert!(transcript.output.ends_with("250 2.1.5 <alice@anywhere.example> Recipient OK\r\n"), "{}", transcript.output);
}

#[test]
fn nothing_after_quit_is_read() {
    let transcript = run("QUIT\r\nNOOP\r\n");
    assert_eq!(transcript.output, "221 2.0.0 mx.test Closing connection\r\n");
    assert!(transcript.closed);
}

#[test]
fn input_waits_for_user_lookup() {
    let mut session = Session::new(config());
    let mut replies = Vec::new();
    for line in [&b"LHLO c\r\n"[..], b"MAIL FROM:<>\r\n"] {
        session.receive(line, &mut replies);
    }

    let step = session.receive(b"RCPT TO:<alice>\r\nNOOP\r\n", &mut replies);
    assert_eq!(step, Step { consumed: 17, event: Some(Event::CheckUser("alice".into())) });
    let waiting = session.receive(b"NOOP\r\n", &mut replies);
    assert_eq!(waiting, Step { consumed: 0, event: None }, "input is read before the lookup result");

    session.user_checked(UserStatus::Exists("alice".into()), &mut replies);
    let step = session.receive(b"NOOP\r\n", &mut replies);
    assert_eq!(step.consumed, 6);
    let last_two: Vec<u16> = replies[replies.len() - 2..].iter().map(|reply| reply.code).collect();
    assert_eq!(last_two, [250, 250]);
}

/// A small deterministic generator (SplitMix64) for the random-input test,
/// so a failing case can be replayed from its seed.
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

/// Builds a random session input from command lines, DATA bodies, long
/// lines and random bytes, mostly in an order that reaches every phase.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"LHLO client\r\n",
        b"LHLO \xff\r\n",
        b"MAIL FROM:<s@x.example>\r\n",
        b"MAIL FROM:<> SIZE=99999999999999999999999 BODY=8BITMIME\r\n",
        b"MAIL FROM: <@route:a@b> SIZE=\r\n",
        b"RCPT TO:<alice@example.org>\r\n",
        b"RCPT TO:<bob>\r\n",
        b"RCPT TO:<broken@example.org>\r\n",
        b"RCPT TO:<\"a\\\"b>\"@[1.2.3.4]>\r\n",
        b"RCPT TO:<\"\\\r\n",
        b"RCPT TO:<@>\r\n",
        b"RCPT TO:<a@[]>\r\n",
        b"DATA\r\n",
        b"Subject: x\r\n\r\nbody\r\n",
        b"..\r\n.x\r\n.\r.\r\n",
        b"\r\n.\r\n",
        b".\n",
        b"\r\r\r\n",
        b"RSET\r\n",
        b"NOOP x\r\n",
        b"VRFY\r\n",
        b"HELP\r\n",
        b"\n",
        b"QUIT\r\n",
    ];
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(40) {
        match rng.below(10) {
            0 => {
                // A line near the length limit, on either side of it.
                let length = 30 + rng.below(20);
                input.extend(std::iter::repeat_n(b'a', length));
                input.extend_from_slice(b"\r\n");
            }
            1 => {
                for _ in 0..rng.below(64) {
                    input.push(rng.next() as u8);
                }
            }
            // QUIT, the last piece, is left to the end so later pieces run.
            _ => input.extend_from_slice(PIECES[rng.below(PIECES.len() - 1)]),
        }
    }
    if rng.below(4) != 0 {
        input.extend_from_slice(b"QUIT\r\n");
    }
    input
}

#[test]
fn random_input_neither_panics_nor_grows() {
    const SEED: u64 = 0x1a7e_57ed_0000_0001;
    const CASES: usize = 2000;
    let time_max = std::time::Duration::from_secs(20);
    let started = std::time::Instant::now();
    let mut rng = Rng(SEED);
    let mut deliveries = 0;

    for case in 0..CASES {
        if started.elapsed() > time_max {
            break;
        }
        let input = random_input(&mut rng);
        let mut config = config();
        config.message_bytes_max = 1 + rng.below(64);
        let whole = run_with(config.clone(), &[&input], Outcome::Delivered);

        let mut chunks = Vec::new();
        let mut rest = input.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(1 + rng.below(rest.len().min(24)));
            chunks.push(chunk);
            rest = tail;
        }
        let chunked = run_with(config.clone(), &chunks, Outcome::TemporaryFailure);

        let context = format!("case {case} of seed {SEED:#x}, input {:?}", String::from_utf8_lossy(&input));
        // Each input byte gives at most one short reply line (an empty line
        // gets a 27-byte reply), and LHLO's reply is fixed.
        assert!(whole.output.len() <= 64 * input.len() + 1024, "{context}: {} reply bytes", whole.output.len());
        for message in &whole.messages {
            assert!(message.len() <= config.message_bytes_max, "{context}: message of {} bytes", message.len());
        }
        for users in &whole.users {
            assert!(users.len() <= config.recipients_max, "{context}: {} recipients", users.len());
        }
        assert_eq!(chunked.messages, whole.messages, "{context}: messages differ when chunked");
        assert_eq!(chunked.closed, whole.closed, "{context}: close differs when chunked");
        deliveries += whole.messages.len();
    }
    assert!(deliveries > 0, "no random input reached a delivery");
}
