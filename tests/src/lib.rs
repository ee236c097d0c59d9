//! End-to-end tests of scep-lab live in `tests/tests/`, one file per scenario.
