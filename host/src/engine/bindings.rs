//! Host bindings generated from `wit/`, the single source of the guest ABI.
//!
//! One `bindgen!` of the `sdk-async` world (the union of wasmhost's worlds and the async
//! handlers) generates every type once; each exported interface is then looked up on its own, so a component needs only
//! the exports its endpoints use.

// Generated code carries the WIT's own docs, not one on every item.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmhost:guest/sdk-async",
    imports: { default: async | trappable },
    exports: { default: async },
    // The fuzzer feeds `describe`'s records as JSON; a unit test keeps that path honest.
    additional_derives: [serde::Deserialize],
    with: {
        "wasmhost:guest/asgi-channel.channel": super::channel::ChannelEntry,
        "wasmhost:guest/wsgi-io.input": super::channel::InputEntry,
        "wasmhost:guest/wsgi-io.output": super::channel::OutputEntry,
        "wasmhost:gpu": crate::capabilities::gpu::bindings::wasmhost::gpu,
        "wasmhost:guest/host": crate::capabilities::broker::bindings::host,
    },
});

pub use self::wasmhost::guest::asgi_types;
pub use self::wasmhost::guest::types::{Request, Response};
pub use self::wasmhost::guest::wsgi_types::Environ;
pub use exports::wasmhost::guest::asgi_app::GuestIndices as AsgiIndices;
pub use exports::wasmhost::guest::describe::GuestIndices as DescribeIndices;
pub use exports::wasmhost::guest::endpoint_handler::GuestIndices as HandlerIndices;
pub use exports::wasmhost::guest::endpoint_handler_async::GuestIndices as AsyncHandlerIndices;
pub use exports::wasmhost::guest::function_handler::{
    CallError as GuestCallError, GuestIndices as FunctionIndices,
};
pub use exports::wasmhost::guest::function_handler_async::GuestIndices as AsyncFunctionIndices;
pub use exports::wasmhost::guest::init::GuestIndices as InitIndices;
pub use exports::wasmhost::guest::lifecycle::GuestIndices as LifecycleIndices;
pub use exports::wasmhost::guest::wsgi_app::GuestIndices as WsgiIndices;

/// The interface a component exports to describe itself.
pub const DESCRIBE: &str = "wasmhost:guest/describe@0.1.0";
/// The interface serving `function` and `method` endpoints.
pub const ENDPOINT_HANDLER: &str = "wasmhost:guest/endpoint-handler@0.1.0";
/// The interface serving callable functions.
pub const FUNCTION_HANDLER: &str = "wasmhost:guest/function-handler@0.1.0";
/// The interface serving typed endpoints whose handlers may await.
pub const ENDPOINT_HANDLER_ASYNC: &str = "wasmhost:guest/endpoint-handler-async@0.1.0";
/// The interface serving callable functions whose handlers may await.
pub const FUNCTION_HANDLER_ASYNC: &str = "wasmhost:guest/function-handler-async@0.1.0";
/// The interface with pre-initialisation work.
pub const INIT: &str = "wasmhost:guest/init@0.1.0";
/// The interface with class hooks.
pub const LIFECYCLE: &str = "wasmhost:guest/lifecycle@0.1.0";
/// The interface serving ASGI-like apps.
pub const ASGI_APP: &str = "wasmhost:guest/asgi-app@0.1.0";
/// The interface serving WSGI-like apps.
pub const WSGI_APP: &str = "wasmhost:guest/wsgi-app@0.1.0";
/// Prefix of the standard `wasi:http` handler export (any 0.2 patch version).
pub const INCOMING_HANDLER_PREFIX: &str = "wasi:http/incoming-handler@0.2.";

/// The export that makes a component a WASIp3 `wasi:http` service, any 0.3.x version.
pub const HANDLER_P3_PREFIX: &str = "wasi:http/handler@0.3.";
/// Prefix of the `wasi:cli/run` export of a command (any 0.2 patch version).
pub const CLI_RUN_PREFIX: &str = "wasi:cli/run@0.2.";
