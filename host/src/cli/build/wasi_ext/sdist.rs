//! A PyO3 extension's source distribution: fetched with pip, unpacked, and read the way
//! maturin reads it (which crate to build, under which module name, with which Python files).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::Refused;

/// Downloads the sdist of `package==version` into `dir` with `python -m pip` and returns it.
/// Only the package itself must come as source; its build backend may come as a wheel.
pub(super) fn download(
    python: &Path,
    package: &str,
    version: &str,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            package,
            "-d",
        ])
        .arg(dir)
        .arg(format!("{package}=={version}"))
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "pip could not download the source of {package}=={version}:\n{}",
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        );
    }
    let mut files = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    match (files.pop(), files.is_empty()) {
        (Some(file), true) if file.file_name().to_string_lossy().ends_with(".tar.gz") => {
            Ok(file.path())
        }
        (Some(file), true) => bail!(Refused(format!(
            "its source distribution {} is not a .tar.gz",
            file.file_name().to_string_lossy()
        ))),
        _ => bail!("pip downloaded no single source distribution of {package}=={version}"),
    }
}

/// Unpacks the `.tar.gz` sdist into `dir` and returns its top directory. Entries that
/// would land outside `dir` (absolute paths, `..`) are refused by the tar reader.
pub(super) fn unpack(sdist: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let file = std::fs::File::open(sdist)?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(dir)
        .with_context(|| format!("cannot unpack {}", sdist.display()))?;
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    match (entries.pop(), entries.is_empty()) {
        (Some(top), true) if top.path().is_dir() => Ok(top.path()),
        _ => bail!("{} has no single top directory", sdist.display()),
    }
}

/// What maturin would build from an unpacked sdist.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Project {
    /// The unpacked sdist.
    pub root: PathBuf,
    /// The Cargo.toml of the extension crate.
    pub manifest: PathBuf,
    /// The extension's dotted module name, e.g. `pydantic_core._pydantic_core`.
    pub module: String,
    /// The directory holding the Python packages shipped beside the extension, if any.
    pub python_source: Option<PathBuf>,
    /// Cargo features maturin enables.
    pub features: Vec<String>,
}

#[derive(Deserialize, Default)]
struct PyProject {
    #[serde(rename = "build-system", default)]
    build_system: BuildSystem,
    #[serde(default)]
    tool: Tool,
}

#[derive(Deserialize, Default)]
struct BuildSystem {
    #[serde(rename = "build-backend")]
    build_backend: Option<String>,
}

#[derive(Deserialize, Default)]
struct Tool {
    #[serde(default)]
    maturin: Maturin,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Maturin {
    python_source: Option<PathBuf>,
    module_name: Option<String>,
    manifest_path: Option<PathBuf>,
    bindings: Option<String>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
struct CargoManifest {
    package: Option<CargoPackage>,
    lib: Option<CargoLib>,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
}

#[derive(Deserialize)]
struct CargoLib {
    name: Option<String>,
}

impl Project {
    /// Reads `pyproject.toml` (and the crate's `Cargo.toml`) of the sdist unpacked at `root`;
    /// refuses anything that is not a PyO3 extension built by maturin.
    pub(super) fn read(root: &Path) -> anyhow::Result<Project> {
        let pyproject = root.join("pyproject.toml");
        if !pyproject.is_file() {
            bail!(Refused(
                "its sdist has no pyproject.toml, so it is not built with maturin".into()
            ));
        }
        let pyproject: PyProject = read_toml(&pyproject)?;
        let backend = pyproject.build_system.build_backend.unwrap_or_default();
        if backend != "maturin" {
            bail!(Refused(format!(
                "it is not a Rust extension built with maturin (its build backend is \
                 `{backend}`): only PyO3 extensions can be built for WASI"
            )));
        }
        let maturin = pyproject.tool.maturin;
        if let Some(bindings) = maturin.bindings.filter(|b| b != "pyo3") {
            bail!(Refused(format!(
                "it uses `{bindings}` bindings: only PyO3 extensions can be built for WASI"
            )));
        }
        let manifest = root.join(maturin.manifest_path.unwrap_or_else(|| "Cargo.toml".into()));
        let cargo: CargoManifest = read_toml(&manifest)?;
        let lib_name = cargo.lib.and_then(|l| l.name);
        let crate_name = cargo.package.map(|p| p.name.replace('-', "_"));
        let module = maturin
            .module_name
            .or(lib_name)
            .or(crate_name)
            .with_context(|| format!("{} names no package", manifest.display()))?;
        let python_source = match maturin.python_source {
            Some(dir) => Some(root.join(dir)),
            // maturin's mixed layout: the Python package sits at the root of the project.
            None => {
                let top = module.split('.').next().unwrap_or(&module);
                root.join(top)
                    .join("__init__.py")
                    .is_file()
                    .then(|| root.to_owned())
            }
        };
        Ok(Project {
            root: root.to_owned(),
            manifest,
            module,
            python_source,
            features: maturin.features,
        })
    }

    /// The top-level Python package of the module, e.g. `pydantic_core`.
    pub(super) fn top_package(&self) -> &str {
        self.module.split('.').next().unwrap_or(&self.module)
    }

    /// Where the extension goes inside the site directory, as maturin installs it: beside
    /// the Python package's modules for a dotted name, inside the same-named package when
    /// one ships with it, else at the top.
    pub(super) fn extension_path(&self, has_package: bool) -> PathBuf {
        let mut parts: Vec<&str> = self.module.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        if parts.is_empty() && has_package {
            parts.push(last);
        }
        let mut path: PathBuf = parts.iter().collect();
        path.push(format!("{last}.{}", super::EXTENSION_SUFFIX));
        path
    }
}

/// Makes the crate its own workspace root unless the sdist has one: cargo otherwise walks
/// up from the unpacked sdist and, when the cache sits inside some other cargo workspace
/// (a project's `target/`), refuses to build a package that workspace does not list.
pub(super) fn keep_out_of_outer_workspaces(project: &Project) -> anyhow::Result<()> {
    for dir in project
        .manifest
        .ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(&project.root))
    {
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file() {
            let table: toml::Table = read_toml(&manifest)?;
            if table.contains_key("workspace") {
                return Ok(());
            }
        }
    }
    let mut text = std::fs::read_to_string(&project.manifest)
        .with_context(|| format!("cannot read {}", project.manifest.display()))?;
    text.push_str("\n[workspace]\n");
    std::fs::write(&project.manifest, text)
        .with_context(|| format!("cannot write {}", project.manifest.display()))
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The last `lines` lines of `text`.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, anyhow::Result<Project>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let project = Project::read(dir.path());
        (dir, project)
    }

