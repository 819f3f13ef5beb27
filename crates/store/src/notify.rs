//! Per-mailbox change notification shared by every back end.

/// Hands out `watch` receivers of each mailbox's highest MODSEQ.
pub struct ChangeNotifier {}
