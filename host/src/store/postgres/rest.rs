//! Tokens, sealed secrets, volumes, schedules and logs in PostgreSQL.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;

use super::Postgres;
use super::Prepared;
use crate::store::secrets::{StoredSecret, sealed_secret, unseal};
use crate::store::tokens::{check_revocable, new_token};
use crate::store::{
    LogEntry, LogQuery, NewToken, Result, ScheduleState, Scope, SecretRecord, StoreError,
    TokenRecord, VolumeRecord, check_name, decode, encode, now,
};

pub(super) async fn put_schedule_in(txn: &Transaction<'_>, state: &ScheduleState) -> Result<()> {
    txn.run(
        "INSERT INTO schedules (function_id, body) VALUES ($1, $2)
         ON CONFLICT (function_id) DO UPDATE SET body = EXCLUDED.body",
        &[&state.function_id, &encode(state)],
    )
    .await?;
    Ok(())
}

/// The rows' first column, decoded.
fn bodies<T: serde::de::DeserializeOwned>(
    table: &'static str,
    rows: &[tokio_postgres::Row],
) -> Result<Vec<T>> {
    rows.iter().map(|r| decode(table, r.get(0))).collect()
}

/// A log line with the position PostgreSQL gave it (one sequence for every host).
fn log_line(row: &tokio_postgres::Row) -> Result<LogEntry> {
    let mut entry: LogEntry = decode("logs", row.get(1))?;
    entry.seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    Ok(entry)
}

