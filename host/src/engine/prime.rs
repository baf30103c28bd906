//! Priming a deployed guest: one throwaway instance runs `describe` before the first
//! request arrives.
//!
//! The first instance of a component in a process pays for mapping its memory image and
//! its code, page by page: on the Starlette example that is ~1,500 page faults (17 MiB of
//! the image and 6 MiB of code) and most of the first request's time, while every later
//! instance, placed in the same pool slot by the pooling allocator's module affinity,
//! finds the pages mapped. When the manifest comes from the cache, no instance ran at
//! load; priming gives the first request the slot a later one would get.

use std::time::Instant;

use super::world::Prepared;
use super::{CacheOutcome, CallContext, DESCRIBE_TIMEOUT, Engine, Limits, LoadedComponent};

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
        let limits = Limits {
            timeout: self.config.default_timeout.min(DESCRIBE_TIMEOUT),
            ..self.default_limits()
        };
        let store = self.new_store_with(
            &component.wasm_engine,
            limits,
            None,
            &CallContext::default(),
            self.no_gpu("priming cannot use the GPU"),
            self.outbound.deny_all("priming"),
        );
        let Ok(mut store) = store else {
            return;
        };
        let run = async {
            let instance = exports.pre.instantiate_async(&mut store).await?;
            exports
                .describe
                .load(&mut store, &instance)?
                .call_describe(&mut store)
                .await
        };
        match tokio::time::timeout(limits.timeout, run).await {
            Ok(Ok(_)) => tracing::debug!(
                app = %component.manifest.app,
                "primed in {:.2} ms",
                started.elapsed().as_secs_f64() * 1e3
            ),
            Ok(Err(e)) => tracing::debug!(app = %component.manifest.app, "priming failed: {e:#}"),
            Err(_) => tracing::debug!(app = %component.manifest.app, "priming timed out"),
        }
    }
}
