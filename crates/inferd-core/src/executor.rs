//! Where inference runs: never for long on a tokio worker.
//!
//! Costly calls go to a fixed set of dedicated inference threads through a bounded queue and
//! come back on a oneshot channel. Calls the model says are cheap (a few microseconds, such as one
//! row through a small forest) run inline: handing them to another thread would cost more than
//! the work itself (a wake-up and two context switches) and would not free the worker any sooner.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result};
use crate::metrics::{ModelMetrics, RejectReason, Rejected};

/// Calls estimated under this many nanoseconds run inline on the calling task.
pub const INLINE_BUDGET_NS: u64 = 20_000;

pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of inference threads fed by a bounded queue.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    sender: mpsc::SyncSender<Job>,
    threads: usize,
    /// Jobs sent and not yet taken by a thread: the channel cannot say, and front ends ask
    /// ([`Executor::is_saturated`]) before they spend time reading a request.
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl Executor {
    /// Starts `threads` inference threads with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let capacity = queue.max(1);
        let (sender, receiver) = mpsc::sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let queued = Arc::clone(&queued);
            thread::Builder::new()
                .name(format!("inferd-infer-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, never while running it.
                    let job = match receiver.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            queued.fetch_sub(1, Ordering::Relaxed);
                            // A panicking model must not take an inference thread with it: the
                            // job's reply sender is dropped while unwinding, so its caller gets
                            // an Internal error, and the thread goes on to the next job.
                            if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                                tracing::error!("an inference job panicked");
                            }
                        }
                        Err(_) => return, // every sender dropped: shut down
                    }
                })
                .expect("spawning an inference thread at start-up");
        }
        Self {
            inner: Arc::new(Inner {
                sender,
                threads,
                queued,
                capacity,
            }),
        }
    }

    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Whether the queue is full, so that work sent now would be refused. A hint (another
    /// caller may take or free the last place a moment later), cheap enough to ask per request.
    pub fn is_saturated(&self) -> bool {
        self.inner.queued.load(Ordering::Relaxed) >= self.inner.capacity
    }

    /// Counts a job as queued before it is sent (so a thread taking it at once cannot count it
    /// out first), and back out when the send fails.
    fn send_counted(&self, job: Job, wait: bool) -> Result<(), mpsc::TrySendError<Job>> {
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let sent = if wait {
            self.inner
                .sender
                .send(job)
                .map_err(|e| mpsc::TrySendError::Disconnected(e.0))
        } else {
            self.inner.sender.try_send(job)
        };
        if sent.is_err() {
            self.inner.queued.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// Runs `work` inline when `estimated_ns` is within the inline budget, otherwise on an
    /// inference thread. A full queue is an [`ErrorKind::Overloaded`] answer, not a wait.
    pub async fn run<T, F>(&self, estimated_ns: u64, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_until(estimated_ns, None, work).await
    }

    /// [`Executor::run`] with a deadline: past it, the caller gets
    /// [`ErrorKind::DeadlineExceeded`] whether the work is still queued or running, and queued
    /// work whose caller has stopped waiting (deadline, or a dropped future: the client went
    /// away) is skipped instead of computed.
    pub async fn run_until<T, F>(
        &self,
        estimated_ns: u64,
        deadline: Option<Instant>,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_inner(estimated_ns, deadline, None, work).await
    }

    /// The one implementation behind `run`, `run_until` and [`crate::registry::LoadedModel`],
    /// which passes its model's `metrics` so that queue depth, queue time and rejections are
    /// recorded per model.
    pub(crate) async fn run_inner<T, F>(
        &self,
        estimated_ns: u64,
        deadline: Option<Instant>,
        metrics: Option<&ModelMetrics>,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let reject = |reason: RejectReason| match metrics {
            Some(m) => m.rejected(reason),
            None => Rejected { model: "", reason }.emit(),
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            reject(RejectReason::DeadlineExceeded);
            return Err(deadline_exceeded());
        }
        if estimated_ns <= INLINE_BUDGET_NS {
            return work();
        }
        let (reply, answer) = oneshot::channel();
        let slot = metrics.map(|m| (m.clone(), m.queued()));
        let submitted = Instant::now();
        let job: Job = Box::new(move || {
            let now = Instant::now();
            let metrics = slot.map(|(m, _slot)| m);
            let reject = |reason: RejectReason| match &metrics {
                Some(m) => m.rejected(reason),
                None => Rejected { model: "", reason }.emit(),
            };
            let expired = deadline.is_some_and(|d| now >= d);
            if reply.is_closed() {
                // A caller whose deadline passed has already counted itself; any other caller
                // that stopped waiting went away (client disconnected): its answer is unwanted.
                if !expired {
                    reject(RejectReason::ClientGone);
                }
                return;
            }
            if expired {
                reject(RejectReason::DeadlineExceeded);
                let _ = reply.send(Err(deadline_exceeded()));
                return;
            }
            if let Some(m) = &metrics {
                m.waited(submitted, now);
            }
            // The receiver may be gone by now; the result is then unwanted.
            let _ = reply.send(work());
        });
        self.send_counted(job, false).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                reject(RejectReason::QueueFull);
                Error::new(
                    ErrorKind::Overloaded,
                    "the inference queue is full; retry later",
                )
            }
            mpsc::TrySendError::Disconnected(_) => Error::internal("inference threads stopped"),
        })?;
        await_answer(answer, deadline, reject).await
    }

    /// Queues `job` for an inference thread, waiting for room: only the batching threads call
    /// this, and they are not async workers, so waiting is their back-pressure.
    pub(crate) fn submit_blocking(&self, job: Job) -> Result<()> {
        self.send_counted(job, true)
            .map_err(|_| Error::internal("inference threads stopped"))
    }
}

