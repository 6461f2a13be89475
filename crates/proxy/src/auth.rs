//! Proxy authentication: HTTP Basic against a users file of argon2 hashes. A verified
//! credential is cached (keyed by a SHA-256 of the credential, never the password itself) so a
//! request does not pay an argon2 verification; the user name and groups feed policy.
//!
//! Users file: one `user:argon2-hash[:group,group…]` line each; `#` comments and blank lines
//! ignored. `labelgate passwd USER` prints a line.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Groups from the users file.
    pub groups: Vec<String>,
}

struct Entry {
    hash: String,
    groups: Vec<String>,
}

/// Users allowed to use the proxy.
pub struct Users {
    entries: HashMap<String, Entry>,
    verified: Mutex<HashMap<[u8; 32], User>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes.
        f.debug_struct("Users").field("count", &self.entries.len()).finish()
    }
}

const CACHE: usize = 10_000;

impl Users {
    /// Reads a users file; errors name the file and line (never a hash).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read { path: path.display().to_string(), source })?;
        Users::parse(&text).map_err(|(line, why)| UsersError::Line { path: path.display().to_string(), line, why })
    }

    /// Parses users-file text; an error gives the line.
    pub fn parse(text: &str) -> Result<Users, (usize, String)> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let (Some(name), Some(hash)) = (fields.next(), fields.next()) else { return Err((i + 1, "expected user:hash".into())) };
            let groups =
                fields.next().map(|g| g.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
            if name.is_empty() || PasswordHash::new(hash).is_err() {
                return Err((i + 1, "not a user name and an argon2 PHC hash".into()));
            }
            if entries.insert(name.to_string(), Entry { hash: hash.to_string(), groups }).is_some() {
                return Err((i + 1, format!("user {name:?} appears twice")));
            }
        }
        Ok(Users { entries, verified: Mutex::new(HashMap::new()) })
    }

    /// Checks a `Proxy-Authorization` header value (`Basic base64(user:password)`).
    pub fn check(&self, header: Option<&str>) -> Option<User> {
        use base64::Engine;
        let value = header?.trim();
        let (scheme, b64) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &decoded).as_ref().try_into().ok()?;
        if let Some(user) = self.verified.lock().ok()?.get(&key) {
            return Some(user.clone());
        }
        let text = String::from_utf8(decoded).ok()?;
        let (name, password) = text.split_once(':')?;
        let entry = self.entries.get(name)?;
        let hash = PasswordHash::new(&entry.hash).ok()?;
        Argon2::default().verify_password(password.as_bytes(), &hash).ok()?;
        let user = User { name: name.to_string(), groups: entry.groups.clone() };
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHE {
                cache.clear();
            }
            cache.insert(key, user.clone());
        }
        Some(user)
    }
}

/// Why a users file cannot be used (never showing a hash).
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not `user:argon2-hash[:groups]`.
    #[error("{path}:{line}: {why}")]
    Line {
        /// The file.
        path: String,
        /// Its line, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// The password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// A users-file line for `user` with an argon2id hash of `password`.
pub fn hash_line(user: &str, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| HashError(e.to_string()))?;
    Ok(format!("{user}:{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(s: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s))
    }

    #[test]
    fn verifies_caches_and_rejects() {
        let line = hash_line("alice", "s3cret").unwrap();
        let users = Users::parse(&format!("# users\n{line}:finance,staff\n")).unwrap();
        let u = users.check(Some(&basic("alice:s3cret"))).expect("valid");
        assert_eq!(u.groups, ["finance", "staff"]);
        assert!(users.check(Some(&basic("alice:s3cret"))).is_some(), "cached");
        assert!(users.check(Some(&basic("alice:wrong"))).is_none());
        assert!(users.check(Some(&basic("bob:s3cret"))).is_none());
        assert!(users.check(Some("Bearer x")).is_none());
        assert!(users.check(None).is_none());
        assert!(!format!("{users:?}").contains("argon2"));
        assert_eq!(Users::parse("alice:nothash\n").err().map(|e| e.0), Some(1));
    }
}
