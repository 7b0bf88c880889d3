//! The command line: one clap `Parser`, every option also an `INFERD_*` environment variable,
//! grouped by concern so that each part of the server receives one struct.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "inferd",
    version,
    about = "A fast, safe model server for classic ML and ONNX models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve models over HTTP (the seed's /predict, Open Inference Protocol, KServe V1,
    /// TF Serving) and gRPC.
    Serve(Box<ServeArgs>),
    /// Load-test a server: the seed's /predict, V2 REST (JSON, binary), V2 gRPC or KServe V1;
    /// closed loop (N connections) or open loop (a fixed rate).
    Bench(Box<inferd_bench::BenchArgs>),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub management: ManagementArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model file to serve: .onnx, scikit-learn .pkl/.joblib, XGBoost .json, LightGBM .txt.
    /// With neither this nor --model-repository, the built-in iris model is served.
    #[arg(long, env = "INFERD_MODEL", conflicts_with = "model_repository")]
    pub model: Option<PathBuf>,

    /// Name to serve --model under (default: the file name without extension, or `iris` for the
    /// built-in model).
    #[arg(long, env = "INFERD_MODEL_NAME")]
    pub model_name: Option<String>,

    /// The version --model (or the built-in model) is served as: in metrics, in the
    /// `x-inferd-model-version` header and in V2 metadata. Set it per Deployment (a canary's
    /// two arms), as a repository's version directories do.
    #[arg(long, env = "INFERD_MODEL_VERSION", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "model_repository")]
    pub model_version: u64,

    /// A model repository directory laid out DIR/<model>/<version>/model.<ext>.
    #[arg(long, env = "INFERD_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,

    /// The model that answers the seed's `/predict` and other APIs that name no model
    /// (default: the one that had that role, while it is served; else the only model).
    #[arg(long, env = "INFERD_DEFAULT_MODEL")]
    pub default_model: Option<String>,

    /// Seconds between rescans of the model repository; file events trigger a rescan sooner.
    #[arg(long, env = "INFERD_REPOSITORY_POLL_INTERVAL", default_value_t = 5.0)]
    pub repository_poll_interval: f64,

    /// Seconds one model version may take to load and warm up. Past it the load is abandoned
    /// and reported, and retried later (at start-up: inferd exits with 64).
    #[arg(long, env = "INFERD_MODEL_LOAD_TIMEOUT", default_value_t = 120.0)]
    pub model_load_timeout: f64,

    /// Seconds one scan of the model repository (listing, config files) may take; past it the
    /// scan is abandoned, what was loaded keeps serving, and the next poll tries again.
    #[arg(long, env = "INFERD_REPOSITORY_SCAN_TIMEOUT", default_value_t = 10.0)]
    pub repository_scan_timeout: f64,
}

#[derive(Debug, Args)]
pub struct ManagementArgs {
    /// Serve the management API (repository index/load/unload, traffic weights) on its own
    /// port. Off by default; needs a token.
    #[arg(long, env = "INFERD_MANAGEMENT")]
    pub management: bool,

    /// Port of the management API.
    #[arg(long, env = "INFERD_MANAGEMENT_PORT", default_value_t = 8083)]
    pub management_port: u16,

    /// File holding the management bearer token (at least 16 characters).
    #[arg(long, env = "INFERD_MANAGEMENT_TOKEN_FILE")]
    pub management_token_file: Option<std::path::PathBuf>,

    /// The management bearer token itself (prefer the file: environments leak into `ps`-like
    /// tools and crash reports). Never logged.
    #[arg(
        long = "management-token",
        env = "INFERD_MANAGEMENT_TOKEN",
        hide_env_values = true
    )]
    pub management_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, env = "INFERD_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// HTTP port (REST protocols and health). 0 picks a free port.
    #[arg(long, env = "INFERD_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,

    /// gRPC port (Open Inference Protocol, gRPC health, reflection). 0 picks a free port.
    #[arg(long, env = "INFERD_GRPC_PORT", default_value_t = 8081)]
    pub grpc_port: u16,

    /// Prometheus metrics port (`GET /metrics`), kept apart from inference traffic.
    #[arg(long, env = "INFERD_METRICS_PORT", default_value_t = 8082)]
    pub metrics_port: u16,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest request body accepted, in bytes; larger ones get 413 before being read.
    #[arg(long, env = "INFERD_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest JSON nesting accepted in a request.
    #[arg(long, env = "INFERD_MAX_JSON_DEPTH", default_value_t = 64)]
    pub max_json_depth: usize,

    /// Most elements in one request tensor.
    #[arg(long, env = "INFERD_MAX_TENSOR_ELEMENTS", default_value_t = 4 * 1024 * 1024)]
    pub max_tensor_elements: usize,

    /// Most rows in one request.
    #[arg(long, env = "INFERD_MAX_ROWS", default_value_t = 100_000)]
    pub max_rows: usize,

    /// Largest gRPC message, in bytes, each way (RESOURCE_EXHAUSTED above it).
    #[arg(long, env = "INFERD_MAX_GRPC_MESSAGE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_grpc_message_bytes: usize,

    /// Default deadline of an inference request, in seconds (504 / DEADLINE_EXCEEDED past it).
    /// A request may set its own with `x-inferd-timeout-ms`, the V2 `timeout` parameter or
    /// `grpc-timeout`. Unset: no default deadline.
    #[arg(long, env = "INFERD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<f64>,
}

