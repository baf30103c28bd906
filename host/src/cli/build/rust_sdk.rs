//! The Rust guest SDK (`wasmhost-sdk`, its macros and the WIT it is built against),
//! compiled into the binary so crates made by `wasmhost new` build anywhere without a
//! checkout of this repository: the SDK is not on crates.io. It is written once to the
//! tools directory, in a folder named by a hash of its contents, with its manifests made
//! standalone (the workspace's inherited keys filled in).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::python::embedded::{File, write_all};
use super::python::{BuildError, io_error, publish_dir};

/// The SDK's sources, as `guest-sdk/` holds them.
const SDK: &[File] = embed_files!["../../../../guest-sdk/";
    "src/args/mod.rs",
    "src/args/tests.rs",
    "src/asgi/mod.rs",
    "src/asgi/socket.rs",
    "src/asgi/stream.rs",
    "src/batch.rs",
    "src/cls.rs",
    "src/component.rs",
    "src/component/apps.rs",
    "src/functions.rs",
    "src/gpu.rs",
    "src/http.rs",
    "src/invoke.rs",
    "src/json.rs",
    "src/lib.rs",
    "src/multipart.rs",
    "src/registry.rs",
    "src/respond.rs",
    "src/router.rs",
    "src/schema.rs",
    "src/task.rs",
    "src/wit.rs",
    "src/wsgi.rs",
    "macros/src/apps.rs",
    "macros/src/batched.rs",
    "macros/src/capabilities.rs",
    "macros/src/endpoint.rs",
    "macros/src/function.rs",
    "macros/src/init.rs",
    "macros/src/keys.rs",
    "macros/src/lib.rs",
    "macros/src/tests.rs",
];

/// `wit/` of the repository (the SDK reads `../wit`).
const WIT: &[File] = embed_files!["../../../../wit/";
    "guest.wit",
    "gpu.wit",
    "deps/cli.wit",
    "deps/clocks.wit",
    "deps/filesystem.wit",
    "deps/http.wit",
    "deps/io.wit",
    "deps/random.wit",
    "deps/sockets.wit",
];

const WORKSPACE: &str = include_str!("../../../../Cargo.toml");
const SDK_MANIFEST: &str = include_str!("../../../../guest-sdk/Cargo.toml");
const MACROS_MANIFEST: &str = include_str!("../../../../guest-sdk/macros/Cargo.toml");

/// The lock file the examples are built and tested with: a new crate starts from the
/// same dependency versions (and builds offline when they are in cargo's cache).
pub const EXAMPLES_LOCK: &str = include_str!("../../../../examples/Cargo.lock");

/// Writes the SDK under the tools directory unless an identical copy is there, and
/// returns the directory of the `wasmhost-sdk` crate.
pub fn rust_sdk() -> Result<PathBuf, BuildError> {
    materialize(&super::tools_dir())
}

fn materialize(root: &Path) -> Result<PathBuf, BuildError> {
    let sdk_manifest = standalone(SDK_MANIFEST)?;
    let macros_manifest = standalone(MACROS_MANIFEST)?;
    let mut hasher = Sha256::new();
    let manifests = [
        ("Cargo.toml", sdk_manifest.as_str()),
        ("macros/Cargo.toml", macros_manifest.as_str()),
    ];
    for (path, text) in SDK.iter().chain(WIT).chain(&manifests) {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let dir = root
        .join("rust-sdk")
        .join(hex::encode(&hasher.finalize()[..8]));
    if !dir.is_dir() {
        publish_dir(&dir, |tmp| {
            let crate_dir = tmp.join("guest-sdk");
            write_all(&crate_dir, SDK)?;
            for (path, text) in manifests {
                let file = crate_dir.join(path);
                std::fs::write(&file, text).map_err(io_error(&file))?;
            }
            write_all(&tmp.join("wit"), WIT)
        })?;
    }
    Ok(dir.join("guest-sdk"))
}

/// A member's manifest with every `x.workspace = true` replaced by the workspace's value.
fn standalone(member: &str) -> Result<String, BuildError> {
    let bad = |e: toml::de::Error| BuildError::Install(format!("embedded manifest: {e}"));
    let workspace: toml::Table = toml::from_str(WORKSPACE).map_err(bad)?;
    let mut manifest: toml::Table = toml::from_str(member).map_err(bad)?;
    let inherited = |section: &str| {
        workspace
            .get("workspace")
            .and_then(|w| w.get(section))
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default()
    };
    let (package, dependencies) = (inherited("package"), inherited("dependencies"));
    if let Some(toml::Value::Table(p)) = manifest.get_mut("package") {
        for (key, value) in p.iter_mut() {
            if is_inherited(value)
                && let Some(v) = package.get(key)
            {
                *value = v.clone();
            }
        }
    }
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(toml::Value::Table(deps)) = manifest.get_mut(section) else {
            continue;
        };
        for (name, value) in deps.iter_mut() {
            if !is_inherited(value) {
                continue;
            }
            let mut resolved = match dependencies.get(name) {
                Some(toml::Value::String(version)) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), toml::Value::String(version.clone()));
                    t
                }
                Some(toml::Value::Table(t)) => t.clone(),
                _ => continue,
            };
            if let toml::Value::Table(local) = value {
                for (k, v) in local.iter().filter(|(k, _)| *k != "workspace") {
                    resolved.insert(k.clone(), v.clone());
                }
            }
            *value = toml::Value::Table(resolved);
        }
    }
    toml::to_string(&manifest).map_err(|e| BuildError::Install(format!("embedded manifest: {e}")))
}

fn is_inherited(value: &toml::Value) -> bool {
    value
        .get("workspace")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every file under `dir` (relative, `/`-separated) whose name ends with `ext`.
    fn files_under(dir: &Path, ext: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.to_string_lossy().ends_with(ext) {
                    let rel = path.strip_prefix(dir).unwrap().to_string_lossy();
                    out.insert(rel.replace('\\', "/"));
                }
            }
        }
        out
    }

    #[test]
    fn the_embedded_sdk_is_the_whole_sdk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sdk = root.join("guest-sdk");
        let on_disk: BTreeSet<String> = files_under(&sdk.join("src"), ".rs")
            .into_iter()
            .map(|f| format!("src/{f}"))
            .chain(
                files_under(&sdk.join("macros/src"), ".rs")
                    .into_iter()
                    .map(|f| format!("macros/src/{f}")),
            )
            .collect();
        let embedded: BTreeSet<String> = SDK.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(embedded, on_disk, "list every SDK source file in SDK");
        let wit: BTreeSet<String> = WIT.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            wit,
            files_under(&root.join("wit"), ".wit"),
            "list every WIT file"
        );
    }

    #[test]
    fn manifests_stand_alone() {
        for member in [SDK_MANIFEST, MACROS_MANIFEST] {
            let text = standalone(member).unwrap();
            assert!(!text.contains("workspace"), "{text}");
            let table: toml::Table = toml::from_str(&text).unwrap();
            assert!(table["package"]["edition"].is_str(), "{text}");
        }
        let sdk: toml::Table = toml::from_str(&standalone(SDK_MANIFEST).unwrap()).unwrap();
        assert_eq!(
            sdk["dependencies"]["serde"]["features"][0].as_str(),
            Some("derive")
        );
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = materialize(dir.path()).unwrap();
        assert!(crate_dir.join("src/lib.rs").is_file());
        assert!(crate_dir.join("../wit/guest.wit").is_file());
        assert_eq!(materialize(dir.path()).unwrap(), crate_dir, "written once");
    }
}
