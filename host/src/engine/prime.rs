//! Priming a deployed guest: one throwaway instance runs `describe` before the first
//! request arrives.
//!
//! The first request of a component in a process pays for mapping the native code it
//! runs, page by page (on the Starlette example ~6 MiB of code, besides the ~17 MiB of its
//! heap image every new instance maps). When the manifest comes from the cache, no
//! instance ran at load; priming runs the guest once (a Python app's `describe` also sends
//! its warm-up request through the app), so that code is mapped before the first request.

use std::time::Instant;

use super::world::Prepared;
use super::{CacheOutcome, Engine, LoadedComponent};

impl Engine {
    /// Instantiates `component` once and runs its `describe` (which has no effects), so
    /// its first request finds its code mapped. A failure only
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
