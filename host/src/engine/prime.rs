//! Priming a deployed guest before its first request.
//!
//! A new instance's first request pays for mapping what it touches, page by page: the
//! native code it runs (on the Starlette example ~6 MiB) and the pages of its heap image
//! it reads or writes (a Python guest's first request touches ~1,000 of its ~17 MiB, some
//! 5 ms of page faults; a second request on the same instance touches a dozen). So at
//! deploy, a web app (ASGI/WSGI) gets its first instance started and warmed up — `describe`
//! runs in it, which in a Python guest sends one request no route matches through each
//! app, so no handler runs — and that instance waits in the pool for the first request,
//! as a Modal container started at deploy would, until the scale-down window retires it.
//! Other guests get one throwaway instance started (not called: instantiating maps their
//! code and memory image, which is what the first request would wait on).

use std::time::Instant;

use super::world::Prepared;
use super::{CacheOutcome, DESCRIBE_TIMEOUT, EndpointKind, Engine, LoadedComponent};

impl Engine {
    /// Warms `component` up before its first request: its first web app's first instance,
    /// kept idle, or else one throwaway instance (which has no effects). A failure only
    /// costs the first request that time; it is logged and otherwise ignored.
    pub async fn prime(&self, component: &LoadedComponent) {
        let Ok(code) = self.code(component).await else {
            return;
        };
        let Prepared::Guest(exports) = &**code else {
            return;
        };
        let started = Instant::now();
        let app = &component.manifest.app;
        let mut endpoints = component.manifest.endpoints.iter().enumerate();
        let web_app = endpoints.find_map(|(i, spec)| {
            let web = matches!(spec.kind, EndpointKind::Asgi | EndpointKind::Wsgi);
            (web && self.reusable(spec) && component.warm.idle_count(i) == 0).then_some(spec)
        });
        if let Some(spec) = web_app {
            let mut limits = self.limits_for(spec);
            limits.timeout = limits.timeout.min(DESCRIBE_TIMEOUT);
            let names = (app.as_str(), spec.name.as_str());
            let warmed = match self.new_warm(component, &code, spec, limits).await {
                Ok(mut live) => self
                    .run(&mut live, limits, names, async |store, instance| {
                        exports
                            .describe
                            .load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await
                    })
                    .await
                    .map(|_| live),
                Err(e) => Err(e),
            };
            match warmed {
                Ok(live) => {
                    self.checkin(component, spec, live).await;
                    tracing::debug!(%app, endpoint = %spec.name, "first instance warmed up in {:.2} ms", started.elapsed().as_secs_f64() * 1e3);
                }
                Err(e) => tracing::debug!(%app, "warming up the first instance failed: {e}"),
            }
            return;
        }
        // A compiled component was instantiated for `describe` at load already.
        if component.cache != CacheOutcome::Hit {
            return;
        }
        match self.warm_up(&component.wasm_engine, exports).await {
            Ok(_) => {
                tracing::debug!(%app, "primed in {:.2} ms", started.elapsed().as_secs_f64() * 1e3)
            }
            Err(e) => tracing::debug!(%app, "priming failed: {e}"),
        }
    }
}
