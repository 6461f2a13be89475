//! The incremental index (`--incremental`): what the extractor found in each file, keyed by the
//! file's identity and state (device, inode, size, modification and change times) and by the
//! extractor's settings, in an LMDB environment under the state directory (`heed`). A file whose
//! key is found is not opened. Verdicts are never cached: policy is evaluated on every run, so a
//! policy change applies to cached files. Lookups read the memory-mapped file in place (no copy,
//! no allocation per page), and memory stays bounded: the map is the kernel's page cache.

use crate::walk::FileEntry;
use crate::Extracted;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, WithTls};
use std::path::Path;

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The environment cannot be opened, read or written.
    #[error("the scan index {path}: {why}")]
    Db {
        /// Its directory.
        path: String,
        /// What went wrong.
        why: String,
    },
}

/// The address space the index may grow into (a reservation, not memory: the file grows as
/// entries are written).
const MAP_SIZE: usize = 1 << 40;

/// Read views at once: one per worker (`--jobs` allows 512), with room for scans in parallel.
const MAX_READERS: u32 = 2048;

/// The index, open for this run.
pub struct Index {
    env: Env,
    files: Database<Bytes, Bytes>,
    path: String,
    /// The extractor's settings, part of every key: other settings, other results.
    settings: [u8; 8],
}

/// The key of one file under the given settings.
pub type Key = [u8; 8 + 8 + 8 + 8 + 16 + 16];

impl Index {
    /// Opens (or creates) the index in the directory `path`; `settings` names everything that
    /// changes what the extractor reports (limits, the engine's version).
    pub fn open(path: &Path, settings: &str) -> Result<Index, IndexError> {
        let shown = path.display().to_string();
        let err = |why: String| IndexError::Db { path: shown.clone(), why };
        std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
        // Which files carry which labels is itself sensitive: the index is the owner's only.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| err(e.to_string()))?;
        }
        // SAFETY: heed requires that the environment is not opened twice in one process and
        // that its files are not modified by other means while mapped; the scan opens it once,
        // and the directory is the state directory's own (0700).
        let env = unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(1).max_readers(MAX_READERS).open(path) }
            .map_err(|e| err(e.to_string()))?;
        let mut w = env.write_txn().map_err(|e| err(e.to_string()))?;
        let files = env.create_database(&mut w, Some("files")).map_err(|e| err(e.to_string()))?;
        w.commit().map_err(|e| err(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, settings.as_bytes());
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest.as_ref()[..8]);
        Ok(Index { env, files, path: shown, settings: fingerprint })
    }

    /// The key of `file`.
    pub fn key(&self, file: &FileEntry) -> Key {
        let mut k = [0u8; 64];
        k[..8].copy_from_slice(&self.settings);
        k[8..16].copy_from_slice(&file.dev.to_le_bytes());
        k[16..24].copy_from_slice(&file.ino.to_le_bytes());
        k[24..32].copy_from_slice(&file.size.to_le_bytes());
        k[32..48].copy_from_slice(&file.mtime_ns.to_le_bytes());
        k[48..64].copy_from_slice(&file.ctime_ns.to_le_bytes());
        k
    }

    /// A view of the index as it was when the worker began: one read transaction for all its
    /// lookups (what the scan writes meanwhile is for the next run). Made on the worker's own
    /// thread.
    pub fn reader(&self) -> Result<Reader<'_>, IndexError> {
        let txn = self.env.read_txn().map_err(|e| IndexError::Db { path: self.path.clone(), why: e.to_string() })?;
        Ok(Reader { txn, files: self.files, path: &self.path })
    }

    /// Stores a batch of results in one transaction.
    pub fn put(&self, batch: &[(Key, Vec<u8>)]) -> Result<(), IndexError> {
        let err = |why: String| IndexError::Db { path: self.path.clone(), why };
        let mut w = self.env.write_txn().map_err(|e| err(e.to_string()))?;
        for (key, value) in batch {
            self.files.put(&mut w, key.as_slice(), value.as_slice()).map_err(|e| err(e.to_string()))?;
        }
        w.commit().map_err(|e| err(e.to_string()))
    }
}

/// One worker's view of the index.
pub struct Reader<'a> {
    txn: RoTxn<'a, WithTls>,
    files: Database<Bytes, Bytes>,
    path: &'a str,
}

impl Reader<'_> {
    /// What was found in the file with this key, if it is known and still readable.
    pub fn get(&self, key: &Key) -> Result<Option<Extracted>, IndexError> {
        let value =
            self.files.get(&self.txn, key.as_slice()).map_err(|e| IndexError::Db { path: self.path.to_string(), why: e.to_string() })?;
        // An entry this version cannot read is a miss, not an error: the file is read again.
        Ok(value.and_then(Extracted::from_index))
    }
}
