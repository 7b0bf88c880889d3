//! Replays the fuzz target's seed corpus (`fuzz/corpus/load`) on stable, and runs a short,
//! deterministic mutation pass over it, so `cargo test` catches reader panics without
//! cargo-fuzz.

use std::path::PathBuf;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/load");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fuzz/corpus/load exists")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn seed_corpus_replays_without_panics() {
    let corpus = corpus();
    assert!(corpus.len() >= 20, "seed corpus too small");
    for (_, data) in &corpus {
        inferd_sklearn::fuzz_one(data);
    }
}

/// xorshift64*: deterministic, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let corpus: Vec<_> = corpus()
        .into_iter()
        .filter(|(_, d)| d.len() < 8 << 10)
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..20_000 {
        let (_, seed) = &corpus[rng.below(corpus.len())];
        let mut data = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(data.len());
            match rng.below(4) {
                0 => data[at] = rng.next() as u8,
                1 => data[at] ^= 1 << rng.below(8),
                2 => data.truncate(at),
                _ => {
                    // Interesting bytes: opcodes and extreme lengths.
                    const PICKS: &[u8] =
                        &[0x00, 0xff, 0x7f, 0x80, b'R', b'b', b'.', b'(', 0x93, 0x81];
                    data[at] = PICKS[rng.below(PICKS.len())];
                }
            }
            if data.is_empty() {
                break;
            }
        }
        inferd_sklearn::fuzz_one(&data);
    }
}
