//! One shutdown signal for every listener.
//!
//! On SIGTERM or SIGINT: readiness turns false at once, listeners keep accepting for the
//! configured delay (load balancers need that long to stop sending), then every listener stops
//! accepting and drains, and the process exits once in-flight work is done or the grace period
//! is over.

use std::time::Duration;

use inferd_core::registry::Registry;
use tokio::sync::watch;

/// A cloneable handle that resolves when listeners must stop accepting.
#[derive(Clone)]
pub struct Shutdown {
    drain: watch::Receiver<bool>,
}

impl Shutdown {
    /// Resolves once draining has begun.
    pub async fn draining(mut self) {
        // An error means the sender is gone, which also means: stop.
        let _ = self.drain.wait_for(|&d| d).await;
    }
}

/// Starts the signal watcher; returns the handle every listener waits on.
pub fn watch_signals(registry: Registry, delay: Duration) -> Shutdown {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        registry.set_ready(false);
        tracing::info!(
            signal,
            delay_s = delay.as_secs_f64(),
            "shutting down: readiness is now false"
        );
        tokio::time::sleep(delay).await;
        tracing::info!("closing listeners; draining in-flight requests");
        let _ = tx.send(true);
    });
    Shutdown { drain: rx }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
