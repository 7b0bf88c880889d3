//! Replays the fuzz target's seed corpus (`fuzz/corpus/load/`) on stable `cargo test`, plus
//! deterministic damage to each seed: every truncation point (sampled) and single-byte edits
//! that turn numbers into extreme or invalid ones. Nothing may panic.

use std::path::PathBuf;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/load");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn seed_corpus_replays_without_panics() {
    let seeds = seeds();
    assert!(seeds.len() >= 6, "seed corpus is missing files");
    for (name, bytes) in &seeds {
        inferd_native::fuzz_one(bytes);
        // Each seed is a valid model of one of the two formats.
        let loaded = if name.ends_with(".json") {
            inferd_native::load_xgboost_json(bytes).err()
        } else {
            inferd_native::load_lightgbm_text(bytes).err()
        };
        assert!(loaded.is_none(), "{name}: {loaded:?}");
    }
}

#[test]
fn truncated_seeds_fail_cleanly() {
    for (name, bytes) in seeds() {
        let step = (bytes.len() / 400).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let prefix = &bytes[..cut];
            inferd_native::fuzz_one(prefix);
            if name.ends_with(".json") {
                // A JSON document cut anywhere is never complete.
                assert!(
                    inferd_native::load_xgboost_json(prefix).is_err(),
                    "{name} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn damaged_seeds_fail_cleanly() {
    let replacements: &[&[u8]] = &[
        b"-",
        b"9",
        b"99999999999",
        b"-1",
        b"1e308",
        b"nan",
        b"",
        b"\xff",
        b"[",
        b"\"",
        b"=",
    ];
    for (_, bytes) in seeds() {
        // Damage the first byte of every token-like position, sampled to bound the run time.
        let step = (bytes.len() / 150).max(1);
        for at in (0..bytes.len()).step_by(step) {
            for r in replacements {
                let mut damaged = bytes[..at].to_vec();
                damaged.extend_from_slice(r);
                damaged.extend_from_slice(&bytes[at + 1..]);
                inferd_native::fuzz_one(&damaged);
            }
        }
    }
}
