//! `inferd bench` without the server binary: the same arguments and behaviour, for building
//! and testing the load generator on its own (`cargo run --release -p inferd-bench --example
//! bench -- --url ...`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "inferd-bench", version, about = "Load-test an inferd server")]
struct Cli {
    #[command(flatten)]
    args: inferd_bench::BenchArgs,
}

fn main() -> ExitCode {
    inferd_bench::run(Cli::parse().args)
}
