//! Replays the committed fuzz corpus of this crate's cargo-fuzz targets (`fuzz/corpus/<target>/*`)
//! through the same entry points, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.

use testkit::fuzz_corpus::{Target, replay};

const TARGETS: &[(&str, Target)] = &[
    ("http_request", ndes_proxy::fuzzing::http_request),
    ("ndes_config", ndes_proxy::fuzzing::ndes_config),
];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    assert!(replay(TARGETS) > 0);
}
