//! `labelgate ca export`: the interception CA certificate, for browsers and OS trust stores.

use anyhow::{Context, Result};
use clap::Args;
use labelgate_proxy::CertAuthority;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// State directory holding the CA (default ./state); the CA is created there if missing.
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
    /// Print the base64 SHA-256 of the CA's public key instead (Chromium's
    /// --ignore-certificate-errors-spki-list).
    #[arg(long)]
    spki: bool,
}

pub fn export(args: &ExportArgs) -> Result<ExitCode> {
    let ca = CertAuthority::load_or_create(&args.state_dir).context("cannot load or create the interception CA")?;
    if args.spki {
        println!("{}", ca.spki_sha256_base64());
    } else {
        print!("{}", ca.pem());
    }
    Ok(ExitCode::SUCCESS)
}
