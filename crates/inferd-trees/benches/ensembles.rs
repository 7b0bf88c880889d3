//! Tree-engine throughput on the models `scripts/bench_onnxruntime.py` builds and times
//! onnxruntime on: a RandomForest (300 trees, depth 12, 20 features) and a gradient-boosted
//! model (500 trees, depth 6), at batch 1, 64 and 10,000, with 1 and 2 threads. Each call is a
//! full `Model::infer` (inputs checked, trees walked, labels and probabilities built), the
//! same work onnxruntime's `run` does.
//!
//! Run `.venv/bin/python scripts/bench_onnxruntime.py` first (it writes `bench-out/`), then
//! `cargo bench -p inferd-trees`. `INFERD_BENCH_DIR` points elsewhere.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inferd_core::{Model, NamedTensor, Tensor, TensorData};
use inferd_onnx::OnnxModel;

const N_FEATURES: usize = 20;

fn bench_dir() -> PathBuf {
    std::env::var_os("INFERD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench-out"))
}

fn read(name: &str) -> Vec<u8> {
    let path = bench_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/bench_onnxruntime.py first",
            path.display()
        )
    })
}

fn ensembles(c: &mut Criterion) {
    let rows: Vec<f32> = read("rows.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for name in ["rf", "gbm"] {
        let bytes = read(&format!("{name}.onnx"));
        let mut model = OnnxModel::load(&bytes).expect("bench model loads");
        eprintln!(
            "{name}: ONNX file {} bytes, compiled model {} bytes",
            bytes.len(),
            model.memory_bytes()
        );
        let input = model.metadata().inputs[0].name.clone();
        let mut group = c.benchmark_group(name);
        group
            .sample_size(20)
            .measurement_time(std::time::Duration::from_secs(3));
        for threads in [1, 2] {
            model.set_threads(threads);
            for batch in [1usize, 64, 10_000] {
                let x = Tensor::new(
                    vec![batch, N_FEATURES],
                    TensorData::F32(rows[..batch * N_FEATURES].to_vec()),
                )
                .unwrap();
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("threads{threads}"), batch),
                    &x,
                    |b, x| {
                        b.iter(|| {
                            model
                                .infer(vec![NamedTensor::new(input.clone(), x.clone())])
                                .unwrap()
                        })
                    },
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, ensembles);
criterion_main!(benches);
