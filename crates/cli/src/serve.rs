//! `labelgate serve`: the proxy on the configured (or embedded default) configuration, with the
//! policy reloaded when the file changes or on SIGHUP.

use anyhow::{Context, Result};
use clap::Args;
use labelgate_config::{load, LoadError, ReloadOutcome, Reloader};
use labelgate_policy::ResolvedPolicy;
use labelgate_proxy::{upstream_client_config, AuditSink, CertAuthority, Interception, Proxy};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen address (overrides [proxy] listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// State directory: the interception CA lives here (default ./state).
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
    /// Extra CA certificates (PEM) trusted for origins, besides the webpki roots (repeatable).
    #[arg(long = "upstream-ca", value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,
}

fn resolve(config: &labelgate_config::LoadedConfig) -> Arc<ResolvedPolicy> {
    let (policy, diagnostics) = config.resolve(config.static_catalog());
    for d in diagnostics {
        eprintln!("{d}");
    }
    Arc::new(policy)
}

pub fn run(config: Option<&Path>, args: &ServeArgs) -> Result<ExitCode> {
    let loaded = match load(config) {
        Ok(l) => l,
        Err(LoadError::Invalid(d)) => {
            for x in &d {
                eprintln!("{x}");
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let mut proxy_config = loaded.file.proxy.clone();
    if let Some(listen) = args.listen {
        proxy_config.listen = listen;
    }
    let inspection = loaded.file.inspection.clone();
    let current = Arc::new(RwLock::new(resolve(&loaded)));
    let reloader = Reloader::new(loaded);
    let target = Arc::clone(&current);
    let watched = Arc::clone(&reloader);
    let _watch = reloader
        .watch(Duration::from_secs(1), move |outcome| match outcome {
            ReloadOutcome::Applied => {
                let policy = resolve(&watched.current());
                if let Ok(mut slot) = target.write() {
                    *slot = policy;
                }
                eprintln!("labelgate: configuration reloaded");
            }
            ReloadOutcome::Rejected(e) => {
                eprintln!("labelgate: configuration rejected, the previous one stays in force: {e}");
                for d in watched.last_rejection() {
                    eprintln!("{d}");
                }
            }
            ReloadOutcome::Unchanged => {}
        })
        .context("cannot watch the configuration")?;
    let source = Arc::new(move || current.read().map(|p| Arc::clone(&p)).unwrap_or_else(|e| Arc::clone(&e.into_inner())));
    let audit = Arc::new(AuditSink::new(Box::new(std::io::stdout())));
    let ca = Arc::new(CertAuthority::load_or_create(&args.state_dir).context("cannot load or create the interception CA")?);
    let mut extra = Vec::new();
    for p in &args.upstream_ca {
        extra.push(std::fs::read_to_string(p).with_context(|| format!("cannot read --upstream-ca {}", p.display()))?);
    }
    let upstream = upstream_client_config(&extra).context("bad --upstream-ca")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let proxy = Proxy::bind(proxy_config, inspection, source, audit)
            .await
            .context("cannot bind the proxy listener")?
            .with_interception(Interception { ca, upstream });
        eprintln!("labelgate: proxy listening on {}", proxy.local_addr()?);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        proxy.serve_until(shutdown).await?;
        eprintln!("labelgate: shutting down");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