/// Limits on the connections of the HTTP and gRPC ports (docs/hardening.md).
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Most connections open at once on each of the HTTP and gRPC ports. At the limit the
    /// connection idle the longest is closed to make room; with none idle, accepting pauses.
    #[arg(long, env = "INFERD_MAX_CONNECTIONS", default_value_t = inferd_listener::ConnectionLimits::default().max_connections)]
    pub max_connections: usize,

    /// Seconds allowed for a whole HTTP/1 request head, from its first byte.
    #[arg(long, env = "INFERD_HEADER_READ_TIMEOUT", default_value_t = inferd_listener::ConnectionLimits::default().header_read_timeout.as_secs_f64())]
    pub header_read_timeout: f64,

    /// Seconds allowed for a whole request body, from the request's start (408 past it).
    #[arg(long, env = "INFERD_BODY_READ_TIMEOUT", default_value_t = inferd_listener::ConnectionLimits::default().body_read_timeout.as_secs_f64())]
    pub body_read_timeout: f64,

    /// Seconds a connection may stay open with no request in flight (keep it above your load
    /// balancer's upstream keep-alive timeout: 60 s on most).
    #[arg(long, env = "INFERD_IDLE_TIMEOUT", default_value_t = inferd_listener::ConnectionLimits::default().idle_timeout.as_secs_f64())]
    pub idle_timeout: f64,

    /// Seconds a connection may stay unable to send (the client stopped reading).
    #[arg(long, env = "INFERD_WRITE_TIMEOUT", default_value_t = inferd_listener::ConnectionLimits::default().write_timeout.as_secs_f64())]
    pub write_timeout: f64,

    /// HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS),
    /// on the HTTP port's h2c and on the gRPC port.
    #[arg(long, env = "INFERD_MAX_CONCURRENT_STREAMS", default_value_t = inferd_listener::ConnectionLimits::default().max_concurrent_streams)]
    pub max_concurrent_streams: u32,

    /// Largest request head in bytes: HTTP/1 (431 above it) and HTTP/2's header list.
    #[arg(long, env = "INFERD_MAX_HEADER_BYTES", default_value_t = inferd_listener::ConnectionLimits::default().max_header_bytes)]
    pub max_header_bytes: u32,
}

impl ConnectionArgs {
    pub fn limits(&self) -> Result<inferd_listener::ConnectionLimits, String> {
        // Only what a Duration cannot hold is refused here; the range is the listener's rule.
        let seconds = |name: &str, s: f64| {
            std::time::Duration::try_from_secs_f64(s)
                .map_err(|_| format!("--{name} must be a number of seconds"))
        };
        let limits = inferd_listener::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: seconds("header-read-timeout", self.header_read_timeout)?,
            body_read_timeout: seconds("body-read-timeout", self.body_read_timeout)?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            write_timeout: seconds("write-timeout", self.write_timeout)?,
            max_concurrent_streams: self.max_concurrent_streams,
            max_header_bytes: self.max_header_bytes,
            http1: true,
        };
        limits.validate()?;
        Ok(limits)
    }
}

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Inference threads (default: the container's CPU quota, else the cores available).
    #[arg(long, env = "INFERD_INFERENCE_THREADS")]
    pub inference_threads: Option<usize>,

    /// Async I/O worker threads (default: as inference threads).
    #[arg(long, env = "INFERD_IO_THREADS")]
    pub io_threads: Option<usize>,

    /// Inference calls allowed to wait for a thread before new ones are shed with 503.
    #[arg(long, env = "INFERD_MAX_QUEUE", default_value_t = 1024)]
    pub max_queue: usize,
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Seconds to keep accepting connections after SIGTERM while readiness reports false, so
    /// that load balancers stop sending before the listener closes.
    #[arg(long, env = "INFERD_SHUTDOWN_DELAY", default_value_t = 5.0)]
    pub shutdown_delay: f64,

    /// Seconds allowed for in-flight requests to finish once the listeners close.
    #[arg(long, env = "INFERD_SHUTDOWN_GRACE", default_value_t = 30.0)]
    pub shutdown_grace: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "INFERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `inferd_http=debug`).
    #[arg(long, env = "INFERD_LOG", default_value = "info")]
    pub log: String,
}

