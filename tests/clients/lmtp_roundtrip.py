"""Deliver every corpus message over LMTP with smtplib, then read it over IMAP.

Usage: lmtp_roundtrip.py HOST LMTP_PORT IMAP_PORT USER PASS CORPUS_DIR

Each corpus file goes out as stored, mostly with bare LF line ends, as an
MTA's LMTP client would pass it on, followed by a message written to test
dot-stuffing. The INBOX of USER must be empty at the start. After all
deliveries the script fetches the INBOX with imaplib and compares every
message with the bytes the server must store:

- smtplib (Python 3.11) doubles a dot at the start of each line and the
  server must remove it again (RFC 5321 section 4.5.2);
- smtplib sends bytes with their line ends unchanged, so the server must
  turn bare LF and bare CR into CRLF;
- smtplib adds CRLF before the final dot when the data does not end in
  CRLF, and that CRLF becomes part of the message.

Exits 0 when every message matches, else non-zero naming each message that
differs.
"""

import imaplib
import smtplib
import sys

import corpus

TIMEOUT_SECS = 30

DOTS = (
    b"From: dots@example.net\n"
    b"To: alice@example.org\n"
    b"Subject: dot-stuffing\n"
    b"\n"
    b".one leading dot\n"
    b"..two leading dots\n"
    b".\n"
    b"a line with . inside\n"
    b"...\n"
    b"last line without a line end"
)


def stored_form(data):
    """Return the bytes the server must store for data sent by smtplib."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return corpus.to_crlf(data)


def main():
    if len(sys.argv) != 7:
        sys.exit("usage: lmtp_roundtrip.py HOST LMTP_PORT IMAP_PORT USER PASS CORPUS_DIR")
    host, lmtp_port, imap_port, user, password, corpus_dir = sys.argv[1:]
    messages = [(name, raw) for name, raw, _ in corpus.load(corpus_dir)]
    messages.append(("fixture/dots", DOTS))

    with smtplib.LMTP(host, int(lmtp_port), timeout=TIMEOUT_SECS) as client:
        for name, raw in messages:
            refused = client.sendmail("sender@example.net", [f"{user}@example.org"], raw)
            if refused:
                sys.exit(f"lmtp: delivery of {name} refused: {refused!r}")
    print(f"lmtp: delivered {len(messages)} messages", flush=True)

    imap = imaplib.IMAP4(host, int(imap_port), timeout=TIMEOUT_SECS)
    imap.login(user, password)
    typ, data = imap.select("INBOX", readonly=True)
    if typ != "OK" or int(data[0]) != len(messages):
        sys.exit(f"lmtp: SELECT INBOX: expected {len(messages)} messages, got {typ} {data!r}")

    failures = []
    for seq, (name, raw) in enumerate(messages, start=1):
        typ, data = imap.fetch(str(seq), "(BODY.PEEK[])")
        if typ != "OK" or not isinstance(data[0], tuple):
            failures.append(f"FETCH {seq} ({name}): {typ} {data!r}")
            continue
        got = data[0][1]
        expected = stored_form(raw)
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            failures.append(
                f"{name}: stored {len(got)} bytes, expected {len(expected)}; first difference at byte {at}: "
                f"got {got[at:at + 40]!r}, expected {expected[at:at + 40]!r}"
            )
    imap.logout()

    if failures:
        sys.exit(f"lmtp: {len(failures)} messages differ:\n  " + "\n  ".join(failures[:30]))
    print(f"lmtp: all {len(messages)} messages read back over IMAP match", flush=True)


if __name__ == "__main__":
    main()
