//! Which world a component targets, told by its exports: a wasmhost SDK component
//! (`describe` plus the handlers its endpoints use) or a standard `wasi:http` proxy.

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p3::bindings::ServiceIndices;

use super::LoadError;
use super::bindings::{
    self, AsgiIndices, AsyncFunctionIndices, AsyncHandlerIndices, DescribeIndices, FunctionIndices,
    HandlerIndices, InitIndices, LifecycleIndices, WsgiIndices,
};
use super::state::InstanceState;
use crate::manifest::{AppManifest, EndpointKind};

/// A component prepared for instantiation, by the world it targets.
pub(crate) enum Prepared {
    /// A `wasi:http/incoming-handler` component.
    Proxy(ProxyExports),
    /// A WASIp3 `wasi:http/handler` service.
    Service(ServiceExports),
    /// A wasmhost guest: `describe` and the handler interfaces it exports.
    Guest(GuestExports),
    /// A `wasi:cli` command, served as a web server.
    Command(CommandPre<InstanceState>),
}

/// Which world a component targets, kept while its code is not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum World {
    Proxy,
    Service,
    Guest,
    Command,
}

/// Bytes of initial linear memory below which a component's instances count as cheap to
/// start ([`Prepared::starts_cheaply`]).
pub(crate) const SMALL_INSTANCE: u64 = 4 << 20;

/// Whether the largest initial memory, in wasm pages, is under [`SMALL_INSTANCE`]; unknown
/// (the component imports modules) counts as large.
fn small_memory(pages: Option<u64>) -> bool {
    pages.is_some_and(|pages| pages.saturating_mul(64 << 10) < SMALL_INSTANCE)
}

impl Prepared {
    /// The world it targets.
    pub(crate) fn world(&self) -> World {
        match self {
            Prepared::Proxy(_) => World::Proxy,
            Prepared::Service(_) => World::Service,
            Prepared::Guest(_) => World::Guest,
            Prepared::Command(_) => World::Command,
        }
    }

    /// Whether its typed endpoints are served by an async handler export.
    pub(crate) fn serves_async(&self) -> bool {
        matches!(self, Prepared::Guest(g) if g.handler_async.is_some())
    }

    /// Whether a new instance costs little next to waiting for a busy one: every memory
    /// it starts with is under [`SMALL_INSTANCE`]. Such an instance (a Rust guest, a plain
    /// wasi:http component: ~1 MiB, ~10 µs to start, tens of KiB resident) is started
    /// rather than waited for; a Python or JavaScript guest (9–25 MiB images whose first
    /// request faults in ~1,000 pages) is worth waiting for while the cores are busy.
    pub(crate) fn starts_cheaply(&self) -> bool {
        let required = self.component().resources_required();
        small_memory(required.and_then(|r| r.max_initial_memory_size))
    }

    /// The compiled component it instantiates.
    pub(crate) fn component(&self) -> &Component {
        match self {
            Prepared::Proxy(p) => p.pre.component(),
            Prepared::Service(s) => s.pre.component(),
            Prepared::Guest(g) => g.pre.component(),
            Prepared::Command(c) => c.instance_pre().component(),
        }
    }
}

/// The `wasi:http/incoming-handler` export of a proxy component, looked up once so a
/// warm instance can be called again.
pub(crate) struct ProxyExports {
    pub(crate) pre: InstancePre<InstanceState>,
    pub(crate) indices: ProxyIndices,
}

/// The `wasi:http/handler@0.3` export of a WASIp3 service, looked up once.
pub(crate) struct ServiceExports {
    pub(crate) pre: InstancePre<InstanceState>,
    pub(crate) indices: ServiceIndices,
}

/// The wasmhost interfaces a component exports, looked up once.
pub(crate) struct GuestExports {
    pub(crate) pre: InstancePre<InstanceState>,
    pub(crate) describe: DescribeIndices,
    pub(crate) handler: Option<HandlerIndices>,
    pub(crate) function: Option<FunctionIndices>,
    pub(crate) lifecycle: Option<LifecycleIndices>,
    pub(crate) asgi: Option<AsgiIndices>,
    pub(crate) wsgi: Option<WsgiIndices>,
    pub(crate) init: Option<InitIndices>,
    /// Typed endpoints whose handlers may await: called concurrently in one instance.
    pub(crate) handler_async: Option<AsyncHandlerIndices>,
    /// Functions whose handlers may await.
    pub(crate) function_async: Option<AsyncFunctionIndices>,
}

