//! Replays the committed fuzz corpus of this crate's cargo-fuzz targets (`fuzz/corpus/<target>/*`)
//! through the same entry points, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.

use testkit::fuzz_corpus::{Target, replay};

const TARGETS: &[(&str, Target)] = &[
    ("request", scep::fuzzing::request),
    ("cert_rep", scep::fuzzing::cert_rep),
    ("certs_only", scep::fuzzing::certs_only),
    ("caps", scep::fuzzing::caps),
    ("get_message", scep::fuzzing::get_message),
    ("envelope", scep::fuzzing::envelope),
    ("csr", scep::fuzzing::csr),
];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    assert!(replay(TARGETS) > 0);
}
