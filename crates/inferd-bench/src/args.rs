//! The `inferd bench` command line (`BenchArgs`, every option also an `INFERD_BENCH_*`
//! variable) and its validation into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::error::{config, BenchError};

/// What the requests speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The seed's `POST /predict` with `{"inputs": [...]}`.
    Seed,
    /// Open Inference Protocol (KServe V2) REST, JSON tensors.
    V2Json,
    /// Open Inference Protocol REST with the binary tensor data extension.
    V2Binary,
    /// Open Inference Protocol gRPC `ModelInfer` (raw tensor contents).
    V2Grpc,
    /// KServe V1 `POST /v1/models/{model}:predict` with `{"instances": [...]}`.
    V1,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Seed => "seed",
            Protocol::V2Json => "v2-json",
            Protocol::V2Binary => "v2-binary",
            Protocol::V2Grpc => "v2-grpc",
            Protocol::V1 => "v1",
        }
    }
}

/// Load-test an inferd (or any seed/V2/V1 compatible) server.
///
/// Closed loop by default: `--concurrency` connections each send one request after another.
/// With `--rate`, open loop: requests are due at fixed intervals and latency is measured from
/// when each was due, so a slow server cannot hide its queueing (coordinated omission).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Target. The server's base URL (`http://inferd:8080`, the path is derived from the
    /// protocol and model) or a full endpoint (`http://inferd/predict`). For v2-grpc, the gRPC
    /// address (`http://inferd:8081`).
    #[arg(
        long,
        env = "INFERD_BENCH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// Request format.
    #[arg(long, env = "INFERD_BENCH_PROTOCOL", value_enum, default_value_t = Protocol::Seed)]
    pub protocol: Protocol,

    /// Model to call (needed by v2-json, v2-binary, v2-grpc and v1 unless the URL is a full
    /// endpoint and --body is given).
    #[arg(long, env = "INFERD_BENCH_MODEL")]
    pub model: Option<String>,

    /// Model version to call (V2 protocols).
    #[arg(long, env = "INFERD_BENCH_MODEL_VERSION")]
    pub model_version: Option<String>,

    /// Requests in flight at once: HTTP connections (one per worker, kept alive) or gRPC
    /// streams. With --rate, the most requests outstanding at once.
    #[arg(
        long,
        short = 'c',
        env = "INFERD_BENCH_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,

    /// Open loop: total requests per second to send, whatever the latency.
    #[arg(long, env = "INFERD_BENCH_RATE")]
    pub rate: Option<f64>,

    /// How long to measure (`30s`, `2m`, `500ms`; a bare number is seconds). Default 10s unless
    /// --requests is given.
    #[arg(long, short = 'd', env = "INFERD_BENCH_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests instead of after --duration.
    #[arg(
        long,
        short = 'n',
        env = "INFERD_BENCH_REQUESTS",
        conflicts_with = "duration"
    )]
    pub requests: Option<u64>,

    /// Load sent before measuring starts, not counted (`0` to skip).
    #[arg(long, env = "INFERD_BENCH_WARMUP", value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,

    /// Per-request timeout; a request past it counts as a `timeout` error.
    #[arg(long, env = "INFERD_BENCH_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// Threads the generator runs on. One keeps it cheap beside a server on the same machine;
    /// raise it when the generator has cores of its own.
    #[arg(long, env = "INFERD_BENCH_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// HTTP/2 connections the gRPC streams share. Behind a Kubernetes Service, raise it so that
    /// the load spreads over the pods (each connection sticks to one pod).
    #[arg(long, env = "INFERD_BENCH_GRPC_CONNECTIONS", default_value_t = 1)]
    pub grpc_connections: usize,

    /// Close each HTTP connection after this many requests and open a new one (0: never).
    /// Behind a Kubernetes Service, new connections are what reach pods the HPA adds.
    #[arg(long, env = "INFERD_BENCH_RECONNECT_EVERY", default_value_t = 0)]
    pub reconnect_every: u64,

    /// Request body file, sent as is: seed or V1 JSON, or a V2 JSON inference request (which
    /// v2-binary and v2-grpc re-encode). Default: built from the model's V2 metadata.
    #[arg(long, env = "INFERD_BENCH_BODY")]
    pub body: Option<PathBuf>,

    /// Values of one row, comma-separated (`5.1,3.5,1.4,0.2`), repeated to fill each input.
    /// Default: random values in [0, 1) (a pool of distinct requests), or for the seed's
    /// /predict without --model, the tutorial's row.
    #[arg(long, env = "INFERD_BENCH_VALUES", value_delimiter = ',', num_args = 1..)]
    pub values: Option<Vec<f64>>,

    /// Rows per request when the body is built here.
    #[arg(long, env = "INFERD_BENCH_BATCH_SIZE", default_value_t = 1)]
    pub batch_size: usize,

    /// Seed for the random values, for repeatable bodies.
    #[arg(long, env = "INFERD_BENCH_RANDOM_SEED", default_value_t = 42)]
    pub random_seed: u64,

    /// Write the report as JSON to this file (`-` for stdout).
    #[arg(long, env = "INFERD_BENCH_JSON_OUT")]
    pub json_out: Option<PathBuf>,

    /// Exit with status 1 when errors / requests exceeds this fraction.
    #[arg(long, env = "INFERD_BENCH_MAX_ERROR_RATE", default_value_t = 0.01)]
    pub max_error_rate: f64,

    /// No progress line on stderr.
    #[arg(long, short = 'q', env = "INFERD_BENCH_QUIET")]
    pub quiet: bool,
}

