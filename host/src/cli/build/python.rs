//! Python guests: an `app.py` built into a component with componentize-py.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Builds the Python app `file` and returns the component's path.
pub(super) fn build_app(file: &Path) -> anyhow::Result<PathBuf> {
    bail!(
        "{}: building Python apps is not available in this build of wasmhost",
        file.display()
    )
}
