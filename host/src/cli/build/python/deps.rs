//! An app's dependencies: read from `pip_install(...)` calls in its source and from a
//! `requirements.txt` beside it, resolved by pip for the CPython inside componentize-py,
//! and installed into a folder cached by a hash of the requirement list.
//!
//! A component can only run Python code and WASI extension modules. Pure-Python wheels
//! are used as they are; a package whose wheels all hold native code goes through
//! [`native_only`], the one place that decides what to do with it: PyO3 extensions are
//! rebuilt for WASI from their sdists (`wasi_ext`), others lose their native code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::super::wasi_ext::{self, Componentize, ExtError};
use super::toolchain::{COMPONENTIZE_PY, GUEST_PYTHON, Toolchain};
use super::{BuildError, io_error, publish_dir};

/// A fixed Linux platform besides `any`, so pip resolves the same set on every host: its
/// native files are never run (see [`native_only`]).
const NATIVE_PLATFORM: &str = "manylinux2014_x86_64";

/// The installed dependencies of one requirement list.
pub(super) struct Installed {
    /// The folder to put on the Python path.
    pub(super) dir: PathBuf,
    /// Packages bundled without their native extension modules.
    pub(super) without_native: Vec<String>,
}

/// The requirement list of an app: `pip_install` arguments, then `requirements.txt`.
pub(super) fn requirements(
    packages: Vec<String>,
    app_dir: &Path,
) -> Result<Vec<String>, BuildError> {
    let mut out = packages;
    let file = app_dir.join("requirements.txt");
    if file.is_file() {
        let text = fs::read_to_string(&file).map_err(io_error(&file))?;
        for line in text.lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('-') {
                return Err(BuildError::Deps(format!(
                    "{}: pip options such as `{line}` are not supported; list one requirement per line",
                    file.display()
                )));
            }
            out.push(line.to_owned());
        }
    }
    out.retain(|r| !is_builtin(r));
    out.sort();
    out.dedup();
    Ok(out)
}

/// Modal's own client and the SDK come with the component (`import wasmhost as modal`).
fn is_builtin(requirement: &str) -> bool {
    let name: String = requirement
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    matches!(name.to_ascii_lowercase().as_str(), "modal" | "wasmhost")
}

