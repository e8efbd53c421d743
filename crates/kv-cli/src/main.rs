//! `kv-cli`: parses the command line and hands it to the library; see `lib.rs` for the
//! layout.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = kv_cli::args::Args::parse();
    ExitCode::from(kv_cli::run(args).code())
}
