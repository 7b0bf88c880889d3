//! Tests of dynamic batching, deadlines and cancellation, through `LoadedModel::infer_with`
//! as front ends call it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::loaded::{InferOptions, LoadedModel};
use crate::model::{ModelMetadata, TensorSpec};
use crate::tensor::DataType;

/// Doubles every element of its `x` input (shape [-1, 2]) into `y`, and also answers the row
/// count of each call in `n` (shape [-1]), so tests can see both the rows and the batching.
/// `delay` makes each call slow enough for requests to pile up.
struct Doubler {
    meta: ModelMetadata,
    delay: Duration,
    calls: Mutex<Vec<usize>>,
    started: AtomicUsize,
}

impl Doubler {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            meta: ModelMetadata {
                platform: "test".into(),
                inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 2])],
                outputs: vec![
                    TensorSpec::new("y", DataType::F32, vec![-1, 2]),
                    TensorSpec::new("n", DataType::I64, vec![-1]),
                ],
                prediction_output: 0,
                probabilities_output: None,
            },
            delay,
            calls: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> Vec<usize> {
        self.calls.lock().unwrap().clone()
    }
}

impl Model for Doubler {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let x = &inputs[0].tensor;
        let rows = x.rows();
        self.calls.lock().unwrap().push(rows);
        thread::sleep(self.delay);
        let y: Vec<f32> = x.to_f32()?.iter().map(|v| v * 2.0).collect();
        Ok(vec![
            NamedTensor::new("y", Tensor::new(vec![rows, 2], TensorData::F32(y))?),
            NamedTensor::new(
                "n",
                Tensor::new(vec![rows], TensorData::I64(vec![rows as i64; rows]))?,
            ),
        ])
    }

    fn cost_per_row_ns(&self) -> u64 {
        u64::MAX / 1024 // never inline
    }
}

fn batching(max_batch_size: usize, delay_ms: f64, queue: usize) -> BatchingConfig {
    BatchingConfig {
        max_batch_size,
        max_queue_delay_ms: delay_ms,
        max_queue_size: queue,
    }
}

fn rows(first: f32, n: usize) -> Vec<NamedTensor> {
    let data: Vec<f32> = (0..n * 2).map(|i| first + i as f32).collect();
    vec![NamedTensor::new(
        "x",
        Tensor::new(vec![n, 2], TensorData::F32(data)).unwrap(),
    )]
}

fn y(outputs: &[NamedTensor]) -> Vec<f32> {
    outputs[0].tensor.to_f32().unwrap().into_owned()
}

