//! Replays the committed fuzz corpus of this crate's cargo-fuzz targets (`fuzz/corpus/<target>/*`)
//! through the same entry points, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.

use testkit::fuzz_corpus::{Target, replay};

const TARGETS: &[(&str, Target)] = &[
    ("request", scep::testing::fuzz::request),
    ("cert_rep", scep::testing::fuzz::cert_rep),
    ("certs_only", scep::testing::fuzz::certs_only),
    ("caps", scep::testing::fuzz::caps),
    ("get_message", scep::testing::fuzz::get_message),
    ("envelope", scep::testing::fuzz::envelope),
    ("csr", scep::testing::fuzz::csr),
];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    assert!(replay(TARGETS) > 0);
}
