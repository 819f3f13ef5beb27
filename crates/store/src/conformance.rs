//! Conformance tests every back end must pass.
