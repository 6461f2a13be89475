//! `labelgate accounts`: the MIP accounts of the configuration as `labelgate serve` last stored
//! them in the state directory (status, label count, last retrieval, last error), and an
//! account's labels as a table or CSV. Offline: nothing is fetched; a running proxy answers the
//! same through its admin API.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct AccountsArgs {
    /// State directory of `labelgate serve`.
    #[arg(long, value_name = "DIR", default_value = "state", global = true)]
    state_dir: PathBuf,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<AccountsCommand>,
}

#[derive(Subcommand, Debug)]
enum AccountsCommand {
    /// List the accounts (the default).
    List {
        /// Only accounts whose name, tenant, client id or status contains this text.
        #[arg(long, short)]
        query: Option<String>,
    },
    /// One account's labels.
    Labels {
        /// The account name.
        name: String,
        /// Print CSV (the admin API's labels.csv).
        #[arg(long)]
        csv: bool,
    },
}

pub fn run(config: Option<&Path>, args: &AccountsArgs) -> Result<ExitCode> {
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let stored = labelgate_sync::stored_accounts(&args.state_dir, &loaded.file.accounts);
    match args.command.as_ref().unwrap_or(&AccountsCommand::List { query: None }) {
        AccountsCommand::List { query } => {
            let q = query.as_deref().map(str::to_lowercase);
            let views: Vec<&labelgate_sync::AccountView> = stored
                .iter()
                .map(|(v, _)| v)
                .filter(|v| {
                    q.as_deref().is_none_or(|q| {
                        [v.name.as_str(), &v.tenant_id, &v.client_id, v.status.as_str()].iter().any(|f| f.to_lowercase().contains(q))
                    })
                })
                .collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
                return Ok(ExitCode::SUCCESS);
            }
            if views.is_empty() {
                println!("no accounts{}", if loaded.file.accounts.is_empty() { " configured ([[accounts]])" } else { " match" });
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<24} {:<20} {:>6}  {:<22} LAST ERROR", "NAME", "STATUS", "LABELS", "LAST RETRIEVAL");
            for v in views {
                let error = v.last_error.as_ref().map_or_else(String::new, |e| e.message.clone());
                println!(
                    "{:<24} {:<20} {:>6}  {:<22} {error}",
                    v.name,
                    v.status.as_str(),
                    v.label_count,
                    v.last_retrieval.as_deref().unwrap_or("never")
                );
            }
        }
        AccountsCommand::Labels { name, csv } => {
            let Some((_, labels)) = stored.iter().find(|(v, _)| v.name == *name) else {
                bail!("no account named {name:?} in the configuration");
            };
            if *csv {
                print!("{}", labelgate_admin::api::labels_csv(labels));
            } else if args.json {
                println!("{}", serde_json::to_string_pretty(labels)?);
            } else {
                for l in labels {
                    let parent =
                        l.parent.as_deref().and_then(|p| labels.iter().find(|x| x.id == p)).map(|p| format!("{} \\ ", p.display_name));
                    let flags =
                        [(!l.is_active).then_some("inactive"), l.deleted.then_some("deleted"), l.has_protection.then_some("protected")];
                    let flags: Vec<&str> = flags.into_iter().flatten().collect();
                    println!(
                        "{}  {}{}{}",
                        l.id,
                        parent.unwrap_or_default(),
                        l.display_name,
                        if flags.is_empty() { String::new() } else { format!("  ({})", flags.join(", ")) }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
