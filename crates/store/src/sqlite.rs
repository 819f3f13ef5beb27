//! The embedded back end: SQLite index plus message bodies as files.