    const MATURIN: &str = "[build-system]\nbuild-backend = 'maturin'\n";

    #[test]
    fn reads_a_mixed_project_with_a_python_source_folder() {
        let pyproject = format!(
            "{MATURIN}[tool.maturin]\npython-source = 'python'\n\
             module-name = 'pydantic_core._pydantic_core'\nbindings = 'pyo3'\nfeatures = ['x']\n"
        );
        let (dir, project) = project(&[
            ("pyproject.toml", &pyproject),
            (
                "Cargo.toml",
                "[package]\nname = 'pydantic-core'\n[lib]\nname = '_pydantic_core'\n",
            ),
        ]);
        let project = project.unwrap();
        assert_eq!(project.module, "pydantic_core._pydantic_core");
        assert_eq!(project.python_source, Some(dir.path().join("python")));
        assert_eq!(project.features, ["x"]);
        assert_eq!(project.top_package(), "pydantic_core");
        assert_eq!(
            project.extension_path(true),
            Path::new("pydantic_core/_pydantic_core.cpython-314-wasm32-wasi.so")
        );
    }

    #[test]
    fn a_pure_rust_project_takes_its_crate_name_and_sits_at_the_top() {
        let (_dir, project) = project(&[
            ("pyproject.toml", MATURIN),
            ("Cargo.toml", "[package]\nname = 'fast-json'\n"),
        ]);
        let project = project.unwrap();
        assert_eq!(project.module, "fast_json");
        assert_eq!(project.python_source, None);
        assert_eq!(
            project.extension_path(false),
            Path::new("fast_json.cpython-314-wasm32-wasi.so")
        );
        // With a same-named Python package beside it, maturin puts it inside.
        assert_eq!(
            project.extension_path(true),
            Path::new("fast_json/fast_json.cpython-314-wasm32-wasi.so")
        );
    }

    #[test]
    fn follows_the_manifest_path_and_finds_a_package_at_the_root() {
        let pyproject =
            format!("{MATURIN}[tool.maturin]\nmanifest-path = 'crates/py/Cargo.toml'\n");
        let (dir, project) = project(&[
            ("pyproject.toml", &pyproject),
            (
                "crates/py/Cargo.toml",
                "[package]\nname = 'jiter-python'\n[lib]\nname = 'jiter'\n",
            ),
            ("jiter/__init__.py", ""),
        ]);
        let project = project.unwrap();
        assert_eq!(project.manifest, dir.path().join("crates/py/Cargo.toml"));
        assert_eq!(project.module, "jiter");
        assert_eq!(project.python_source, Some(dir.path().to_owned()));
    }

    #[test]
    fn refuses_other_build_backends_and_bindings() {
        let (_dir, setuptools) = project(&[(
            "pyproject.toml",
            "[build-system]\nbuild-backend = 'setuptools.build_meta'\n",
        )]);
        let err = setuptools.unwrap_err().to_string();
        assert!(err.contains("only PyO3 extensions"), "{err}");
        assert!(err.contains("setuptools.build_meta"), "{err}");
        let pyproject = format!("{MATURIN}[tool.maturin]\nbindings = 'cffi'\n");
        let (_dir, cffi) = project(&[("pyproject.toml", &pyproject)]);
        assert!(cffi.unwrap_err().to_string().contains("`cffi` bindings"));
    }

    #[test]
    fn a_crate_outside_a_workspace_of_its_own_becomes_one() {
        let (dir, alone) = project(&[
            ("pyproject.toml", MATURIN),
            ("Cargo.toml", "[package]\nname = 'alone'\n"),
        ]);
        keep_out_of_outer_workspaces(&alone.unwrap()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert!(table.contains_key("workspace"), "{text}");
        // A member of the sdist's own workspace is left as it is.
        let pyproject =
            format!("{MATURIN}[tool.maturin]\nmanifest-path = 'crates/py/Cargo.toml'\n");
        let member = "[package]\nname = 'member'\n";
        let (dir, project) = project(&[
            ("pyproject.toml", &pyproject),
            ("Cargo.toml", "[workspace]\nmembers = ['crates/py']\n"),
            ("crates/py/Cargo.toml", member),
        ]);
        keep_out_of_outer_workspaces(&project.unwrap()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("crates/py/Cargo.toml")).unwrap();
        assert_eq!(text, member);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
