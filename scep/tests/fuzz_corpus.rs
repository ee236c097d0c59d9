//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry points
//! the cargo-fuzz targets use, so every input the fuzzer found interesting stays a regression
//! test on stable Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 7] = [
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
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
        total += n;
    }
    eprintln!("replayed {total} corpus inputs");
}
