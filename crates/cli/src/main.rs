//! `labelgate`: the one binary. Subcommands wire the library crates together; this file only
//! parses arguments and prints.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod inspect;

/// labelgate: inline DLP enforcement for Microsoft Information Protection sensitivity labels.
#[derive(Parser, Debug)]
#[command(name = "labelgate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Report the kind, effective sensitivity labels and raw label records of files.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: Result<ExitCode> = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("labelgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
