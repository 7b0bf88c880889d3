//! Where inference runs: never for long on a tokio worker.
//!
//! Costly calls go to a fixed set of dedicated inference threads through a bounded queue and
//! come back on a oneshot channel. Calls the model says are cheap (a few microseconds, such as one
//! row through a small forest) run inline: handing them to another thread would cost more than
//! the work itself (a wake-up and two context switches) and would not free the worker any sooner.

use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result};

/// Calls estimated under this many nanoseconds run inline on the calling task.
pub const INLINE_BUDGET_NS: u64 = 20_000;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of inference threads fed by a bounded queue.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    sender: mpsc::SyncSender<Job>,
    threads: usize,
}

impl Executor {
    /// Starts `threads` inference threads with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new()
                .name(format!("inferd-infer-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, never while running it.
                    let job = match receiver.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender dropped: shut down
                    }
                })
                .expect("spawning an inference thread at start-up");
        }
        Self { inner: Arc::new(Inner { sender, threads }) }
    }

    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `work` inline when `estimated_ns` is within the inline budget, otherwise on an
    /// inference thread. A full queue is an [`ErrorKind::Overloaded`] answer, not a wait.
    pub async fn run<T, F>(&self, estimated_ns: u64, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if estimated_ns <= INLINE_BUDGET_NS {
            return work();
        }
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The receiver may be gone if the client disconnected; the result is then unwanted.
            let _ = reply.send(work());
        });
        self.inner.sender.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                Error::new(ErrorKind::Overloaded, "the inference queue is full; retry later")
            }
            mpsc::TrySendError::Disconnected(_) => Error::internal("inference threads stopped"),
        })?;
        answer.await.map_err(|_| Error::internal("an inference thread failed"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn costly_work_runs_on_an_inference_thread() {
        let executor = Executor::new(2, 4);
        let name = executor
            .run(INLINE_BUDGET_NS + 1, || Ok(thread::current().name().unwrap_or("").to_owned()))
            .await
            .unwrap();
        assert!(name.starts_with("inferd-infer-"), "{name}");
    }

    #[tokio::test]
    async fn cheap_work_runs_inline() {
        let executor = Executor::new(1, 1);
        let here = thread::current().id();
        let there = executor.run(10, move || Ok(thread::current().id())).await.unwrap();
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
        for _ in 0..4 {
            let _ = release.send(());
        }
        for p in pending {
            let _ = p.await.unwrap();
        }
    }
}
