//! Helpers for tests of Python guests: `wasmhost build app.py` with a tools directory kept
//! under the test tmpdir (componentize-py's venv, dependencies, extensions built for WASI
//! and components survive between runs, like the native-code cache).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::root;

/// The `XDG_CACHE_HOME` of the tests' wasmhost commands.
pub fn tools_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-tools")
}

/// Runs `wasmhost <args>` with the tests' tools directory: success and all it printed.
pub fn wasmhost_tools(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmhost"))
        .args(args)
        .env("XDG_CACHE_HOME", tools_home())
        .output()
        .expect("wasmhost runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `wasmhost build <app>` with the tests' tools directory.
pub fn build(app: &Path) -> (bool, String) {
    wasmhost_tools(&["build", &app.to_string_lossy()])
}

/// Whether a Python to install componentize-py with exists; outside CI its absence skips
/// the test with a notice, in CI it fails it.
pub fn python_available(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with venv is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping {test}: no python3 with the venv module on this machine");
    }
    found
}

/// One build at a time in a test process: the first one installs componentize-py, and
/// one may build an extension for WASI that the others then reuse.
pub fn build_lock() -> MutexGuard<'static, HashMap<String, PathBuf>> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    built.lock().unwrap_or_else(|p| p.into_inner())
}

/// The component of `examples/python/<name>/app.py`, built once per test process.
pub fn python_example(name: &str) -> PathBuf {
    let mut built = build_lock();
    if let Some(wasm) = built.get(name) {
        return wasm.clone();
    }
    let app = root().join("examples/python").join(name).join("app.py");
    let (ok, text) = build(&app);
    assert!(ok, "building {}:\n{text}", app.display());
    let wasm = built_component(&text);
    assert!(wasm.is_file(), "{text}");
    built.insert(name.to_owned(), wasm.clone());
    wasm
}

/// The component a successful build printed (its one line on stdout, among stderr's notes).
pub fn built_component(output: &str) -> PathBuf {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(".wasm") && Path::new(l).is_file())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the build printed no component:\n{output}"))
}
