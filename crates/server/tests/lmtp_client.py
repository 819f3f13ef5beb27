"""Deliver one message over LMTP with Python's smtplib, as an MTA would.

Usage: lmtp_client.py PORT

Connects to 127.0.0.1:PORT, sends the message to alice, bob and the unknown
user nobody, and checks every reply. smtplib.LMTP.data() reads only the first
per-recipient reply after DATA (Python 3.11), so the second is read with
getreply(). On success, prints the message bytes that the store must hold, as
hex, and exits 0. Any unexpected reply raises and exits non-zero.
"""

import smtplib
import sys

# Lines that start with a dot exercise dot-stuffing. smtplib sends bytes
# with their bare LF line endings unchanged (Python 3.11), so the server must
# turn them into CRLF. The last line ends in CRLF because smtplib adds a CRLF
# before the final dot to data that does not end in one.
MESSAGE = (
    b"From: sender@remote.example\n"
    b"To: alice@example.org, bob@example.org\n"
    b"Subject: smtplib\n"
    b"\n"
    b".a line with a leading dot\n"
    b"..two dots\n"
    b".\n"
    b"end\r\n"
)


def expect(reply, code, step):
    """Raise AssertionError unless the (code, text) reply has the expected code."""
    if reply[0] != code:
        raise AssertionError(f"{step}: expected {code}, got {reply!r}")


def main():
    port = int(sys.argv[1])
    with smtplib.LMTP("127.0.0.1", port, timeout=20) as client:
        expect(client.ehlo("client.test"), 250, "LHLO")
        for extension in ("pipelining", "8bitmime", "size", "enhancedstatuscodes"):
            if not client.has_extn(extension):
                raise AssertionError(f"LHLO reply lacks {extension}")
        if client.esmtp_features["size"] != "1000":
            raise AssertionError(f"LHLO advertises SIZE {client.esmtp_features['size']!r}, expected 1000")

        expect(client.mail("sender@remote.example", ["BODY=8BITMIME", f"SIZE={len(MESSAGE)}"]), 250, "MAIL")
        expect(client.rcpt("alice@example.org"), 250, "RCPT alice")
        unknown = client.rcpt("nobody@example.org")
        expect(unknown, 550, "RCPT nobody")
        if not unknown[1].startswith(b"5.1.1"):
            raise AssertionError(f"RCPT nobody: expected status 5.1.1, got {unknown!r}")
        expect(client.rcpt("bob@example.org"), 250, "RCPT bob")

        expect(client.data(MESSAGE), 250, "DATA reply for alice")
        bob = client.getreply()
        expect(bob, 250, "DATA reply for bob")
        if b"<bob@example.org>" not in bob[1]:
            raise AssertionError(f"second DATA reply is not for bob: {bob!r}")

    stored = MESSAGE.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    print(stored.hex())


if __name__ == "__main__":
    main()
