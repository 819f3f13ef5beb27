//! MIME analysis.
