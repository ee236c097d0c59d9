//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/<target>/*`) through the entry
//! points the fuzz targets wrap, so every input the fuzzer found interesting stays a regression
//! test on stable Rust. Each crate's `tests/fuzz_corpus.rs` lists its targets and calls
//! [`replay`].

use std::path::Path;

/// A fuzz entry point: must not panic on any input.
pub type Target = fn(&[u8]);

/// Feeds every file of each target's corpus to it; panics when a corpus is missing or empty
/// (a renamed target must not silently stop being replayed). Returns how many inputs ran.
pub fn replay(targets: &[(&str, Target)]) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for &(name, target) in targets {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            target(&data);
            n += 1;
        }
        assert!(n > 0, "no corpus for {name}");
        eprintln!("{name}: replayed {n} corpus inputs");
        total += n;
    }
    total
}
