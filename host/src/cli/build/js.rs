//! JavaScript guests: a fetch-handler `app.js` built into a `wasi:http` component with
//! componentize-js, which wasmhost installs with npm into its tools directory on first use.
//! Builds are cached by a hash of the app's sources and the tool's version.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// The componentize-js release wasmhost builds with (pinned: its engine fixes the WASI
/// version of the component's imports and exports).
const VERSION: &str = "0.23.0";
const PACKAGE: &str = "@bytecodealliance/componentize-js";
/// componentize-js 0.23's engine (StarlingMonkey) is built against this WASI release; the
/// world it builds to must name the same one.
const WASI_VERSION: &str = "0.2.10";
const WORLD: &str =
    "package wasmhost:js-app;\n\nworld app {\n  export wasi:http/incoming-handler@0.2.10;\n}\n";
/// The WASI packages the world resolves against, written at the release above.
const WASI_DEPS: [(&str, &str); 7] = [
    ("cli.wit", include_str!("../../../../wit/deps/cli.wit")),
    (
        "clocks.wit",
        include_str!("../../../../wit/deps/clocks.wit"),
    ),
    (
        "filesystem.wit",
        include_str!("../../../../wit/deps/filesystem.wit"),
    ),
    ("http.wit", include_str!("../../../../wit/deps/http.wit")),
    ("io.wit", include_str!("../../../../wit/deps/io.wit")),
    (
        "random.wit",
        include_str!("../../../../wit/deps/random.wit"),
    ),
    (
        "sockets.wit",
        include_str!("../../../../wit/deps/sockets.wit"),
    ),
];
/// Text that shows a source registers a request handler componentize-js 0.23 calls.
const HANDLER_MARKS: [&str; 3] = ["addEventListener", "incomingHandler", "incoming-handler"];
/// Files of an app directory that go into the build (componentize-js follows relative
/// imports) and so into its cache key.
const SOURCE_EXTENSIONS: [&str; 4] = ["js", "mjs", "cjs", "json"];

