//! Native Python extensions inside componentize-py components. PyPI has no WASI wheels, so
//! a PyO3 extension (pydantic-core first: FastAPI needs it) is built here from its sdist with
//! stable cargo for wasm32-wasip2, linked against the `libpython3.14.so` and `libc.so` that
//! componentize-py itself carries, and cached per package, version and componentize-py
//! version: the result is a directory to put on componentize-py's Python path.

mod cargo;
mod runtime;
mod sdist;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// The file-name suffix componentize-py recognises as a CPython 3.14 extension for WASI.
const EXTENSION_SUFFIX: &str = "cpython-314-wasm32-wasi.so";
/// Bumped whenever the recipe below changes, so that builds cached by an older one are redone.
const RECIPE: u32 = 2;

/// Why a package could not be built for WASI.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExtError {
    /// The package is not something this recipe builds (not PyO3 / maturin, no sdist, ...).
    #[error("{package} {version} cannot be built for WASI: {reason}")]
    Unsupported {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// Why not.
        reason: String,
    },
    /// It should build, but the build failed.
    #[error("cannot build {package} {version} for WASI")]
    Failed {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// What failed (cargo's output, for a compile error).
        source: anyhow::Error,
    },
}

/// A refusal raised inside the build: the package is outside what the recipe can build.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// componentize-py as installed in a Python environment.
#[derive(Debug, Clone)]
pub(crate) struct Componentize {
    /// The environment's interpreter, which also runs pip.
    pub python: PathBuf,
    /// componentize-py's native module, which carries the wasm libraries.
    pub native_module: PathBuf,
    /// Its version: the libraries, and so every extension built against them, belong to it.
    pub version: String,
}

impl Componentize {
    /// Asks `python` where its componentize-py is and which version it is.
    pub(crate) fn locate(python: &Path) -> anyhow::Result<Componentize> {
        const PROBE: &str = "import componentize_py, importlib.metadata as m, os\n\
            print(os.path.dirname(componentize_py.__file__))\n\
            print(m.version('componentize-py'))";
        let out = Command::new(python)
            .args(["-c", PROBE])
            .output()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(dir), Some(version), true) = (lines.next(), lines.next(), out.status.success())
        else {
            bail!(
                "componentize-py is not installed for {}: {}",
                python.display(),
                sdist::tail(&String::from_utf8_lossy(&out.stderr), 3)
            );
        };
        Ok(Componentize {
            python: python.to_owned(),
            native_module: Path::new(dir).join("componentize_py.abi3.so"),
            version: version.trim().to_owned(),
        })
    }
}

/// Splits an exact requirement `name==version` into its parts.
pub(crate) fn parse_pin(spec: &str) -> anyhow::Result<(&str, &str)> {
    match spec.split_once("==") {
        Some((name, version)) if valid_name(name.trim()) && valid_version(version.trim()) => {
            Ok((name.trim(), version.trim()))
        }
        _ => bail!("`{spec}`: give an exact version, e.g. `pydantic-core==2.50.5`"),
    }
}

