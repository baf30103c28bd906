//! The wasm libraries a native extension links against: componentize-py ships `libc.so`,
//! `libpython3.14.so` and their companions zstd-compressed inside its own native module,
//! and links every extension against exactly those, so we build against the same bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wasmparser::{KnownCustom, Name, Parser, Payload};

/// The four bytes every zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The header of a core wasm module (version 1).
const WASM_MODULE_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";
/// The libraries an extension must link: without them the build cannot start.
pub(super) const REQUIRED: [&str; 2] = ["libc.so", "libpython3.14.so"];

/// A wasm dynamic library found inside componentize-py, named by its `name` section.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Library {
    /// The library's module name, e.g. `libc.so`.
    pub name: String,
    /// The decompressed module.
    pub wasm: Vec<u8>,
}

/// Returns the directory under `cache` holding the libraries of componentize-py `version`,
/// extracting them from its native module `native_module` the first time.
pub(super) fn runtime_libs(
    cache: &Path,
    native_module: &Path,
    version: &str,
) -> anyhow::Result<PathBuf> {
    let dir = cache.join(format!("runtime-componentize-py-{version}"));
    if REQUIRED.iter().all(|lib| dir.join(lib).is_file()) {
        return Ok(dir);
    }
    let bytes = std::fs::read(native_module).with_context(|| {
        format!(
            "cannot read componentize-py's native module {}",
            native_module.display()
        )
    })?;
    let libraries = embedded_libraries(&bytes);
    for lib in REQUIRED {
        if !libraries.iter().any(|l| l.name == lib) {
            bail!(
                "{} holds no {lib}: this componentize-py ({version}) does not bundle the \
                 libraries native extensions link against",
                native_module.display()
            );
        }
    }
    std::fs::create_dir_all(cache)?;
    // Written beside and renamed into place, so a concurrent or interrupted extraction never
    // leaves a half-written library that a later build would link against.
    let staging = tempfile::tempdir_in(cache)?;
    for lib in &libraries {
        std::fs::write(staging.path().join(&lib.name), &lib.wasm)?;
    }
    let staged = staging.keep();
    if std::fs::rename(&staged, &dir).is_err() {
        // Another process got there first; its copy is as good as ours.
        std::fs::remove_dir_all(&staged).ok();
    }
    Ok(dir)
}

/// Finds every zstd frame in `bytes` that decompresses to a wasm module with a `.so` name.
pub(super) fn embedded_libraries(bytes: &[u8]) -> Vec<Library> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = find(&bytes[at..], &ZSTD_MAGIC) {
        let start = at + offset;
        if let Some(lib) = decode_library(&bytes[start..]) {
            found.push(lib);
        }
        at = start + ZSTD_MAGIC.len();
    }
    found
}

/// Decodes the zstd frame at the start of `frame` when it holds a named wasm library.
/// Only the first bytes are decoded for anything else, so the blobs that are not wasm
/// (and magic numbers that occur by chance) cost next to nothing.
fn decode_library(mut frame: &[u8]) -> Option<Library> {
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(&mut frame).ok()?;
    let mut header = [0; 8];
    decoder.read_exact(&mut header).ok()?;
    if header != WASM_MODULE_HEADER {
        return None;
    }
    let mut wasm = header.to_vec();
    decoder.read_to_end(&mut wasm).ok()?;
    let name = module_name(&wasm)?;
    name.ends_with(".so").then_some(Library { name, wasm })
}

