//! Shared helpers for labelgate's criterion benches (see `extract.rs`).

use std::path::PathBuf;

/// The shared corpus directory (`../shared/corpus/files` beside the repository).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/files")
}

/// Corpus files whose names start with `prefix` and end with one of `exts`, sorted.
pub fn corpus_files(prefix: &str, exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with(prefix) && exts.iter().any(|e| name.ends_with(e))
        })
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), std::fs::read(&p).ok()?)))
        .collect();
    out.sort();
    out
}
