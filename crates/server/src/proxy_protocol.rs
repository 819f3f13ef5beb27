//! Placeholder; filled in by the module's first commit.
