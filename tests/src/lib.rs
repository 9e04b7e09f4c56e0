//! Helpers live in tests/tests/util.rs; this library is intentionally empty.
