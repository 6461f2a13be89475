//! A load and fault campaign against `labelgate serve`, on loopback only, bounded in count and
//! time. It starts labelgate (the shipped config, allowed to reach loopback origins, with short
//! client timeouts so slow attackers are cut within the run), a checking origin that hashes
//! every byte it is sent, and failing origins; then, for the run's duration:
//!
//! - `connections` workers upload labeled and unlabeled docx files (1 KiB – `max_size`, some
//!   sent `Content-Encoding: deflate`) over plain HTTP/1.1 — to an unsanctioned origin and to
//!   one the config names a sanctioned app, where a labeled file is still blocked by a campaign
//!   rule but a body past `max_body` streams on while it is inspected — and over HTTP/2 in
//!   intercepted tunnels, each from one of 16 loopback client addresses; now and then to an
//!   origin that resets, stalls, answers garbage or closes mid-response;
//! - slow attackers hold connections open on request heads, TLS handshakes and bodies;
//! - at 30 % and 60 % the config is reloaded (SIGHUP); at 45 % stalled uploads fill the spool
//!   for a while; at the end labelgate is sent SIGTERM while the workers keep going (the drain).
//!
//! The [`Report`] says what happened and [`Report::violations`] what must never happen: an
//! allowed upload answered with other bytes than were sent, a labeled file delivered whole, a
//! crash, a drain that did not end cleanly, a slow attacker held past the timeouts.

pub mod client;
pub mod origin;

use bytes::Bytes;
use client::{Conn, Failure, Slow};
use origin::Fault;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shipped configuration the campaign runs on.
pub const SHIPPED_CONFIG: &str = include_str!("../../../config/labelgate.toml");

/// How long a request may take before the client gives up on it.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// The client timeouts the campaign configures (seconds): slow attackers must be cut within them.
const CLIENT_TIMEOUT_SECS: u64 = 5;