const EXPECTED: &str = "wasmhost:guest/describe@0.1.0 (a guest-sdk component), \
    wasi:http/incoming-handler@0.2.x (a standard wasi:http proxy component), \
    wasi:http/handler@0.3.x (a WASIp3 wasi:http service) or \
    wasi:cli/run@0.2.x (a command that listens on a port, served as a web server)";

/// Names the exports of `component` and prepares it for the world they match.
pub(crate) fn prepare(
    engine: &wasmtime::Engine,
    linker: &Linker<InstanceState>,
    component: &Component,
) -> Result<Prepared, LoadError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let unknown = |detail: String| unknown_world(&exports, detail);
    let has = |name: &str| exports.iter().any(|e| e == name);
    let is_proxy = exports
        .iter()
        .any(|e| e.starts_with(bindings::INCOMING_HANDLER_PREFIX));
    let is_service = exports
        .iter()
        .any(|e| e.starts_with(bindings::HANDLER_P3_PREFIX));
    let is_command = exports
        .iter()
        .any(|e| e.starts_with(bindings::CLI_RUN_PREFIX));
    if !is_proxy && !is_service && !is_command && !has(bindings::DESCRIBE) {
        return Err(unknown(String::new()));
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(LoadError::MissingImport)?;
    // A component that exports both wasi:http versions is served as WASIp3: its
    // instances take requests concurrently.
    if is_service && !has(bindings::DESCRIBE) {
        let indices = ServiceIndices::new(&pre).map_err(|e| unknown(format!(" ({e:#})")))?;
        return Ok(Prepared::Service(ServiceExports { pre, indices }));
    }
    if is_proxy && !has(bindings::DESCRIBE) {
        let indices = ProxyIndices::new(&pre).map_err(|e| unknown(format!(" ({e:#})")))?;
        return Ok(Prepared::Proxy(ProxyExports { pre, indices }));
    }
    if is_command && !has(bindings::DESCRIBE) {
        let command = CommandPre::new(pre).map_err(|e| unknown(format!(" ({e:#})")))?;
        return Ok(Prepared::Command(command));
    }
    guest_exports(pre, &exports).map(Prepared::Guest)
}

/// The world a component does not target as it should: its exports and what was expected.
fn unknown_world(exports: &[String], detail: String) -> LoadError {
    LoadError::UnknownWorld {
        exports: exports.join(", "),
        expected: format!("{EXPECTED}{detail}"),
    }
}

