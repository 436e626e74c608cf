//! End-to-end tests of latch live in `tests/`; this library is their shared harness.
