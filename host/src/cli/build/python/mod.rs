//! Python guests: an `app.py` built into a component with componentize-py.
//!
//! The build installs componentize-py (pinned) into a venv in the tools directory on first
//! use, reads the app's dependencies without running it, installs them for the CPython
//! inside componentize-py, writes the embedded Python SDK and WIT next to them, and builds
//! a generated entry module that imports the app, so componentize-py snapshots the
//! interpreter with everything imported. Results are cached by a hash of their inputs.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

mod deps;
pub(super) mod embedded;
mod toolchain;

use toolchain::Toolchain;

const SCAN: &str = include_str!("scan.py");
const ENTRY: &str = "wasmhost_entry";

/// Why a Python app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No usable interpreter to create the venv with.
    #[error(
        "building Python apps needs Python 3.10 or newer on the PATH to install componentize-py{}; \
         install python3 and python3-venv",
        if seen.is_empty() { String::new() } else { format!(" (found: {})", seen.join(", ")) }
    )]
    NoPython {
        /// The interpreters found, with their versions.
        seen: Vec<String>,
    },
    /// `python3 -m venv` failed.
    #[error(
        "`{} -m venv` failed: on Debian or Ubuntu install the python3-venv package",
        python.display()
    )]
    Venv {
        /// The interpreter used.
        python: PathBuf,
    },
    /// Installing componentize-py failed.
    #[error("{0}")]
    Install(String),
    /// A tool could not be started.
    #[error("cannot run {tool}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The app file does not parse.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The app file.
        file: PathBuf,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// Python's message.
        message: String,
    },
    /// The app file cannot be a module of the component.
    #[error("{}: {reason}", file.display())]
    BadName {
        /// The app file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// Its dependencies cannot be bundled.
    #[error("{0}")]
    Deps(String),
    /// componentize-py failed (importing the app, most often).
    #[error("componentize-py could not build {}:\n{output}{hint}", file.display())]
    Componentize {
        /// The app file.
        file: PathBuf,
        /// What componentize-py printed.
        output: String,
        /// Which bundled packages lack their native code, when that may be the cause.
        hint: String,
    },
}

impl BuildError {
    fn tool(tool: &'static str, source: std::io::Error) -> Self {
        Self::Tool { tool, source }
    }
}