/// A wasmhost guest's `describe` and the handler interfaces it exports, each checked.
fn guest_exports(
    pre: InstancePre<InstanceState>,
    exports: &[String],
) -> Result<GuestExports, LoadError> {
    let has = |name: &str| exports.iter().any(|e| e == name);
    let describe =
        DescribeIndices::new(&pre).map_err(|e| unknown_world(exports, format!(" ({e:#})")))?;
    // An export that is present must have the right types; an absent one is fine until
    // an endpoint needs it (checked against the manifest below).
    let optional = |name: &str, found: wasmtime::Result<()>| -> Result<(), LoadError> {
        match found {
            Err(e) if has(name) => Err(LoadError::UnknownWorld {
                exports: exports.join(", "),
                expected: format!("{name} with the types of wasmhost:guest@0.1.0 ({e:#})"),
            }),
            _ => Ok(()),
        }
    };
    let handler = HandlerIndices::new(&pre);
    let function = FunctionIndices::new(&pre);
    let lifecycle = LifecycleIndices::new(&pre);
    let asgi = AsgiIndices::new(&pre);
    let wsgi = WsgiIndices::new(&pre);
    let init = InitIndices::new(&pre);
    let handler_async = AsyncHandlerIndices::new(&pre);
    let function_async = AsyncFunctionIndices::new(&pre);
    optional(
        bindings::ENDPOINT_HANDLER,
        handler.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(
        bindings::FUNCTION_HANDLER,
        function.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(
        bindings::LIFECYCLE,
        lifecycle.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(
        bindings::ASGI_APP,
        asgi.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(
        bindings::WSGI_APP,
        wsgi.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(bindings::INIT, init.as_ref().map(|_| ()).map_err(clone_err))?;
    optional(
        bindings::ENDPOINT_HANDLER_ASYNC,
        handler_async.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    optional(
        bindings::FUNCTION_HANDLER_ASYNC,
        function_async.as_ref().map(|_| ()).map_err(clone_err),
    )?;
    Ok(GuestExports {
        pre,
        describe,
        handler: handler.ok(),
        function: function.ok(),
        lifecycle: lifecycle.ok(),
        asgi: asgi.ok(),
        wsgi: wsgi.ok(),
        init: init.ok(),
        handler_async: handler_async.ok(),
        function_async: function_async.ok(),
    })
}

/// The custom section by which a component declares that one instance may serve request
/// after request (content ignored). It counts at the top level or in any core module, so
/// a toolchain can append it to the component or a compiler can put it in the module
/// (`#[link_section = "wasmhost:reuse"]` in Rust).
pub(crate) const REUSE_SECTION: &str = "wasmhost:reuse";

/// Whether `bytes`, a validated component, declares that its instances may be reused.
pub(crate) fn declares_reuse(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .any(|payload| {
            matches!(payload, wasmparser::Payload::CustomSection(c) if c.name() == REUSE_SECTION)
        })
}

fn clone_err(e: &wasmtime::Error) -> wasmtime::Error {
    wasmtime::format_err!("{e:#}")
}

/// A manifest that states something the component cannot serve.
fn missing(what: String, export: &'static str) -> LoadError {
    super::DescribeError::MissingExport { what, export }.into()
}

impl GuestExports {
    /// Checks that every endpoint of `manifest` has the export that serves its kind.
    pub(crate) fn check(&self, manifest: &AppManifest) -> Result<(), LoadError> {
        if manifest.pre_init && self.init.is_none() {
            return Err(missing("it has init work".into(), bindings::INIT));
        }
        if !manifest.functions.is_empty() && self.function.is_none() {
            return Err(missing(
                "it describes functions".into(),
                bindings::FUNCTION_HANDLER,
            ));
        }
        for spec in &manifest.endpoints {
            let (present, needed) = match spec.kind {
                EndpointKind::Function => (self.handler.is_some(), bindings::ENDPOINT_HANDLER),
                EndpointKind::Method => (
                    self.handler.is_some() && self.lifecycle.is_some(),
                    "wasmhost:guest/endpoint-handler@0.1.0 and wasmhost:guest/lifecycle@0.1.0",
                ),
                EndpointKind::Asgi => (self.asgi.is_some(), bindings::ASGI_APP),
                EndpointKind::Wsgi => (self.wsgi.is_some(), bindings::WSGI_APP),
                EndpointKind::Proxy | EndpointKind::Service | EndpointKind::WebServer => {
                    (false, "nothing: this kind is not one `describe` may state")
                }
            };
            if !present {
                let what = format!("endpoint {:?} is {:?}", spec.name, spec.kind);
                return Err(missing(what, needed));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_images_count_as_cheap_to_start() {
        // A Rust guest (17 pages), a componentize-py app (~21 MiB), a StarlingMonkey one.
        assert!(small_memory(Some(17)));
        assert!(!small_memory(Some(21 << 4)));
        assert!(!small_memory(Some(9 << 4)));
        assert!(!small_memory(Some(u64::MAX)));
        assert!(!small_memory(None));
    }

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128, "one-byte LEB sizes only");
        let mut out = vec![id, body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    fn custom(name: &str) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.push(1);
        section(0, &body)
    }

    const COMPONENT: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
    const MODULE: [u8; 8] = [0, b'a', b's', b'm', 1, 0, 0, 0];

    #[test]
    fn reuse_is_declared_at_the_top_or_in_a_core_module() {
        let module_with = |name: &str| [&MODULE[..], &custom(name)].concat();
        let component =
            |extra: &[u8], module: &[u8]| [&COMPONENT[..], &section(1, module), extra].concat();
        assert!(!declares_reuse(&component(&[], &MODULE)));
        assert!(!declares_reuse(&component(
            &custom("other"),
            &module_with("other")
        )));
        assert!(declares_reuse(&component(&custom(REUSE_SECTION), &MODULE)));
        assert!(declares_reuse(&component(&[], &module_with(REUSE_SECTION))));
    }
}
