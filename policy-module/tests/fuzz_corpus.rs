//! Replays the committed fuzz corpus of this crate's cargo-fuzz target (`fuzz/corpus/<target>/*`)
//! through the same entry point, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.

use testkit::fuzz_corpus::{Target, replay};

const TARGETS: &[(&str, Target)] = &[("policy_config", policy_module::fuzzing::policy_config)];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    assert!(replay(TARGETS) > 0);
}
