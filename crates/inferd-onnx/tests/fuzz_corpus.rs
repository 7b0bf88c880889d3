//! Replays the fuzz target's seed corpus (and any crashes saved beside it) through the same
//! entry point, so that `cargo test` catches a regression without a fuzzer.

use std::path::Path;

#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/load_model");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        // A fuzzer running beside the test may remove the inputs it minimises.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        inferd_onnx::fuzz_one(&bytes);
        // Every prefix of a seed, too: truncation is the commonest corruption.
        for cut in (0..bytes.len()).step_by(bytes.len() / 64 + 1) {
            inferd_onnx::fuzz_one(&bytes[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "the seed corpus in {} is missing", dir.display());
}
