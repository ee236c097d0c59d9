//! Replays the committed fuzz corpus of this crate's cargo-fuzz targets (`fuzz/corpus/<target>/*`)
//! through the same entry points, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.

use testkit::fuzz_corpus::{Target, replay};

const TARGETS: &[(&str, Target)] = &[
    ("ocsp_request", ca_mock::fuzzing::ocsp_request),
    ("ca_config", ca_mock::fuzzing::ca_config),
];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    assert!(replay(TARGETS) > 0);
}
