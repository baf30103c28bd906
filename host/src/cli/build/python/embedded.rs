//! The Python SDK and the WIT it is built against, compiled into the binary so an
//! installed `wasmhost` builds Python apps without a repository checkout. They are written
//! once to the tools directory, in a folder named by a hash of their contents.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BuildError, io_error, publish_dir};

/// A file written under a folder: its relative path and its text.
pub(in crate::cli::build) type File = (&'static str, &'static str);

/// The `wasmhost` package, as `guest-sdk/python/` holds it.
const SDK: &[File] = embed_files!["../../../../../guest-sdk/python/";
    "wasmhost/__init__.py",
    "wasmhost/_app.py",
    "wasmhost/_asgi.py",
    "wasmhost/_boot.py",
    "wasmhost/_config.py",
    "wasmhost/_endpoint.py",
    "wasmhost/_exports.py",
    "wasmhost/_fastapi.py",
    "wasmhost/_functions.py",
    "wasmhost/_loop.py",
    "wasmhost/_registry.py",
    "wasmhost/_types.py",
    "wasmhost/_wsgi.py",
    "wasmhost/exception.py",
    "wasmhost/http.py",
    "wasmhost/responses.py",
];

/// `wit/` of the repository plus the world of Python guests.
const WIT: &[File] = &[
    ("guest.wit", include_str!("../../../../../wit/guest.wit")),
    ("gpu.wit", include_str!("../../../../../wit/gpu.wit")),
    (
        "python.wit",
        include_str!("../../../../../guest-sdk/python/python.wit"),
    ),
    (
        "deps/cli.wit",
        include_str!("../../../../../wit/deps/cli.wit"),
    ),
    (
        "deps/clocks.wit",
        include_str!("../../../../../wit/deps/clocks.wit"),
    ),
    (
        "deps/filesystem.wit",
        include_str!("../../../../../wit/deps/filesystem.wit"),
    ),
    (
        "deps/http.wit",
        include_str!("../../../../../wit/deps/http.wit"),
    ),
    (
        "deps/io.wit",
        include_str!("../../../../../wit/deps/io.wit"),
    ),
    (
        "deps/random.wit",
        include_str!("../../../../../wit/deps/random.wit"),
    ),
    (
        "deps/sockets.wit",
        include_str!("../../../../../wit/deps/sockets.wit"),
    ),
];

/// The world componentize-py builds Python guests for (in `python.wit`).
pub(super) const WORLD: &str = "python";

/// Where the SDK (a folder to put on the Python path) and the WIT folder were written.
pub(super) struct Sources {
    pub(super) sdk: PathBuf,
    pub(super) wit: PathBuf,
    /// A hash of both, part of every build's cache key.
    pub(super) digest: String,
}

/// Writes the embedded SDK and WIT under `root` unless an identical copy is there.
pub(super) fn materialize(root: &Path) -> Result<Sources, BuildError> {
    let mut hasher = Sha256::new();
    for (path, text) in SDK.iter().chain(WIT) {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let digest = hex::encode(&hasher.finalize()[..8]);
    let dir = root.join("sdk").join(&digest);
    if !dir.is_dir() {
        publish_dir(&dir, |tmp| {
            write_all(&tmp.join("python"), SDK)?;
            write_all(&tmp.join("wit"), WIT)
        })?;
    }
    Ok(Sources {
        sdk: dir.join("python"),
        wit: dir.join("wit"),
        digest,
    })
}

/// Writes `files` under `dir`.
pub(in crate::cli::build) fn write_all(dir: &Path, files: &[File]) -> Result<(), BuildError> {
    for (path, text) in files {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::write(&file, text).map_err(io_error(&file))?;
    }
    Ok(())
}