impl Postgres {
    /// One query's rows.
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        Ok(self.client().await?.rows(sql, params).await?)
    }

    pub(in crate::store) fn create_token(&self, name: &str, scope: Scope) -> Result<NewToken> {
        let (record, shown) = new_token(name, scope)?;
        self.block(async {
            self.client()
                .await?
                .run(
                    "INSERT INTO tokens (token_id, body) VALUES ($1, $2)",
                    &[&record.token_id, &encode(&record)],
                )
                .await?;
            Ok(shown)
        })
    }

    /// Answers on the backend's runtime (see `Postgres::spawn`): a lookup that a client
    /// without a valid token can ask for must not hold the thread that serves endpoints.
    pub(in crate::store) fn token(
        &self,
        token_id: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>>> + Send + use<> {
        let pool = self.pool.clone();
        let token_id = token_id.to_owned();
        self.spawn(async move {
            let rows = pool
                .get()
                .await?
                .rows("SELECT body FROM tokens WHERE token_id = $1", &[&token_id])
                .await?;
            Ok(bodies::<TokenRecord>("tokens", &rows)?.pop())
        })
    }

    pub(in crate::store) fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = self.block(self.rows("SELECT body FROM tokens ORDER BY token_id", &[]))?;
        bodies("tokens", &rows)
    }

    pub(in crate::store) fn revoke_token(&self, token_id: &str) -> Result<bool> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            // Two hosts revoking the last two admin tokens at once must not both succeed.
            txn.run("LOCK TABLE tokens IN EXCLUSIVE MODE", &[]).await?;
            let rows = txn.rows("SELECT body FROM tokens", &[]).await?;
            let tokens: Vec<TokenRecord> = bodies("tokens", &rows)?;
            let Some(record) = tokens.iter().find(|t| t.token_id == token_id) else {
                return Ok(false);
            };
            check_revocable(record, &tokens)?;
            txn.run("DELETE FROM tokens WHERE token_id = $1", &[&token_id])
                .await?;
            txn.commit().await?;
            Ok(true)
        })
    }

    pub(in crate::store) fn has_tokens(&self) -> Result<bool> {
        let rows = self.block(self.rows("SELECT 1 FROM tokens LIMIT 1", &[]))?;
        Ok(!rows.is_empty())
    }

    pub(in crate::store) fn put_secret(
        &self,
        name: &str,
        values: BTreeMap<String, String>,
    ) -> Result<SecretRecord> {
        let (stored, record) = sealed_secret(&self.key, name, values)?;
        self.block(async {
            self.client()
                .await?
                .run(
                    "INSERT INTO secrets (name, body) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
                    &[&name, &encode(&stored)],
                )
                .await?;
            Ok(record)
        })
    }

    pub(in crate::store) fn get_secret(&self, name: &str) -> Result<Option<SecretRecord>> {
        let rows = self.block(self.rows("SELECT body FROM secrets WHERE name = $1", &[&name]))?;
        bodies::<StoredSecret>("secrets", &rows)?
            .pop()
            .map(|s| unseal(&self.key, s))
            .transpose()
    }

    pub(in crate::store) fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        let rows = self.block(self.rows("SELECT body FROM secrets ORDER BY name", &[]))?;
        bodies::<StoredSecret>("secrets", &rows)?
            .into_iter()
            .map(|s| unseal(&self.key, s))
            .collect()
    }

    pub(in crate::store) fn delete_secret(&self, name: &str) -> Result<()> {
        let n = self.block(async {
            Ok(self
                .client()
                .await?
                .run("DELETE FROM secrets WHERE name = $1", &[&name])
                .await?)
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no secret named {name:?}")));
        }
        Ok(())
    }

    pub(in crate::store) fn create_volume(&self, name: &str) -> Result<VolumeRecord> {
        check_name("volume name", name)?;
        let record = VolumeRecord {
            name: name.to_owned(),
            created_at: now(),
        };
        let n = self.block(async {
            Ok(self
                .client()
                .await?
                .run(
                    "INSERT INTO volumes (name, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &encode(&record)],
                )
                .await?)
        })?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "a volume named {name:?} already exists"
            )));
        }
        Ok(record)
    }

    pub(in crate::store) fn get_volume(&self, name: &str) -> Result<Option<VolumeRecord>> {
        let rows = self.block(self.rows("SELECT body FROM volumes WHERE name = $1", &[&name]))?;
        Ok(bodies("volumes", &rows)?.pop())
    }

    pub(in crate::store) fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        let rows = self.block(self.rows("SELECT body FROM volumes ORDER BY name", &[]))?;
        bodies("volumes", &rows)
    }

    pub(in crate::store) fn get_schedule(
        &self,
        function_id: &str,
    ) -> Result<Option<ScheduleState>> {
        let rows = self.block(self.rows(
            "SELECT body FROM schedules WHERE function_id = $1",
            &[&function_id],
        ))?;
        Ok(bodies("schedules", &rows)?.pop())
    }

    pub(in crate::store) fn put_schedule(&self, state: &ScheduleState) -> Result<()> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            put_schedule_in(&txn, state).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub(in crate::store) fn append_logs(&self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&LogEntry) -> &str| entries.iter().map(f).collect::<Vec<_>>();
        let (apps, functions, times) = (
            column(|e| &e.app_id),
            column(|e| &e.function),
            column(|e| &e.time),
        );
        let calls: Vec<Option<&str>> = entries.iter().map(|e| e.call_id.as_deref()).collect();
        let bodies: Vec<String> = entries.iter().map(encode).collect();
        // One statement for the whole batch, its rows numbered in the batch's order.
        self.block(async {
            self.client()
                .await?
                .run(
                    "INSERT INTO logs (app_id, function, call_id, time, body)
                     SELECT a, f, c, t, b
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                          WITH ORDINALITY AS u(a, f, c, t, b, n)
                     ORDER BY n",
                    &[&apps, &functions, &calls, &times, &bodies],
                )
                .await?;
            Ok(())
        })
    }

    pub(in crate::store) fn last_log_seq(&self) -> Result<u64> {
        let rows = self.block(self.rows("SELECT coalesce(max(seq), 0) FROM logs", &[]))?;
        let last: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(u64::try_from(last).unwrap_or(0))
    }

    pub(in crate::store) fn call_logs(&self, call_id: &str) -> Result<Vec<LogEntry>> {
        let rows = self.block(self.rows(
            "SELECT seq, body FROM logs WHERE call_id = $1 ORDER BY seq",
            &[&call_id],
        ))?;
        rows.iter().map(log_line).collect()
    }

    pub(in crate::store) fn app_logs(
        &self,
        app_id: &str,
        query: &LogQuery<'_>,
    ) -> Result<Vec<LogEntry>> {
        let after = query
            .after_seq
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows = self.block(self.rows(
            "SELECT seq, body FROM logs
             WHERE app_id = $1 AND seq > $2
               AND ($3::text IS NULL OR function = $3)
               AND ($4::text IS NULL OR time >= $4)
             ORDER BY seq DESC LIMIT $5",
            &[&app_id, &after, &query.function, &query.since, &limit],
        ))?;
        let mut out = rows.iter().map(log_line).collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    pub(in crate::store) fn purge_logs(&self, cutoff: &str) -> Result<usize> {
        let n = self.block(async {
            Ok(self
                .client()
                .await?
                .run("DELETE FROM logs WHERE time < $1", &[&cutoff])
                .await?)
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
