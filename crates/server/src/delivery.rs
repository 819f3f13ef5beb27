//! Delivery of one message into an account's INBOX, shared by LMTP and `roost deliver`.
