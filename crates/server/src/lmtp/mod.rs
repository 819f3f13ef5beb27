//! LMTP (RFC 2033) listener and sessions.
