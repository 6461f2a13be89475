//! The incremental index (`--incremental`): what the extractor found in each file, keyed by the
//! file's identity and state (device, inode, size, modification and change times) and by the
//! extractor's settings, in one `redb` database under the state directory. A file whose key is
//! found is not opened. Verdicts are never cached: policy is evaluated on every run, so a policy
//! change applies to cached files. Memory stays bounded: the database is read and written
//! through its page cache, never loaded whole.

use crate::walk::FileEntry;
use crate::Extracted;
use redb::{Database, TableDefinition};
use std::path::Path;

const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("files");

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database cannot be opened, read or written.
    #[error("the scan index {path}: {why}")]
    Db {
        /// Its file.
        path: String,
        /// What went wrong.
        why: String,
    },
}

/// The index, open for this run.
pub struct Index {
    db: Database,
    path: String,
    /// The extractor's settings, part of every key: other settings, other results.
    settings: [u8; 8],
}

/// The key of one file under the given settings.
pub type Key = [u8; 8 + 8 + 8 + 8 + 16 + 16];

impl Index {
    /// Opens (or creates) the index at `path`; `settings` names everything that changes what the
    /// extractor reports (limits, the engine's version).
    pub fn open(path: &Path, settings: &str) -> Result<Index, IndexError> {
        let shown = path.display().to_string();
        let err = |why: String| IndexError::Db { path: shown.clone(), why };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| err(e.to_string()))?;
        // Which files carry which labels is itself sensitive: the index is the owner's only.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| err(e.to_string()))?;
        }
        let w = db.begin_write().map_err(|e| err(e.to_string()))?;
        w.open_table(FILES).map_err(|e| err(e.to_string()))?;
        w.commit().map_err(|e| err(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, settings.as_bytes());
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest.as_ref()[..8]);
        Ok(Index { db, path: shown, settings: fingerprint })
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

    /// A view of the index as it was when the scan began: one read transaction for all the
    /// lookups of a worker (what the scan writes meanwhile is for the next run).
    pub fn reader(&self) -> Result<Reader, IndexError> {
        let err = |why: String| IndexError::Db { path: self.path.clone(), why };
        let txn = self.db.begin_read().map_err(|e| err(e.to_string()))?;
        let table = txn.open_table(FILES).map_err(|e| err(e.to_string()))?;
        Ok(Reader { table, path: self.path.clone() })
    }

    /// Gives back the space of pages the scan's commits replaced (run once the scan is over).
    pub fn compact(&mut self) -> Result<(), IndexError> {
        self.db.compact().map(|_| ()).map_err(|e| IndexError::Db { path: self.path.clone(), why: e.to_string() })
    }

    /// Stores a batch of results in one transaction.
    pub fn put(&self, batch: &[(Key, Vec<u8>)]) -> Result<(), IndexError> {
        let err = |why: String| IndexError::Db { path: self.path.clone(), why };
        let w = self.db.begin_write().map_err(|e| err(e.to_string()))?;
        {
            let mut table = w.open_table(FILES).map_err(|e| err(e.to_string()))?;
            for (key, value) in batch {
                table.insert(key.as_slice(), value.as_slice()).map_err(|e| err(e.to_string()))?;
            }
        }
        w.commit().map_err(|e| err(e.to_string()))
    }
}

/// One worker's view of the index.
pub struct Reader {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    path: String,
}

impl Reader {
    /// What was found in the file with this key, if it is known and still readable.
    pub fn get(&self, key: &Key) -> Result<Option<Extracted>, IndexError> {
        let Some(value) = self.table.get(key.as_slice()).map_err(|e| IndexError::Db { path: self.path.clone(), why: e.to_string() })?
        else {
            return Ok(None);
        };
        // An entry this version cannot read is a miss, not an error: the file is read again.
        Ok(serde_json::from_slice(value.value()).ok())
    }
}
