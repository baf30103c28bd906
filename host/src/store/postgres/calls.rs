//! Calls in PostgreSQL: a call not over belongs to the host named in `claimed_by` until
//! `lease_until`; the host renews its leases while it lives, and when it dies the calls
//! are claimed (`FOR UPDATE SKIP LOCKED`) by the first host that looks.

use super::{LEASE, Postgres, Prepared};
use crate::store::extras::run_is_due;
use crate::store::{CallRecord, Result, ScheduleState, decode, encode};

const LEASE_SECONDS: f64 = LEASE.as_secs_f64();

/// Writes a call; a final record is never replaced (the first host to finish a call
/// that ran twice keeps its outcome), and a call not over is leased to `host`. One
/// statement: outside a transaction it is a transaction of its own. Returns whether it
/// wrote.
async fn put(client: &impl Prepared, call: &CallRecord, host: &str) -> Result<bool> {
    let done = call.status.is_final();
    let written = client
        .run(
            PUT,
            &[
                &call.call_id,
                &call.function_id,
                &call.created_at,
                &call.finished_at,
                &done,
                &host,
                &LEASE_SECONDS,
                &encode(call),
            ],
        )
        .await?;
    // The conflict's `WHERE` leaves a call that is over untouched: no row changes.
    Ok(written > 0)
}

const PUT: &str = "INSERT INTO calls (call_id, function_id, created_at, finished_at, done, claimed_by, lease_until, body)
         VALUES ($1, $2, $3, $4, $5,
                 CASE WHEN $5 THEN NULL ELSE $6 END,
                 CASE WHEN $5 THEN NULL ELSE now() + make_interval(secs => $7) END,
                 $8)
         ON CONFLICT (call_id) DO UPDATE SET
             finished_at = EXCLUDED.finished_at, done = EXCLUDED.done,
             claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until,
             body = EXCLUDED.body
         WHERE NOT calls.done";

impl Postgres {
    pub(in crate::store) fn put_call(&self, call: &CallRecord) -> Result<bool> {
        // One round trip: no BEGIN and COMMIT around the one statement, and its plan
        // is the connection's after the first call.
        self.block(async { put(&self.client().await?, call, &self.host_id).await })
    }

    pub(in crate::store) fn update_call(
        &self,
        call_id: &str,
        change: impl FnOnce(&mut CallRecord) -> bool,
    ) -> Result<bool> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            let row = txn
                .row(
                    "SELECT body FROM calls WHERE call_id = $1 FOR UPDATE",
                    &[&call_id],
                )
                .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            let mut call: CallRecord = decode("calls", row.get(0))?;
            if !change(&mut call) {
                return Ok(false);
            }
            put(&txn, &call, &self.host_id).await?;
            txn.commit().await?;
            Ok(true)
        })
    }

    pub(in crate::store) fn get_call(&self, call_id: &str) -> Result<Option<CallRecord>> {
        self.block(async {
            let row = self
                .client()
                .await?
                .row("SELECT body FROM calls WHERE call_id = $1", &[&call_id])
                .await?;
            row.map(|r| decode("calls", r.get(0))).transpose()
        })
    }

    pub(in crate::store) fn list_calls(
        &self,
        function_id: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "SELECT body FROM calls WHERE function_id = $1
                     ORDER BY created_at DESC LIMIT $2",
                    &[&function_id, &limit],
                )
                .await?;
            rows.iter().map(|r| decode("calls", r.get(0))).collect()
        })
    }

    pub(in crate::store) fn claim_orphaned_calls(&self) -> Result<Vec<CallRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "UPDATE calls SET claimed_by = $1, lease_until = now() + make_interval(secs => $2)
                     WHERE call_id IN (
                         SELECT call_id FROM calls WHERE NOT done AND lease_until < now()
                         ORDER BY created_at LIMIT 256 FOR UPDATE SKIP LOCKED)
                     RETURNING body",
                    &[&self.host_id, &LEASE_SECONDS],
                )
                .await?;
            let mut calls = rows
                .iter()
                .map(|r| decode::<CallRecord>("calls", r.get(0)))
                .collect::<Result<Vec<_>>>()?;
            calls.sort_by(|a, b| a.created_at.cmp(&b.created_at));
            Ok(calls)
        })
    }

    pub(in crate::store) fn renew_leases(&self) -> Result<()> {
        self.block(async {
            self.client()
                .await?
                .run(
                    "UPDATE calls SET lease_until = now() + make_interval(secs => $2)
                     WHERE claimed_by = $1 AND NOT done",
                    &[&self.host_id, &LEASE_SECONDS],
                )
                .await?;
            Ok(())
        })
    }

    pub(in crate::store) fn purge_calls(&self, cutoff: &str) -> Result<usize> {
        self.block(async {
            let n = self
                .client()
                .await?
                .run(
                    "DELETE FROM calls WHERE done AND finished_at < $1",
                    &[&cutoff],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    pub(in crate::store) fn record_scheduled_run(
        &self,
        call: &CallRecord,
        state: &ScheduleState,
    ) -> Result<bool> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            let row = txn
                .row(
                    "SELECT body FROM schedules WHERE function_id = $1 FOR UPDATE",
                    &[&state.function_id],
                )
                .await?;
            let stored: Option<ScheduleState> =
                row.map(|r| decode("schedules", r.get(0))).transpose()?;
            if !run_is_due(stored.as_ref(), state) {
                return Ok(false);
            }
            super::rest::put_schedule_in(&txn, state).await?;
            put(&txn, call, &self.host_id).await?;
            txn.commit().await?;
            Ok(true)
        })
    }
}