impl ServeArgs {
    /// Checks what clap cannot, before any port is bound.
    pub fn validate(&self) -> Result<(), String> {
        self.connections.limits()?;
        let s = &self.shutdown;
        for (name, value) in [
            ("shutdown-delay", s.shutdown_delay),
            ("shutdown-grace", s.shutdown_grace),
        ] {
            if !(value.is_finite() && (0.0..=3600.0).contains(&value)) {
                return Err(format!("--{name} must be between 0 and 3600 seconds"));
            }
        }
        let l = &self.limits;
        if l.request_timeout
            .is_some_and(|t| !(t.is_finite() && t > 0.0 && t <= 3600.0))
        {
            return Err("--request-timeout must be between 0 and 3600 seconds".into());
        }
        if l.max_grpc_message_bytes == 0
            || l.max_body_bytes == 0
            || l.max_json_depth < 2
            || l.max_tensor_elements == 0
            || l.max_rows == 0
        {
            return Err("limits must be positive (and --max-json-depth at least 2)".into());
        }
        if self.runtime.inference_threads == Some(0) || self.runtime.io_threads == Some(0) {
            return Err("thread counts must be at least 1".into());
        }
        let poll = self.models.repository_poll_interval;
        if !(poll.is_finite() && (0.05..=3600.0).contains(&poll)) {
            return Err("--repository-poll-interval must be between 0.05 and 3600 seconds".into());
        }
        for (name, value) in [
            ("model-load-timeout", self.models.model_load_timeout),
            (
                "repository-scan-timeout",
                self.models.repository_scan_timeout,
            ),
        ] {
            if !(value.is_finite() && (0.01..=86_400.0).contains(&value)) {
                return Err(format!("--{name} must be between 0.01 and 86400 seconds"));
            }
        }
        let m = &self.management;
        if m.management && m.management_token.is_none() && m.management_token_file.is_none() {
            return Err(
                "--management needs --management-token-file or INFERD_MANAGEMENT_TOKEN".into(),
            );
        }
        if let Some(name) = &self.models.model_name {
            inferd_core::repository::check_model_name(name).map_err(|e| e.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("inferd").chain(args.iter().copied()))
    }

    #[test]
    fn serve_has_production_defaults() {
        let Command::Serve(args) = parse(&["serve"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(args.listen.http_port, 8080);
        assert_eq!(args.listen.grpc_port, 8081);
        assert_eq!(args.listen.metrics_port, 8082);
        assert_eq!(args.listen.host.to_string(), "0.0.0.0");
        assert!(args.models.model.is_none());
        assert!(args.validate().is_ok());
    }

    #[test]
    fn a_single_model_is_served_as_the_version_given() {
        let version = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Serve(a)) => Some(a.models.model_version),
            _ => None,
        };
        assert_eq!(version(&["serve"]), Some(1));
        assert_eq!(version(&["serve", "--model-version", "7"]), Some(7));
        assert_eq!(version(&["serve", "--model-version", "0"]), None);
        assert_eq!(
            version(&["serve", "--model-repository", "m", "--model-version", "2"]),
            None
        );
    }

    #[test]
    fn model_and_repository_conflict() {
        assert!(parse(&["serve", "--model", "a.onnx", "--model-repository", "m"]).is_err());
    }

    #[test]
    fn management_is_off_by_default_and_needs_a_token() {
        let Command::Serve(args) = parse(&["serve"]).unwrap().command else {
            panic!("not serve")
        };
        assert!(!args.management.management);
        let Command::Serve(args) = parse(&["serve", "--management"]).unwrap().command else {
            panic!("not serve")
        };
        if std::env::var_os("INFERD_MANAGEMENT_TOKEN").is_none() {
            assert!(args.validate().is_err());
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let Command::Serve(args) = parse(&["serve", "--shutdown-grace=-1"]).unwrap().command else {
            panic!("not serve")
        };
        assert!(args.validate().is_err());
        assert!(parse(&["serve", "--log-format", "xml"]).is_err());
    }
}
