"""Run a full IMAP session against a server with Python's imaplib.

Usage: imaplib_session.py HOST PORT USER PASS CORPUS_DIR

The session appends every corpus message (CRLF line ends) to a new
mailbox, fetches each back and compares sizes, bytes, header fields and
MIME structure with the files, then runs SEARCH, STORE, COPY, MOVE,
EXPUNGE, UID EXPUNGE and IDLE and checks every result. The user must be
new: the script expects only the default mailboxes to exist.

Prints one line per step and exits 0 when every check passes. The first
failed check exits non-zero with a message naming the command, the
message and the expected and actual values.
"""

import email
import email.header
import email.policy
import imaplib
import re
import socket
import sys
import time

import corpus

# Seconds that any one read from the server may take before the session
# is treated as hung. A debug build on a busy two-core machine returns a
# FETCH of the whole corpus in well under this.
READ_TIMEOUT_SECS = 30

# Messages appended by the script itself, after the corpus, so that SEARCH
# has exact expected results. The marker words appear nowhere in the
# corpus (checked at run time).
SUBJECT_MARKER = "roostsubjectmarker"
FROM_MARKER = "roost-from-marker.example"
TEXT_MARKER = "roosttextmarker"
FIXTURES = [
    (
        "fixture/encoded-subject",
        b"From: Encoded <enc@roost-from-marker.example>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9_roostsubjectmarker?=\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        b"Message-ID: <encoded-subject@roost.test>\r\n"
        b"\r\n"
        b"A plain body with roosttextmarker in it.\r\n",
    ),
    (
        "fixture/base64-body",
        b"From: Other <other@example.net>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: base64 body\r\n"
        b"Date: Mon, 1 Jan 2024 11:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n"
        # "only the decoded text says roosttextmarker\n"
        b"b25seSB0aGUgZGVjb2RlZCB0ZXh0IHNheXMgcm9vc3R0ZXh0bWFya2VyCg==\r\n",
    ),
]

REQUIRED_CAPABILITIES = ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "ID", "ENABLE", "UNSELECT"]


class CheckFailed(Exception):
    pass


def check(condition, message):
    """Stop the session unless condition holds."""
    if not condition:
        raise CheckFailed(message)


# Failed per-message checks. They do not stop the session, so one run
# reports every message that differs, and the script exits non-zero at the
# end.
FAILURES = []


def expect(condition, message):
    """Record a failure unless condition holds, and go on."""
    if not condition:
        FAILURES.append(message)


def step(text):
    print(f"imaplib: {text}", flush=True)


def ok(result, command):
    """Return the data of an imaplib (typ, data) result, failing unless typ is OK."""
    typ, data = result
    check(typ == "OK", f"{command}: expected OK, got {typ} {data!r}")
    return data


# --- A small parser for IMAP response data ---------------------------------
#
# imaplib returns FETCH data as a list where each literal splits the line:
# a tuple (text up to and including "{N}", literal bytes) followed by the
# rest of the line as bytes. The parser joins that back into one token
# stream, so ENVELOPE and BODYSTRUCTURE can be checked as nested lists.

class Literal(bytes):
    """The bytes of a literal or quoted string, as opposed to an atom."""


def tokens_of(items):
    """Yield the parsed values of imaplib response items, one per response line."""
    pieces = []
    for item in items:
        if isinstance(item, tuple):
            head, literal = item
            head = re.sub(rb"\{\d+\}$", b"", head)
            pieces.append(head)
            pieces.append(Literal(literal))
        elif item is not None:
            pieces.append(item)
            yield parse_values(pieces)
            pieces = []
    if pieces:
        yield parse_values(pieces)


