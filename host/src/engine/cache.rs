//! On-disk cache of compiled native code, keyed by the component's hash and the engine's
//! configuration, so a second load of the same file skips Cranelift; beside it what
//! `describe` said and what loading found out, so a restart needs neither the code nor
//! the component's bytes until the first call.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::LoadError;
use super::code::CodeFacts;
use super::incremental::FunctionCache;
use crate::manifest::AppManifest;

/// Where compiled artifacts live.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    /// Cranelift's functions compiled on this engine, kept with the code that uses them.
    functions: Arc<FunctionCache>,
}

/// How a component was obtained from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Native code was loaded from disk.
    Hit,
    /// The component was compiled now and stored for next time.
    Compiled,
}

impl ArtifactCache {
    pub(crate) fn new(
        dir: PathBuf,
        engine: &wasmtime::Engine,
        functions: Arc<FunctionCache>,
    ) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
            functions,
        }
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The compiled form of the component whose sha256 is `digest`, if cached.
    pub(crate) fn lookup(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Component> {
        let path = self.path_for(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `Component::serialize` of this same engine
        // configuration (the key includes its compatibility hash), in a directory the
        // host owns; wasmtime still checks the header and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {e}");
                None
            }
        }
    }

    /// Compiles a component with Cranelift.
    pub(crate) fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Component, LoadError> {
        Component::new(engine, bytes).map_err(LoadError::Invalid)
    }

    /// Stores compiled code under `digest`; a failure only costs a recompile later.
    pub(crate) fn save(&self, digest: &str, component: &Component) {
        self.functions.keep();
        let path = self.path_for(digest);
        if let Err(e) = self.store(&path, component) {
            tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
        }
    }

    /// Drops what compiling a refused component left for the function cache.
    pub(crate) fn refused(&self) {
        self.functions.forget();
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let code = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        self.write(path, &code)
    }

    /// Whether compiled code is cached under `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.path_for(key).exists()
    }

    fn entry_path(&self, digest: &str, what: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.{what}.json", self.engine_key))
    }

    /// What the component with sha256 `digest` said in `describe`, if cached; an
    /// unreadable entry is ignored (the caller describes again).
    pub(crate) fn lookup_manifest(&self, digest: &str) -> Option<AppManifest> {
        self.lookup_entry(digest, "manifest")
    }

    /// Stores what `describe` said next to the native code; a failure only costs a
    /// `describe` call later.
    pub(crate) fn save_manifest(&self, digest: &str, manifest: &AppManifest) {
        self.save_entry(digest, "manifest", manifest);
    }

    /// What loading the component with sha256 `digest` found out without its code, if
    /// cached (an unreadable entry is ignored: the caller loads the component).
    pub(crate) fn lookup_facts(&self, digest: &str) -> Option<CodeFacts> {
        self.lookup_entry(digest, "facts")
    }

    /// Stores what loading found out unless it is stored already; a failure only costs
    /// a full load at the next restart.
    pub(crate) fn save_facts(&self, digest: &str, facts: &CodeFacts) {
        if !self.entry_path(digest, "facts").exists() {
            self.save_entry(digest, "facts", facts);
        }
    }

    fn lookup_entry<T: serde::de::DeserializeOwned>(&self, digest: &str, what: &str) -> Option<T> {
        let text = std::fs::read(self.entry_path(digest, what)).ok()?;
        serde_json::from_slice(&text)
            .inspect_err(|e| tracing::warn!(digest, "ignoring unusable cached {what}: {e}"))
            .ok()
    }

    fn save_entry<T: serde::Serialize>(&self, digest: &str, what: &str, value: &T) {
        let path = self.entry_path(digest, what);
        let written = serde_json::to_vec(value)
            .map_err(std::io::Error::other)
            .and_then(|json| self.write(&path, &json));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "could not cache the {what}: {e}");
        }
    }

    /// Writes then renames, so a crash never leaves a half-written entry under a key.
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Hex sha256 of a component's bytes.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