/// Returns a directory holding `package==version` built for WASI (its Python modules and
/// its `*.cpython-314-wasm32-wasi.so`), building it the first time.
pub(crate) fn build_extension(
    tools: &Path,
    componentize: &Componentize,
    package: &str,
    version: &str,
) -> Result<PathBuf, ExtError> {
    if !valid_name(package) || !valid_version(version) {
        return Err(ExtError::Unsupported {
            package: package.to_owned(),
            version: version.to_owned(),
            reason: "not a valid package name and version".into(),
        });
    }
    let cache = tools.join("python-ext");
    let dir = cache.join(cache_key(package, version, &componentize.version));
    if dir.is_dir() {
        return Ok(dir);
    }
    // A refusal is as final as a build for the same versions and recipe: remembered, so a
    // package this recipe cannot build costs one attempt, not one per app.
    let refused = cache.join(format!(
        "{}.refused",
        cache_key(package, version, &componentize.version)
    ));
    if let Ok(reason) = std::fs::read_to_string(&refused) {
        return Err(ExtError::Unsupported {
            package: package.to_owned(),
            version: version.to_owned(),
            reason,
        });
    }
    eprintln!(
        "building {package} {version} for WASI (about a minute, once; cached in {}) ...",
        cache.display()
    );
    let started = Instant::now();
    build_into(&cache, &dir, componentize, package, version).map_err(|source| {
        let (package, version) = (package.to_owned(), version.to_owned());
        match source.downcast::<Refused>() {
            Ok(Refused(reason)) => {
                let _ = std::fs::write(&refused, &reason);
                ExtError::Unsupported {
                    package,
                    version,
                    reason,
                }
            }
            Err(source) => ExtError::Failed {
                package,
                version,
                source,
            },
        }
    })?;
    eprintln!(
        "built {package} {version} for WASI in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// The cache entry's name: the normalised package name, its version, and what it was
/// built against and how.
fn cache_key(package: &str, version: &str, componentize_version: &str) -> String {
    format!(
        "{}-{version}-componentize-py-{componentize_version}-r{RECIPE}",
        normalise(package)
    )
}

fn build_into(
    cache: &Path,
    dir: &Path,
    cpy: &Componentize,
    package: &str,
    version: &str,
) -> anyhow::Result<()> {
    let libs = runtime::runtime_libs(cache, &cpy.native_module, &cpy.version)?;
    std::fs::create_dir_all(cache)?;
    // Everything is made inside one scratch directory beside the cache entry and renamed into
    // place at the end: an interrupted build leaves no entry that looks complete.
    let work = tempfile::tempdir_in(cache)?;
    let downloads = work.path().join("sdist");
    std::fs::create_dir_all(&downloads)?;
    let archive = sdist::download(&cpy.python, package, version, &downloads)?;
    let unpacked = work.path().join("src");
    std::fs::create_dir_all(&unpacked)?;
    let root = sdist::unpack(&archive, &unpacked)?;
    // The build must use the stable toolchain it was proven with, whatever the sdist pins.
    for pin in ["rust-toolchain", "rust-toolchain.toml"] {
        std::fs::remove_file(root.join(pin)).ok();
    }
    let project = sdist::Project::read(&root)?;
    sdist::keep_out_of_outer_workspaces(&project)?;
    super::rust::ensure_target()?;
    let wasm = cargo::build(&project, package, &libs, &work.path().join("target"))?;
    let bytes = std::fs::read(&wasm)?;
    if !runtime::is_dynamic_library(&bytes) {
        bail!(
            "cargo built {} but it is not a wasm dynamic library",
            wasm.display()
        );
    }
    let site = work.path().join("site");
    assemble(&project, &root, &bytes, &site)?;
    if std::fs::rename(&site, dir).is_err() && !dir.is_dir() {
        bail!("cannot move the build into {}", dir.display());
    }
    Ok(())
}

/// Lays out `site` as pip would install the wheel: the Python package, the extension in it,
/// and a `.dist-info` so `importlib.metadata` finds the distribution.
fn assemble(project: &sdist::Project, root: &Path, wasm: &[u8], site: &Path) -> anyhow::Result<()> {
    let top = project.top_package();
    let package_dir = project
        .python_source
        .as_ref()
        .map(|src| src.join(top))
        .filter(|p| p.is_dir());
    if let Some(src) = &package_dir {
        copy_python_tree(src, &site.join(top))?;
    }
    let extension = site.join(project.extension_path(package_dir.is_some()));
    std::fs::create_dir_all(extension.parent().unwrap_or(site))?;
    std::fs::write(&extension, wasm)?;
    let metadata =
        std::fs::read_to_string(root.join("PKG-INFO")).context("the sdist has no PKG-INFO")?;
    let (name, version) = dist_name_version(&metadata)
        .context("the sdist's PKG-INFO names no package and version")?;
    let dist_info = site.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
    std::fs::create_dir_all(&dist_info)?;
    std::fs::write(dist_info.join("METADATA"), metadata)?;
    std::fs::write(dist_info.join("INSTALLER"), "wasmhost\n")?;
    Ok(())
}

/// Copies a Python package, leaving out bytecode caches and native libraries of other
/// platforms.
fn copy_python_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if name_str != "__pycache__" {
                copy_python_tree(&path, &to.join(&name))?;
            }
        } else if !name_str.ends_with(".so") && !name_str.ends_with(".pyd") {
            std::fs::copy(&path, to.join(&name))?;
        }
    }
    Ok(())
}

/// The `Name` and `Version` fields of core metadata.
fn dist_name_version(metadata: &str) -> Option<(&str, &str)> {
    let field = |key: &str| {
        metadata
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
    };
    Some((field("Name")?, field("Version")?))
}

