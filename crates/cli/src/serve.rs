//! `labelgate serve`: the proxy on the configured (or embedded default) configuration, the MIP
//! account sync feeding the label catalog, and the admin listener; the policy, the static labels
//! and the accounts are reloaded when the file changes or on SIGHUP, and policy label names are
//! re-resolved whenever the catalog changes.

use anyhow::{Context, Result};
use clap::Args;
use labelgate_admin::AdminState;
use labelgate_catalog::{Catalog, LabelCache};
use labelgate_config::{ReloadOutcome, Reloader};
use labelgate_policy::ResolvedPolicy;
use labelgate_proxy::{upstream_client_config, AuditSink, CertAuthority, Interception, Proxy, ProxyMetrics};
use labelgate_sync::{ClientOptions, SyncMetrics, SyncOptions, Syncer, SystemClock};
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
    /// Admin listen address (overrides [admin] listen).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// State directory: the interception CA lives here (default ./state).
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
    /// Extra CA certificates (PEM) trusted for origins, besides the webpki roots (repeatable).
    #[arg(long = "upstream-ca", value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,
}

fn resolve(config: &labelgate_config::LoadedConfig, cache: &LabelCache) -> Arc<ResolvedPolicy> {
    let (policy, diagnostics) = config.resolve(cache.snapshot());
    for d in diagnostics {
        tracing::warn!("{d}");
    }
    Arc::new(policy)
}

