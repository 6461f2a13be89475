//! `labelgate check`: validates the configuration and prints every problem as
//! `file:line:col: severity: message`; exit 0 when usable, 2 when not.

use anyhow::Result;
use clap::Args;
use labelgate_config::{load, LoadError};
use std::path::Path;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {}

pub fn run(config: Option<&Path>, _args: &CheckArgs) -> Result<ExitCode> {
    match load(config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            let name = loaded.path.as_ref().map_or_else(|| "<embedded default>".to_string(), |p| p.display().to_string());
            println!(
                "{name}: ok ({} rules, {} cloud apps, {} labels, {} warnings)",
                loaded.policy.rule_names().count(),
                loaded.file.cloud_apps.len(),
                loaded.static_labels.len(),
                loaded.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(diagnostics)) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            Ok(ExitCode::from(2))
        }
        Err(e @ LoadError::Read { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
