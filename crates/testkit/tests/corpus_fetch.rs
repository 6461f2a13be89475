//! The corpus's provenance (corpus/provenance.tsv) and scripts/corpus.sh's fetch path, tested
//! against a loopback mirror. The mirror holds the corpus files from `labelgate_testkit::corpus_dir()`,
//! laid out as `{repo}/{commit}/{path}` like raw.githubusercontent.com, and Python's http.server
//! serves it on 127.0.0.1. The script fetches every file into a fresh cache and byte-checks each
//! one. A second run fetches nothing. A file whose bytes differ from its SHA-256 is refused, and
//! so is a file the mirror does not have.

use labelgate_testkit::corpus_dir;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The repository root (crates/testkit → ../..).
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A static file server on 127.0.0.1 at a port the kernel picks. It prints that port as its first
/// line of output and logs one line per request on stderr.
const SERVER: &str = r#"
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Row {
    file: String,
    repo: String,
    path: String,
    commit: String,
    sha256: String,
    size: u64,
}

fn provenance() -> Vec<Row> {
    let text = std::fs::read_to_string(format!("{REPO}/corpus/provenance.tsv")).expect("corpus/provenance.tsv is readable");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("file\tsource_repo\tsource_path\tsource_commit\tsha256\tsize"), "provenance.tsv header");
    lines
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), 6, "provenance.tsv row: {line}");
            Row {
                file: c[0].to_string(),
                repo: c[1].to_string(),
                path: c[2].to_string(),
                commit: c[3].to_string(),
                sha256: c[4].to_string(),
                size: c[5].parse().unwrap_or_else(|e| panic!("provenance.tsv size {:?}: {e}", c[5])),
            }
        })
        .collect()
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn provenance_matches_the_manifest_and_the_corpus() {
    let corpus = corpus_dir();
    // The repository's copies are byte-exact: the tests compare labels against the manifest.
    for name in ["manifest.tsv", "exiftool_msip.json"] {
        let ours = Path::new(REPO).join("corpus").join(name);
        assert!(read(&ours) == read(&corpus.join(name)), "corpus/{name} differs from the corpus's");
    }
    let manifest = std::fs::read_to_string(corpus.join("manifest.tsv")).expect("manifest.tsv is readable");
    let sources: Vec<Vec<&str>> = manifest.lines().skip(1).map(|l| l.split('\t').take(4).collect()).collect();
    let rows = provenance();
    assert_eq!(rows.len(), 72, "72 corpus files");
    assert_eq!(rows.len(), sources.len(), "one provenance row per manifest row");
    let on_disk = std::fs::read_dir(corpus.join("files")).expect("files dir").count();
    assert_eq!(on_disk, rows.len(), "every corpus file has a provenance row");
    for (row, source) in rows.iter().zip(&sources) {
        let ours = [row.file.as_str(), row.repo.as_str(), row.path.as_str(), row.commit.as_str()];
        assert_eq!(ours.as_slice(), source.as_slice(), "{}: provenance and manifest agree", row.file);
        assert!(is_lower_hex(&row.commit, 40), "{}: commit {}", row.file, row.commit);
        assert!(is_lower_hex(&row.sha256, 64), "{}: sha256 {}", row.file, row.sha256);
        assert!(!row.path.starts_with('/') && !row.path.split('/').any(|s| s.is_empty() || s == "." || s == ".."), "{}", row.path);
        let file = corpus.join("files").join(&row.file);
        assert_eq!(std::fs::metadata(&file).map(|m| m.len()).ok(), Some(row.size), "{}: size", file.display());
    }
}

/// A directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("labelgate-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The mirror's HTTP server, killed (and reaped) on drop.
struct Mirror {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Mirror {
    fn start(root: &Path, log: PathBuf) -> Mirror {
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("python3")
            .arg("-u")
            .arg("-c")
            .arg(SERVER)
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("python3 runs (scripts/test.sh installs it)");
        let mut mirror = Mirror { child, port: 0, log };
        // The port is the first line of output: the socket is bound and listening by then. The
        // line is read on a thread so that the wait is bounded.
        let stdout = mirror.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading the mirror's port: {e}"),
            Err(e) => panic!("the mirror printed no port within 60 s ({e}); its log: {}", mirror.log_text()),
        };
        let port: Result<u16, _> = line.trim().parse();
        mirror.port = port.unwrap_or_else(|e| panic!("the mirror's port {line:?}: {e}; its log: {}", mirror.log_text()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, mirror.port));
        TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap_or_else(|e| panic!("the mirror at {addr} answers: {e}"));
        mirror
    }