/// Maps an I/O error on `path` to a [`BuildError`].
pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` by filling a temporary sibling and renaming it into place, so concurrent
/// builds never see half a folder; when another build got there first, its copy stays.
pub(super) fn publish_dir(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let name = dir
        .file_name()
        .unwrap_or(OsStr::new("dir"))
        .to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempdir_in(parent)
        .map_err(io_error(parent))?;
    fill(tmp.path())?;
    let tmp = tmp.keep();
    if let Err(e) = fs::rename(&tmp, dir) {
        let _ = fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(BuildError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    }
    Ok(())
}

/// Builds the Python app `file` and returns the component's path.
pub(super) fn build_app(file: &Path) -> anyhow::Result<PathBuf> {
    Ok(build(file, &super::tools_dir().join("python"))?)
}

/// The tools directory of Python builds and the interpreter of its componentize-py venv
/// (installed, saying so, on first use): what `wasmhost python build-ext` builds with.
pub(super) fn toolchain() -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = super::tools_dir().join("python");
    let python = Toolchain::ensure(&root)?.python();
    Ok((root, python))
}

/// Builds `file` with the tools and caches under `root`.
fn build(file: &Path, root: &Path) -> Result<PathBuf, BuildError> {
    let file = file.canonicalize().map_err(io_error(file))?;
    let app_dir = file.parent().unwrap_or(Path::new("/")).to_owned();
    let module = module_name(&file)?;
    let tools = Toolchain::ensure(root)?;
    let scanned = scan(&tools, &file)?;
    let requirements = deps::requirements(scanned.packages, &app_dir)?;
    let installed = if requirements.is_empty() {
        None
    } else {
        Some(deps::install(&tools, root, &requirements)?)
    };
    let sources = embedded::materialize(root)?;
    let key = cache_key(&file, &sources.digest, installed.as_ref());
    // Named after the app file, so a new build can retire the ones it replaces.
    let prefix = format!(
        "{module}-{}-",
        short_hash(file.as_os_str().as_encoded_bytes())
    );
    let out = root.join("out").join(format!("{prefix}{key}.wasm"));
    if out.is_file() {
        return Ok(out);
    }
    let entry_dir = root
        .join("entry")
        .join(format!("{key}-{}", std::process::id()));
    fs::create_dir_all(&entry_dir).map_err(io_error(&entry_dir))?;
    let entry = entry_dir.join(format!("{ENTRY}.py"));
    fs::write(&entry, entry_module(&module, &default_app_name(&file))).map_err(io_error(&entry))?;
    eprintln!("building {} with componentize-py ...", file.display());
    let tmp_out = out.with_extension(format!("{}.tmp", std::process::id()));
    let mut command = tools.componentize();
    command
        .arg("-d")
        .arg(&sources.wit)
        .args(["-w", embedded::WORLD, "componentize", ENTRY, "-p"])
        .arg(&entry_dir)
        .arg("-p")
        .arg(&app_dir);
    if let Some(installed) = &installed {
        command.arg("-p").arg(&installed.dir);
    }
    let output = command
        .arg("-p")
        .arg(&sources.sdk)
        .arg("-o")
        .arg(&tmp_out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::tool("componentize-py", e))?;
    if !output.status.success() || !tmp_out.is_file() {
        let _ = fs::remove_file(&tmp_out);
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let mut paths = vec![entry_dir.clone(), app_dir.clone()];
        paths.extend(installed.as_ref().map(|i| i.dir.clone()));
        paths.push(sources.sdk.clone());
        return Err(componentize_error(&file, &text, &paths, installed.as_ref()));
    }
    fs::rename(&tmp_out, &out).map_err(io_error(&out))?;
    let _ = fs::remove_dir_all(&entry_dir);
    remove_older(&out, &prefix);
    Ok(out)
}

/// The first 16 hex digits of the sha256 of `bytes`.
fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Removes earlier builds of the same app file (same `prefix`) beside `out`.
fn remove_older(out: &Path, prefix: &str) {
    let Some(dir) = out.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".wasm") && entry.path() != out {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The module name of the app file: its stem, which must not shadow the SDK.
fn module_name(file: &Path) -> Result<String, BuildError> {
    let stem = file
        .file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or_default()
        .to_owned();
    let bad = |reason: &str| BuildError::BadName {
        file: file.to_owned(),
        reason: reason.to_owned(),
    };
    if stem == "wasmhost" || stem == ENTRY || stem == "modal" {
        return Err(bad("rename the file: its name shadows the wasmhost SDK"));
    }
    if stem.is_empty() || stem.contains('.') {
        return Err(bad(
            "the file name must be a Python module name (like app.py)",
        ));
    }
    Ok(stem)
}

/// The app's name when `App()` gives none: the file's stem, or its folder's name for the
/// usual `app.py` / `main.py`.
fn default_app_name(file: &Path) -> String {
    let stem = file.file_stem().and_then(OsStr::to_str).unwrap_or("app");
    let name = match stem {
        "app" | "main" | "__init__" => file
            .parent()
            .and_then(Path::file_name)
            .and_then(OsStr::to_str)
            .unwrap_or(stem),
        _ => stem,
    };
    crate::engine::app_name_from_stem(name)
}

/// The generated module componentize-py builds: it imports the app at build time.
fn entry_module(module: &str, app_name: &str) -> String {
    format!(
        "# Generated by `wasmhost build`: imports the app while componentize-py builds the\n\
         # component (it snapshots the interpreter afterwards) and exports the SDK's handlers.\n\
         import sys\n\
         sys.dont_write_bytecode = True\n\
         import importlib\n\
         import wasmhost._boot as _boot\n\
         _boot.before_import({app_name:?})\n\
         importlib.import_module({module:?})\n\
         from wasmhost._exports import (  # noqa: E402,F401\n    \
             AsgiApp, Describe, EndpointHandler, FunctionHandler, Init, Lifecycle, WsgiApp,\n\
         )\n\
         _boot.after_import()\n"
    )
}

/// What `scan.py` found in the app file.
struct Scanned {
    packages: Vec<String>,
}

/// Checks the app's syntax and reads its `pip_install(...)` packages without running it.
fn scan(tools: &Toolchain, file: &Path) -> Result<Scanned, BuildError> {
    #[derive(serde::Deserialize)]
    struct Syntax {
        line: u32,
        column: u32,
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        packages: Vec<String>,
        #[serde(default)]
        dynamic_lines: Vec<u32>,
        syntax_error: Option<Syntax>,
    }
    let output = std::process::Command::new(tools.python())
        .args(["-c", SCAN])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::tool("python", e))?;
    let report: Report = serde_json::from_slice(&output.stdout).map_err(|e| BuildError::Io {
        path: file.to_owned(),
        source: std::io::Error::other(format!(
            "reading it failed: {e}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    })?;
    if let Some(s) = report.syntax_error {
        return Err(BuildError::Syntax {
            file: file.to_owned(),
            line: s.line,
            column: s.column,
            message: s.message,
        });
    }
    for line in report.dynamic_lines {
        eprintln!(
            "warning: {}:{line}: a pip_install argument is not a string literal; list it in requirements.txt",
            file.display()
        );
    }
    Ok(Scanned {
        packages: report.packages,
    })
}

/// A hash of everything the component is built from: the SDK, the dependencies, and the
/// files of the app's folder (names, sizes and modification times).
fn cache_key(file: &Path, sdk: &str, installed: Option<&deps::Installed>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{file:?}\n{sdk}\n{}\n", toolchain::COMPONENTIZE_PY));
    if let Some(installed) = installed {
        hasher.update(installed.dir.to_string_lossy().as_bytes());
    }
    let app_dir = file.parent().unwrap_or(Path::new("/"));
    let mut files = Vec::new();
    list_files(app_dir, 0, &mut files);
    files.sort();
    for (path, size, mtime) in files {
        hasher.update(format!("{path:?} {size} {mtime}\n"));
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The files under `dir` that can be part of the app, skipping caches, build output,
/// virtual environments and hidden folders.
fn list_files(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64, u128)>) {
    if depth > 8 || dir.join("pyvenv.cfg").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || matches!(&*name, "__pycache__" | "target" | "node_modules") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            list_files(&entry.path(), depth + 1, out);
        } else {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push((entry.path(), meta.len(), mtime));
        }
    }
}

/// componentize-py's failure: the app's traceback with the real paths of the folders it
/// mounted as `/0`, `/1`, ... (in `-p` order), and a word on packages bundled without
/// native code when an import failed.
fn componentize_error(
    file: &Path,
    output: &str,
    paths: &[PathBuf],
    installed: Option<&deps::Installed>,
) -> BuildError {
    // componentize-py wraps the app's traceback in its own, then repeats it ("Caused by").
    let mut output = output.split("\n\nCaused by:").next().unwrap_or(output);
    if let Some((_, inner)) = output.split_once("AssertionError: ") {
        output = inner;
    }
    let mut output = output.to_owned();
    for (i, path) in paths.iter().enumerate() {
        output = output.replace(&format!("\"/{i}/"), &format!("\"{}/", path.display()));
    }
    let mut hint = String::new();
    if let Some(installed) = installed
        && !installed.without_native.is_empty()
        && (output.contains("ImportError") || output.contains("ModuleNotFoundError"))
    {
        hint = format!(
            "\nnote: these dependencies have no pure-Python or WASI wheel and were bundled without \
             their native code, which may be what failed to import: {}",
            installed.without_native.join(", ")
        );
    }
    BuildError::Componentize {
        file: file.to_owned(),
        output: output.trim().to_owned(),
        hint,
    }
}
