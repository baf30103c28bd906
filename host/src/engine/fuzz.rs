//! Fuzzing entry (built only with `--cfg fuzzing`): the manifest decoder fed what a
//! hostile guest's `describe` could return. The fuzzer's bytes are read as JSON of the
//! WIT `manifest` record (serde derived on the generated bindings), so the input follows
//! the WIT with no hand-kept copy of its fields; `fuzz/manifest.dict` and the seeds in
//! `fuzz/seeds/manifest/` give libFuzzer the structure.

use super::AppManifest;

/// Decodes a manifest from `data`; `None` when it is not one or the decoder refuses it.
pub fn fuzz_manifest(data: &[u8]) -> Option<AppManifest> {
    super::manifest::from_json(data).ok()
}
