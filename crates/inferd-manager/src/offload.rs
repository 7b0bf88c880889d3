//! Blocking work (a repository scan, a model load) on a thread of its own, awaited under a
//! timeout, so that no async worker ever waits on a file system.
//!
//! A thread of its own rather than `spawn_blocking`: a tokio runtime waits for its blocking
//! threads when it shuts down, so one read stuck on a hung mount would keep the server from
//! exiting; a detached thread does not. Work past its timeout is abandoned, not cancelled (a
//! blocked `open` or `read` cannot be): its result is dropped when it returns, and [`Done`]
//! tells the caller when that has happened, so it never starts the same work twice at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inferd_core::{Error, Result};
use tokio::sync::oneshot;

/// Whether a started piece of work has returned (or panicked). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Done(Arc<AtomicBool>);

impl Done {
    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Sets the flag however the thread ends, a panic included.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How a piece of work ended, as far as its caller saw.
pub enum Outcome<T> {
    Finished(T),
    /// The work panicked; the panic was printed by the thread.
    Panicked,
    /// Still running when the timeout passed; abandoned.
    TimedOut,
}

/// Work running on its own thread, to be awaited once.
pub struct Pending<T> {
    rx: oneshot::Receiver<T>,
}

impl<T> Pending<T> {
    pub async fn wait(self, timeout: Duration) -> Outcome<T> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(value)) => Outcome::Finished(value),
            Ok(Err(_)) => Outcome::Panicked,
            Err(_) => Outcome::TimedOut,
        }
    }

    /// [`Pending::wait`] from outside any async runtime (start-up, before one exists).
    pub fn wait_blocking(self, timeout: Duration) -> Result<Outcome<T>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|_| Error::internal("cannot start a runtime to wait for repository work"))?;
        Ok(runtime.block_on(self.wait(timeout)))
    }
}

/// Starts `work` on a new thread named `name`.
pub fn start<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<(Done, Pending<T>)> {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = oneshot::channel();
    let guard = SetOnDrop(Arc::clone(&flag));
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _guard = guard;
            // Nobody waits any more after a timeout: the result is dropped here.
            let _ = tx.send(work());
        })
        .map_err(|_| Error::internal("cannot start a thread for repository work"))?;
    Ok((Done(flag), Pending { rx }))
}

/// `30 s`, `0.5 s`: how timeouts appear in messages.
pub fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_timed_out_and_panicked() {
        let (done, pending) = start("t-ok", || 7).unwrap();
        assert!(matches!(
            pending.wait(Duration::from_secs(5)).await,
            Outcome::Finished(7)
        ));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (stuck, pending) = start("t-stuck", move || wait.recv().is_ok()).unwrap();
        assert!(matches!(
            pending.wait(Duration::from_millis(20)).await,
            Outcome::TimedOut
        ));
        assert!(!stuck.is_done(), "abandoned, still running");
        release.send(()).unwrap();
        for _ in 0..500 {
            if stuck.is_done() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(stuck.is_done() && done.is_done());
        let (_, pending) = start("t-panic", || -> u8 { panic!("expected in this test") }).unwrap();
        assert!(matches!(
            pending.wait(Duration::from_secs(5)).await,
            Outcome::Panicked
        ));
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
    }
}
