//! Entry points for the cargo-fuzz targets in `fuzz/` (and for the corpus replay in
//! `tests/fuzz_corpus.rs`): each takes arbitrary bytes and must return, never panic. Compiled
//! only with the `fuzzing` feature, so they are no part of the normal API.

use std::path::Path;

use crate::config::Config;

/// A `policy-module.toml` text: parse, validate, and derive every setting the server uses
/// (files it names are not read).
pub fn policy_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = Config::from_toml(&text) {
        let _ = config.store();
        let _ = config.service();
        let _ = config.outbox();
        let _ = config.resolve(Path::new("base"));
    }
}