    fn source(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Requests served so far: the server logs each one before it sends the body, so every
    /// download the script finished is counted.
    fn gets(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("\"GET ")).count()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// scripts/corpus.sh in fetch mode against `source`. It gets a bounded time, no proxy and no
/// ~/.curlrc.
fn fetch(source: &str, cache: &Path, curl_home: &Path) -> Output {
    Command::new("timeout")
        .args(["--kill-after=10", "600", "bash"])
        .arg(format!("{REPO}/scripts/corpus.sh"))
        .env("LABELGATE_CORPUS_FETCH", "1")
        .env("LABELGATE_CORPUS_SOURCE", source)
        .env("LABELGATE_CORPUS_CACHE", cache)
        .env("CURL_HOME", curl_home)
        .env("no_proxy", "*")
        .env("NO_PROXY", "*")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("timeout and bash run scripts/corpus.sh")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_fetch_path_against_a_loopback_mirror() {
    let corpus = corpus_dir();
    let rows = provenance();
    let scratch = Scratch::new("corpus-fetch");
    let mirror_root = scratch.0.join("mirror");
    let cache = scratch.0.join("cache");
    let curl_home = scratch.0.join("curl-home");
    std::fs::create_dir_all(&curl_home).unwrap();

    // The mirror: copies, never links, since one file is corrupted below.
    let at = |row: &Row| mirror_root.join(&row.repo).join(&row.commit).join(&row.path);
    for row in &rows {
        let dest = at(row);
        std::fs::create_dir_all(dest.parent().expect("a path under the mirror")).unwrap();
        std::fs::copy(corpus.join("files").join(&row.file), dest).unwrap_or_else(|e| panic!("{}: {e}", row.file));
    }
    let mirror = Mirror::start(&mirror_root, scratch.0.join("mirror.log"));
    let source = mirror.source();

    // A fresh cache: every file is fetched and verified, and the printed directory is the cache.
    let out = fetch(&source, &cache, &curl_home);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "first run: {}\n{stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout:?}");
    let printed = PathBuf::from(stdout.trim_end_matches('\n'));
    assert!(printed.is_absolute(), "an absolute path: {}", printed.display());
    assert_eq!(std::fs::canonicalize(&printed).unwrap(), std::fs::canonicalize(&cache).unwrap(), "the cache is printed");
    assert!(stderr.contains(&format!("{} fetched, 0 already cached, 0 failed", rows.len())), "{stderr}");
    for name in ["manifest.tsv", "exiftool_msip.json"] {
        assert!(read(&printed.join(name)) == read(&corpus.join(name)), "{name} is the corpus's");
    }
    assert_eq!(std::fs::read_dir(printed.join("files")).unwrap().count(), rows.len(), "files/ holds exactly the corpus");
    for row in &rows {
        let (got, want) = (printed.join("files").join(&row.file), corpus.join("files").join(&row.file));
        assert!(read(&got) == read(&want), "{}: byte-identical", row.file);
    }
    let served = mirror.gets();
    assert!(served >= rows.len(), "a GET per file: {}", mirror.log_text());

    // A second run finds everything in place and downloads nothing.
    let out = fetch(&source, &cache, &curl_home);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "second run: {}\n{stderr}", out.status);
    assert!(stderr.contains(&format!("0 fetched, {} already cached, 0 failed", rows.len())), "{stderr}");
    assert_eq!(mirror.gets(), served, "no GET on the second run: {}", mirror.log_text());

    // The mirror serves other bytes for a file the cache lacks: the script refuses them, naming
    // the file, the URL and both SHA-256 values, and leaves nothing in files/.
    let bad = &rows[0];
    let mut corrupt = read(&at(bad));
    corrupt.extend_from_slice(b"corrupted");
    std::fs::remove_file(at(bad)).unwrap();
    std::fs::write(at(bad), corrupt).unwrap();
    std::fs::remove_file(cache.join("files").join(&bad.file)).unwrap();
    let out = fetch(&source, &cache, &curl_home);
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "a corrupted file must fail the run: {stderr}");
    assert!(stderr.contains(&format!("FAILED {}: SHA-256 differs", bad.file)), "{stderr}");
    assert!(stderr.contains(&format!("{source}/{}/{}/", bad.repo, bad.commit)), "the URL is named: {stderr}");
    assert!(stderr.contains(&format!("expected {}, actual ", bad.sha256)), "{stderr}");
    assert!(!cache.join("files").join(&bad.file).exists(), "the corrupted download is not moved into the cache");
    assert_eq!(mirror.gets(), served + 1, "only the missing file is requested: {}", mirror.log_text());

    // A file the mirror lacks (404; its path has a space, sent as %20) fails the run too.
    let gone = rows.iter().find(|r| r.path.contains(' ')).expect("a corpus path with a space");
    std::fs::remove_file(at(gone)).unwrap();
    std::fs::remove_file(cache.join("files").join(&gone.file)).unwrap();
    let out = fetch(&source, &cache, &curl_home);
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "a missing file must fail the run: {stderr}");
    assert!(stderr.contains(&format!("FAILED {}: download from {source}/{}/{}/", gone.file, gone.repo, gone.commit)), "{stderr}");
    assert!(stderr.contains("%20"), "the path is percent-encoded: {stderr}");
    assert!(stderr.contains(&format!("FAILED {}: SHA-256 differs", bad.file)), "every failure is reported: {stderr}");
    let mut left: Vec<String> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["exiftool_msip.json", "files", "manifest.tsv"], "no download scratch is left in the cache");
    assert_eq!(std::fs::read_dir(cache.join("files")).unwrap().count(), rows.len() - 2);
    drop(mirror);
}
