//! `inferd bench`: a load generator for inferd and the protocols it speaks (the seed's
//! `/predict`, Open Inference Protocol REST JSON and binary, its gRPC, KServe V1).
//!
//! The binary wires it as a subcommand: `Bench(inferd_bench::BenchArgs)` in its clap
//! `Subcommand`, then `inferd_bench::run(args)` from a synchronous `main` (this crate builds its
//! own runtime with `--threads` workers).
#![forbid(unsafe_code)]

mod args;
mod error;
mod grpc;
mod http;
mod payload;
mod progress;
mod report;
mod runner;
mod stats;
mod target;
mod tensor;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

pub use args::{parse_duration, BenchArgs, Config, Protocol, Stop};
pub use error::{BenchError, EXIT_CONFIG, EXIT_ERROR_RATE, EXIT_IO, EXIT_UNAVAILABLE};
pub use report::{Latency, Report, ReportConfig};

use crate::payload::Payloads;
use crate::runner::Plan;
use crate::stats::Collector;
use crate::target::Target;

/// Runs a benchmark from the command line's arguments: prints progress on stderr, the table on
/// stdout, writes `--json-out`, and returns the exit status (0; 1 past `--max-error-rate`;
/// 64 bad arguments; 69 target unreachable; 74 report not written).
pub fn run(args: BenchArgs) -> ExitCode {
    let max_error_rate = args.max_error_rate;
    match run_report(args) {
        Ok(report) if report.passed => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "inferd bench: error rate {:.2}% is above --max-error-rate {:.2}%",
                report.error_rate * 100.0,
                max_error_rate * 100.0
            );
            ExitCode::from(EXIT_ERROR_RATE)
        }
        Err(e) => {
            eprintln!("inferd bench: {e}");
            e.exit_code()
        }
    }
}

/// As [`run`], returning the report instead of an exit status.
pub fn run_report(args: BenchArgs) -> Result<Report, BenchError> {
    let cfg = Config::from_args(args)?;
    let runtime = if cfg.args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.args.threads)
            .enable_all()
            .build()
    }
    .map_err(BenchError::Runtime)?;
    let report = runtime.block_on(bench(&cfg))?;
    print!("{}", report.table());
    let _ = std::io::stdout().flush();
    if let Some(path) = &cfg.args.json_out {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        let io = |source| BenchError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.as_os_str() == "-" {
            std::io::stdout().write_all(json.as_bytes()).map_err(io)?;
        } else {
            std::fs::write(path, json).map_err(io)?;
        }
    }
    Ok(report)
}

/// The benchmark itself, on the caller's runtime: pre-flight (URL, metadata, a first
/// connection), the load with its progress line, and the report.
pub async fn bench(cfg: &Config) -> Result<Report, BenchError> {
    let args = &cfg.args;
    let target = Arc::new(Target::parse(
        &args.url,
        args.protocol,
        args.model.as_deref(),
        args.model_version.as_deref(),
    )?);
    let (payloads, body) = payload::build(cfg, &target).await?;
    // Fail fast, with the reason, when nothing listens, rather than report 100% errors.
    let channels = match &payloads {
        Payloads::Grpc(_) => grpc::connect(&target, args.grpc_connections, args.timeout)
            .await
            .map_err(BenchError::Unavailable)?,
        Payloads::Http(_) => {
            let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
            match tokio::time::timeout(args.timeout, connect).await {
                Ok(Ok(_)) => Vec::new(),
                Ok(Err(e)) => {
                    return Err(BenchError::Unavailable(format!(
                        "cannot connect to {}: {e}",
                        target.base
                    )))
                }
                Err(_) => {
                    return Err(BenchError::Unavailable(format!(
                        "cannot connect to {}: no answer within {:?}",
                        target.base, args.timeout
                    )))
                }
            }
        }
    };

    let plan = Arc::new(Plan::new(cfg));
    let collector = Arc::new(Collector::new(args.concurrency));
    let progress = progress::spawn(Arc::clone(&collector), Arc::clone(&plan), args.quiet);
    let interrupt = {
        let plan = Arc::clone(&plan);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                plan.stop();
            }
        })
    };
    let measured = runner::run(
        cfg,
        Arc::clone(&target),
        payloads,
        channels,
        plan,
        collector,
    )
    .await;
    progress.abort();
    interrupt.abort();
    progress::finish(args.quiet);
    Ok(Report::new(cfg, &target, body, &measured))
}