/// Why the campaign could not run.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("labelgate did not start: {0}")]
    Start(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> CampaignError {
    move |source| CampaignError::Io { what, source }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `labelgate` binary.
    pub labelgate: PathBuf,
    /// A scratch directory (config, state, spool).
    pub work: PathBuf,
    /// Concurrent upload connections.
    pub connections: usize,
    /// Concurrent slow attackers (split over the three kinds).
    pub slow: usize,
    /// How long uploads run before the drain.
    pub duration: Duration,
    /// The largest upload (sizes are 1 KiB, 64 KiB, 1 MiB and 10 MiB, up to this).
    pub max_size: usize,
    /// `[inspection] mode`.
    pub mode: &'static str,
    /// `[inspection] spool_quota` of the run, and what the stalled uploads hold of it.
    pub spool_quota: u64,
    pub stall_bytes: u64,
    /// `[inspection] max_body` of the run: small, so big uploads take the path of bodies past it.
    pub max_body: u64,
}

impl Options {
    /// The CI slice: about 100 connections for 10 s.
    pub fn slice(labelgate: PathBuf, work: PathBuf) -> Options {
        Options {
            labelgate,
            work,
            connections: 100,
            slow: 6,
            duration: Duration::from_secs(10),
            max_size: 10 << 20,
            mode: "hold",
            spool_quota: 256 << 20,
            stall_bytes: 80 << 20,
            max_body: 4 << 20,
        }
    }
}

/// Latencies of one kind of answer, in microseconds.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut us: Vec<u64>) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
        Latency { count: us.len(), p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// What happened.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub connections: usize,
    pub duration_secs: f64,
    /// Uploads answered, by class: `allowed` (200, the origin's hash checked), `blocked` (403),
    /// `unavailable` (503), and any other status by number.
    pub answers: BTreeMap<String, u64>,
    /// Uploads with no answer, by cause.
    pub failures: BTreeMap<String, u64>,
    /// Uploads that failed after SIGTERM (the listener closes; expected).
    pub failures_after_sigterm: u64,
    pub allowed_bytes: u64,
    pub allowed_per_sec: f64,
    pub allowed_mib_per_sec: f64,
    pub latency_allowed: Latency,
    pub latency_blocked: Latency,
    /// Requests to failing origins, by fault and answer.
    pub faults: BTreeMap<String, u64>,
    /// Slow attackers: held, cut by the proxy, and the longest hold of a cut one (seconds).
    pub slow_attempts: u64,
    pub slow_cut: u64,
    pub slow_longest_cut_secs: f64,
    pub slow_longest_open_secs: f64,
    /// Uploads answered 503 while the spool was held by stalled uploads.
    pub unavailable_during_exhaustion: u64,
    pub reloads_sent: u64,
    pub reloads_logged: u64,
    /// Peak RSS (VmHWM) of labelgate, KiB, read before SIGTERM.
    pub peak_rss_kib: u64,
    /// labelgate's exit after SIGTERM: its code, and how long the drain took.
    pub exit_code: Option<i32>,
    pub drain_secs: f64,
    /// labelgate exited before SIGTERM.
    pub crashed: bool,
    /// Lines of labelgate's standard error that report a panic.
    pub panics: u64,
    /// Audit records by action.
    pub audit: BTreeMap<String, u64>,
    // The invariants.
    /// 200 answers whose body was not the origin's hash of what the client sent.
    pub corrupted_allowed: u64,
    /// Labeled uploads answered 200.
    pub labeled_allowed: u64,
    /// Unlabeled uploads answered 403.
    pub unlabeled_blocked: u64,
    /// At the origin: bodies received whole with other bytes than sent, labeled files whole.
    pub origin_corrupt_complete: u64,
    pub origin_labeled_complete: u64,
    pub origin_truncated: u64,
}

impl Report {
    /// What must never happen, said; empty when the run held.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut check = |bad: bool, what: String| {
            if bad {
                v.push(what);
            }
        };
        check(self.corrupted_allowed > 0, format!("{} allowed uploads answered with other bytes than sent", self.corrupted_allowed));
        check(self.origin_corrupt_complete > 0, format!("{} bodies reached the origin whole but altered", self.origin_corrupt_complete));
        check(self.origin_labeled_complete > 0, format!("{} labeled files reached the origin whole", self.origin_labeled_complete));
        check(self.labeled_allowed > 0, format!("{} labeled uploads were answered 200", self.labeled_allowed));
        check(self.unlabeled_blocked > 0, format!("{} unlabeled uploads were blocked", self.unlabeled_blocked));
        check(self.crashed, "labelgate exited before SIGTERM".into());
        check(self.panics > 0, format!("{} panics on labelgate's standard error", self.panics));
        check(self.exit_code != Some(0), format!("labelgate's exit after SIGTERM: {:?}", self.exit_code));
        let bound = (CLIENT_TIMEOUT_SECS * 3) as f64;
        check(
            self.slow_longest_cut_secs.max(self.slow_longest_open_secs) > bound,
            format!(
                "a slow attacker held a connection {:.1} s, past the timeouts",
                self.slow_longest_cut_secs.max(self.slow_longest_open_secs)
            ),
        );
        check(self.slow_attempts > 0 && self.slow_cut == 0, "no slow attacker was ever cut".into());
        check(self.answers.get("allowed").copied().unwrap_or(0) == 0, "no upload was allowed at all".into());
        check(self.answers.get("blocked").copied().unwrap_or(0) == 0, "no upload was blocked at all".into());
        v
    }
}

/// One upload body.
struct Sample {
    bytes: Bytes,
    sha: String,
    labeled: bool,
    /// Sent with `Content-Encoding: deflate` (the bytes are the coded ones).
    deflated: bool,
}

fn sample(plain: Vec<u8>, labeled: bool, deflated: bool) -> Sample {
    let bytes = if deflated { labelgate_testkit::zlib(&plain) } else { plain };
    let sha = origin::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    Sample { bytes: Bytes::from(bytes), sha, labeled, deflated }
}

/// A docx of about `size` bytes: the parts Office writes (with a label or without) and stored
/// media filling the rest.
pub fn docx_of(size: usize, labeled: bool, seed: u64) -> Vec<u8> {
    use labelgate_testkit as kit;
    let custom = labeled.then(|| kit::custom_xml(&[(kit::GUID_A, kit::SITE_OTHER, "true")]));
    let mut entries = kit::docx(custom, None);
    let filler = size.saturating_sub(2048);
    if filler > 0 {
        entries.push(kit::Entry::new("word/media/image1.png", kit::filler(filler, seed)).stored());
    }
    kit::zip(&entries)
}

