//! JavaScript guests: a fetch-handler `app.js` built into a component with componentize-js.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Builds the JavaScript app `file` and returns the component's path.
pub(super) fn build_app(file: &Path) -> anyhow::Result<PathBuf> {
    bail!(
        "{}: building JavaScript apps is not available in this build of wasmhost",
        file.display()
    )
}
