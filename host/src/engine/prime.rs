//! Priming a deployed guest: one throwaway instance runs `describe` before the first
//! request arrives.
//!
//! The first instance of a component in a process pays for mapping its memory image and
//! its code, page by page: on the Starlette example that is ~1,500 page faults (17 MiB of
//! the image and 6 MiB of code) and most of the first request's time, while every later
//! instance, placed in the same pool slot by the pooling allocator's module affinity,
//! finds the pages mapped. When the manifest comes from the cache, no instance ran at
//! load; priming gives the first request the slot a later one would get. (wasmtime keeps
//! its free slots in one shard per thread: a first request served on another worker
//! thread than the priming one misses the primed slot and still pays.)

use std::time::Instant;

use super::world::Prepared;
use super::{CacheOutcome, Engine, LoadedComponent};

impl Engine {
    /// Instantiates `component` once and runs its `describe` (which has no effects), so
    /// its first request finds a slot with its image and code mapped. A failure only
    /// costs the first request that time; it is logged and otherwise ignored.
    pub async fn prime(&self, component: &LoadedComponent) {
        let Ok(code) = self.code(component).await else {
            return;
        };
        let Prepared::Guest(exports) = &*code else {
            return;
        };
        // A compiled component ran `describe` at load already.
        if component.cache != CacheOutcome::Hit {
            return;
        }
        let started = Instant::now();
        match self.describe(&component.wasm_engine, exports).await {
            Ok(_) => tracing::debug!(
                app = %component.manifest.app,
                "primed in {:.2} ms",
                started.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => tracing::debug!(app = %component.manifest.app, "priming failed: {e}"),
        }
    }
}
