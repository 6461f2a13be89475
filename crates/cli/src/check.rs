//! `labelgate check`: validates the configuration and prints every problem as
//! `file:line:col: severity: message`; exit 0 when usable, 2 when not. Label names in policy are
//! checked against `[[labels]]` and the labels the accounts last retrieved (`--state-dir`).

use anyhow::Result;
use clap::Args;
use labelgate_config::{load, LoadError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// State directory of `labelgate serve` (its stored account labels resolve policy names).
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
}

pub fn run(config: Option<&Path>, args: &CheckArgs) -> Result<ExitCode> {
    match load(config) {
        Ok(loaded) => {
            let catalog = crate::stored_catalog(&loaded, &args.state_dir);
            let (_, names) = loaded.resolve(catalog.clone());
            let warnings: Vec<_> = loaded.warnings.iter().chain(names.iter()).collect();
            for w in &warnings {
                eprintln!("{w}");
            }
            if names.iter().any(|d| d.severity == labelgate_policy::Severity::Error) {
                return Ok(ExitCode::from(2));
            }
            let name = loaded.path.as_ref().map_or_else(|| "<embedded default>".to_string(), |p| p.display().to_string());
            let retrieved = catalog.labels().filter(|l| l.account.is_some()).count();
            println!(
                "{name}: ok ({} rules, {} cloud apps, {} labels, {} accounts with {retrieved} stored labels, {} warnings)",
                loaded.policy.rule_names().count(),
                loaded.file.cloud_apps.len(),
                loaded.static_labels.len(),
                loaded.file.accounts.len(),
                warnings.len()
            );
            // The destination rules in force, built-in defaults included.
            let proxy = &loaded.file.proxy;
            let list = |l: &[String]| if l.is_empty() { "none".to_string() } else { l.join(", ") };
            println!("destinations refused by default: {}, and labelgate's own listeners", labelgate_proxy::BUILT_IN_DENIED.join(", "));
            println!("  opened by allow_destinations: {}", list(&proxy.allow_destinations));
            println!("  refused by deny_destinations (always wins): {}", list(&proxy.deny_destinations));
            println!("  CONNECT ports: {}", proxy.connect_ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
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
