//! The decoder over the real captures in tests/fixtures/public/.
