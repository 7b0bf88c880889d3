//! Tree-engine throughput on the models `scripts/bench_onnxruntime.py` builds and times
//! onnxruntime on: a RandomForest (300 trees, depth 12, 20 features) and a gradient-boosted
//! model (500 trees, depth 6), at batch 1, 64 and 10,000, with 1 and 2 threads. Each call is a
//! full `Model::infer` (inputs checked, trees walked, labels and probabilities built), the
//! same work onnxruntime's `run` does.
//!
//! Run `.venv/bin/python scripts/bench_onnxruntime.py` first (it writes `bench-out/`), then
//! `cargo bench -p inferd-trees`. `INFERD_BENCH_DIR` points elsewhere.
//!
//! On a shared machine wall time mostly measures the neighbours, so the single-thread cases
//! are also measured in this thread's CPU time (`*_cpu` groups; Linux only), which the
//! onnxruntime script reports too (`process_time`, one thread).

use std::path::PathBuf;

use criterion::measurement::{Measurement, ValueFormatter};
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

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (nanoseconds).
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        if let Throughput::Elements(n) = t {
            values.iter_mut().for_each(|v| *v = *n as f64 * 1e9 / *v);
        }
        "rows/s (cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

fn load_rows() -> Vec<f32> {
    read("rows.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn single_thread_cpu(c: &mut Criterion<ThreadCpu>) {
    let rows = load_rows();
    for name in ["rf", "gbm"] {
        let mut model = OnnxModel::load(&read(&format!("{name}.onnx"))).expect("bench model loads");
        model.set_threads(1);
        let input = model.metadata().inputs[0].name.clone();
        let mut group = c.benchmark_group(format!("{name}_cpu"));
        group
            .sample_size(20)
            .measurement_time(std::time::Duration::from_secs(3));
        for batch in [1usize, 64, 10_000] {
            let x = Tensor::new(
                vec![batch, N_FEATURES],
                TensorData::F32(rows[..batch * N_FEATURES].to_vec()),
            )
            .unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new("threads1", batch), &x, |b, x| {
                b.iter(|| {
                    model
                        .infer(vec![NamedTensor::new(input.clone(), x.clone())])
                        .unwrap()
                })
            });
        }
        group.finish();
    }
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
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = single_thread_cpu
}
criterion_main!(benches, cpu);
