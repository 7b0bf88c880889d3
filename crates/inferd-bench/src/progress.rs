//! The live progress line on stderr, refreshed each second: rewritten in place on a terminal,
//! one plain line per second otherwise (logs of a Kubernetes Job stay readable).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::runner::Plan;
use crate::stats::Collector;

/// Starts the once-a-second drain of the workers' recorders (which also keeps each interval's
/// histogram small) and, unless `quiet`, prints the line.
pub fn spawn(collector: Arc<Collector>, plan: Arc<Plan>, quiet: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let mut ticker = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut last = Instant::now();
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let interval = collector.drain();
            let secs = now.duration_since(last).as_secs_f64().max(1e-3);
            last = now;
            if quiet {
                continue;
            }
            // A tick just past the warm-up's end has nothing measured yet; it still reads as warm-up.
            let line = if now < plan.measure_start + Duration::from_millis(200) {
                format!(
                    "[{:>4.0}s] warming up",
                    now.duration_since(plan.load_start).as_secs_f64()
                )
            } else {
                let p99 = if interval.latency_us.is_empty() {
                    "-".to_string()
                } else {
                    format!(
                        "{:.3} ms",
                        interval.latency_us.value_at_quantile(0.99) as f64 / 1e3
                    )
                };
                format!(
                    "[{:>4.0}s] {:>10.1} req/s   errors {:>8} total, {:>6} this second   p99 {}",
                    now.duration_since(plan.measure_start).as_secs_f64(),
                    interval.total() as f64 / secs,
                    collector.total_errors(),
                    interval.error_count(),
                    p99
                )
            };
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    })
}

/// Ends the line a terminal progress display left open.
pub fn finish(quiet: bool) {
    if !quiet && std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}