/// `n` concurrent callers of one row each (caller `i` sends the values `i`, `i + 1`).
fn single_row_callers(
    loaded: &Arc<LoadedModel>,
    executor: &Executor,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Vec<NamedTensor>>>> {
    (0..n)
        .map(|i| {
            let (loaded, executor) = (Arc::clone(loaded), executor.clone());
            tokio::spawn(async move { loaded.infer(&executor, rows(i as f32, 1)).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_each_get_their_own_rows() {
    let model = Doubler::new(Duration::from_millis(2));
    let executor = Executor::new(1, 64);
    let loaded = Arc::new(
        LoadedModel::new("doubler", 1, model.clone())
            .with_batching(&batching(64, 20.0, 1024), &executor),
    );
    assert!(loaded.is_batched());
    let mut tasks = Vec::new();
    for caller in 0..32usize {
        let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
        // Callers send 1 to 3 rows each, with values that identify the caller.
        let n = 1 + caller % 3;
        let first = caller as f32 * 1000.0;
        tasks.push(tokio::spawn(async move {
            (caller, n, loaded.infer(&executor, rows(first, n)).await)
        }));
    }
    for task in tasks {
        let (caller, n, answer) = task.await.unwrap();
        let answer = answer.unwrap();
        let first = caller as f32 * 1000.0;
        let expected: Vec<f32> = (0..n * 2).map(|i| (first + i as f32) * 2.0).collect();
        assert_eq!(y(&answer), expected, "caller {caller}");
        assert_eq!(answer[0].tensor.shape(), &[n, 2]);
        assert_eq!(answer[1].tensor.shape(), &[n]);
    }
    let calls = model.calls();
    assert_eq!(
        calls.iter().sum::<usize>(),
        (0..32).map(|c| 1 + c % 3).sum::<usize>()
    );
    // One inference thread and a 20 ms window: the 32 requests must have shared model calls.
    assert!(
        calls.len() < 32 && calls.iter().any(|&r| r > 3),
        "model calls by rows: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_inference_threads_share_the_queue() {
    let model = Doubler::new(Duration::from_millis(20));
    let executor = Executor::new(2, 64);
    let loaded = Arc::new(
        LoadedModel::new("doubler", 1, model.clone())
            .with_batching(&batching(64, 30.0, 1024), &executor),
    );
    let tasks = single_row_callers(&loaded, &executor, 40);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let calls = model.calls();
    assert_eq!(calls.iter().sum::<usize>(), 40);
    // Both threads idle when the window closes: the first two batches split the queue rather
    // than one taking all 40 rows while the other thread waits.
    assert!(
        calls.len() >= 2 && calls.iter().all(|&r| r <= 20),
        "model calls by rows: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_exceed_max_batch_size() {
    let model = Doubler::new(Duration::from_millis(1));
    let executor = Executor::new(1, 64);
    let loaded = Arc::new(
        LoadedModel::new("doubler", 1, model.clone())
            .with_batching(&batching(4, 50.0, 1024), &executor),
    );
    let tasks = single_row_callers(&loaded, &executor, 20);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = model.calls();
    assert!(calls.iter().all(|&r| r <= 4), "{calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_batch_axis_run_alone() {
    let model = Doubler::new(Duration::ZERO);
    let executor = Executor::new(1, 8);
    let loaded = LoadedModel::new("doubler", 1, model.clone())
        .with_batching(&batching(8, 0.0, 8), &executor);
    // A scalar input has no rows to stack: it bypasses the batcher and reaches the model as is.
    let scalar = vec![NamedTensor::new(
        "x",
        Tensor::new(vec![], TensorData::F32(vec![1.0])).unwrap(),
    )];
    assert_eq!(Batcher::accepts(&scalar), None);
    let _ = loaded.infer(&executor, scalar).await;
    assert_eq!(model.calls(), vec![1]);
}

#[test]
fn models_without_a_batch_axis_are_not_batched() {
    let mut model = Doubler::new(Duration::ZERO);
    Arc::get_mut(&mut model).unwrap().meta.inputs[0].shape = vec![2];
    let executor = Executor::new(1, 8);
    let loaded = LoadedModel::new("fixed", 1, model).with_batching(&batching(8, 1.0, 8), &executor);
    assert!(!loaded.is_batched());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_batch_queue_sheds_at_once() {
    let model = Doubler::new(Duration::from_millis(300));
    let executor = Executor::new(1, 64);
    // One job at a time and room for two waiting: the first runs, two queue, the rest are shed.
    let loaded = Arc::new(
        LoadedModel::new("doubler", 1, model.clone())
            .with_batching(&batching(1, 0.0, 2), &executor),
    );
    let first = {
        let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
        tokio::spawn(async move { loaded.infer(&executor, rows(0.0, 1)).await })
    };
    wait_until(|| model.started.load(Ordering::SeqCst) == 1).await;
    let queued = single_row_callers(&loaded, &executor, 2);
    wait_until(|| {
        loaded
            .batcher
            .as_ref()
            .is_some_and(|b| b.shared.lock().jobs.len() == 2)
    })
    .await;
    // A front end can ask before reading the body; then the call itself refuses, at once.
    assert_eq!(
        loaded.admit(&executor).unwrap_err().kind,
        ErrorKind::Overloaded
    );
    let started = Instant::now();
    let refused = loaded.infer(&executor, rows(9.0, 1)).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Overloaded);
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "shedding must not wait"
    );
    first.await.unwrap().unwrap();
    for q in queued {
        q.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_callers_do_not_keep_the_queue_full() {
    let model = Doubler::new(Duration::from_millis(200));
    let executor = Executor::new(1, 64);
    let loaded = Arc::new(
        LoadedModel::new("doubler", 1, model.clone())
            .with_batching(&batching(1, 0.0, 2), &executor),
    );
    let spawn = |first: f32| {
        let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
        tokio::spawn(async move { loaded.infer(&executor, rows(first, 1)).await })
    };
    let busy = spawn(0.0);
    wait_until(|| model.started.load(Ordering::SeqCst) == 1).await;
    let gone: Vec<_> = (1..3).map(|i| spawn(i as f32)).collect();
    let queue_len = || {
        loaded
            .batcher
            .as_ref()
            .map_or(0, |b| b.shared.lock().jobs.len())
    };
    wait_until(|| queue_len() == 2).await;
    for g in gone {
        g.abort();
        let _ = g.await;
    }
    // The queue is full of callers that left: a live one takes a place instead of being shed.
    let answer = loaded.infer(&executor, rows(10.0, 1)).await.unwrap();
    assert_eq!(y(&answer), vec![20.0, 22.0]);
    busy.await.unwrap().unwrap();
    assert_eq!(model.calls(), vec![1, 1]);
    assert!(loaded.admit(&executor).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_request_past_its_deadline_is_answered_504_and_never_computed() {
    for batched in [false, true] {
        let model = Doubler::new(Duration::from_millis(200));
        let executor = Executor::new(1, 64);
        let mut loaded = LoadedModel::new("doubler", 1, model.clone());
        if batched {
            loaded = loaded.with_batching(&batching(1, 0.0, 16), &executor);
        }
        let loaded = Arc::new(loaded);
        let busy = {
            let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
            tokio::spawn(async move { loaded.infer(&executor, rows(0.0, 1)).await })
        };
        wait_until(|| model.started.load(Ordering::SeqCst) == 1).await;
        let started = Instant::now();
        let late = loaded
            .infer_with(
                &executor,
                rows(1.0, 1),
                InferOptions::timeout(Duration::from_millis(30)),
            )
            .await
            .unwrap_err();
        assert_eq!(late.kind, ErrorKind::DeadlineExceeded, "batched: {batched}");
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "answered at the deadline, not after the model"
        );
        busy.await.unwrap().unwrap();
        // Give the inference thread the chance to (wrongly) pick the expired job up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            model.calls(),
            vec![1],
            "batched: {batched}: the expired request was computed"
        );
        // A deadline already passed is refused before queueing.
        let past = InferOptions {
            deadline: Some(Instant::now()),
        };
        let err = loaded
            .infer_with(&executor, rows(2.0, 1), past)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_went_away_is_skipped() {
    for batched in [false, true] {
        let model = Doubler::new(Duration::from_millis(100));
        let executor = Executor::new(1, 64);
        let mut loaded = LoadedModel::new("doubler", 1, model.clone());
        if batched {
            loaded = loaded.with_batching(&batching(1, 0.0, 16), &executor);
        }
        let loaded = Arc::new(loaded);
        let busy = {
            let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
            tokio::spawn(async move { loaded.infer(&executor, rows(0.0, 1)).await })
        };
        wait_until(|| model.started.load(Ordering::SeqCst) == 1).await;
        // The client disconnects: its handler future is dropped while the request is queued.
        let gone = {
            let (loaded, executor) = (Arc::clone(&loaded), executor.clone());
            tokio::spawn(async move { loaded.infer(&executor, rows(5.0, 3)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        gone.abort();
        busy.await.unwrap().unwrap();
        // A later request still runs: the skipped one did not wedge the queue.
        loaded.infer(&executor, rows(7.0, 2)).await.unwrap();
        assert_eq!(
            model.calls(),
            vec![1, 2],
            "batched: {batched}: the abandoned request was computed"
        );
    }
}

/// Panics on a row whose first value is negative: a stand-in for a runtime bug.
struct Panicky(Arc<Doubler>);

impl Model for Panicky {
    fn metadata(&self) -> &ModelMetadata {
        self.0.metadata()
    }
    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        assert!(inputs[0].tensor.to_f32()?[0] >= 0.0, "runtime bug");
        self.0.infer(inputs)
    }
    fn cost_per_row_ns(&self) -> u64 {
        self.0.cost_per_row_ns()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_model_fails_its_request_and_the_server_keeps_serving() {
    for batched in [false, true] {
        let executor = Executor::new(1, 8);
        let mut loaded = LoadedModel::new(
            "panicky",
            1,
            Arc::new(Panicky(Doubler::new(Duration::ZERO))),
        );
        if batched {
            loaded = loaded.with_batching(&batching(8, 0.0, 8), &executor);
        }
        for _ in 0..3 {
            let err = loaded.infer(&executor, rows(-1.0, 1)).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Internal, "batched: {batched}");
        }
        // The one inference thread survived, and (batched) no batch place leaked.
        let answer = loaded.infer(&executor, rows(1.0, 1)).await.unwrap();
        assert_eq!(y(&answer), vec![2.0, 4.0]);
    }
}

#[test]
fn concat_and_split_round_trip_every_type() {
    let a = vec![
        NamedTensor::new(
            "f",
            Tensor::new(vec![1, 2], TensorData::F64(vec![1.0, 2.0])).unwrap(),
        ),
        NamedTensor::new(
            "s",
            Tensor::new(vec![1], TensorData::Bytes(vec![b"a".to_vec()])).unwrap(),
        ),
    ];
    let b = vec![
        NamedTensor::new(
            "f",
            Tensor::new(vec![2, 2], TensorData::F64(vec![3.0, 4.0, 5.0, 6.0])).unwrap(),
        ),
        NamedTensor::new(
            "s",
            Tensor::new(
                vec![2],
                TensorData::Bytes(vec![b"b".to_vec(), b"c".to_vec()]),
            )
            .unwrap(),
        ),
    ];
    let merged = concat(vec![a.clone(), b.clone()], 3).unwrap();
    assert_eq!(merged[0].tensor.shape(), &[3, 2]);
    assert_eq!(merged[1].tensor.shape(), &[3]);
    let parts = split(merged, &[1, 2]).unwrap();
    assert_eq!(parts, vec![a, b]);
    // An output without the batch's rows cannot be split.
    let scalar = vec![NamedTensor::new(
        "z",
        Tensor::new(vec![], TensorData::I32(vec![1])).unwrap(),
    )];
    assert_eq!(
        split(scalar, &[1, 2]).unwrap_err().kind,
        ErrorKind::Internal
    );
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 5 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
