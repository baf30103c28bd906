//! Calls in PostgreSQL: a call not over belongs to the host named in `claimed_by` until
//! `lease_until`; the host renews its leases while it lives, and when it dies the calls
//! are claimed (`FOR UPDATE SKIP LOCKED`) by the first host that looks.

use super::{LEASE, Postgres, Prepared};
use crate::store::extras::run_is_due;
use crate::store::group::together_or_alone;
use crate::store::{CallRecord, Result, ScheduleState, decode, encode};

/// One call by id.
const ONE_CALL: &str = "SELECT body FROM calls WHERE call_id = $1";

const LEASE_SECONDS: f64 = LEASE.as_secs_f64();

/// Writes a call; a final record is never replaced (the first host to finish a call
/// that ran twice keeps its outcome), and a call not over is leased to `host`. Returns
/// whether it wrote.
async fn put(client: &impl Prepared, call: &CallRecord, host: &str) -> Result<bool> {
    Ok(put_many(client, &[call], host).await?.first() == Some(&true))
}

/// [`put`] for calls that are all different, in one statement: outside a transaction it
/// is a transaction of its own. Returns whether each was written.
async fn put_many(client: &impl Prepared, calls: &[&CallRecord], host: &str) -> Result<Vec<bool>> {
    let ids: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
    let functions: Vec<&str> = calls.iter().map(|c| c.function_id.as_str()).collect();
    let created: Vec<&str> = calls.iter().map(|c| c.created_at.as_str()).collect();
    let finished: Vec<Option<&str>> = calls.iter().map(|c| c.finished_at.as_deref()).collect();
    let done: Vec<bool> = calls.iter().map(|c| c.status.is_final()).collect();
    let bodies: Vec<String> = calls.iter().map(encode).collect();
    let rows = client
        .rows(
            PUT,
            &[
                &ids,
                &functions,
                &created,
                &finished,
                &done,
                &bodies,
                &host,
                &LEASE_SECONDS,
            ],
        )
        .await?;
    // The conflict's `WHERE` leaves a call that is over untouched: it returns no row.
    let written: std::collections::HashSet<&str> = rows.iter().map(|r| r.get(0)).collect();
    Ok(ids.iter().map(|id| written.contains(id)).collect())
}

const PUT: &str = "INSERT INTO calls (call_id, function_id, created_at, finished_at, done, claimed_by, lease_until, body)
         SELECT i, f, c, fin, d,
                CASE WHEN d THEN NULL ELSE $7 END,
                CASE WHEN d THEN NULL ELSE now() + make_interval(secs => $8) END,
                b
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[])
              AS u(i, f, c, fin, d, b)
         ON CONFLICT (call_id) DO UPDATE SET
             finished_at = EXCLUDED.finished_at, done = EXCLUDED.done,
             claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until,
             body = EXCLUDED.body
         WHERE NOT calls.done
         RETURNING call_id";

impl Postgres {
    /// Writes a call record, in a statement shared with the records written beside it
    /// (group commit: each statement is a commit, and a commit is most of its cost).
    pub(in crate::store) fn put_call(&self, call: &CallRecord) -> Result<bool> {
        self.calls
            .write(call.clone(), |batch| self.commit_calls(&batch))
    }

    /// Commits a batch of call records: one statement for each round of different calls
    /// (a call written twice in the batch is written again in the next round, in order).
    /// When a statement fails, its records are written one at a time. Returns each
    /// record's outcome, and the commits made.
    fn commit_calls(&self, batch: &[CallRecord]) -> (Vec<Result<bool>>, u64) {
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        for (i, call) in batch.iter().enumerate() {
            let round = seen.entry(call.call_id.as_str()).or_insert(0);
            if rounds.len() <= *round {
                rounds.push(Vec::new());
            }
            rounds[*round].push(i);
            *round += 1;
        }
        let mut results: Vec<(usize, Result<bool>)> = Vec::with_capacity(batch.len());
        let mut commits = 0;
        for round in rounds {
            let calls: Vec<&CallRecord> = round.iter().map(|&i| &batch[i]).collect();
            let (outcomes, made) = together_or_alone(
                &calls,
                |calls| {
                    self.block(async {
                        put_many(&self.client().await?, calls, &self.host_id).await
                    })
                },
                |call| self.block(async { put(&self.client().await?, call, &self.host_id).await }),
            );
            commits += made;
            results.extend(round.into_iter().zip(outcomes));
        }
        results.sort_by_key(|(i, _)| *i);
        (results.into_iter().map(|(_, r)| r).collect(), commits)
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
            let row = self.client().await?.row(ONE_CALL, &[&call_id]).await?;
            row.map(|r| decode("calls", r.get(0))).transpose()
        })
    }

    /// One call, answered on the backend's runtime (see `Postgres::spawn`): a guest
    /// polling the call it spawned waits on the thread that serves its endpoint.
    pub(in crate::store) fn call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>>> + Send + use<> {
        let pool = self.pool.clone();
        let call_id = call_id.to_owned();
        self.spawn(async move {
            let row = pool.get().await?.row(ONE_CALL, &[&call_id]).await?;
            row.map(|r| decode("calls", r.get(0))).transpose()
        })
    }

    pub(in crate::store) fn calls_over(&self, call_ids: &[String]) -> Result<Vec<CallRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "SELECT body FROM calls WHERE call_id = ANY($1) AND done",
                    &[&call_ids],
                )
                .await?;
            rows.iter().map(|r| decode("calls", r.get(0))).collect()
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
