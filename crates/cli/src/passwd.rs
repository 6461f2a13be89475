//! `labelgate passwd USER`: a users-file line with an argon2id hash of the password read from
//! standard input (first line), for `[proxy] users_file`.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The user name.
    user: String,
    /// Groups for policy (`--group finance --group staff`).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

pub fn run(args: &PasswdArgs) -> Result<ExitCode> {
    if args.user.is_empty() || args.user.contains(':') {
        bail!("a user name must be non-empty and contain no ':'");
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("empty password");
    }
    let mut line = labelgate_proxy::hash_line(&args.user, password).map_err(anyhow::Error::msg)?;
    if !args.groups.is_empty() {
        line.push(':');
        line.push_str(&args.groups.join(","));
    }
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
