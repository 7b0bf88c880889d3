//! Replays the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) through the same entry
//! points, so every seed runs in the normal test suite: no panic, and the valid seeds accepted.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8]) -> bool) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seen = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        seen += 1;
        accepted += usize::from(run(&data));
    }
    (seen, accepted)
}

#[test]
fn seed_corpora_replay_without_panics() {
    for (target, run) in [
        (
            "predict_body",
            inferd_http::fuzzing::predict_body as fn(&[u8]) -> bool,
        ),
        ("infer_request", inferd_http::fuzzing::infer_request),
        ("tensor_json", inferd_http::fuzzing::tensor_json),
    ] {
        let (seen, accepted) = replay(target, run);
        assert!(seen >= 10, "{target}: only {seen} seeds");
        assert!(
            accepted > 0 && accepted < seen,
            "{target}: {accepted} of {seen} accepted"
        );
    }
}
