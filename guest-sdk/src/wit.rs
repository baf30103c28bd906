//! The records a component states about itself (`describe`), generated from
//! `wit/guest.wit`: the one definition of the manifest. The registry builds them directly,
//! the component's bindings use this module for `wasmhost:guest/types`, the host decodes
//! the same records, and componentize-py generates the Python SDK's from the same file.

// Generated code carries the WIT's own docs, not one on every item.
#![allow(missing_docs)]

wit_bindgen::generate!({
    path: "../wit",
    inline: "
        package wasmhost:sdk-types;
        world manifest { import wasmhost:guest/types@0.1.0; }
    ",
    additional_derives: [PartialEq],
    generate_all,
});

pub use self::wasmhost::guest::types;