pub(crate) fn deadline_exceeded() -> Error {
    Error::new(
        ErrorKind::DeadlineExceeded,
        "the request's deadline passed before it was answered",
    )
}

/// Waits for a reply from an inference thread, up to `deadline`. Giving up drops the receiver,
/// which is how the inference side learns that nobody is waiting any more.
pub(crate) async fn await_answer<T>(
    answer: oneshot::Receiver<Result<T>>,
    deadline: Option<Instant>,
    on_timeout: impl FnOnce(RejectReason),
) -> Result<T> {
    let answered = match deadline {
        None => answer.await,
        Some(d) => match tokio::time::timeout_at(tokio::time::Instant::from_std(d), answer).await {
            Ok(answered) => answered,
            Err(_) => {
                on_timeout(RejectReason::DeadlineExceeded);
                return Err(deadline_exceeded());
            }
        },
    };
    answered.map_err(|_| Error::internal("an inference thread failed"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn costly_work_runs_on_an_inference_thread() {
        let executor = Executor::new(2, 4);
        let name = executor
            .run(INLINE_BUDGET_NS + 1, || {
                Ok(thread::current().name().unwrap_or("").to_owned())
            })
            .await
            .unwrap();
        assert!(name.starts_with("inferd-infer-"), "{name}");
    }

    #[tokio::test]
    async fn cheap_work_runs_inline() {
        let executor = Executor::new(1, 1);
        let here = thread::current().id();
        let there = executor
            .run(10, move || Ok(thread::current().id()))
            .await
            .unwrap();
        assert_eq!(here, there);
    }

    #[tokio::test]
    async fn a_full_queue_sheds_instead_of_waiting() {
        let executor = Executor::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut pending = Vec::new();
        for _ in 0..3 {
            let gate = Arc::clone(&gate);
            let ex = executor.clone();
            pending.push(tokio::spawn(async move {
                ex.run(u64::MAX, move || {
                    let _ = gate.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }));
            tokio::task::yield_now().await;
        }
        // One job runs, one waits in the queue; a further one must be refused at once.
        let refused = executor.run(u64::MAX, || Ok(())).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Overloaded);
        assert!(executor.is_saturated());
        for _ in 0..4 {
            let _ = release.send(());
        }
        for p in pending {
            let _ = p.await.unwrap();
        }
    }
}