/// The module name recorded in a core module's `name` custom section.
fn module_name(wasm: &[u8]) -> Option<String> {
    for payload in Parser::new(0).parse_all(wasm) {
        let Payload::CustomSection(section) = payload.ok()? else {
            continue;
        };
        let KnownCustom::Name(names) = section.as_known() else {
            continue;
        };
        for name in names {
            if let Ok(Name::Module { name, .. }) = name {
                return Some(name.to_owned());
            }
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `wasm` is a wasm dynamic library (a core module with a `dylink.0` section),
/// the only kind of extension componentize-py links; it skips anything else silently.
pub(super) fn is_dynamic_library(wasm: &[u8]) -> bool {
    wasm.starts_with(&WASM_MODULE_HEADER)
        && Parser::new(0).parse_all(wasm).any(
            |payload| matches!(payload, Ok(Payload::CustomSection(s)) if s.name() == "dylink.0"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal core module: the header, an optional empty `dylink.0` section and a
    /// `name` section naming the module `name`.
    fn named_module(name: &str, dylink: bool) -> Vec<u8> {
        let mut wasm = WASM_MODULE_HEADER.to_vec();
        if dylink {
            custom_section(&mut wasm, "dylink.0", &[]);
        }
        let mut module_name = vec![name.len() as u8];
        module_name.extend_from_slice(name.as_bytes());
        let mut subsection = vec![0, module_name.len() as u8];
        subsection.extend_from_slice(&module_name);
        custom_section(&mut wasm, "name", &subsection);
        wasm
    }

    fn custom_section(wasm: &mut Vec<u8>, name: &str, body: &[u8]) {
        wasm.push(0);
        wasm.push((1 + name.len() + body.len()) as u8);
        wasm.push(name.len() as u8);
        wasm.extend_from_slice(name.as_bytes());
        wasm.extend_from_slice(body);
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// A stand-in for componentize-py's native module: native code around compressed
    /// blobs, some of them wasm libraries.
    fn native_module_with(libraries: &[&str]) -> Vec<u8> {
        let mut blob = b"\x7fELF native code \x28\xb5\x2f\xfd not a frame".to_vec();
        for name in libraries {
            blob.extend(zstd(&named_module(name, true)));
            blob.extend_from_slice(b"padding between blobs");
        }
        blob.extend(zstd(b"poll_loop.py: compressed Python source, not wasm"));
        blob.extend(zstd(&named_module("componentize_py_runtime.wasm", true)));
        blob
    }

    #[test]
    fn finds_the_named_libraries_among_other_frames() {
        let blob = native_module_with(&["libc.so", "libpython3.14.so"]);
        let libraries = embedded_libraries(&blob);
        let names: Vec<_> = libraries.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["libc.so", "libpython3.14.so"]);
        assert_eq!(libraries[0].wasm, named_module("libc.so", true));
    }

    #[test]
    fn extracts_once_into_a_directory_keyed_by_version() {
        let tmp = tempfile::tempdir().unwrap();
        let native = tmp.path().join("componentize_py.abi3.so");
        std::fs::write(
            &native,
            native_module_with(&["libc.so", "libpython3.14.so"]),
        )
        .unwrap();
        let cache = tmp.path().join("cache");
        let dir = runtime_libs(&cache, &native, "0.25.1").unwrap();
        assert_eq!(dir, cache.join("runtime-componentize-py-0.25.1"));
        assert_eq!(
            std::fs::read(dir.join("libpython3.14.so")).unwrap(),
            named_module("libpython3.14.so", true)
        );
        // A cached extraction is used without reading the native module again.
        std::fs::remove_file(&native).unwrap();
        assert_eq!(runtime_libs(&cache, &native, "0.25.1").unwrap(), dir);
        // Another componentize-py version has libraries of its own.
        let err = runtime_libs(&cache, &native, "0.26.0").unwrap_err();
        assert!(format!("{err:#}").contains("native module"), "{err:#}");
    }

    #[test]
    fn refuses_a_module_without_libpython() {
        let tmp = tempfile::tempdir().unwrap();
        let native = tmp.path().join("componentize_py.abi3.so");
        std::fs::write(&native, native_module_with(&["libc.so"])).unwrap();
        let err = runtime_libs(&tmp.path().join("cache"), &native, "0.1.0").unwrap_err();
        assert!(
            err.to_string().contains("holds no libpython3.14.so"),
            "{err}"
        );
    }

    #[test]
    fn tells_dynamic_libraries_from_other_modules() {
        assert!(is_dynamic_library(&named_module("x.so", true)));
        assert!(!is_dynamic_library(&named_module("x.so", false)));
        assert!(!is_dynamic_library(b"\x7fELF"));
    }
}
