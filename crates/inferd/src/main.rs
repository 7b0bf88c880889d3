//! The `inferd` binary: parses the command line and hands over to the subcommand.
#![forbid(unsafe_code)]

mod cli;
mod cpu_quota;
mod fd_limit;
mod loader;
mod logging;
mod serve;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

/// Exit status for a configuration error (BSD `EX_USAGE`), as linkerd and sysexits use it.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => serve::main(*args),
        cli::Command::Bench(args) => inferd_bench::run(*args),
    }
}
