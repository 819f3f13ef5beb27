//! User database.
