//! Rust guests: compile a guest crate to a wasm32-wasip2 component with cargo.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use cargo_metadata::Message;

/// The target every guest and native extension is built for.
pub(super) const TARGET: &str = "wasm32-wasip2";

/// Builds the crate in `dir` in release mode for wasm32-wasip2 and returns its `.wasm`.
pub(super) fn build_crate(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: `wasmhost build` takes a guest crate directory",
            dir.display()
        );
    }
    let manifest = manifest.canonicalize()?;
    ensure_target()?;
    eprintln!("building {} for {TARGET} ...", dir.display());
    let mut child = Command::new(cargo())
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start cargo")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut wasm = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(artifact) = message? {
            let ours = artifact.manifest_path.as_std_path() == manifest;
            if ours
                && let Some(file) = artifact
                    .filenames
                    .iter()
                    .find(|f| f.extension() == Some("wasm"))
            {
                wasm = Some(file.clone().into_std_path_buf());
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", dir.display());
    }
    wasm.with_context(|| {
        format!(
            "cargo built {} but produced no .wasm: is it a `cdylib` (or bin) crate?",
            dir.display()
        )
    })
}

/// The cargo to run: the one running us when invoked through cargo, else the one on PATH.
pub(super) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
pub(super) fn ensure_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(()); // no rustup: let cargo report a missing target itself
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target with rustup ...");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed ({status})");
    }
    Ok(())
}
