"""Load the test mail corpus the way the Rust tests see it.

The corpus is the folder that scripts/fetch-corpus fills. Each message is
read as stored, a leading mbox "From " line is dropped, and every line end
(bare LF, bare CR or CRLF) becomes CRLF, the form that IMAP carries.
"""

import os


def to_crlf(data):
    """Return data with every bare LF and bare CR turned into CRLF."""
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x0D:
            out += b"\r\n"
            if i + 1 < len(data) and data[i + 1] == 0x0A:
                i += 1
        elif byte == 0x0A:
            out += b"\r\n"
        else:
            out.append(byte)
        i += 1
    return bytes(out)


def strip_mbox_from(data):
    """Drop a leading mbox "From " separator line, which is not part of the message."""
    if not data.startswith(b"From "):
        return data
    end = data.find(b"\n")
    return b"" if end < 0 else data[end + 1:]


def load(corpus_dir):
    """Return [(name, raw, crlf)] for every corpus file, sorted by relative path.

    raw is the file without its mbox "From " line; crlf is raw with CRLF
    line ends. Exits with a message naming scripts/fetch-corpus when the
    folder holds no files.
    """
    paths = []
    for folder, _, files in os.walk(corpus_dir):
        for file in files:
            paths.append(os.path.join(folder, file))
    if not paths:
        raise SystemExit(f"no corpus messages under {corpus_dir}; run scripts/fetch-corpus first")
    messages = []
    for path in sorted(paths, key=lambda p: os.path.relpath(p, corpus_dir)):
        with open(path, "rb") as file:
            raw = strip_mbox_from(file.read())
        messages.append((os.path.relpath(path, corpus_dir), raw, to_crlf(raw)))
    return messages
