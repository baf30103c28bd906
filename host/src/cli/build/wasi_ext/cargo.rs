//! The cargo invocation that turns a PyO3 crate into a wasm dynamic library for
//! componentize-py: stable cargo, target wasm32-wasip2 (position-independent by default),
//! linked against componentize-py's own `libpython3.14.so` and `libc.so`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use cargo_metadata::Message;

use super::Refused;
use super::sdist::{Project, tail};

/// Link and compile flags, one per element (cargo's encoded form keeps paths with spaces).
fn rustflags(libs: &Path) -> Vec<String> {
    let mut flags = vec![
        // PyO3's deferred reference counting needs threads, which a component has none of.
        "--cfg".into(),
        "pyo3_disable_reference_pool".into(),
        // libc comes from componentize-py as a shared library, not from Rust's bundled copy.
        "-Clink-self-contained=n".into(),
    ];
    let link_args = [
        // A core module, not a component: componentize-py links the pieces itself.
        "--skip-wit-component".into(),
        "-shared".into(),
        format!("-L{}", libs.display()),
        "-lpython3.14".into(),
        // Export only the module's init function: exporting all of std would clash with
        // the wasi:http bindings of the other libraries when componentize-py links them.
        "--no-export-dynamic".into(),
    ];
    flags.extend(
        link_args
            .into_iter()
            .map(|a: String| format!("-Clink-arg={a}")),
    );
    flags
}

/// What PyO3's build script would otherwise ask a Python interpreter for.
fn pyo3_config(libs: &Path) -> String {
    format!(
        "implementation=CPython\nversion=3.14\nshared=true\nabi3=false\nlib_name=python3.14\n\
         lib_dir={}\npointer_width=32\nsuppress_build_script_link_lines=false\n",
        libs.display()
    )
}

/// Builds `project` in release mode into `target_dir` and returns the extension's `.wasm`.
pub(super) fn build(
    project: &Project,
    package: &str,
    libs: &Path,
    target_dir: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(target_dir)?;
    let config = target_dir.join("pyo3-config.txt");
    std::fs::write(&config, pyo3_config(libs))?;
    let root = project
        .manifest
        .parent()
        .context("the manifest has no directory")?;
    let mut cmd = Command::new(super::super::rust::cargo());
    cmd.args(["build", "--release", "--target", super::super::rust::TARGET])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&project.manifest)
        .current_dir(root)
        .env("PYO3_CONFIG_FILE", &config)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags(libs).join("\x1f"))
        .env_remove("RUSTFLAGS")
        .env_remove("PYO3_PYTHON");
    // No `--locked`: cargo still builds the versions in the sdist's Cargo.lock (the ones
    // its authors tested), and sdists such as jiter's ship a lock of a larger workspace
    // whose extra members cargo must be free to prune.
    if !project.features.is_empty() {
        cmd.arg("--features").arg(project.features.join(","));
    }
    let out = cmd.output().context("cannot start cargo")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(cc) = stderr
            .lines()
            .find_map(|l| l.split_once("error occurred in cc-rs: "))
        {
            bail!(Refused(format!(
                "it compiles C code, which needs a C compiler for WASI (clang with a \
                 wasi-sdk sysroot); only pure-Rust PyO3 extensions are built (cc said: {})",
                cc.1.trim()
            )));
        }
        let said = cargo_said(&stderr);
        if stderr.contains("error: could not compile") && !stderr.contains("SIGKILL") {
            // Deterministic, like the C-code case: the same sources fail the same way.
            bail!(Refused(format!(
                "it does not compile for wasm32-wasip2 with stable Rust; cargo said:\n{said}"
            )));
        }
        bail!(
            "building {package} for WASI failed ({}); cargo said:\n{said}",
            out.status
        );
    }
    cdylib_artifact(&out.stdout, &project.manifest).with_context(|| {
        format!("cargo built {package} but produced no wasm library: is it a `cdylib`?")
    })
}

/// The end of cargo's error output without the environment lookups build scripts print.
fn cargo_said(stderr: &str) -> String {
    let kept: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.trim();
            let progress = [
                "Compiling ",
                "Downloaded ",
                "Downloading ",
                "Updating ",
                "Locking ",
            ]
            .iter()
            .any(|p| l.starts_with(p));
            // Build scripts' environment lookups: `CC = None`, `OUT_DIR = Some(...)`.
            let lookup = l.split_once(" = ").is_some_and(|(k, v)| {
                k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && (v == "None" || v.starts_with("Some("))
            });
            !l.starts_with("cargo:") && !progress && !lookup && !l.is_empty()
        })
        .collect();
    tail(&kept.join("\n"), 25)
}

/// The `.wasm` of the cdylib that cargo built from `manifest`, read from its JSON messages.
fn cdylib_artifact(messages: &[u8], manifest: &Path) -> Option<PathBuf> {
    Message::parse_stream(messages)
        .filter_map(Result::ok)
        .filter_map(|m| match m {
            Message::CompilerArtifact(a) if a.manifest_path.as_std_path() == manifest => Some(a),
            _ => None,
        })
        .filter(|a| a.target.kind.iter().any(|k| k.to_string() == "cdylib"))
        .flat_map(|a| a.filenames)
        .find(|f| f.extension() == Some("wasm"))
        .map(|f| f.into_std_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_against_the_extracted_libraries() {
        let flags = rustflags(Path::new("/cache/my libs"));
        assert!(flags.contains(&"-Clink-arg=-L/cache/my libs".to_owned()));
        assert!(flags.contains(&"-Clink-arg=--no-export-dynamic".to_owned()));
        assert!(pyo3_config(Path::new("/l")).contains("lib_dir=/l\n"));
    }

    #[test]
    fn build_script_noise_is_left_out_of_errors() {
        let stderr = "   Compiling serde v1.0.228\n  cargo:rerun-if-env-changed=CC\n  CC = None\n  \
                      OUT_DIR = Some(/t/out)\n\n  error: boom\n";
        assert_eq!(cargo_said(stderr).trim(), "error: boom");
    }
}