/// The highest `--rate`: past it, due times would be closer together than a clock can tell.
const MAX_RATE: f64 = 10_000_000.0;
const MAX_CONCURRENCY: usize = 100_000;
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// When the measured part of the run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

/// Validated arguments: every check that needs no network happens here.
#[derive(Debug, Clone)]
pub struct Config {
    pub args: BenchArgs,
    pub stop: Stop,
}

impl Config {
    pub fn from_args(args: BenchArgs) -> Result<Config, BenchError> {
        if args.concurrency == 0 {
            return Err(config("--concurrency must be at least 1"));
        }
        if args.threads == 0 {
            return Err(config("--threads must be at least 1"));
        }
        if args.grpc_connections == 0 {
            return Err(config("--grpc-connections must be at least 1"));
        }
        if args.batch_size == 0 {
            return Err(config("--batch-size must be at least 1"));
        }
        if let Some(rate) = args.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
                return Err(config(format!(
                    "--rate must be a positive number of requests per second, at most {MAX_RATE}"
                )));
            }
        }
        // Bounds that keep the arithmetic and the allocations sane: a deadline past the end of
        // time would overflow `Instant`, a billion workers would exhaust memory.
        let limits = [
            ("--concurrency", args.concurrency, MAX_CONCURRENCY),
            ("--threads", args.threads, 1024),
            ("--grpc-connections", args.grpc_connections, 1024),
        ];
        for (flag, value, max) in limits {
            if value > max {
                return Err(config(format!("{flag} must be at most {max}")));
            }
        }
        let durations = [
            ("--duration", args.duration.unwrap_or_default()),
            ("--warmup", args.warmup),
            ("--timeout", args.timeout),
        ];
        for (flag, value) in durations {
            if value > MAX_DURATION {
                return Err(config(format!("{flag} must be at most 30 days")));
            }
        }
        if !(0.0..=1.0).contains(&args.max_error_rate) {
            return Err(config("--max-error-rate must be between 0 and 1"));
        }
        if args.timeout.is_zero() {
            return Err(config("--timeout must be positive"));
        }
        let stop = match (args.duration, args.requests) {
            (_, Some(0)) => return Err(config("--requests must be at least 1")),
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) if d.is_zero() => return Err(config("--duration must be positive")),
            (Some(d), None) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs(10)),
        };
        // A report that cannot be written should fail now, not after the whole load.
        if let Some(path) = args.json_out.as_deref().filter(|p| p.as_os_str() != "-") {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|dir| !dir.is_dir()) {
                return Err(config(format!(
                    "--json-out {}: its directory does not exist",
                    path.display()
                )));
            }
        }
        if let Some(values) = &args.values {
            if values.iter().any(|v| !v.is_finite()) {
                return Err(config("--values must be finite numbers"));
            }
        }
        Ok(Config { args, stop })
    }
}

/// Parses `250ms`, `1.5s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 2m, 500ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn refuses_values_that_would_overflow_or_exhaust_memory() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let config = |extra: &[&str]| {
            let argv = ["bench"].iter().chain(extra).copied();
            Config::from_args(Cli::parse_from(argv).args)
        };
        assert!(config(&[]).is_ok());
        for bad in [
            &["--duration", "100000000000000000"][..],
            &["--rate", "1e12"],
            &["--concurrency", "1000000000"],
            &["--warmup", "9999999999"],
            &["--max-error-rate", "2"],
            &["--requests", "0"],
            &["--json-out", "/nonexistent-dir/report.json"],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }
}