/// Builds the JavaScript app `file` (or takes it from the cache) and returns the
/// component's path, named after the file's stem.
pub(super) fn build_app(file: &Path) -> anyhow::Result<PathBuf> {
    if !file.is_file() {
        bail!("{}: no such JavaScript file", file.display());
    }
    let file = file.canonicalize()?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let sources = sources(&file)?;
    let key = sources.key;
    let builds = js_dir().join("builds");
    let component = builds.join(&key).join(format!("{stem}.wasm"));
    if component.is_file() {
        return Ok(component);
    }
    check_syntax(&file)?;
    if !sources.has_handler {
        // The build would succeed and every request fail with StarlingMonkey's "no
        // fetch-event handler triggered".
        bail!(
            "{} registers no request handler: componentize-js {VERSION} calls a `fetch` event \
             listener, not an `export default {{ fetch }}` object; add \
             `addEventListener('fetch', (event) => event.respondWith(handle(event.request)));` \
             with your handler as `handle`",
            file.display()
        );
    }
    let cli = ensure_tool()?;
    std::fs::create_dir_all(&builds)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("{key}.tmp"))
        .tempdir_in(&builds)?;
    write_wit(&work.path().join("wit"))?;
    let out = work.path().join(format!("{stem}.wasm"));
    eprintln!(
        "building {} with componentize-js {VERSION} ...",
        file.display()
    );
    let output = Command::new("node")
        .arg(&cli)
        .arg(&file)
        .arg("--wit")
        .arg(work.path().join("wit"))
        .args(["--world-name", "app", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .context("cannot start node")?;
    if !output.status.success() || !out.is_file() {
        bail!(
            "componentize-js could not build {}:\n{}",
            file.display(),
            tool_message(&output.stderr, &output.stdout)
        );
    }
    let done = builds.join(&key);
    std::fs::create_dir_all(&done)?;
    std::fs::rename(&out, &component)
        .with_context(|| format!("cannot store the build in {}", done.display()))?;
    Ok(component)
}

/// Where the JavaScript tool and builds live.
fn js_dir() -> PathBuf {
    super::tools_dir().join("js")
}

/// What the build of an app depends on.
struct Sources {
    /// A hash of the tool's version and every source file (path and contents).
    key: String,
    /// Whether some source registers a request handler the way componentize-js 0.23
    /// takes one: a `fetch` event listener, or an explicit `incomingHandler` export.
    has_handler: bool,
}

/// The sources of the app `file`: it and every JavaScript file beside it.
fn sources(file: &Path) -> anyhow::Result<Sources> {
    let dir = file.parent().context("the app file has no directory")?;
    let mut files = vec![file.to_owned()];
    collect_sources(dir, &mut files)?;
    files.sort();
    files.dedup();
    let mut hash = Sha256::new();
    hash.update(format!(
        "componentize-js {VERSION}\n{WORLD}\n{}\n",
        file.display()
    ));
    let mut has_handler = false;
    for path in files {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        has_handler |= HANDLER_MARKS.iter().any(|mark| text.contains(mark));
        hash.update(path.display().to_string());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    Ok(Sources {
        key: hex::encode(hash.finalize())[..32].to_owned(),
        has_handler,
    })
}

/// Adds the JavaScript sources under `dir` to `files`, skipping `node_modules` and hidden
/// directories.
fn collect_sources(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if name != "node_modules" && !name.starts_with('.') {
                collect_sources(&path, files)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Refuses a file that does not parse as a JavaScript module, with Node's message (which
/// names the line), before spending half a minute in componentize-js.
fn check_syntax(file: &Path) -> anyhow::Result<()> {
    need_node()?;
    let source = std::fs::File::open(file)?;
    let output = Command::new("node")
        .args(["--check", "--input-type=module"])
        .stdin(source)
        .output()
        .context("cannot start node")?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("at "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let message = message
        .join("\n")
        .replace("[stdin]", &file.display().to_string());
    bail!("{} is not valid JavaScript:\n{message}", file.display())
}

/// Node.js must be there to run componentize-js.
fn need_node() -> anyhow::Result<()> {
    let found = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        bail!(
            "building JavaScript apps needs Node.js and npm (componentize-js runs on them): \
             install them, e.g. `apt-get install nodejs npm`, then try again"
        );
    }
    Ok(())
}

/// componentize-js's command-line entry point, installed with npm on first use.
fn ensure_tool() -> anyhow::Result<PathBuf> {
    let dir = js_dir().join(format!("componentize-js-{VERSION}"));
    let cli = |root: &Path| root.join("node_modules").join(PACKAGE).join("src/cli.js");
    if cli(&dir).is_file() {
        return Ok(cli(&dir));
    }
    std::fs::create_dir_all(js_dir())?;
    eprintln!(
        "installing {PACKAGE}@{VERSION} with npm into {} (first use only) ...",
        dir.display()
    );
    // Installed aside and moved in whole, so an interrupted install is never taken for one.
    let staging = tempfile::Builder::new()
        .prefix(".install")
        .tempdir_in(js_dir())?;
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(staging.path())
        .arg(format!("{PACKAGE}@{VERSION}"))
        .stdin(Stdio::null())
        .output()
        .context("cannot start npm: building JavaScript apps needs Node.js and npm (e.g. `apt-get install nodejs npm`)")?;
    if !output.status.success() || !cli(staging.path()).is_file() {
        bail!(
            "`npm install {PACKAGE}@{VERSION}` failed:\n{}",
            tool_message(&output.stderr, &output.stdout)
        );
    }
    let staged = staging.keep();
    // Another build may have installed it meanwhile; either copy will do.
    if std::fs::rename(&staged, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    if !cli(&dir).is_file() {
        bail!(
            "componentize-js is missing from {} after installing it",
            dir.display()
        );
    }
    Ok(cli(&dir))
}

/// Writes the world componentize-js builds to and its WASI dependencies into `dir`.
fn write_wit(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("deps"))?;
    std::fs::write(dir.join("world.wit"), WORLD)?;
    for (name, text) in WASI_DEPS {
        let text = text
            .replace("0.2.12", WASI_VERSION)
            .replace("0.2.11", WASI_VERSION);
        std::fs::write(dir.join("deps").join(name), text)?;
    }
    Ok(())
}

/// What a tool printed that a user should read: its messages without Node's stack frames.
fn tool_message(stderr: &[u8], stdout: &[u8]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stderr),
        String::from_utf8_lossy(stdout)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") && !l.starts_with("Node.js v"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let text = lines.join("\n");
    let max = 4000;
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wit_names_the_engines_wasi_release_only() {
        let dir = tempfile::tempdir().unwrap();
        write_wit(dir.path()).unwrap();
        for (name, _) in WASI_DEPS {
            let text = std::fs::read_to_string(dir.path().join("deps").join(name)).unwrap();
            assert!(text.contains("@0.2.10"), "{name}");
            assert!(
                !text.contains("0.2.12") && !text.contains("0.2.11"),
                "{name}"
            );
        }
    }

    #[test]
    fn tool_messages_drop_stack_frames() {
        let stderr = b"file:///x/componentize.js:639\n    throw new Error(\n\nError: failed to parse JS source\n    at detect (file:///x.js:1:1)\n\nNode.js v20.20.2\n";
        assert_eq!(
            tool_message(stderr, b""),
            "file:///x/componentize.js:639\n    throw new Error(\nError: failed to parse JS source"
        );
    }
}
