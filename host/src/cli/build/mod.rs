//! `wasmhost build`: turn what a user writes into a component. A guest crate directory is
//! built with cargo, a Python app (`app.py`) with componentize-py, a JavaScript app
//! (`app.js`) with componentize-js; a `.wasm` file is already a component.

use std::path::{Path, PathBuf};

/// `&[(path, text)]`: files under `$root` (relative to the file using it), compiled in.
macro_rules! embed_files {
    ($root:literal; $($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!($root, $path)))),*]
    };
}

mod js;
mod python;
mod rust;
mod rust_sdk;
mod wasi_ext;

pub use rust_sdk::{EXAMPLES_LOCK, rust_sdk};

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

/// `wasmhost python ...`: pieces of the Python build, for CI caches and debugging.
#[derive(Debug, clap::Subcommand)]
pub enum PythonCommand {
    /// Build a PyO3 extension for WASI from its sdist (e.g. `pydantic-core==2.50.5`) into the
    /// tools cache, and print the directory to put on componentize-py's path.
    BuildExt {
        /// The package, pinned exactly: `name==version`.
        spec: String,
        /// The Python environment whose componentize-py the extension is built for
        /// [default: the one `wasmhost build app.py` uses, installed on first use].
        #[arg(long)]
        python: Option<PathBuf>,
    },
}

/// Runs a `wasmhost python` command.
pub fn python_command(command: PythonCommand) -> anyhow::Result<()> {
    match command {
        PythonCommand::BuildExt { spec, python } => {
            let (package, version) = wasi_ext::parse_pin(&spec)?;
            // The cache `wasmhost build app.py` reads, so a build made here is reused there.
            let (root, default_python) = python::toolchain()?;
            let componentize = wasi_ext::Componentize::locate(&python.unwrap_or(default_python))?;
            let dir = wasi_ext::build_extension(&root, &componentize, package, version)?;
            println!("{}", dir.display());
            Ok(())
        }
    }
}

/// Where wasmhost keeps the tools it installs for building guests (componentize-py,
/// componentize-js) and what they produce, shared by every command.
pub fn tools_dir() -> PathBuf {
    super::default_cache_dir().join("tools")
}
