//! Volumes and schedule state.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::embedded::{Redb, all, get};
use super::{Result, StoreError, check_name, encode, now};

pub(super) const VOLUMES: TableDefinition<&str, &str> = TableDefinition::new("volumes");
pub(super) const SCHEDULES: TableDefinition<&str, &str> = TableDefinition::new("schedules");

/// A named directory that functions mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// DNS-safe name; the directory is `volumes/<name>` in the data directory.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// When a scheduled function runs next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The function.
    pub function_id: String,
    /// Its schedule expression, to notice a change at redeploy.
    pub schedule: String,
    /// The app version it was computed for (a redeploy resets periods).
    pub version: u32,
    /// Next run, Unix milliseconds.
    pub next_run_ms: i64,
    /// Last run, Unix milliseconds.
    pub last_run_ms: Option<i64>,
}

impl Redb {
    /// Records a volume; a name in use is a conflict.
    pub(super) fn create_volume(&self, name: &str) -> Result<VolumeRecord> {
        check_name("volume name", name)?;
        let txn = self.write()?;
        let record = {
            let mut table = txn.open_table(VOLUMES)?;
            if table.get(name)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a volume named {name:?} already exists"
                )));
            }
            let record = VolumeRecord {
                name: name.to_owned(),
                created_at: now(),
            };
            table.insert(name, encode(&record).as_str())?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// One volume.
    pub(super) fn get_volume(&self, name: &str) -> Result<Option<VolumeRecord>> {
        get(&self.db.begin_read()?.open_table(VOLUMES)?, "volumes", name)
    }

    /// Every volume.
    pub(super) fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        all(&self.db.begin_read()?.open_table(VOLUMES)?, "volumes")
    }

    /// The schedule state of a function.
    pub(super) fn get_schedule(&self, function_id: &str) -> Result<Option<ScheduleState>> {
        get(
            &self.db.begin_read()?.open_table(SCHEDULES)?,
            "schedules",
            function_id,
        )
    }

    /// Writes a schedule state.
    pub(super) fn put_schedule(&self, state: &ScheduleState) -> Result<()> {
        let txn = self.write()?;
        txn.open_table(SCHEDULES)?
            .insert(state.function_id.as_str(), encode(state).as_str())?;
        txn.commit()?;
        Ok(())
    }

    pub(super) fn record_scheduled_run(
        &self,
        call: &super::CallRecord,
        state: &ScheduleState,
    ) -> Result<bool> {
        let txn = self.write()?;
        {
            let mut schedules = txn.open_table(SCHEDULES)?;
            let stored: Option<ScheduleState> = get(&schedules, "schedules", &state.function_id)?;
            if !run_is_due(stored.as_ref(), state) {
                return Ok(false);
            }
            schedules.insert(state.function_id.as_str(), encode(state).as_str())?;
        }
        super::calls::write_call(&txn, call, None)?;
        txn.commit()?;
        Ok(true)
    }
}

/// Whether the run `next` records is still due: no one moved the schedule past it since.
pub(super) fn run_is_due(stored: Option<&ScheduleState>, next: &ScheduleState) -> bool {
    stored.is_none_or(|s| next.last_run_ms.is_none_or(|ran| s.next_run_ms <= ran))
}