pub fn run(config: Option<&Path>, args: &ServeArgs) -> Result<ExitCode> {
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (proxy_config, inspection) = proxy_sections(&loaded, args.listen, &args.state_dir);
    let audit_file = loaded.file.proxy.audit_file.as_ref().map(|p| loaded.base_dir.join(p));
    let config_path = loaded.path.clone();
    let users = match &loaded.file.proxy.users_file {
        Some(f) => Some(labelgate_proxy::Users::load(&loaded.base_dir.join(f)).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut admin_config = loaded.file.admin.clone();
    if let Some(listen) = args.admin_listen {
        admin_config.listen = listen;
    }
    let api_tokens = admin_config.named_tokens(&loaded.base_dir, &args.state_dir).map_err(anyhow::Error::msg)?;
    let admin_tls = admin_config.tls(&loaded.base_dir)?;
    // (--admin-listen too: `check` cannot see the override.)
    if let Some(p) = admin_config.problems().into_iter().find(|p| p.severity == labelgate_policy::Severity::Error) {
        anyhow::bail!("{}", p.message);
    }
    let registry = prometheus::Registry::new();
    // The label catalog: [[labels]] from the file, then each account's last good snapshot.
    let cache = Arc::new(LabelCache::new(Catalog::from_static(loaded.static_labels.clone())));
    let sync_metrics = SyncMetrics::register(&registry).context("cannot register metrics")?;
    let sync_options =
        SyncOptions { state_dir: args.state_dir.clone(), base_dir: loaded.base_dir.clone(), client: ClientOptions::default() };
    let syncer = Arc::new(
        Syncer::new(loaded.file.accounts.clone(), Arc::clone(&cache), sync_options, Arc::new(SystemClock), Some(sync_metrics))
            .context("cannot start the MIP account sync")?,
    );
    let current = Arc::new(RwLock::new(resolve(&loaded, &cache)));
    let reloader = Reloader::new(loaded);
    // A new catalog (a retrieval, a reload) re-binds policy label names. Re-binds run one at a
    // time, each from the catalog as it is once its turn comes: two accounts retrieved at once
    // must not let the one that read the older catalog store its policy last (its labels would
    // be missing from the policy in force while the account already says Active).
    let rebind = {
        let (target, config, cache) = (Arc::clone(&current), Arc::clone(&reloader), Arc::clone(&cache));
        let one_at_a_time = std::sync::Mutex::new(());
        Arc::new(move || {
            let _turn = one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
            let policy = resolve(&config.current(), &cache);
            if let Ok(mut slot) = target.write() {
                *slot = policy;
            }
        })
    };
    let on_change = Arc::clone(&rebind);
    syncer.on_change(move || on_change());
    // Filled once the listeners are up: a reload applies [proxy], [inspection] and [admin] to
    // them, except what needs a restart.
    let live: Arc<std::sync::Mutex<Option<Live>>> = Arc::default();
    let live_for_reload = Arc::clone(&live);
    let overrides = Overrides { listen: args.listen, admin_listen: args.admin_listen, state_dir: args.state_dir.clone() };
    let watched = Arc::clone(&reloader);
    let (reload_cache, reload_syncer) = (Arc::clone(&cache), Arc::clone(&syncer));
    // Blocking work is inspections (bounded by max_concurrent_inspections) and a few file
    // operations: a bounded pool keeps a burst from spawning hundreds of threads.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(128).build().context("cannot start the runtime")?;
    let handle = runtime.handle().clone();
    let _watch = reloader
        .watch(Duration::from_secs(1), move |outcome| match outcome {
            ReloadOutcome::Applied => {
                let config = watched.current();
                reload_cache.replace_static(config.static_labels.clone());
                let _guard = handle.enter();
                reload_syncer.reconcile(config.file.accounts.clone(), true);
                rebind();
                let applied = match live_for_reload.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    Some(live) => live.apply(&config, &overrides),
                    None => Ok(Vec::new()),
                };
                match applied {
                    Ok(restart) if restart.is_empty() => tracing::info!("configuration reloaded"),
                    Ok(restart) => {
                        tracing::warn!(restart_needed = %restart.join(", "), "configuration reloaded; changed but applied only after a restart: {}", restart.join(", "))
                    }
                    Err(e) => tracing::error!(error = %e, "configuration reloaded, but [proxy]/[inspection]/[admin] were not applied: {e}"),
                }
            }
            ReloadOutcome::Rejected(e) => {
                tracing::error!(error = %e, "configuration rejected, the previous one stays in force: {e}");
                for d in watched.last_rejection() {
                    tracing::error!("{d}");
                }
            }
            ReloadOutcome::Unchanged => {}
        })
        .context("cannot watch the configuration")?;
    let source = Arc::new(move || current.read().map(|p| Arc::clone(&p)).unwrap_or_else(|e| Arc::clone(&e.into_inner())));
    // Audit records: written by a thread of their own (a queue of 4096), to standard output or
    // [proxy] audit_file, which SIGHUP reopens (logrotate's convention).
    let destination = match audit_file {
        Some(path) => labelgate_proxy::AuditDestination::File(path),
        None => labelgate_proxy::AuditDestination::Stdout,
    };
    let audit = Arc::new(AuditSink::spawn(destination, 4096).context("cannot open [proxy] audit_file")?);
    if let Some(flag) = audit.reopen_flag() {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, flag).context("cannot watch SIGHUP")?;
    }
    let metrics = ProxyMetrics::register(&registry).context("cannot register metrics")?;
    let ca = Arc::new(CertAuthority::load_or_create(&args.state_dir).context("cannot load or create the interception CA")?);
    let mut extra = Vec::new();
    for p in &args.upstream_ca {
        extra.push(std::fs::read_to_string(p).with_context(|| format!("cannot read --upstream-ca {}", p.display()))?);
    }
    let upstream = upstream_client_config(&extra).context("bad --upstream-ca")?;
    runtime.block_on(async move {
        syncer.start();
        let audit_for_metrics = Arc::clone(&audit);
        let audit_for_store = Arc::clone(&audit);
        // /readyz says 503 until the proxy listens with its policy loaded, and again from the
        // moment a shutdown starts draining: a load balancer stops sending first.
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let admin_listener = tokio::net::TcpListener::bind(admin_config.listen).await.context("cannot bind the admin listener")?;
        let admin_addr = admin_listener.local_addr()?;
        let proxy = Proxy::bind(proxy_config, inspection, source, audit)
            .await
            .context("cannot bind the proxy listener")?
            .with_interception(Interception { ca: Arc::clone(&ca), upstream })
            .with_metrics(metrics.clone())
            .protect(admin_addr);
        let proxy = match users {
            Some(u) => proxy.with_users(u),
            None => proxy,
        };
        let proxy_addr = proxy.local_addr()?;
        tracing::info!(address = %proxy_addr, "proxy listening on {proxy_addr}");
        tracing::info!(address = %admin_addr, "admin listening on {admin_addr}");
        let scrape_audit = Arc::clone(&audit_for_metrics);
        let admin_state = Arc::new(AdminState {
            registry,
            ready: Arc::clone(&ready),
            pac_proxy: arc_swap::ArcSwap::from_pointee(admin_config.pac_proxy.clone().unwrap_or_else(|| proxy_addr.to_string())),
            before_scrape: Some(Box::new(move || {
                // Counters kept by their owners, brought up to date at each scrape (they only grow).
                let catch_up = |counter: &prometheus::IntCounter, now: u64| counter.inc_by(now.saturating_sub(counter.get()));
                catch_up(&metrics.certificates_minted, ca.minted());
                catch_up(&metrics.certificate_cache_hits, ca.cache_hits());
                catch_up(&metrics.audit_failures, scrape_audit.failures());
            })),
            accounts: Some(Arc::clone(&syncer)),
            api_tokens: arc_swap::ArcSwap::from_pointee(api_tokens),
            failures: labelgate_admin::api::Throttle::default(),
            audit: Some(Box::new({
                let audit = Arc::clone(&audit_for_store);
                move |mut event: serde_json::Value| {
                    if let Some(o) = event.as_object_mut() {
                        o.insert("time".into(), serde_json::Value::String(crate::store::time_now()));
                    }
                    let _ = audit.write_value(&event);
                }
            })),
            config_store: Some(Arc::new(crate::store::FileStore {
                path: config_path.clone(),
                state_dir: args.state_dir.clone(),
                audit: Arc::clone(&audit_for_store),
                one_at_a_time: std::sync::Mutex::new(()),
            })),
        });
        *live.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Live { proxy: proxy.settings_handle(), admin: Arc::clone(&admin_state), admin_listen: admin_config.listen, proxy_addr });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let admin_task = tokio::spawn(labelgate_admin::serve(admin_listener, admin_state, admin_tls, async move {
            let mut rx = stop_rx;
            let _ = rx.changed().await;
        }));
        let ready_now = Arc::clone(&ready);
        // SIGINT or SIGTERM: stop accepting, let transactions in flight finish, then exit.
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            ready.store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::info!("shutting down: draining transactions in flight");
        };
        ready_now.store(true, std::sync::atomic::Ordering::SeqCst);
        proxy.serve_until(shutdown).await?;
        let _ = stop_tx.send(true);
        let _ = admin_task.await;
        tracing::info!("shutting down");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What the command line fixed at start, which a reload keeps.
struct Overrides {
    listen: Option<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
    state_dir: std::path::PathBuf,
}

/// The running listeners a reload applies settings to.
struct Live {
    proxy: labelgate_proxy::SettingsHandle,
    admin: Arc<AdminState>,
    admin_listen: std::net::SocketAddr,
    proxy_addr: std::net::SocketAddr,
}

impl Live {
    /// Applies `[proxy]`, `[inspection]` and `[admin]` of a reloaded file; answers the changed
    /// settings that only a restart applies.
    fn apply(&self, loaded: &labelgate_config::LoadedConfig, overrides: &Overrides) -> Result<Vec<String>, String> {
        let admin = &loaded.file.admin;
        // The tokens that can be read are stored whatever else fails: a token removed from the
        // config stops working even when another cannot be read (said in the log).
        let (tokens, problems) = admin.named_tokens_each(&loaded.base_dir, &overrides.state_dir);
        for p in &problems {
            tracing::error!(error = %p, "an admin API token cannot be read; it does not work until it can");
        }
        self.admin.api_tokens.store(Arc::new(tokens));
        let (proxy, inspection) = proxy_sections(loaded, overrides.listen, &overrides.state_dir);
        let users = match &proxy.users_file {
            Some(f) => Some(labelgate_proxy::Users::load(&loaded.base_dir.join(f)).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut restart: Vec<String> = self.proxy.apply(proxy, inspection, users)?.into_iter().map(str::to_string).collect();
        if overrides.admin_listen.is_none() && admin.listen != self.admin_listen {
            restart.push("[admin] listen".into());
        }
        self.admin.pac_proxy.store(Arc::new(admin.pac_proxy.clone().unwrap_or_else(|| self.proxy_addr.to_string())));
        Ok(restart)
    }
}

/// `[proxy]` and `[inspection]` as the proxy runs them: the command line's `--listen` wins, and
/// spool files live in the state directory unless the config says otherwise.
fn proxy_sections(
    loaded: &labelgate_config::LoadedConfig,
    listen: Option<std::net::SocketAddr>,
    state_dir: &std::path::Path,
) -> (labelgate_proxy::ProxyConfig, labelgate_proxy::InspectionConfig) {
    let mut proxy = loaded.file.proxy.clone();
    if let Some(listen) = listen {
        proxy.listen = listen;
    }
    let mut inspection = loaded.file.inspection.clone();
    inspection.spool_dir = Some(match &inspection.spool_dir {
        Some(d) => loaded.base_dir.join(d),
        None => state_dir.join("spool"),
    });
    (proxy, inspection)
}
