//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) of this crate's cargo-fuzz
//! targets through the same entry points, so every input the fuzzer found interesting stays a
//! regression test on stable Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 2] = [
    ("ocsp_request", ca_mock::fuzzing::ocsp_request),
    ("ca_config", ca_mock::fuzzing::ca_config),
];

#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            target(&data);
            n += 1;
        }
        assert!(n > 0, "no corpus for {name}");
        eprintln!("{name}: replayed {n} corpus inputs");
    }
}
