//! Latency and outcome recording: one cheap, uncontended recorder per worker, drained once a
//! second into run totals (for the progress line) and once more at the end (for the report).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency tracked, in microseconds (one hour); longer ones are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Why a request did not count as a success. `key()` is the stable name in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection (or gRPC channel) could not be opened.
    Connect,
    /// No answer within `--timeout`.
    Timeout,
    /// The connection failed mid-request (reset, closed, malformed answer).
    Io,
    /// An HTTP answer outside 2xx.
    Status(u16),
    /// A gRPC status other than OK.
    Grpc(tonic::Code),
}

impl ErrorKind {
    pub fn key(&self) -> String {
        match self {
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Io => "io".into(),
            ErrorKind::Status(code) => format!("http_{code}"),
            ErrorKind::Grpc(code) => format!("grpc_{}", grpc_code_name(*code)),
        }
    }

    /// Whether the server answered (so that the latency is a real answer's latency).
    fn answered(&self) -> bool {
        matches!(self, ErrorKind::Status(_) | ErrorKind::Grpc(_))
    }
}

fn grpc_code_name(code: tonic::Code) -> String {
    // `Code`'s Debug form is CamelCase (`ResourceExhausted`); the report uses snake_case as
    // grpc-status names do in lower case.
    let camel = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What a span of time recorded: latencies of answered requests, successes and errors.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Every answered request, whatever its status.
    pub latency_us: Histogram<u64>,
    /// Successful answers only.
    pub ok_latency_us: Histogram<u64>,
    /// Error statuses the server answered (a shed 503, a 400): how fast refusals come back.
    pub refused_latency_us: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Open loop only: how late each request left compared with when it was due.
    pub send_lag_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency_us: new_histogram(),
            ok_latency_us: new_histogram(),
            refused_latency_us: new_histogram(),
            ok: 0,
            errors: BTreeMap::new(),
            send_lag_us: new_histogram(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds are valid")
}

impl Tally {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn total(&self) -> u64 {
        self.ok + self.error_count()
    }

    fn add(&mut self, other: &Tally) {
        // All histograms share the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.ok_latency_us.add(&other.ok_latency_us);
        let _ = self.refused_latency_us.add(&other.refused_latency_us);
        let _ = self.send_lag_us.add(&other.send_lag_us);
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    fn clear(&mut self) {
        self.latency_us.reset();
        self.ok_latency_us.reset();
        self.refused_latency_us.reset();
        self.send_lag_us.reset();
        self.ok = 0;
        self.errors.clear();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// One worker's recorder. Only that worker and, once a second, the collector lock it.
#[derive(Debug, Default)]
pub struct Recorder {
    interval: Mutex<Tally>,
}

impl Recorder {
    pub fn record(&self, latency: Duration, outcome: Result<(), ErrorKind>) {
        let mut tally = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                tally.latency_us.saturating_record(micros(latency));
                tally.ok_latency_us.saturating_record(micros(latency));
            }
            Err(kind) => {
                if kind.answered() {
                    tally.latency_us.saturating_record(micros(latency));
                    tally.refused_latency_us.saturating_record(micros(latency));
                }
                *tally.errors.entry(kind.key()).or_default() += 1;
            }
        }
    }

    pub fn record_send_lag(&self, lag: Duration) {
        let mut tally = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        tally.send_lag_us.saturating_record(micros(lag));
    }
}

/// Gathers every worker's recorder into the run's totals.
#[derive(Debug)]
pub struct Collector {
    recorders: Vec<Arc<Recorder>>,
    totals: Mutex<Tally>,
}

impl Collector {
    pub fn new(workers: usize) -> Collector {
        Collector {
            recorders: (0..workers)
                .map(|_| Arc::new(Recorder::default()))
                .collect(),
            totals: Mutex::new(Tally::default()),
        }
    }

    pub fn recorder(&self, worker: usize) -> Arc<Recorder> {
        Arc::clone(&self.recorders[worker])
    }

    /// Moves what the workers recorded since the last drain into the totals; returns that
    /// interval's tally.
    pub fn drain(&self) -> Tally {
        let mut interval = Tally::default();
        for recorder in &self.recorders {
            let mut r = recorder
                .interval
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            interval.add(&r);
            r.clear();
        }
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(&interval);
        interval
    }

    /// Drains once more and returns everything recorded.
    pub fn finish(&self) -> Tally {
        self.drain();
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Errors recorded so far (totals only, without the current interval).
    pub fn total_errors(&self) -> u64 {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_workers_into_totals() {
        let c = Collector::new(2);
        c.recorder(0).record(Duration::from_micros(100), Ok(()));
        c.recorder(1)
            .record(Duration::from_micros(300), Err(ErrorKind::Status(503)));
        c.recorder(1)
            .record(Duration::from_secs(9), Err(ErrorKind::Timeout));
        let first = c.drain();
        assert_eq!(
            (first.ok, first.error_count(), first.latency_us.len()),
            (1, 2, 2)
        );
        c.recorder(0).record(
            Duration::from_micros(200),
            Err(ErrorKind::Grpc(tonic::Code::ResourceExhausted)),
        );
        let all = c.finish();
        assert_eq!(all.total(), 4);
        assert_eq!(all.errors["http_503"], 1);
        assert_eq!(all.errors["grpc_resource_exhausted"], 1);
        assert_eq!(c.drain().total(), 0);
    }
}
