//! I/O-free IMAP protocol layer.
