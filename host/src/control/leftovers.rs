//! What a crash or `kill -9` may leave in the data directory, removed at start (no upload
//! or deploy can be under way yet): partial uploads, half-written temp files, and
//! components saved by a deploy whose record was never committed.

use std::collections::HashSet;
use std::path::Path;

/// Removes upload temp files left by a crash or `kill -9` mid-upload.
pub(super) fn remove_partial_uploads(dir: &Path) {
    remove_where(dir, "partial upload", |_| true);
}

/// Removes the temp files an atomic write leaves when it is cut short (`.tmp…`).
pub(super) fn remove_temp_files(dir: &Path) {
    remove_where(dir, "half-written file", is_temp);
}

/// Removes from `components/` every temp file and every component no version refers to
/// (saved by a deploy that died before its record was committed).
pub(super) fn remove_orphan_components(dir: &Path, referenced: &HashSet<String>) {
    remove_where(dir, "component of an unfinished deploy", |name| {
        let digest = name.strip_suffix(".wasm");
        is_temp(name) || digest.is_some_and(|d| !referenced.contains(d))
    });
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp")
}

fn remove_where(dir: &Path, what: &str, doomed: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let name = entry.file_name();
        if !is_file || !doomed(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed a {what}: {}", path.display()),
            Err(e) => tracing::warn!("cannot remove the {what} {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_referenced_components_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["aa.wasm", "bb.wasm", ".tmpXYZ", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_orphan_components(dir.path(), &HashSet::from(["aa".to_string()]));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["aa.wasm", "notes.txt"]);
    }
}
