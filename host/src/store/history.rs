//! An app's deployed versions, for its history and rollbacks.

use super::embedded::{Redb, VERSIONS};
use super::{Result, VersionRecord, decode};

impl Redb {
    /// Every version of an app, newest first.
    pub(super) fn list_versions(&self, app_id: &str) -> Result<Vec<VersionRecord>> {
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS)?;
        let mut out = Vec::new();
        for item in versions.range((app_id, 0)..=(app_id, u32::MAX))?.rev() {
            let (_, raw) = item?;
            out.push(decode("versions", raw.value())?);
        }
        Ok(out)
    }

    /// One version of an app.
    pub(super) fn get_version(&self, app_id: &str, version: u32) -> Result<Option<VersionRecord>> {
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS)?;
        match versions.get((app_id, version))? {
            Some(raw) => Ok(Some(decode("versions", raw.value())?)),
            None => Ok(None),
        }
    }
}