def parse_values(pieces):
    """Parse one response line, given as text pieces and Literal pieces."""
    stack = [[]]
    for piece in pieces:
        if isinstance(piece, Literal):
            stack[-1].append(piece)
            continue
        i = 0
        while i < len(piece):
            char = piece[i:i + 1]
            if char == b" ":
                i += 1
            elif char == b"(":
                stack.append([])
                i += 1
            elif char == b")":
                check(len(stack) > 1, f"unbalanced ')' in {piece!r}")
                done = stack.pop()
                stack[-1].append(done)
                i += 1
            elif char == b'"':
                value = bytearray()
                i += 1
                while piece[i:i + 1] != b'"':
                    if piece[i:i + 1] == b"\\":
                        i += 1
                    check(i < len(piece), f"unterminated quoted string in {piece!r}")
                    value += piece[i:i + 1]
                    i += 1
                stack[-1].append(Literal(bytes(value)))
                i += 1
            elif char == b"[":
                # A section such as BODY[HEADER.FIELDS (SUBJECT)] belongs to
                # the atom before it, and so does a partial's <origin>.
                end = piece.index(b"]", i)
                if piece[end + 1:end + 2] == b"<":
                    end = piece.index(b">", end)
                stack[-1][-1] = stack[-1][-1] + piece[i:end + 1]
                i = end + 1
            else:
                match = re.compile(rb"[^ ()\[\"]+").match(piece, i)
                stack[-1].append(match.group(0))
                i = match.end()
    check(len(stack) == 1, f"unbalanced '(' in {pieces!r}")
    return stack[0]


def fetch_items(data):
    """Return {sequence number: {ITEM NAME: value}} for imaplib FETCH data."""
    result = {}
    for values in tokens_of(data):
        check(len(values) == 2 and isinstance(values[1], list), f"malformed FETCH response {values!r}")
        seq = int(values[0])
        attributes = values[1]
        items = result.setdefault(seq, {})
        for i in range(0, len(attributes), 2):
            name = attributes[i].decode().upper()
            items[name] = attributes[i + 1]
    return result


def nil(value):
    return None if value == b"NIL" else value


# --- Expected values computed from the message bytes ------------------------

def split_header(message):
    """Return (header, body) split at the first empty line, per RFC 3501 section 6.4.5."""
    if message.startswith(b"\r\n"):
        return b"\r\n", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[:end + 4], message[end + 4:]


def header_fields(header):
    """Return [(lowercase name, full field bytes with CRLF)] of a header block."""
    fields = []
    for line in header.split(b"\r\n")[:-1]:
        if line == b"":
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line + b"\r\n")
        else:
            name = line.split(b":", 1)[0].strip().lower() if b":" in line else None
            fields.append((name, line + b"\r\n"))
    return fields


def expected_header_fields(message, names):
    header, _ = split_header(message)
    wanted = [name.lower() for name in names]
    chosen = [text for name, text in header_fields(header) if name is not None and name.decode("latin-1") in wanted]
    return b"".join(chosen) + b"\r\n"


def mime_shape(part):
    """Return the MIME tree of a Python email message as nested (type, subtype, children).

    Only multipart and message/rfc822 parts have children, as in IMAP's
    BODYSTRUCTURE. Python also splits message/delivery-status and
    message/external-body into parts, which IMAP treats as single bodies.
    """
    main, sub = part.get_content_maintype(), part.get_content_subtype()
    if main == "multipart" and not part.is_multipart():
        # Python found no boundary and kept the body as text. The "?" child
        # is no valid media type, so the tree is not used as expected.
        return (main, sub, [("?", "?", [])])
    if main == "multipart" or (main, sub) == ("message", "rfc822"):
        return (main, sub, [mime_shape(child) for child in part.get_payload()])
    return (main, sub, [])


def bodystructure_shape(structure):
    """Return the MIME tree of a parsed BODYSTRUCTURE in the form mime_shape uses."""
    if isinstance(structure[0], list):
        children = []
        i = 0
        while i < len(structure) and isinstance(structure[i], list):
            children.append(bodystructure_shape(structure[i]))
            i += 1
        return ("multipart", structure[i].decode().lower(), children)
    main = structure[0].decode().lower()
    sub = structure[1].decode().lower()
    if (main, sub) == ("message", "rfc822"):
        # Fields 8 and 9 of a message/rfc822 part are the enclosed
        # message's ENVELOPE and BODYSTRUCTURE (RFC 3501 section 7.4.2).
        return (main, sub, [bodystructure_shape(structure[8])])
    return (main, sub, [])


