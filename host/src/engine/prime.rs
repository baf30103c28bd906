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
//! A guest whose one endpoint reuses its instances (a typed function, a wasi:http handler
//! that opted in) gets its first instance started and kept the same way, without a call:
//! instantiating maps its code and memory image, which is what the first request would
//! wait on, and the first request then starts none. Other guests get one throwaway
//! instance started.

use std::time::Instant;

use super::world::Prepared;
use super::{CacheOutcome, DESCRIBE_TIMEOUT, EndpointKind, Engine, LoadedComponent};

impl Engine {
    /// Warms `component` up before its first request: the first instance of its first web
    /// app, or else of its only endpoint where that reuses instances, kept idle; or else
    /// one throwaway instance (which has no effects). A failure only costs the first
    /// request that time; it is logged and otherwise ignored.
    pub async fn prime(&self, component: &LoadedComponent) {
        let Ok(code) = self.code(component).await else {
            return;
        };
        let Prepared::Guest(exports) = &**code else {
            return;
        };
        let started = Instant::now();
        let app = &component.manifest.app;
        // A web app first: its warm-up runs its code, not only maps it.
        let endpoints = &component.manifest.endpoints;
        let first = |web: bool| {
            endpoints.iter().enumerate().find_map(|(i, spec)| {
                let is_web = matches!(spec.kind, EndpointKind::Asgi | EndpointKind::Wsgi);
                // Async typed endpoints keep their instances apart (several calls each).
                let pooled = !(spec.kind == EndpointKind::Function && component.serves_async);
                let none_idle = component.warm.idle_count(i) == 0;
                (is_web == web && pooled && self.reusable(spec) && none_idle).then_some(spec)
            })
        };
        // Another endpoint's instance is kept only where it is the only endpoint: with
        // several, the first request could be for any of them.
        let only = endpoints.len() == 1;
        if let Some(spec) = first(true).or_else(|| first(false).filter(|_| only)) {
            let mut limits = self.limits_for(spec);
            limits.timeout = limits.timeout.min(DESCRIBE_TIMEOUT);
            let names = (app.as_str(), spec.name.as_str());
            let web = matches!(spec.kind, EndpointKind::Asgi | EndpointKind::Wsgi);
            let warmed = match self.new_warm(component, &code, spec, limits).await {
                Ok(mut live) if web => self
                    .run(&mut live, limits, names, async |store, instance| {
                        exports
                            .describe
                            .load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await
                    })
                    .await
                    .map(|_| live),
                other => other,
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