fn samples(max_size: usize) -> Vec<(u32, Vec<Sample>)> {
    // (weight, bodies of that size): mostly small, as real upload traffic is.
    let sizes = [(40u32, 1usize << 10), (30, 64 << 10), (20, 1 << 20), (10, 10 << 20)];
    sizes
        .iter()
        .filter(|(_, s)| *s <= max_size)
        .map(|&(weight, size)| {
            // Coded variants up to 1 MiB (coding 10 MiB at start costs more than it shows).
            let bodies = [(false, 1u64, false), (false, 2, false), (true, 3, false), (false, 4, true), (true, 5, true)]
                .iter()
                .filter(|(_, _, deflated)| !deflated || size <= 1 << 20)
                .map(|&(labeled, seed, deflated)| sample(docx_of(size, labeled, seed + size as u64), labeled, deflated))
                .collect();
            (weight, bodies)
        })
        .collect()
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<String, u64>,
    failures: BTreeMap<String, u64>,
    failures_after_sigterm: u64,
    faults: BTreeMap<String, u64>,
    allowed_us: Vec<u64>,
    blocked_us: Vec<u64>,
    allowed_bytes: u64,
    corrupted_allowed: u64,
    labeled_allowed: u64,
    unlabeled_blocked: u64,
    unavailable_during_exhaustion: u64,
}

/// The shared state of a run.
struct Run {
    proxy: SocketAddr,
    plain: SocketAddr,
    sanctioned: SocketAddr,
    tls: SocketAddr,
    faults: Vec<(Fault, SocketAddr)>,
    client_tls: Arc<rustls::ClientConfig>,
    samples: Vec<(u32, Vec<Sample>)>,
    stop: AtomicBool,
    sigterm: AtomicBool,
    exhausted: AtomicBool,
}

/// A loopback client address for worker `n` (16 clients: the per-client limit is per address).
fn client_addr(n: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 10 + (n % 16) as u8])
}

async fn connect_from(local: IpAddr, proxy: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(proxy).await
}

