//! Function calls and their attempts: written before a spawn is acknowledged, updated
//! as attempts run, purged after the retention period.

use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::embedded::{Redb, all, get};
use super::{Result, encode};

pub(super) const CALLS: TableDefinition<&str, &str> = TableDefinition::new("calls");

/// Where a call is in its life (Modal's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Queued.
    Pending,
    /// An attempt is running (or waiting to retry).
    Running,
    /// Finished with a result.
    Success,
    /// Finished without one, after its retries.
    Failure,
    /// Cancelled.
    Terminated,
}

impl CallStatus {
    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Success | CallStatus::Failure | CallStatus::Terminated
        )
    }
}

/// One attempt of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when over.
    pub finished_at: Option<String>,
    /// `success`, `failure`, `timeout`, `running`.
    pub outcome: String,
    /// What went wrong.
    pub error: Option<String>,
    /// How long the attempt ran, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Delay before the next attempt, in milliseconds (the backoff).
    pub retry_delay_ms: Option<u64>,
}

/// A function call (Modal's FunctionCall / InvocationResult).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// `fc-…`.
    pub call_id: String,
    /// The function called.
    pub function_id: String,
    /// Its app.
    pub app_id: String,
    /// The function's name.
    pub function_name: String,
    /// `{"args": [...], "kwargs": {...}}`.
    pub input: Value,
    /// Current status.
    pub status: CallStatus,
    /// The result, on success.
    pub result: Option<Value>,
    /// `{"type", "message", "detail"?}`, on failure.
    pub error: Option<Value>,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// `invoke`, `spawn`, `schedule`, `guest`.
    pub source: String,
    /// RFC 3339 with milliseconds.
    pub created_at: String,
    /// First attempt start.
    pub started_at: Option<String>,
    /// When it became final.
    pub finished_at: Option<String>,
}

impl Redb {
    /// Writes a call record (new or updated) durably.
    pub(super) fn put_call(&self, call: &CallRecord) -> Result<()> {
        let txn = self.write()?;
        txn.open_table(CALLS)?
            .insert(call.call_id.as_str(), encode(call).as_str())?;
        txn.commit()?;
        Ok(())
    }

    /// Changes a call in one transaction (no other write comes between reading and
    /// writing it); `change` returns whether to write. Returns whether it wrote.
    pub(super) fn update_call(
        &self,
        call_id: &str,
        change: impl FnOnce(&mut CallRecord) -> bool,
    ) -> Result<bool> {
        let txn = self.write()?;
        let written = {
            let mut table = txn.open_table(CALLS)?;
            let current: Option<CallRecord> = get(&table, "calls", call_id)?;
            match current {
                Some(mut call) => {
                    let write = change(&mut call);
                    if write {
                        table.insert(call_id, encode(&call).as_str())?;
                    }
                    write
                }
                None => false,
            }
        };
        if written {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(written)
    }

    /// One call.
    pub(super) fn get_call(&self, call_id: &str) -> Result<Option<CallRecord>> {
        get(&self.db.begin_read()?.open_table(CALLS)?, "calls", call_id)
    }

    /// The most recent calls of a function, newest first.
    pub(super) fn list_calls(&self, function_id: &str, limit: usize) -> Result<Vec<CallRecord>> {
        let mut calls: Vec<CallRecord> =
            all::<CallRecord>(&self.db.begin_read()?.open_table(CALLS)?, "calls")?
                .into_iter()
                .filter(|c| c.function_id == function_id)
                .collect();
        calls.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        calls.truncate(limit);
        Ok(calls)
    }

    /// Calls that are not over (to resume after a restart), oldest first.
    pub(super) fn unfinished_calls(&self) -> Result<Vec<CallRecord>> {
        let mut calls: Vec<CallRecord> =
            all::<CallRecord>(&self.db.begin_read()?.open_table(CALLS)?, "calls")?
                .into_iter()
                .filter(|c| !c.status.is_final())
                .collect();
        calls.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(calls)
    }

    /// Deletes final calls that finished before `cutoff` (RFC 3339); returns how many.
    pub(super) fn purge_calls(&self, cutoff: &str) -> Result<usize> {
        let txn = self.write()?;
        let n = {
            let mut table = txn.open_table(CALLS)?;
            let old: Vec<String> = all::<CallRecord>(&table, "calls")?
                .into_iter()
                .filter(|c| {
                    c.status.is_final() && c.finished_at.as_deref().is_some_and(|f| f < cutoff)
                })
                .map(|c| c.call_id)
                .collect();
            for id in &old {
                table.remove(id.as_str())?;
            }
            old.len()
        };
        if n == 0 {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(n)
    }
}
