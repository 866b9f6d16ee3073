//! The `edgeflags` command: validate and pack flag files, explain and simulate decisions,
//! and mint preview tokens.

mod commands;
mod live;
mod profiles;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