async fn worker(run: Arc<Run>, n: usize) -> Tally {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut tally = Tally::default();
    // A third of the workers over HTTP/2, a third to the sanctioned origin.
    let h2 = n % 3 == 2;
    let origin = if n % 3 == 1 { run.sanctioned } else { run.plain };
    let local = client_addr(n);
    let mut conn: Option<Conn> = None;
    // When the kept-alive connection was last used: one left idle near the proxy's header
    // timeout (while this worker waited on a failing origin) is replaced rather than raced
    // against the proxy closing it, as browsers retire idle connections early.
    let mut last_used = Instant::now();
    let total_weight: u32 = run.samples.iter().map(|(w, _)| w).sum();
    let mut seq = 0u64;
    while !run.stop.load(Ordering::Relaxed) {
        seq += 1;
        // One request in twenty goes to a failing origin, on a connection of its own.
        if rng.below(20) == 0 && !run.faults.is_empty() {
            let (fault, addr) = run.faults[rng.below(run.faults.len() as u64) as usize];
            if run.sigterm.load(Ordering::Relaxed) {
                // The listener is closing: these would only count refused connections.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let outcome = match client::h1_from(local, run.proxy).await {
                Ok(mut c) => {
                    match client::upload(&mut c, &format!("http://{addr}/f"), Bytes::from_static(&[7u8; 2048]), &[], CLIENT_DEADLINE).await
                    {
                        Ok(a) => a.status.as_u16().to_string(),
                        Err(f) => format!("{f:?}").to_lowercase(),
                    }
                }
                Err(f) => format!("{f:?}").to_lowercase(),
            };
            *tally.faults.entry(format!("{fault:?}/{outcome}").to_lowercase()).or_default() += 1;
            continue;
        }
        let mut pick = rng.below(total_weight as u64) as u32;
        let bodies = run
            .samples
            .iter()
            .find(|(w, _)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(_, b)| b)
            .unwrap_or(&run.samples[0].1);
        let sample = &bodies[rng.below(bodies.len() as u64) as usize];
        if last_used.elapsed() > Duration::from_secs(CLIENT_TIMEOUT_SECS.saturating_sub(2)) {
            conn = None;
        }
        if conn.is_none() {
            let opened = if h2 {
                client::h2_from(local, run.proxy, run.tls, Arc::clone(&run.client_tls)).await
            } else {
                client::h1_from(local, run.proxy).await
            };
            match opened {
                Ok(c) => conn = Some(c),
                Err(f) => {
                    tally.fail(f, &run, if h2 { "h2" } else { "h1" });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let url = if h2 { format!("https://{}/w{n}/{seq}", run.tls) } else { format!("http://{origin}/w{n}/{seq}") };
        let mut headers = vec![("x-expect-sha256", sample.sha.clone()), ("x-labeled", if sample.labeled { "1" } else { "0" }.to_string())];
        if sample.deflated {
            headers.push(("content-encoding", "deflate".to_string()));
        }
        let started = Instant::now();
        let during_exhaustion = run.exhausted.load(Ordering::Relaxed);
        let answered = client::upload(c, &url, sample.bytes.clone(), &headers, CLIENT_DEADLINE).await;
        last_used = Instant::now();
        match answered {
            Ok(answer) => {
                let us = started.elapsed().as_micros() as u64;
                if answer.close {
                    // As browsers do: the next request opens a new connection.
                    conn = None;
                }
                let class = match answer.status.as_u16() {
                    200 => {
                        if answer.body != format!("stored {}", sample.sha).as_bytes() {
                            tally.corrupted_allowed += 1;
                        }
                        if sample.labeled {
                            tally.labeled_allowed += 1;
                        }
                        tally.allowed_us.push(us);
                        tally.allowed_bytes += sample.bytes.len() as u64;
                        "allowed".to_string()
                    }
                    403 => {
                        if !sample.labeled {
                            tally.unlabeled_blocked += 1;
                        }
                        tally.blocked_us.push(us);
                        "blocked".to_string()
                    }
                    503 => {
                        if during_exhaustion {
                            tally.unavailable_during_exhaustion += 1;
                        }
                        conn = None;
                        "unavailable".to_string()
                    }
                    other => {
                        conn = None;
                        other.to_string()
                    }
                };
                *tally.answers.entry(class).or_default() += 1;
            }
            // Closed while idle, nothing sent: a new connection, as any client does (not a failure).
            Err(Failure::Closed) => conn = None,
            Err(f) => {
                tally.fail(f, &run, if h2 { "h2" } else { "h1" });
                conn = None;
            }
        }
    }
    tally
}

impl Tally {
    fn fail(&mut self, f: Failure, run: &Run, over: &str) {
        if run.sigterm.load(Ordering::Relaxed) {
            self.failures_after_sigterm += 1;
        } else {
            let when = if run.exhausted.load(Ordering::Relaxed) { "/during_exhaustion" } else { "" };
            *self.failures.entry(format!("{f:?}/{over}{when}").to_lowercase()).or_default() += 1;
        }
    }
}

/// Slow attacker `n`: holds connections the slow way, one after another, until the run stops.
async fn attacker(run: Arc<Run>, n: usize, until: Instant) -> Vec<(Duration, bool)> {
    let how = Slow::ALL[n % Slow::ALL.len()];
    let mut held = Vec::new();
    while !run.stop.load(Ordering::Relaxed) && Instant::now() < until {
        match client::slow(run.proxy, run.plain, how, until).await {
            Some(h) => held.push(h),
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    held
}

/// Uploads that send `bytes` of a body twice that size and stall, holding spool space, until
/// `release`.
async fn stall_uploads(proxy: SocketAddr, origin: SocketAddr, bytes: u64, count: usize, release: Instant) {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::new();
    for i in 0..count {
        let Ok(mut s) = connect_from(IpAddr::from([127, 0, 0, 40 + i as u8]), proxy).await else { continue };
        let head = format!("PUT http://{origin}/stalled HTTP/1.1\r\nHost: {origin}\r\nContent-Length: {}\r\n\r\n", bytes * 2);
        if s.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sent = 0;
        while sent < bytes {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        held.push(s);
    }
    // Keep the body alive (a byte a second beats the idle timeout for a few seconds).
    while Instant::now() < release {
        for s in held.iter_mut() {
            let _ = s.write_all(b"z").await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// labelgate, started for the run.
struct Labelgate {
    child: Child,
    pid: u32,
    config: PathBuf,
    audit: Arc<Mutex<BTreeMap<String, u64>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// The campaign's config: the shipped one, loopback origins allowed, short client timeouts,
/// `max_body` as given, and 127.0.0.2 a sanctioned app where labeled files are still blocked
/// (by a rule of its own) but an unread file is not — so a body past `max_body` streams on.
pub fn campaign_config(mode: &str, spool_quota: u64, max_body: u64, note: &str) -> String {
    let t = CLIENT_TIMEOUT_SECS;
    let sanctioned = r#"
[[cloud_apps]]
name = "Campaign sanctioned origin"
hosts = ["127.0.0.2"]
tags = ["Sanctioned"]

[[policy.rules]]
name = "Campaign: labeled files stay out of the sanctioned origin too"
action = "block"
labeled = true
cloud_apps = ["Campaign sanctioned origin"]
direction = "upload"
"#;
    SHIPPED_CONFIG
        .replacen("\nallow_destinations = []", "\nallow_destinations = [\"127.0.0.0/8\"]", 1)
        .replacen("\nconnect_ports = [443]", "\nconnect_ports = [443, \"1024-65535\"]", 1)
        .replacen("\nheader_timeout_secs = 30", &format!("\nheader_timeout_secs = {t}"), 1)
        .replacen("\ntls_handshake_timeout_secs = 10", &format!("\ntls_handshake_timeout_secs = {t}"), 1)
        .replacen("\nresponse_timeout_secs = 300", &format!("\nresponse_timeout_secs = {t}"), 1)
        .replacen("\nbody_idle_timeout_secs = 60", &format!("\nbody_idle_timeout_secs = {t}"), 1)
        .replacen("\nbody_rate_window_secs = 30", &format!("\nbody_rate_window_secs = {t}"), 1)
        .replacen("\ndrain_timeout_secs = 30", "\ndrain_timeout_secs = 20", 1)
        .replacen("\nmode = \"hold\"", &format!("\nmode = \"{mode}\""), 1)
        .replacen("\nspool_quota = 8589934592", &format!("\nspool_quota = {spool_quota}"), 1)
        .replacen("\nmax_body = 268435456", &format!("\nmax_body = {max_body}"), 1)
        + sanctioned
        + &format!("\n# {note}\n")
}

fn start(labelgate: &Path, work: &Path, config_text: &str, origin_ca: &Path) -> Result<(Labelgate, SocketAddr, PathBuf), CampaignError> {
    let state = work.join("state");
    std::fs::create_dir_all(&state).map_err(io("state directory"))?;
    let config = work.join("labelgate.toml");
    std::fs::write(&config, config_text).map_err(io("config"))?;
    let export = Command::new(labelgate).args(["ca", "export", "--state-dir"]).arg(&state).output().map_err(io("labelgate ca export"))?;
    let ca_pem = work.join("labelgate-ca.pem");
    std::fs::write(&ca_pem, &export.stdout).map_err(io("CA"))?;
    let mut child = Command::new(labelgate)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("--upstream-ca")
        .arg(origin_ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("labelgate serve"))?;
    let pid = child.id();
    let audit = Arc::new(Mutex::new(BTreeMap::new()));
    let records = Arc::clone(&audit);
    let stdout = child.stdout.take().ok_or_else(|| CampaignError::Start("no stdout".into()))?;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let action = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["action"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unparsed".into());
            if let Ok(mut a) = records.lock() {
                *a.entry(action).or_default() += 1;
            }
        }
    });
    let mut stderr = std::io::BufReader::new(child.stderr.take().ok_or_else(|| CampaignError::Start("no stderr".into()))?);
    let mut line = String::new();
    let proxy = loop {
        line.clear();
        if stderr.read_line(&mut line).map_err(io("labelgate stderr"))? == 0 {
            return Err(CampaignError::Start("exited before listening".into()));
        }
        if let Some(a) = line.split_once("proxy listening on ").and_then(|(_, rest)| rest.split_whitespace().next()) {
            break a.parse().map_err(|_| CampaignError::Start(format!("unreadable address {a}")))?;
        }
    };
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Ok(mut l) = kept.lock() {
                l.push(line);
            }
        }
    });
    Ok((Labelgate { child, pid, config, audit, stderr: lines }, proxy, ca_pem))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Peak resident memory of `pid` (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())))
        .unwrap_or(0)
}

/// Runs the campaign.
pub async fn run(opts: &Options) -> Result<Report, CampaignError> {
    std::fs::create_dir_all(&opts.work).map_err(io("work directory"))?;
    let (server_tls, origin_ca_pem) = labelgate_testkit::loopback_server_tls(&[b"h2", b"http/1.1"]);
    let origin_ca = opts.work.join("origin-ca.pem");
    std::fs::write(&origin_ca, &origin_ca_pem).map_err(io("origin CA"))?;
    let checking = origin::checking(server_tls).await.map_err(io("checking origin"))?;
    let mut faults = Vec::new();
    for f in Fault::ALL {
        faults.push((f, origin::failing(f).await.map_err(io("failing origin"))?));
    }
    let (mut lg, proxy, ca_pem) =
        start(&opts.labelgate, &opts.work, &campaign_config(opts.mode, opts.spool_quota, opts.max_body, "start"), &origin_ca)?;
    let ca_text = std::fs::read_to_string(&ca_pem).map_err(io("CA"))?;
    let run = Arc::new(Run {
        proxy,
        plain: checking.plain,
        sanctioned: checking.sanctioned,
        tls: checking.tls,
        faults,
        client_tls: client::client_tls(&ca_text),
        samples: samples(opts.max_size),
        stop: AtomicBool::new(false),
        sigterm: AtomicBool::new(false),
        exhausted: AtomicBool::new(false),
    });
    let started = Instant::now();
    let end = started + opts.duration;
    let workers: Vec<_> = (0..opts.connections).map(|n| tokio::spawn(worker(Arc::clone(&run), n))).collect();
    let attackers: Vec<_> = (0..opts.slow).map(|n| tokio::spawn(attacker(Arc::clone(&run), n, end))).collect();
    let at = |f: f64| started + opts.duration.mul_f64(f);
    let mut report = Report { connections: opts.connections, ..Report::default() };
    let alive = |lg: &mut Labelgate| matches!(lg.child.try_wait(), Ok(None));

    // 30 %: a reload.
    tokio::time::sleep_until(at(0.3).into()).await;
    std::fs::write(&lg.config, campaign_config(opts.mode, opts.spool_quota, opts.max_body, "reload 1")).map_err(io("config"))?;
    signal(lg.pid, "-HUP");
    report.reloads_sent += 1;
    // 45 %: stalled uploads hold the spool for 20 % of the run.
    tokio::time::sleep_until(at(0.45).into()).await;
    let stalls = opts.spool_quota.div_ceil(opts.stall_bytes.max(1)) as usize;
    let release = at(0.65);
    let exhaustion = tokio::spawn(stall_uploads(proxy, checking.plain, opts.stall_bytes, stalls, release));
    run.exhausted.store(true, Ordering::Relaxed);
    // 60 %: another reload, under the exhaustion.
    tokio::time::sleep_until(at(0.6).into()).await;
    std::fs::write(&lg.config, campaign_config(opts.mode, opts.spool_quota, opts.max_body, "reload 2")).map_err(io("config"))?;
    signal(lg.pid, "-HUP");
    report.reloads_sent += 1;
    let _ = exhaustion.await;
    run.exhausted.store(false, Ordering::Relaxed);
    tokio::time::sleep_until(end.into()).await;

    // The end: SIGTERM under load; the workers keep going for 2 s more.
    report.crashed = !alive(&mut lg);
    report.peak_rss_kib = peak_rss_kib(lg.pid);
    let term = Instant::now();
    run.sigterm.store(true, Ordering::Relaxed);
    signal(lg.pid, "-TERM");
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.stop.store(true, Ordering::Relaxed);
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            match lg.child.try_wait() {
                Ok(Some(status)) => return (status.code(), lg),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = lg.child.kill();
                    let _ = lg.child.wait();
                    return (None, lg);
                }
            }
        }
    })
    .await
    .map_err(|e| CampaignError::Start(e.to_string()))?;
    report.exit_code = exit.0;
    report.drain_secs = term.elapsed().as_secs_f64();
    let lg = exit.1;

    let mut allowed_us = Vec::new();
    let mut blocked_us = Vec::new();
    for w in workers {
        let Ok(t) = w.await else { continue };
        for (k, v) in t.answers {
            *report.answers.entry(k).or_default() += v;
        }
        for (k, v) in t.failures {
            *report.failures.entry(k).or_default() += v;
        }
        for (k, v) in t.faults {
            *report.faults.entry(k).or_default() += v;
        }
        report.failures_after_sigterm += t.failures_after_sigterm;
        report.allowed_bytes += t.allowed_bytes;
        report.corrupted_allowed += t.corrupted_allowed;
        report.labeled_allowed += t.labeled_allowed;
        report.unlabeled_blocked += t.unlabeled_blocked;
        report.unavailable_during_exhaustion += t.unavailable_during_exhaustion;
        allowed_us.extend(t.allowed_us);
        blocked_us.extend(t.blocked_us);
    }
    for a in attackers {
        let Ok(held) = a.await else { continue };
        for (d, cut) in held {
            report.slow_attempts += 1;
            if cut {
                report.slow_cut += 1;
                report.slow_longest_cut_secs = report.slow_longest_cut_secs.max(d.as_secs_f64());
            } else {
                report.slow_longest_open_secs = report.slow_longest_open_secs.max(d.as_secs_f64());
            }
        }
    }
    let elapsed = opts.duration.as_secs_f64();
    report.duration_secs = elapsed;
    report.allowed_per_sec = report.answers.get("allowed").copied().unwrap_or(0) as f64 / elapsed;
    report.allowed_mib_per_sec = report.allowed_bytes as f64 / elapsed / (1 << 20) as f64;
    report.latency_allowed = Latency::of(allowed_us);
    report.latency_blocked = Latency::of(blocked_us);
    let counts = &checking.counts;
    report.origin_corrupt_complete = counts.corrupt_complete.load(Ordering::Relaxed);
    report.origin_labeled_complete = counts.labeled_complete.load(Ordering::Relaxed);
    report.origin_truncated = counts.truncated.load(Ordering::Relaxed);
    report.audit = lg.audit.lock().map(|a| a.clone()).unwrap_or_default();
    let stderr = lg.stderr.lock().map(|l| l.clone()).unwrap_or_default();
    report.panics = stderr.iter().filter(|l| l.contains("panicked")).count() as u64;
    report.reloads_logged = stderr.iter().filter(|l| l.contains("reload")).count() as u64;
    Ok(report)
}

