//! The final report: a table on stdout and the same numbers as JSON (`--json-out`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::{Config, Protocol, Stop};
use crate::runner::Measured;
use crate::target::Target;

/// Everything a run measured, and how it was configured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: ReportConfig,
    /// Seconds from the end of warm-up to the last answer.
    pub elapsed_s: f64,
    /// Requests completed in the measured window: `ok + errors`.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// All completed requests per second (as wrk counts them).
    pub rps: f64,
    /// Successful requests per second.
    pub ok_rps: f64,
    /// Latency of every answered request (any status), in milliseconds.
    pub latency_ms: Latency,
    /// Latency of successful answers only.
    pub ok_latency_ms: Latency,
    /// Latency of error statuses the server answered (503 when shedding, 4xx), when there
    /// were any: under overload, how fast refusals come back.
    pub refused_latency_ms: Option<Latency>,
    /// Open loop only: how late requests left against their schedule, in milliseconds. High
    /// values mean the generator, not the server, could not keep the rate.
    pub send_lag_ms: Option<Latency>,
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
    /// The error rate is within `--max-error-rate`.
    pub passed: bool,
}

/// The run's settings, as the report records them.
#[derive(Debug, Clone, Serialize)]
pub struct ReportConfig {
    pub url: String,
    pub protocol: Protocol,
    pub model: Option<String>,
    pub model_version: Option<String>,
    /// `closed` (concurrency-bound) or `open` (rate-bound).
    pub mode: &'static str,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub threads: usize,
    pub grpc_connections: Option<usize>,
    pub batch_size: usize,
    pub reconnect_every: u64,
    pub body: String,
    pub max_error_rate: f64,
    pub generator: String,
}

/// Latency summary, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    fn from_micros(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1e3;
        if h.is_empty() {
            return Latency {
                count: 0,
                min: 0.0,
                mean: 0.0,
                stdev: 0.0,
                p50: 0.0,
                p75: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Latency {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1e3,
            stdev: h.stdev() / 1e3,
            p50: ms(h.value_at_quantile(0.50)),
            p75: ms(h.value_at_quantile(0.75)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl Report {
    pub fn new(cfg: &Config, target: &Target, body: String, measured: &Measured) -> Report {
        let args = &cfg.args;
        let tally = &measured.tally;
        let elapsed_s = measured.elapsed.as_secs_f64();
        let requests = tally.total();
        let errors = tally.error_count();
        let error_rate = if requests == 0 {
            1.0
        } else {
            errors as f64 / requests as f64
        };
        let per_second = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        let grpc = args.protocol == Protocol::V2Grpc;
        Report {
            config: ReportConfig {
                url: if grpc {
                    target.base.clone()
                } else {
                    target.url()
                },
                protocol: args.protocol,
                model: args.model.clone(),
                model_version: args.model_version.clone(),
                mode: if args.rate.is_some() {
                    "open"
                } else {
                    "closed"
                },
                concurrency: args.concurrency,
                rate: args.rate,
                duration_s: match cfg.stop {
                    Stop::After(d) => Some(d.as_secs_f64()),
                    Stop::Requests(_) => None,
                },
                requests: match cfg.stop {
                    Stop::Requests(n) => Some(n),
                    Stop::After(_) => None,
                },
                warmup_s: args.warmup.as_secs_f64(),
                timeout_s: args.timeout.as_secs_f64(),
                threads: args.threads,
                grpc_connections: grpc.then_some(args.grpc_connections),
                batch_size: args.batch_size,
                reconnect_every: args.reconnect_every,
                body,
                max_error_rate: args.max_error_rate,
                generator: format!("inferd-bench {}", env!("CARGO_PKG_VERSION")),
            },
            elapsed_s,
            requests,
            ok: tally.ok,
            errors,
            error_rate,
            errors_by_kind: tally.errors.clone(),
            rps: per_second(requests),
            ok_rps: per_second(tally.ok),
            latency_ms: Latency::from_micros(&tally.latency_us),
            ok_latency_ms: Latency::from_micros(&tally.ok_latency_us),
            refused_latency_ms: (!tally.refused_latency_us.is_empty())
                .then(|| Latency::from_micros(&tally.refused_latency_us)),
            send_lag_ms: args.rate.map(|_| Latency::from_micros(&tally.send_lag_us)),
            interrupted: measured.interrupted,
            passed: error_rate <= args.max_error_rate,
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let load = match (c.mode, c.rate) {
            ("open", Some(rate)) => format!(
                "open loop, {rate} req/s, at most {} in flight",
                c.concurrency
            ),
            _ => format!("closed loop, {} concurrent", c.concurrency),
        };
        let span = match (c.duration_s, c.requests) {
            (Some(d), _) => format!("{d}s"),
            (_, Some(n)) => format!("{n} requests"),
            _ => String::new(),
        };
        let _ = writeln!(out, "target       {} ({})", c.url, c.protocol.name());
        let _ = writeln!(
            out,
            "load         {load}, {span} after {}s warm-up, {} thread(s)",
            c.warmup_s, c.threads
        );
        let _ = writeln!(out, "body         {}", c.body);
        let _ = writeln!(
            out,
            "requests     {} in {:.2}s: {} ok, {} errors ({:.2}%){}",
            self.requests,
            self.elapsed_s,
            self.ok,
            self.errors,
            self.error_rate * 100.0,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(out, "errors       {}", kinds.join(", "));
        }
        let _ = writeln!(out, "throughput   {:.1} req/s", self.rps);
        let _ = writeln!(out);
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "latency (ms)     min      p50      p90      p99    p99.9      max     mean"
        );
        let mut row = |name: &str, l: &Latency| {
            let _ = writeln!(
                out,
                "{name:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                l.min, l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
            );
        };
        row("answer", l);
        if let Some(refused) = &self.refused_latency_ms {
            row("  ok", &self.ok_latency_ms);
            row("  refused", refused);
        }
        if let Some(lag) = &self.send_lag_ms {
            row("send lag", lag);
        }
        out
    }
}
