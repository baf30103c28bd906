//! Function calls and their attempts: written before a spawn is acknowledged, updated
//! as attempts run, purged after the retention period.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::embedded::{Redb, all, get};
use super::{Result, encode};

pub(super) const CALLS: TableDefinition<&str, &str> = TableDefinition::new("calls");
/// `(function_id, created_at, call_id)`: each function's calls in the order they came.
pub(super) const CALLS_BY_FUNCTION: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("calls_by_function");
/// `(created_at, call_id)` of every call not over: what a restart resumes.
pub(super) const OPEN_CALLS: TableDefinition<(&str, &str), ()> = TableDefinition::new("open_calls");
/// `(finished_at, call_id)` of every call over: what the retention sweep removes.
pub(super) const FINISHED_CALLS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("finished_calls");

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
    /// Writes a call record (new or updated) durably, in a commit shared with the call
    /// records written beside it. A call that is over keeps its record: a write sent
    /// before a cancel landed must not bring it back (PostgreSQL's `WHERE NOT done`).
    /// Returns whether it wrote.
    pub(super) fn put_call(&self, call: &CallRecord) -> Result<bool> {
        let call = call.clone();
        self.group.write_redb(
            &self.db,
            Box::new(move |txn| {
                let before: Option<CallRecord> =
                    get(&txn.open_table(CALLS)?, "calls", call.call_id.as_str())?;
                if before.as_ref().is_some_and(|b| b.status.is_final()) {
                    return Ok(false);
                }
                write_call(txn, &call, before.as_ref())?;
                Ok(true)
            }),
        )
    }

    /// Changes a call in one transaction (no other write comes between reading and
    /// writing it); `change` returns whether to write. Returns whether it wrote.
    pub(super) fn update_call(
        &self,
        call_id: &str,
        change: impl FnOnce(&mut CallRecord) -> bool,
    ) -> Result<bool> {
        let txn = self.write()?;
        let before: Option<CallRecord> = get(&txn.open_table(CALLS)?, "calls", call_id)?;
        let written = match before {
            Some(before) => {
                let mut call = before.clone();
                let write = change(&mut call);
                if write {
                    write_call(&txn, &call, Some(&before))?;
                }
                write
            }
            None => false,
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

    /// Of `call_ids`, the calls that are over, in one read.
    pub(super) fn calls_over(&self, call_ids: &[String]) -> Result<Vec<CallRecord>> {
        let table = self.db.begin_read()?.open_table(CALLS)?;
        let mut over = Vec::new();
        for id in call_ids {
            if let Some(call) = get::<CallRecord>(&table, "calls", id.as_str())?
                && call.status.is_final()
            {
                over.push(call);
            }
        }
        Ok(over)
    }

    /// The most recent calls of a function, newest first: read through
    /// `calls_by_function`, so the cost is `limit` records, not every call kept.
    pub(super) fn list_calls(&self, function_id: &str, limit: usize) -> Result<Vec<CallRecord>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(CALLS_BY_FUNCTION)?;
        let calls = txn.open_table(CALLS)?;
        let mut out = Vec::new();
        let range = (function_id, "", "")..=(function_id, LAST, LAST);
        for entry in index.range(range)?.rev() {
            if out.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let (_, _, call_id) = key.value();
            if let Some(call) = get(&calls, "calls", call_id)? {
                out.push(call);
            }
        }
        Ok(out)
    }

    /// Calls that are not over (to resume after a restart), oldest first.
    pub(super) fn unfinished_calls(&self) -> Result<Vec<CallRecord>> {
        let txn = self.db.begin_read()?;
        let open = txn.open_table(OPEN_CALLS)?;
        let calls = txn.open_table(CALLS)?;
        let mut out = Vec::new();
        for entry in open.iter()? {
            let (key, _) = entry?;
            let (_, call_id) = key.value();
            if let Some(call) = get(&calls, "calls", call_id)? {
                out.push(call);
            }
        }
        Ok(out)
    }

    /// Deletes final calls that finished before `cutoff` (RFC 3339); returns how many.
    pub(super) fn purge_calls(&self, cutoff: &str) -> Result<usize> {
        let txn = self.write()?;
        let old: Vec<String> = txn
            .open_table(FINISHED_CALLS)?
            .range(..(cutoff, ""))?
            .map(|entry| entry.map(|(key, _)| key.value().1.to_owned()))
            .collect::<std::result::Result<_, _>>()?;
        let mut removed = Vec::with_capacity(old.len());
        {
            let mut calls = txn.open_table(CALLS)?;
            for call_id in &old {
                if let Some(raw) = calls.remove(call_id.as_str())? {
                    removed.push(super::decode::<CallRecord>("calls", raw.value())?);
                }
            }
        }
        for call in &removed {
            rekey(&txn, &call.call_id, Keys::of(call), Keys::default())?;
        }
        let n = old.len();
        if n == 0 {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(n)
    }
}

/// Above every key part (RFC 3339 times and ids are ASCII).
const LAST: &str = "\u{10FFFF}";

/// Stores `call` and its index entries in `txn`; `before` is the record it replaces.
pub(super) fn write_call(
    txn: &WriteTransaction,
    call: &CallRecord,
    before: Option<&CallRecord>,
) -> Result<()> {
    txn.open_table(CALLS)?
        .insert(call.call_id.as_str(), encode(call).as_str())?;
    let old = before.map(Keys::of).unwrap_or_default();
    rekey(txn, &call.call_id, old, Keys::of(call))
}

/// Moves a call's index entries from its `old` keys to its `new` ones. Only the entries
/// whose keys change are written: most updates (an attempt starting or retrying) change
/// none.
fn rekey(txn: &WriteTransaction, id: &str, old: Keys<'_>, new: Keys<'_>) -> Result<()> {
    if old.by_function != new.by_function {
        let mut table = txn.open_table(CALLS_BY_FUNCTION)?;
        if let Some((function, created)) = old.by_function {
            table.remove((function, created, id))?;
        }
        if let Some((function, created)) = new.by_function {
            table.insert((function, created, id), ())?;
        }
    }
    for (table, old, new) in [
        (OPEN_CALLS, old.open, new.open),
        (FINISHED_CALLS, old.finished, new.finished),
    ] {
        if old != new {
            let mut table = txn.open_table(table)?;
            if let Some(at) = old {
                table.remove((at, id))?;
            }
            if let Some(at) = new {
                table.insert((at, id), ())?;
            }
        }
    }
    Ok(())
}

/// The index keys of one call record (each without the call id that ends it); none for
/// a call not stored.
#[derive(Default)]
struct Keys<'a> {
    /// `calls_by_function`: its function and creation time.
    by_function: Option<(&'a str, &'a str)>,
    /// `open_calls`: its creation time, while it is not over.
    open: Option<&'a str>,
    /// `finished_calls`: when it finished, once it is over.
    finished: Option<&'a str>,
}

impl<'a> Keys<'a> {
    fn of(call: &'a CallRecord) -> Self {
        let over = call.status.is_final();
        Keys {
            by_function: Some((call.function_id.as_str(), call.created_at.as_str())),
            open: (!over).then_some(call.created_at.as_str()),
            finished: if over {
                call.finished_at.as_deref()
            } else {
                None
            },
        }
    }
}

/// Builds the index tables from the calls a store holds (a store written before they
/// existed); part of the transaction that creates them.
pub(super) fn index_existing(txn: &WriteTransaction) -> Result<()> {
    let calls: Vec<CallRecord> = all(&txn.open_table(CALLS)?, "calls")?;
    for call in &calls {
        rekey(txn, &call.call_id, Keys::default(), Keys::of(call))?;
    }
    Ok(())
}