# A token as RFC 2045 section 5.1 defines it for media types and subtypes.
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Za-z^_`{|}~]+")


def shape_types(shape):
    """Yield every (type, subtype) pair of a MIME tree."""
    main, sub, children = shape
    yield main, sub
    for child in children:
        yield from shape_types(child)


# Messages where Python's email package and RFC 2046 disagree, so Python's
# MIME tree is not the expected one.
PYTHON_DIFFERS = {
    # Adjacent boundary lines enclose empty body parts, which RFC 2046
    # section 5.1.1 counts; Python 3.11 drops them.
    "cpython/msg_37.txt",
}


def has_defects(message):
    return any(part.defects for part in message.walk())


# --- The session ------------------------------------------------------------

def mailbox_names(client):
    names = []
    for line in ok(client.list('""', "*"), "LIST"):
        values = parse_values([line])
        check(len(values) == 3, f"LIST: malformed response {line!r}")
        names.append(values[2].decode())
    return names


def check_capabilities(client):
    data = ok(client.capability(), "CAPABILITY")
    capabilities = data[0].decode().upper().split()
    for name in REQUIRED_CAPABILITIES:
        check(name in capabilities, f"CAPABILITY: {name} missing from {capabilities}")
    step(f"CAPABILITY lists {' '.join(REQUIRED_CAPABILITIES)}")


def check_folder_commands(client):
    names = mailbox_names(client)
    check("INBOX" in names, f"LIST: INBOX missing from {names}")

    ok(client.create("Work"), "CREATE Work")
    ok(client.create("Work/Reports"), "CREATE Work/Reports")
    names = mailbox_names(client)
    check("Work" in names and "Work/Reports" in names, f"LIST after CREATE: {names}")

    ok(client.rename("Work", "Projects"), "RENAME Work Projects")
    names = mailbox_names(client)
    check("Work" not in names, f"LIST after RENAME: Work still listed in {names}")
    check("Projects/Reports" in names, f"LIST after RENAME: the child was not renamed: {names}")

    ok(client.delete("Projects/Reports"), "DELETE Projects/Reports")
    ok(client.delete("Projects"), "DELETE Projects")
    names = mailbox_names(client)
    check(not any(name.startswith("Projects") for name in names), f"LIST after DELETE: {names}")

    typ, data = client.select("Missing")
    check(typ == "NO", f"SELECT of a missing mailbox: expected NO, got {typ} {data!r}")
    step("LIST, CREATE, RENAME and DELETE")


def append_all(client, messages):
    uids = []
    for name, _, message in messages:
        typ, data = client.append("Corpus", None, None, message)
        check(typ == "OK", f"APPEND {name}: expected OK, got {typ} {data!r}")
        match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        check(match is not None, f"APPEND {name}: no APPENDUID in {data!r}")
        uids.append(int(match.group(2)))
    check(uids == sorted(uids) and len(set(uids)) == len(uids), f"APPENDUID: UIDs not strictly ascending: {uids}")
    step(f"APPEND of {len(messages)} messages")
    return uids


def check_fetch(client, messages, uids):
    count = len(messages)
    data = ok(client.fetch(f"1:{count}", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)"), "FETCH metadata")
    metadata = fetch_items(data)
    check(sorted(metadata) == list(range(1, count + 1)), f"FETCH 1:{count}: got sequence numbers {sorted(metadata)}")

    for seq, (name, _, message) in enumerate(messages, start=1):
        items = metadata[seq]
        expect(int(items["UID"]) == uids[seq - 1], f"FETCH UID of {name}: expected {uids[seq - 1]}, got {items['UID']!r}")
        expect(items["FLAGS"] == [] or items["FLAGS"] == [b"\\Recent"], f"FETCH FLAGS of {name}: {items['FLAGS']!r}")
        size = int(items["RFC822.SIZE"])
        expect(size == len(message), f"RFC822.SIZE of {name}: expected {len(message)}, got {size}")
        check_envelope(name, message, items["ENVELOPE"])
        check_bodystructure(name, message, items["BODYSTRUCTURE"])

        data = ok(client.fetch(str(seq), "(BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.100>)"), f"FETCH {seq}")
        items = fetch_items(data)[seq]
        expect(items["BODY[]"] == message, f"BODY[] of {name}: bytes differ from the file ({len(items['BODY[]'])} vs {len(message)} bytes)")
        expected = expected_header_fields(message, ["Subject"])
        got = items["BODY[HEADER.FIELDS (SUBJECT)]"]
        expect(got == expected, f"BODY[HEADER.FIELDS (SUBJECT)] of {name}: expected {expected!r}, got {got!r}")
        expect(items["BODY[]<0>"] == message[:100], f"BODY[]<0.100> of {name}: expected {message[:100]!r}, got {items['BODY[]<0>']!r}")

    # A partial fetch that starts past the end returns an empty string.
    data = ok(client.fetch("1", f"(BODY.PEEK[]<{len(messages[0][2])}.10>)"), "FETCH partial past the end")
    items = fetch_items(data)[1]
    got = [value for key, value in items.items() if key.startswith("BODY[]<")]
    check(got == [b""], f"BODY[]<{len(messages[0][2])}.10>: expected an empty string, got {got!r}")

    # BODY.PEEK must not set \Seen.
    data = ok(client.fetch("1:*", "(FLAGS)"), "FETCH FLAGS after PEEK")
    for seq, items in fetch_items(data).items():
        check(b"\\Seen" not in items["FLAGS"], f"BODY.PEEK set \\Seen on message {seq}")
    step(f"FETCH of {count} messages: sizes, bytes, header fields, partials, ENVELOPE and BODYSTRUCTURE")


def check_envelope(name, message, envelope):
    check(isinstance(envelope, list) and len(envelope) == 10, f"ENVELOPE of {name}: expected 10 fields, got {envelope!r}")
    for index in (2, 3, 4, 5, 6, 7):
        value = envelope[index]
        check(value == b"NIL" or isinstance(value, list), f"ENVELOPE of {name}: address field {index} is {value!r}")
    header, _ = split_header(message)
    subjects = [text for field, text in header_fields(header) if field == b"subject"]
    if len(subjects) == 1:
        # Servers differ in how they unfold (Dovecot 2.3 keeps the folding
        # tab, others put a space), so runs of white space compare equal.
        value = b" ".join(subjects[0].split(b":", 1)[1].split())
        got = nil(envelope[1])
        expect(got is not None and b" ".join(bytes(got).split()) == value, f"ENVELOPE subject of {name}: expected {value!r}, got {got!r}")
    elif not subjects:
        expect(nil(envelope[1]) is None, f"ENVELOPE subject of {name}: expected NIL, got {envelope[1]!r}")


def check_bodystructure(name, message, structure):
    check(isinstance(structure, list) and structure, f"BODYSTRUCTURE of {name}: {structure!r}")
    got = bodystructure_shape(structure)
    # A missing or invalid Content-Type means text/plain (RFC 2045 section
    # 5.2), so a type is never empty or outside the token syntax.
    for main, sub in shape_types(got):
        expect(TOKEN.fullmatch(main) and TOKEN.fullmatch(sub), f"BODYSTRUCTURE of {name}: invalid media type {main!r}/{sub!r} in {got}")

    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    expected = mime_shape(parsed)
    python_agrees = (
        name not in PYTHON_DIFFERS
        and not has_defects(parsed)
        and all(TOKEN.fullmatch(main) and TOKEN.fullmatch(sub) for main, sub in shape_types(expected))
    )
    if not python_agrees:
        return
    expect(got == expected, f"BODYSTRUCTURE of {name}: expected MIME tree {expected}, got {got}")
    if not parsed.is_multipart() and got == expected:
        _, body = split_header(message)
        size = int(structure[6])
        expect(size == len(body), f"BODYSTRUCTURE body size of {name}: expected {len(body)}, got {size}")


def search(client, *criteria, uid=False):
    if uid:
        data = ok(client.uid("SEARCH", *criteria), f"UID SEARCH {' '.join(criteria)}")
    else:
        data = ok(client.search(None, *criteria), f"SEARCH {' '.join(criteria)}")
    return sorted(int(number) for number in b" ".join(data).split())


def check_search(client, messages, uids):
    count = len(messages)
    everything = list(range(1, count + 1))

    got = search(client, "ALL")
    check(got == everything, f"SEARCH ALL: expected 1:{count}, got {got}")
    got = search(client, "UNSEEN")
    check(got == everything, f"SEARCH UNSEEN before any \\Seen: expected 1:{count}, got {got}")

    fixture_seqs = [seq for seq, (name, _, _) in enumerate(messages, start=1) if name.startswith("fixture/")]
    encoded, base64_body = fixture_seqs
    got = search(client, "SUBJECT", SUBJECT_MARKER)
    check(got == [encoded], f"SUBJECT {SUBJECT_MARKER} (inside an RFC 2047 encoded word): expected [{encoded}], got {got}")
    got = search(client, "FROM", FROM_MARKER)
    check(got == [encoded], f"FROM {FROM_MARKER}: expected [{encoded}], got {got}")
    got = search(client, "TEXT", TEXT_MARKER)
    check(got == [encoded, base64_body], f"TEXT {TEXT_MARKER} (plain and base64 bodies): expected {[encoded, base64_body]}, got {got}")
    got = search(client, "TEXT", "roostnowhere")
    check(got == [], f"TEXT roostnowhere: expected no matches, got {got}")

    # A plain ASCII subject word from the corpus: the expected set is every
    # message whose Subject field contains it, with no encoded words.
    word = "multipart"
    expected = []
    for seq, (_, _, message) in enumerate(messages, start=1):
        header, _ = split_header(message)
        for field, text in header_fields(header):
            if field == b"subject" and word.encode() in text.lower() and b"=?" not in text:
                expected.append(seq)
                break
    check(expected, f"no corpus subject contains {word!r}; pick another word")
    got = search(client, "SUBJECT", word)
    check(got == expected, f"SUBJECT {word}: expected {expected}, got {got}")

    got = search(client, "UID", f"{uids[0]}:{uids[4]}", uid=True)
    check(got == uids[0:5], f"UID SEARCH UID {uids[0]}:{uids[4]}: expected {uids[0:5]}, got {got}")
    got = search(client, "UID", f"{uids[-1]}:*", uid=True)
    check(got == [uids[-1]], f"UID SEARCH UID {uids[-1]}:*: expected {[uids[-1]]}, got {got}")
    got = search(client, "UID", f"{uids[1]},{uids[3]}:{uids[5]}", uid=True)
    check(got == [uids[1]] + uids[3:6], f"UID SEARCH UID {uids[1]},{uids[3]}:{uids[5]}: got {got}")
    got = search(client, "UID", f"{uids[-1] + 1000}:{uids[-1] + 2000}")
    check(got == [], f"SEARCH UID past UIDNEXT: expected no matches, got {got}")
    step("SEARCH ALL, UNSEEN, SUBJECT, FROM, TEXT and UID ranges")


def flags_of(client, seq):
    data = ok(client.fetch(str(seq), "(FLAGS)"), f"FETCH {seq} FLAGS")
    return set(flag.decode() for flag in fetch_items(data)[seq]["FLAGS"])


def check_store(client, messages):
    count = len(messages)
    ok(client.store("1:5", "+FLAGS", "(\\Seen)"), "STORE 1:5 +FLAGS (\\Seen)")
    got = search(client, "UNSEEN")
    check(got == list(range(6, count + 1)), f"SEARCH UNSEEN after STORE: expected 6:{count}, got {got}")
    got = search(client, "SEEN")
    check(got == [1, 2, 3, 4, 5], f"SEARCH SEEN after STORE: expected 1:5, got {got}")

    ok(client.store("2", "+FLAGS", "(\\Flagged $Label1)"), "STORE 2 +FLAGS (\\Flagged $Label1)")
    flags = flags_of(client, 2)
    check({"\\Seen", "\\Flagged", "$Label1"} <= flags, f"FLAGS after +FLAGS: {flags}")
    ok(client.store("2", "-FLAGS", "(\\Flagged)"), "STORE 2 -FLAGS (\\Flagged)")
    flags = flags_of(client, 2)
    check("\\Flagged" not in flags and {"\\Seen", "$Label1"} <= flags, f"FLAGS after -FLAGS: {flags}")
    got = search(client, "KEYWORD", "$Label1")
    check(got == [2], f"SEARCH KEYWORD $Label1: expected [2], got {got}")
    step("STORE +FLAGS and -FLAGS with system flags and a keyword")


def mailbox_count(client, mailbox):
    data = ok(client.status(mailbox, "(MESSAGES)"), f"STATUS {mailbox}")
    match = re.search(rb"MESSAGES (\d+)", data[0])
    check(match is not None, f"STATUS {mailbox}: no MESSAGES in {data!r}")
    return int(match.group(1))


def check_copy_move(client, messages):
    count = len(messages)
    typ, data = client.copy("1:3", "Trash")
    check(typ == "OK", f"COPY 1:3 Trash: expected OK, got {typ} {data!r}")
    check(b"[COPYUID " in data[0], f"COPY: no COPYUID in {data!r}")
    check(mailbox_count(client, "Trash") == 3, "COPY 1:3 Trash: Trash does not hold 3 messages")

    # MOVE has no imaplib helper in Python 3.11, so it is sent as a plain command.
    moved = messages[3][2]
    typ, data = client._simple_command("MOVE", "4", "Archive")
    check(typ == "OK", f"MOVE 4 Archive: expected OK, got {typ} {data!r}")
    _, expunged = client._untagged_response(typ, data, "EXPUNGE")
    check(expunged == [b"4"], f"MOVE 4 Archive: expected '* 4 EXPUNGE', got {expunged!r}")
    check(mailbox_count(client, "Corpus") == count - 1, "MOVE: the message is still counted in Corpus")

    ok(client.select("Archive", readonly=True), "EXAMINE Archive")
    data = ok(client.fetch("1", "(BODY.PEEK[])"), "FETCH moved message")
    check(fetch_items(data)[1]["BODY[]"] == moved, "MOVE: the moved message's bytes changed")
    ok(client.select("Trash", readonly=True), "EXAMINE Trash")
    data = ok(client.fetch("1:3", "(BODY.PEEK[])"), "FETCH copied messages")
    copies = fetch_items(data)
    for seq in (1, 2, 3):
        check(copies[seq]["BODY[]"] == messages[seq - 1][2], f"COPY: bytes of copy {seq} changed")
    data = ok(client.select("Corpus"), "SELECT Corpus")
    check(int(data[0]) == count - 1, f"SELECT Corpus after MOVE: expected {count - 1} EXISTS, got {data!r}")
    step("COPY with COPYUID and MOVE with EXPUNGE")


def check_expunge(client):
    count = mailbox_count(client, "Corpus")
    data = ok(client.fetch("1:3", "(UID)"), "FETCH 1:3 UID")
    first, second, third = (int(fetch_items(data)[seq]["UID"]) for seq in (1, 2, 3))

    ok(client.store("1", "+FLAGS", "(\\Deleted)"), "STORE 1 +FLAGS (\\Deleted)")
    typ, data = client.expunge()
    check(typ == "OK" and data == [b"1"], f"EXPUNGE: expected '* 1 EXPUNGE', got {typ} {data!r}")
    count -= 1

    # Both remaining messages are \Deleted, but UID EXPUNGE names only one
    # of them (RFC 4315 section 2.1).
    ok(client.uid("STORE", f"{second},{third}", "+FLAGS", "(\\Deleted)"), "UID STORE +FLAGS (\\Deleted)")
    typ, data = client.uid("EXPUNGE", str(third))
    check(typ == "OK", f"UID EXPUNGE {third}: expected OK, got {typ} {data!r}")
    _, expunged = client._untagged_response(typ, data, "EXPUNGE")
    check(expunged == [b"2"], f"UID EXPUNGE {third}: expected '* 2 EXPUNGE', got {expunged!r}")
    count -= 1
    check(mailbox_count(client, "Corpus") == count, "UID EXPUNGE: the message count did not drop by one")
    got = search(client, "UID", str(second), uid=True)
    check(got == [second], f"UID EXPUNGE removed UID {second}, which it did not name")
    got = search(client, "UID", f"{first},{third}", uid=True)
    check(got == [], f"UIDs {first} and {third} are still present after EXPUNGE: {got}")
    step("EXPUNGE and UID EXPUNGE")


def check_idle(client, host, port, user, password):
    count = mailbox_count(client, "Corpus")

    # imaplib in Python 3.11 has no IDLE helper, so the command goes out
    # raw and the replies are read line by line.
    tag = client._new_tag().decode()
    client.send(f"{tag} IDLE\r\n".encode())
    line = client.readline()
    check(line.startswith(b"+"), f"IDLE: expected a continuation, got {line!r}")

    other = imaplib.IMAP4(host, port, timeout=READ_TIMEOUT_SECS)
    ok(other.login(user, password), "LOGIN second session")
    ok(other.append("Corpus", None, None, b"Subject: idle\r\n\r\nnew mail\r\n"), "APPEND during IDLE")
    other.logout()

    deadline = time.monotonic() + READ_TIMEOUT_SECS
    expected = f"* {count + 1} EXISTS".encode()
    while True:
        line = client.readline()
        check(line != b"", "IDLE: the server closed the connection")
        if line.rstrip(b"\r\n") == expected:
            break
        check(line.startswith(b"* "), f"IDLE: expected untagged responses, got {line!r}")
        check(time.monotonic() < deadline, f"IDLE: no '{expected.decode()}' within {READ_TIMEOUT_SECS} s")
    client.send(b"DONE\r\n")
    while True:
        line = client.readline()
        check(line != b"", "IDLE DONE: the server closed the connection")
        if not line.startswith(b"* "):
            break
    check(line.startswith(f"{tag} OK".encode()), f"IDLE DONE: expected '{tag} OK', got {line!r}")
    step("IDLE sees an APPEND from another session")


def run(host, port, user, password, corpus_dir):
    messages = corpus.load(corpus_dir)
    for marker in (SUBJECT_MARKER, FROM_MARKER, TEXT_MARKER):
        for name, _, message in messages:
            check(marker.encode() not in message.lower(), f"the corpus file {name} contains the marker {marker}")
    messages += [(name, message, message) for name, message in FIXTURES]

    client = imaplib.IMAP4(host, port, timeout=READ_TIMEOUT_SECS)
    check_capabilities(client)
    ok(client.login(user, password), "LOGIN")
    step("LOGIN")
    data = ok(client.namespace(), "NAMESPACE")
    check(data[0].startswith(b'(("" "/"))'), f"NAMESPACE: expected a personal namespace with '/', got {data!r}")

    check_folder_commands(client)
    ok(client.create("Corpus"), "CREATE Corpus")
    uids = append_all(client, messages)
    data = ok(client.select("Corpus"), "SELECT Corpus")
    check(int(data[0]) == len(messages), f"SELECT Corpus: expected {len(messages)} EXISTS, got {data!r}")

    check_fetch(client, messages, uids)
    check_search(client, messages, uids)
    check_store(client, messages)
    check_copy_move(client, messages)
    check_expunge(client)
    check_idle(client, host, port, user, password)

    ok(client._simple_command("UNSELECT"), "UNSELECT")
    typ, data = client.logout()
    check(typ == "BYE", f"LOGOUT: expected BYE, got {typ} {data!r}")
    step("UNSELECT and LOGOUT")


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: imaplib_session.py HOST PORT USER PASS CORPUS_DIR")
    host, port, user, password, corpus_dir = sys.argv[1:]
    socket.setdefaulttimeout(READ_TIMEOUT_SECS)
    try:
        run(host, int(port), user, password, corpus_dir)
        check(not FAILURES, f"{len(FAILURES)} per-message checks failed:\n  " + "\n  ".join(FAILURES[:30]))
    except CheckFailed as failure:
        sys.exit(f"imaplib: check failed: {failure}")
    except (imaplib.IMAP4.error, OSError) as error:
        sys.exit(f"imaplib: session failed: {error!r}")


if __name__ == "__main__":
    main()
