//! Cranelift's incremental compilation cache, on disk: each compiled function under the
//! hash of its IR. Components share most of their code (every Python app carries the same
//! CPython, every JavaScript app the same StarlingMonkey), so compiling a new one mostly
//! reads functions compiled for another: a new Python app's first load takes a fraction
//! of the time a full compile does. Like the rest of the cache, only components that pass
//! every check leave their functions on disk: a refused upload stores nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::CacheStore;

/// Compiled functions in files under one directory, two hex digits of fan-out. Entries
/// are written to a temporary name and renamed, so several hosts sharing the cache
/// directory never read half an entry; a failed write only costs the next compile.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    dir: PathBuf,
    written: AtomicU64,
    /// Functions compiled since a component was last kept or refused, by path: written
    /// when the component is kept. With loads running at once, one kept may write
    /// another's and one refused may drop another's; either costs a later compile a
    /// little, never a wrong entry (entries are keyed by their IR).
    pending: Mutex<HashMap<PathBuf, Vec<u8>>>,
}

impl FunctionCache {
    /// The cache under `dir` (created as entries are written).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            written: AtomicU64::new(0),
            pending: Mutex::default(),
        }
    }

    /// Writes the functions compiled since the last [`keep`](Self::keep) or
    /// [`forget`](Self::forget): a component that uses them was accepted.
    pub(crate) fn keep(&self) {
        let pending = std::mem::take(&mut *self.lock_pending());
        for (path, value) in pending {
            self.write(&path, &value);
        }
    }

    /// Drops the functions compiled since the last keep: their component was refused.
    pub(crate) fn forget(&self) {
        self.lock_pending().clear();
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Vec<u8>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, path: &Path, value: &[u8]) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        let partial = path.with_extension(format!("{}-{n}.partial", std::process::id()));
        let written = std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&partial, value))
            .and_then(|()| std::fs::rename(&partial, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written.is_ok()
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let mut name = String::with_capacity(64);
        for byte in Sha256::digest(key) {
            let _ = write!(name, "{byte:02x}");
        }
        self.dir.join(&name[..2]).join(&name[2..])
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let path = self.path(key);
        if let Some(value) = self.lock_pending().get(&path) {
            return Some(Cow::Owned(value.clone()));
        }
        std::fs::read(path).ok().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.lock_pending().insert(self.path(key), value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_was_given_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::new(dir.path().join("functions"));
        assert!(cache.get(b"f").is_none());
        assert!(cache.insert(b"f", vec![1, 2, 3]));
        assert!(cache.insert(b"g", vec![4]));
        assert_eq!(cache.get(b"f").as_deref(), Some(&[1u8, 2, 3][..]));
        cache.keep();
        assert_eq!(cache.get(b"f").as_deref(), Some(&[1u8, 2, 3][..]));
        assert!(cache.insert(b"f", vec![5]), "a newer entry replaces it");
        cache.keep();
        assert_eq!(cache.get(b"f").as_deref(), Some(&[5u8][..]));
        // Another host on the same directory sees the entries.
        let other = FunctionCache::new(dir.path().join("functions"));
        assert_eq!(other.get(b"g").as_deref(), Some(&[4u8][..]));
    }

    #[test]
    fn functions_of_a_refused_component_never_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let functions = dir.path().join("functions");
        let cache = FunctionCache::new(functions.clone());
        cache.insert(b"f", vec![1]);
        assert_eq!(
            cache.get(b"f").as_deref(),
            Some(&[1u8][..]),
            "seen while pending"
        );
        assert!(!functions.exists(), "written before its component was kept");
        cache.forget();
        assert!(cache.get(b"f").is_none());
        cache.keep();
        assert!(!functions.exists());
    }
}
