//! `labelgate`: the one binary. Subcommands wire the library crates together; this file only
//! parses arguments and prints.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc returns freed memory to the OS promptly and does not fragment into per-thread
/// arenas the way glibc malloc does under many concurrent large uploads (measured: see
/// benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Loads the configuration for a subcommand that needs it: an invalid file prints its located
/// diagnostics and ends the subcommand with exit code 2; an unreadable one is an error.
fn load_or_report(config: Option<&std::path::Path>) -> Result<std::result::Result<labelgate_config::LoadedConfig, ExitCode>> {
    match labelgate_config::load(config) {
        Ok(l) => Ok(Ok(l)),
        Err(labelgate_config::LoadError::Invalid(d)) => {
            for x in &d {
                eprintln!("{x}");
            }
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The label catalog a command without network uses: `[[labels]]` plus the labels each
/// `[[accounts]]` entry last retrieved, as stored in `state_dir` by `labelgate serve`.
fn stored_catalog(loaded: &labelgate_config::LoadedConfig, state_dir: &std::path::Path) -> std::sync::Arc<labelgate_catalog::Catalog> {
    let cache = labelgate_catalog::LabelCache::new(labelgate_catalog::Catalog::from_static(loaded.static_labels.clone()));
    for (account, labels) in labelgate_sync::stored_accounts(state_dir, &loaded.file.accounts) {
        if !labels.is_empty() {
            cache.replace_account(&account.name, labels);
        }
    }
    cache.snapshot()
}

mod accounts;
mod ca;
mod check;
mod inspect;
mod passwd;
mod policy_test;
mod scan;
mod serve;
mod store;

/// labelgate: inline DLP enforcement for Microsoft Information Protection sensitivity labels.
#[derive(Parser, Debug)]
#[command(name = "labelgate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Configuration file (default: ./config/labelgate.toml if present, else the embedded default).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log lines on standard error as `text` (default) or `json` (one object per line, for log
    /// shippers); also LABELGATE_LOG_FORMAT. Which lines: LABELGATE_LOG or RUST_LOG, in
    /// tracing's filter syntax (default `info`; e.g. `labelgate_proxy=debug,rustls=warn`).
    #[arg(long, global = true, value_name = "FORMAT", env = "LABELGATE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

/// Installs the one log subscriber: every crate logs through `tracing` (rustls's `log` records
/// are bridged in), filtered by LABELGATE_LOG / RUST_LOG, to standard error. Audit records are
/// not logs: they go to their own sink.
fn install_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("LABELGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    if let Err(e) = installed {
        eprintln!("labelgate: cannot install the logger: {e}");
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Report the kind, effective sensitivity labels and raw label records of files.
    Inspect(inspect::InspectArgs),
    /// Run the proxy: HTTP relay and CONNECT with TLS interception, upload inspection, block or allow.
    Serve(serve::ServeArgs),
    /// Validate a configuration file: every problem as file:line:col.
    Check(check::CheckArgs),
    /// The interception CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Print a users-file line (argon2id hash) for USER; the password is read from standard input.
    Passwd(passwd::PasswdArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// MIP accounts: list, show, labels, add, edit, rename, delete, duplicate, validate, refresh,
    /// enable, disable — through the running instance's admin API.
    Accounts(Box<accounts::AccountsArgs>),
    /// Find labeled files where they sit: walk trees, read labels, evaluate at-rest policy.
    Scan(scan::ScanArgs),
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Print the CA certificate (PEM) for browsers and trust stores, creating the CA if needed.
    Export(ca::ExportArgs),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Run the real extractor and policy on a file sent to a URL, and say what would happen and why.
    Test(policy_test::PolicyTestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_logging(cli.log_format);
    let config = cli.config.as_deref();
    let outcome: Result<ExitCode> = match cli.command {
        Command::Inspect(args) => inspect::run(cli.config.as_deref(), &args),
        Command::Serve(args) => serve::run(config, &args),
        Command::Check(args) => check::run(config, &args),
        Command::Ca(CaCommand::Export(args)) => ca::export(&args),
        Command::Passwd(args) => passwd::run(&args),
        Command::Policy(PolicyCommand::Test(args)) => policy_test::run(config, &args),
        Command::Accounts(args) => accounts::run(config, &args),
        Command::Scan(args) => scan::run(config, &args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("labelgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
