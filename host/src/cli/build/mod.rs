//! `wasmhost build`: turn what a user writes into a component. A guest crate directory is
//! built with cargo, a Python app (`app.py`) with componentize-py, a JavaScript app
//! (`app.js`) with componentize-js; a `.wasm` file is already a component.

use std::path::{Path, PathBuf};

mod js;
mod python;
mod rust;

/// What a CLI target names, told by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory: a guest crate built with cargo.
    Crate,
    /// A `.py` file: a Python app built with componentize-py.
    Python,
    /// A `.js` or `.mjs` file: a fetch-handler app built with componentize-js.
    JavaScript,
    /// Anything else: a component file used as it is.
    Component,
}

impl SourceKind {
    /// Classifies `target` by whether it is a directory and by its extension.
    pub fn of(target: &Path) -> SourceKind {
        if target.is_dir() {
            return SourceKind::Crate;
        }
        match target.extension().and_then(|e| e.to_str()) {
            Some("py") => SourceKind::Python,
            Some("js" | "mjs") => SourceKind::JavaScript,
            _ => SourceKind::Component,
        }
    }

    /// The files whose change calls for a rebuild when `serve` watches `target`:
    /// the directory itself for crates and apps (their modules and dependency lists
    /// sit beside them), the file alone for a component.
    pub fn watch_whole_dir(self) -> bool {
        self != SourceKind::Component
    }
}

/// Builds `target` into a component when it is source code and returns the `.wasm` path;
/// a component file is returned as it is.
pub fn build_guest(target: &Path) -> anyhow::Result<PathBuf> {
    match SourceKind::of(target) {
        SourceKind::Crate => rust::build_crate(target),
        SourceKind::Python => python::build_app(target),
        SourceKind::JavaScript => js::build_app(target),
        SourceKind::Component => Ok(target.to_owned()),
    }
}

/// Where wasmhost keeps the tools it installs for building guests (componentize-py,
/// componentize-js) and what they produce, shared by every command.
pub fn tools_dir() -> PathBuf {
    super::default_cache_dir().join("tools")
}
