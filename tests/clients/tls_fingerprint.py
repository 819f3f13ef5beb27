"""Print the SHA-256 fingerprint of the certificate a TLS server presents.

Usage: tls_fingerprint.py HOST PORT

Prints the fingerprint as colon-separated uppercase hex pairs, the form
Roost logs and `openssl x509 -fingerprint -sha256` shows. The certificate
is read without being verified, because the caller compares fingerprints.
"""

import hashlib
import socket
import ssl
import sys

# Seconds that the connection and handshake may take.
TIMEOUT_SECS = 20


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port = sys.argv[1], int(sys.argv[2])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=TIMEOUT_SECS) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    digest = hashlib.sha256(der).hexdigest().upper()
    print(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))


if __name__ == "__main__":
    main()