/// PEP 503's normal form: lower case, runs of `-`, `_` and `.` as one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A PEP 508 distribution name (it also becomes part of a path and a pip argument).
fn valid_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A version as PEP 440 spells them, without anything that could escape a path.
fn valid_version(version: &str) -> bool {
    version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_name_the_package_both_versions_and_the_recipe() {
        assert_eq!(
            cache_key("Pydantic_Core", "2.50.5", "0.25.1"),
            format!("pydantic-core-2.50.5-componentize-py-0.25.1-r{RECIPE}")
        );
        assert_ne!(
            cache_key("pydantic-core", "2.50.5", "0.25.1"),
            cache_key("pydantic-core", "2.50.5", "0.26.0")
        );
        assert_ne!(
            cache_key("pydantic-core", "2.50.5", "0.25.1"),
            cache_key("pydantic-core", "2.50.4", "0.25.1")
        );
        assert_eq!(normalise("zope.interface__x"), "zope-interface-x");
    }

    #[test]
    fn pins_must_be_exact_and_harmless() {
        assert_eq!(
            parse_pin("pydantic-core==2.50.5").unwrap(),
            ("pydantic-core", "2.50.5")
        );
        assert_eq!(parse_pin(" jiter == 0.19.0 ").unwrap(), ("jiter", "0.19.0"));
        for bad in [
            "pydantic-core",
            "pydantic-core>=2",
            "../x==1",
            "x==../../1",
            "x==1 --index-url=y",
            "-x==1",
        ] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cached_build_is_returned_without_building() {
        let tools = tempfile::tempdir().unwrap();
        let cpy = Componentize {
            python: "/nonexistent/python".into(),
            native_module: "/nonexistent/componentize_py.abi3.so".into(),
            version: "0.25.1".into(),
        };
        let entry =
            tools
                .path()
                .join("python-ext")
                .join(cache_key("pydantic-core", "2.50.5", "0.25.1"));
        std::fs::create_dir_all(&entry).unwrap();
        assert_eq!(
            build_extension(tools.path(), &cpy, "pydantic_core", "2.50.5").unwrap(),
            entry
        );
        // A miss must build, which needs componentize-py's libraries: the error says whose.
        let err = build_extension(tools.path(), &cpy, "pydantic-core", "2.50.4").unwrap_err();
        let msg = format!("{:#}", anyhow::Error::from(err));
        assert!(
            msg.contains("cannot build pydantic-core 2.50.4 for WASI"),
            "{msg}"
        );
        assert!(msg.contains("componentize_py.abi3.so"), "{msg}");
    }

    #[test]
    fn a_refusal_is_remembered() {
        let tools = tempfile::tempdir().unwrap();
        let cpy = Componentize {
            python: "/nonexistent/python".into(),
            native_module: "/nonexistent/componentize_py.abi3.so".into(),
            version: "0.25.1".into(),
        };
        let cache = tools.path().join("python-ext");
        std::fs::create_dir_all(&cache).unwrap();
        let key = cache_key("orjson", "3.11.4", "0.25.1");
        std::fs::write(cache.join(format!("{key}.refused")), "it compiles C code").unwrap();
        match build_extension(tools.path(), &cpy, "orjson", "3.11.4") {
            Err(ExtError::Unsupported { reason, .. }) => assert_eq!(reason, "it compiles C code"),
            other => panic!("expected the remembered refusal, got {other:?}"),
        }
    }

    #[test]
    fn assembles_the_package_as_pip_would() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("src");
        let files = [
            ("python/pkg_core/__init__.py", "from ._core import *"),
            ("python/pkg_core/__pycache__/x.pyc", ""),
            ("python/pkg_core/_core/__init__.pyi", ""),
            ("python/pkg_core/_core.cpython-311-x86_64-linux-gnu.so", ""),
            (
                "PKG-INFO",
                "Metadata-Version: 2.4\nName: pkg-core\nVersion: 1.2.3\n\nName: not this\n",
            ),
        ];
        for (path, text) in files {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let project = sdist::Project {
            root: root.clone(),
            manifest: root.join("Cargo.toml"),
            module: "pkg_core._core".into(),
            python_source: Some(root.join("python")),
            features: vec![],
        };
        let site = tmp.path().join("site");
        assemble(&project, &root, b"\0asm", &site).unwrap();
        assert!(site.join("pkg_core/__init__.py").is_file());
        assert!(site.join("pkg_core/_core/__init__.pyi").is_file());
        assert!(!site.join("pkg_core/__pycache__").exists());
        assert!(
            !site
                .join("pkg_core/_core.cpython-311-x86_64-linux-gnu.so")
                .exists()
        );
        assert_eq!(
            std::fs::read(site.join("pkg_core/_core.cpython-314-wasm32-wasi.so")).unwrap(),
            b"\0asm"
        );
        assert!(site.join("pkg_core-1.2.3.dist-info/METADATA").is_file());
    }
}