/// Installs `requirements` under `root` (once per distinct list) and returns the folder.
pub(super) fn install(
    tools: &Toolchain,
    root: &Path,
    requirements: &[String],
) -> Result<Installed, BuildError> {
    let mut hasher = Sha256::new();
    // Native extensions built for WASI belong to the componentize-py they link against.
    hasher.update(format!(
        "python {GUEST_PYTHON} componentize-py {COMPONENTIZE_PY} v2\n"
    ));
    for r in requirements {
        hasher.update(r.as_bytes());
        hasher.update(b"\n");
    }
    let dir = root.join("deps").join(hex::encode(&hasher.finalize()[..8]));
    let notes = dir.join(".wasmhost-without-native");
    if dir.is_dir() {
        let without_native = fs::read_to_string(&notes)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        return Ok(Installed {
            dir,
            without_native,
        });
    }
    eprintln!(
        "installing {} for the component ...",
        requirements.join(", ")
    );
    let mut without_native = Vec::new();
    publish_dir(&dir, |tmp| {
        let report = tmp.join(".wasmhost-pip-report.json");
        let output = tools
            .pip()
            .args(["install", "--quiet", "--no-compile", "--only-binary=:all:"])
            .args(["--python-version", GUEST_PYTHON])
            .args(["--platform", "any", "--platform", NATIVE_PLATFORM])
            .arg("--target")
            .arg(tmp)
            .arg("--report")
            .arg(&report)
            .args(requirements)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| BuildError::tool("pip", e))?;
        if !output.status.success() {
            return Err(BuildError::Deps(format!(
                "pip could not install {} for Python {GUEST_PYTHON} from wheels (packages published only \
                 as source cannot be bundled):\n{}",
                requirements.join(", "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let text = fs::read_to_string(&report).map_err(io_error(&report))?;
        let _ = fs::remove_file(&report);
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| BuildError::Deps(format!("pip's install report: {e}")))?;
        for item in &report.install {
            if !item.is_pure() && !native_only(tools, root, tmp, item)? {
                without_native.push(item.metadata.name.clone());
            }
        }
        fs::write(
            tmp.join(".wasmhost-without-native"),
            without_native.join("\n"),
        )
        .map_err(io_error(tmp))
    })?;
    Ok(Installed {
        dir,
        without_native,
    })
}

/// What `pip install --report` says it installed.
#[derive(Deserialize)]
struct Report {
    install: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Metadata,
    download_info: DownloadInfo,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
}

impl Item {
    /// Whether its wheel runs in a component as it is: pure Python, or built for WASI.
    fn is_pure(&self) -> bool {
        let file = self
            .download_info
            .url
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let platform = file
            .strip_suffix(".whl")
            .and_then(|stem| stem.rsplit('-').next())
            .unwrap_or_default();
        platform == "any" || platform.contains("wasi")
    }
}

/// Packages whose native code serves only the process around an app (uvicorn's event loop,
/// HTTP parser and reloader, FastAPI's CLI): the host serves a component, so these are
/// never built for WASI, only bundled without their native code.
const SERVER_SIDE: [&str; 5] = ["uvloop", "httptools", "watchfiles", "rignore", "fastar"];

/// A package with no pure-Python or WASI wheel. A PyO3 extension (pydantic-core, jiter,
/// ...) is built for WASI from its sdist, and returns `true`. Anything else keeps its
/// Python code without its native extension modules: packages such as MarkupSafe fall
/// back to pure Python, and one that needs its extension fails the build at import,
/// which then names it.
fn native_only(
    tools: &Toolchain,
    root: &Path,
    target: &Path,
    item: &Item,
) -> Result<bool, BuildError> {
    let Metadata { name, version } = &item.metadata;
    let files = installed_files(target, name)?;
    let built =
        if wheel_from_maturin(target, &files) && !SERVER_SIDE.contains(&normalize(name).as_str()) {
            build_for_wasi(tools, root, name, version)?
        } else {
            None
        };
    for file in &files {
        let path = target.join(file);
        let native = file.ends_with(".so") || file.contains(".so.") || file.ends_with(".pyd");
        if native && !is_wasm(&path) {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    let Some(built) = built else {
        eprintln!(
            "note: {name} {version} has no pure-Python or WASI wheel; bundling its Python code without its native extension modules"
        );
        return Ok(false);
    };
    copy_into(&built, target)?;
    Ok(true)
}

/// The directory of `name==version` built for WASI, or `None` (saying why) when this
/// recipe does not build such a package. A build that should work but failed (a compile
/// error, no network) fails the install, so that nothing without it is cached.
fn build_for_wasi(
    tools: &Toolchain,
    root: &Path,
    name: &str,
    version: &str,
) -> Result<Option<PathBuf>, BuildError> {
    let built = Componentize::locate(&tools.python())
        .map_err(|source| ExtError::Failed {
            package: name.to_owned(),
            version: version.to_owned(),
            source,
        })
        .and_then(|componentize| wasi_ext::build_extension(root, &componentize, name, version));
    match built {
        Ok(dir) => Ok(Some(dir)),
        Err(err @ ExtError::Unsupported { .. }) => {
            eprintln!("note: {err}");
            Ok(None)
        }
        Err(err) => Err(BuildError::Deps(format!("{:#}", anyhow::Error::from(err)))),
    }
}

/// Whether the wheel pip installed was made by maturin (its `WHEEL` file says so): only
/// those are Rust extensions this build knows how to redo for WASI.
fn wheel_from_maturin(target: &Path, files: &[String]) -> bool {
    files
        .iter()
        .filter(|f| f.ends_with(".dist-info/WHEEL"))
        .any(|f| fs::read_to_string(target.join(f)).is_ok_and(|t| t.contains("Generator: maturin")))
}

/// Copies the tree `from` into `to`, replacing files of the same name.
fn copy_into(from: &Path, to: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io_error(&src))?.is_dir() {
            fs::create_dir_all(&dst).map_err(io_error(&dst))?;
            copy_into(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(io_error(&dst))?;
        }
    }
    Ok(())
}

/// The files a distribution installed under `target`, from its `RECORD`.
fn installed_files(target: &Path, name: &str) -> Result<Vec<String>, BuildError> {
    let wanted = normalize(name);
    let entries = fs::read_dir(target).map_err(io_error(target))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(".dist-info") else {
            continue;
        };
        let dist = stem.rsplit_once('-').map_or(stem, |(n, _)| n);
        if normalize(dist) != wanted {
            continue;
        }
        let record = entry.path().join("RECORD");
        let text = fs::read_to_string(&record).map_err(io_error(&record))?;
        return Ok(text
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter(|p| !p.is_empty() && !p.starts_with(".."))
            .map(str::to_owned)
            .collect());
    }
    Ok(Vec::new())
}

/// PEP 503 name normalisation.
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn is_wasm(path: &Path) -> bool {
    fs::read(path).is_ok_and(|b| b.starts_with(b"\0asm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(url: &str) -> Item {
        Item {
            metadata: Metadata {
                name: "x".into(),
                version: "1".into(),
            },
            download_info: DownloadInfo { url: url.into() },
        }
    }

    #[test]
    fn wheels_that_run_in_a_component() {
        assert!(item("https://h/flask-3.1.3-py3-none-any.whl").is_pure());
        assert!(item("https://h/pydantic_core-2.5-cp314-cp314-wasi_0_0_0_wasm32.whl").is_pure());
        assert!(!item("https://h/markupsafe-3.0.4-cp314-cp314-manylinux2014_x86_64.whl").is_pure());
    }

    #[test]
    fn modal_and_comments_are_not_requirements() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("requirements.txt"),
            "# deps\nflask==3.1.3  # web\nmodal\n\nstarlette\n",
        )
        .unwrap();
        let got = requirements(vec!["flask==3.1.3".into()], dir.path()).unwrap();
        assert_eq!(got, ["flask==3.1.3", "starlette"]);
    }
}