/// Peak RSS of labelgate (shipped config, `mode`) under `concurrency` uploads of `size` bytes at
/// once over plain HTTP/1.1, half of them labeled: (peak KiB, answers by status).
pub async fn peak_rss(
    labelgate: &Path,
    work: &Path,
    concurrency: usize,
    size: usize,
    mode: &str,
) -> Result<(u64, BTreeMap<u16, u64>), CampaignError> {
    std::fs::create_dir_all(work).map_err(io("work directory"))?;
    let (server_tls, origin_ca_pem) = labelgate_testkit::loopback_server_tls(&[b"http/1.1"]);
    let origin_ca = work.join("origin-ca.pem");
    std::fs::write(&origin_ca, &origin_ca_pem).map_err(io("origin CA"))?;
    let checking = origin::checking(server_tls).await.map_err(io("checking origin"))?;
    let config = SHIPPED_CONFIG.replacen("\nallow_destinations = []", "\nallow_destinations = [\"127.0.0.0/8\"]", 1).replacen(
        "\nmode = \"hold\"",
        &format!("\nmode = \"{mode}\""),
        1,
    );
    let (mut lg, proxy, _) = start(labelgate, work, &config, &origin_ca)?;
    let bodies: Vec<Sample> = [false, true].iter().map(|&labeled| sample(docx_of(size, labeled, 77), labeled, false)).collect();
    let bodies = Arc::new(bodies);
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    let answers = Arc::new(Mutex::new(BTreeMap::new()));
    let peak = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|n| {
            let (bodies, barrier, answers, plain) = (Arc::clone(&bodies), Arc::clone(&barrier), Arc::clone(&answers), checking.plain);
            tokio::spawn(async move {
                let conn = client::h1_from(client_addr(n), proxy).await;
                barrier.wait().await;
                let status = match conn {
                    Ok(mut c) => {
                        let s = &bodies[n % 2];
                        let headers = [("x-expect-sha256", s.sha.clone()), ("x-labeled", if s.labeled { "1" } else { "0" }.to_string())];
                        match client::upload(&mut c, &format!("http://{plain}/rss/{n}"), s.bytes.clone(), &headers, CLIENT_DEADLINE * 3)
                            .await
                        {
                            Ok(a) => a.status.as_u16(),
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                if let Ok(mut a) = answers.lock() {
                    *a.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let pid = lg.pid;
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(peak_rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    sampler.abort();
    let hwm = peak_rss_kib(pid).max(peak.load(Ordering::Relaxed));
    signal(pid, "-TERM");
    let _ = tokio::task::spawn_blocking(move || lg.child.wait()).await;
    let answers = answers.lock().map(|a| a.clone()).unwrap_or_default();
    Ok((hwm, answers))
}
