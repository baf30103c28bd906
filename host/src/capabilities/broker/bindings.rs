//! Host bindings of `wasmhost:guest/host` (a guest's `spawn`/`poll`), generated from
//! `wit/guest.wit`; the engine's bindings use this module for that interface.

// Generated code carries the WIT's own docs, not one on every item.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package wasmhost:broker;
        world broker { import wasmhost:guest/host@0.1.0; }
    ",
    imports: { default: async | trappable },
});

pub use self::wasmhost::guest::{host, types};
