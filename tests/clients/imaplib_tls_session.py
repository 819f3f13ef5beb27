"""Run a short IMAP session over TLS with Python's imaplib.

Usage: imaplib_tls_session.py MODE HOST PORT USER PASS CA_FILE

MODE is "imaps" (IMAP4_SSL, TLS from the first byte) or "starttls"
(IMAP4, then starttls()). The ssl context trusts only CA_FILE, checks the
host name and refuses TLS versions before 1.2. The session logs in,
selects INBOX, appends a message, fetches and searches for it and logs
out. It first checks that a client without CA_FILE rejects the
certificate. In starttls mode it prints the cleartext capabilities and
checks that they offer STARTTLS.

Prints one line per step and exits 0 when every check passes. The first
failed check exits non-zero with a message naming the step and the
expected and actual values.
"""

import imaplib
import ssl
import sys

# Seconds that any one read from the server may take before the session
# is treated as hung.
READ_TIMEOUT_SECS = 30

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: imaplib over TLS roosttlsmarker\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <imaplib-tls@roost.test>\r\n"
    b"\r\n"
    b"Sent through an encrypted connection.\r\n"
)


def fail(step, message):
    print(f"imaplib {step}: {message}", file=sys.stderr)
    sys.exit(1)


def expect_ok(step, result):
    status, data = result
    if status != "OK":
        fail(step, f"expected OK, got {status} {data!r}")
    return data


def context(ca_file):
    """An ssl context that trusts only ca_file and needs TLS 1.2 or newer."""
    tls = ssl.create_default_context(cafile=ca_file)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.set_alpn_protocols(["imap"])
    return tls


def check_untrusted_rejected(mode, host, port):
    """A client with only the system's CAs must reject the certificate."""
    system = ssl.create_default_context()
    try:
        if mode == "imaps":
            imaplib.IMAP4_SSL(host, port, ssl_context=system, timeout=READ_TIMEOUT_SECS)
        else:
            client = imaplib.IMAP4(host, port, timeout=READ_TIMEOUT_SECS)
            client.starttls(ssl_context=system)
    except ssl.SSLCertVerificationError as err:
        print(f"imaplib: a client without the CA file rejects the certificate ({err.verify_message})")
        return
    fail("certificate check", "a client without the CA file accepted the certificate")


def connect(mode, host, port, tls):
    if mode == "imaps":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=tls, timeout=READ_TIMEOUT_SECS)
        print("imaplib: IMAP4_SSL connected")
        return client

    client = imaplib.IMAP4(host, port, timeout=READ_TIMEOUT_SECS)
    print(f"imaplib: cleartext capabilities: {' '.join(client.capabilities)}")
    if "STARTTLS" not in client.capabilities:
        fail("CAPABILITY", f"STARTTLS not offered in cleartext: {client.capabilities}")
    expect_ok("STARTTLS", client.starttls(ssl_context=tls))
    print("imaplib: STARTTLS completed")
    return client


def main():
    if len(sys.argv) != 7 or sys.argv[1] not in ("imaps", "starttls"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, host, port, user, password, ca_file = sys.argv[1:]
    port = int(port)

    check_untrusted_rejected(mode, host, port)
    client = connect(mode, host, port, context(ca_file))
    version = client.sock.version()
    if version not in ("TLSv1.2", "TLSv1.3"):
        fail("handshake", f"negotiated {version}, expected TLSv1.2 or TLSv1.3")
    if client.sock.selected_alpn_protocol() != "imap":
        fail("handshake", f"ALPN protocol is {client.sock.selected_alpn_protocol()!r}, expected 'imap'")
    print(f"imaplib: {version} with ALPN imap")

    # imaplib sends CAPABILITY again after STARTTLS. Inside TLS the server
    # lists neither STARTTLS nor LOGINDISABLED.
    capabilities = client.capabilities
    for name in ("STARTTLS", "LOGINDISABLED"):
        if name in capabilities:
            fail("CAPABILITY", f"{name} listed inside TLS: {capabilities}")
    if "AUTH=PLAIN" not in capabilities:
        fail("CAPABILITY", f"AUTH=PLAIN missing inside TLS: {capabilities}")

    expect_ok("LOGIN", client.login(user, password))
    print("imaplib: LOGIN")
    data = expect_ok("SELECT", client.select("INBOX"))
    if data != [b"0"]:
        fail("SELECT", f"expected an empty INBOX, got {data!r}")

    expect_ok("APPEND", client.append("INBOX", r"(\Seen)", None, MESSAGE))
    expect_ok("NOOP", client.noop())
    print("imaplib: APPEND")

    data = expect_ok("SEARCH", client.uid("SEARCH", "SUBJECT", "roosttlsmarker"))
    uids = data[0].split()
    if len(uids) != 1:
        fail("UID SEARCH", f"expected one UID, got {data!r}")
    print(f"imaplib: UID SEARCH found UID {uids[0].decode()}")

    data = expect_ok("FETCH", client.uid("FETCH", uids[0], "(FLAGS BODY.PEEK[])"))
    parts = [part for part in data if isinstance(part, tuple)]
    if len(parts) != 1:
        fail("UID FETCH", f"expected one message, got {data!r}")
    header, body = parts[0]
    if body != MESSAGE:
        fail("UID FETCH", f"BODY[] differs from the appended message: {body!r}")
    if b"\\Seen" not in header:
        fail("UID FETCH", f"flags lack \\Seen: {header!r}")
    print("imaplib: UID FETCH returned the appended message")

    status, data = client.logout()
    if status != "BYE":
        fail("LOGOUT", f"expected BYE, got {status} {data!r}")
    print("imaplib: LOGOUT")


if __name__ == "__main__":
    main()
