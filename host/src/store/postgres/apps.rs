//! Apps, versions, functions, labels and domains in PostgreSQL. Every change takes the
//! catalog lock for its transaction, so changes from different hosts apply one at a time,
//! and bumps the change sequence that hosts watch.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::Prepared;
use super::{CATALOG_LOCK, Postgres};
use crate::store::changes;
use crate::store::{
    AppRecord, AppState, DeployRequest, Deployed, FunctionRecord, Result, StoreError,
    VersionRecord, check_name, decode, deploy, encode, now,
};

fn records<T: serde::de::DeserializeOwned>(table: &'static str, rows: &[Row]) -> Result<Vec<T>> {
    rows.iter().map(|r| decode(table, r.get(0))).collect()
}

fn record<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: Option<Row>,
) -> Result<Option<T>> {
    row.map(|r| decode(table, r.get(0))).transpose()
}

fn name_key(workspace: &str, environment: &str, name: &str) -> String {
    format!("{workspace}/{environment}/{name}")
}

/// Starts a catalog change: one host at a time (until the transaction ends).
async fn begin_change(txn: &Transaction<'_>) -> Result<()> {
    txn.run("SELECT pg_advisory_xact_lock($1)", &[&CATALOG_LOCK])
        .await?;
    Ok(())
}

/// Counts the change, to `app_id`, in its transaction: every host is told, and follows
/// that app. Forgets the changes older than the last [`changes::KEPT`].
async fn log_change(txn: &Transaction<'_>, app_id: &str) -> Result<()> {
    let seq: i64 = txn
        .one("UPDATE changes SET seq = seq + 1 RETURNING seq", &[])
        .await?
        .get(0);
    txn.run(
        "INSERT INTO app_changes (seq, app_id) VALUES ($1, $2)",
        &[&seq, &app_id],
    )
    .await?;
    let kept = i64::try_from(changes::KEPT).unwrap_or(i64::MAX);
    txn.run(
        "DELETE FROM app_changes WHERE seq <= $1",
        &[&seq.saturating_sub(kept)],
    )
    .await?;
    Ok(())
}

async fn put_app(txn: &Transaction<'_>, app: &AppRecord) -> Result<()> {
    txn.run(
        "INSERT INTO apps (app_id, name_key, body) VALUES ($1, $2, $3)
         ON CONFLICT (app_id) DO UPDATE SET name_key = EXCLUDED.name_key, body = EXCLUDED.body",
        &[
            &app.app_id,
            &name_key(&app.workspace, &app.environment, &app.name),
            &encode(app),
        ],
    )
    .await?;
    Ok(())
}

async fn put_function(txn: &Transaction<'_>, f: &FunctionRecord) -> Result<()> {
    txn.run(
        "INSERT INTO functions (function_id, app_id, name, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT (function_id) DO UPDATE SET body = EXCLUDED.body",
        &[&f.function_id, &f.app_id, &f.name, &encode(f)],
    )
    .await?;
    Ok(())
}

/// Reserves a label or domain for `function_id`, failing if another endpoint holds it.
async fn reserve(
    txn: &Transaction<'_>,
    table: &str,
    key: &str,
    function_id: &str,
    what: &str,
) -> Result<()> {
    let column = if table == "labels" { "key" } else { "domain" };
    let holder = txn
        .row(
            &format!("SELECT function_id FROM {table} WHERE {column} = $1"),
            &[&key],
        )
        .await?;
    if let Some(holder) = holder
        && holder.get::<_, &str>(0) != function_id
    {
        return Err(StoreError::Conflict(format!(
            "{what} is already used by another endpoint"
        )));
    }
    txn.run(
        &format!(
            "INSERT INTO {table} ({column}, function_id) VALUES ($1, $2)
             ON CONFLICT ({column}) DO UPDATE SET function_id = EXCLUDED.function_id"
        ),
        &[&key, &function_id],
    )
    .await?;
    Ok(())
}

impl Postgres {
    pub(in crate::store) fn component_digests(&self) -> Result<HashSet<String>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows("SELECT DISTINCT digest FROM versions", &[])
                .await?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }

    pub(in crate::store) fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows("SELECT body FROM apps ORDER BY app_id", &[])
                .await?;
            records("apps", &rows)
        })
    }

    pub(in crate::store) fn get_app(&self, app_id: &str) -> Result<Option<AppRecord>> {
        self.block(async {
            let row = self
                .client()
                .await?
                .row("SELECT body FROM apps WHERE app_id = $1", &[&app_id])
                .await?;
            record("apps", row)
        })
    }

    pub(in crate::store) fn find_app(
        &self,
        workspace: &str,
        environment: &str,
        name: &str,
    ) -> Result<Option<AppRecord>> {
        let key = name_key(workspace, environment, name);
        self.block(async {
            let row = self
                .client()
                .await?
                .row("SELECT body FROM apps WHERE name_key = $1", &[&key])
                .await?;
            record("apps", row)
        })
    }

    pub(in crate::store) fn current_version(
        &self,
        app: &AppRecord,
    ) -> Result<Option<VersionRecord>> {
        self.get_version(&app.app_id, app.version)
    }

    pub(in crate::store) fn current_versions(
        &self,
        apps: &[&AppRecord],
    ) -> Result<HashMap<String, VersionRecord>> {
        let ids: Vec<&str> = apps.iter().map(|a| a.app_id.as_str()).collect();
        let versions: Vec<i64> = apps.iter().map(|a| i64::from(a.version)).collect();
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "SELECT v.app_id, v.body FROM versions v
                     JOIN unnest($1::text[], $2::bigint[]) AS wanted (app_id, version)
                       ON v.app_id = wanted.app_id AND v.version = wanted.version",
                    &[&ids, &versions],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.get(0), decode("versions", r.get(1))?)))
                .collect()
        })
    }

    pub(in crate::store) fn get_version(
        &self,
        app_id: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>> {
        self.block(async {
            let row = self
                .client()
                .await?
                .row(
                    "SELECT body FROM versions WHERE app_id = $1 AND version = $2",
                    &[&app_id, &i64::from(version)],
                )
                .await?;
            record("versions", row)
        })
    }

    pub(in crate::store) fn list_versions(&self, app_id: &str) -> Result<Vec<VersionRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "SELECT body FROM versions WHERE app_id = $1 ORDER BY version DESC",
                    &[&app_id],
                )
                .await?;
            records("versions", &rows)
        })
    }

    pub(in crate::store) fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows("SELECT body FROM functions ORDER BY function_id", &[])
                .await?;
            records("functions", &rows)
        })
    }

    pub(in crate::store) fn app_functions(&self, app_id: &str) -> Result<Vec<FunctionRecord>> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .rows(
                    "SELECT body FROM functions WHERE app_id = $1 ORDER BY name",
                    &[&app_id],
                )
                .await?;
            records("functions", &rows)
        })
    }

    pub(in crate::store) fn get_function(
        &self,
        function_id: &str,
    ) -> Result<Option<FunctionRecord>> {
        self.block(async {
            let row = self
                .client()
                .await?
                .row(
                    "SELECT body FROM functions WHERE function_id = $1",
                    &[&function_id],
                )
                .await?;
            record("functions", row)
        })
    }

    pub(in crate::store) fn create_app(
        &self,
        workspace: &str,
        environment: &str,
        name: &str,
        ephemeral: bool,
    ) -> Result<AppRecord> {
        check_name("app name", name)?;
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            begin_change(&txn).await?;
            let key = name_key(workspace, environment, name);
            if txn
                .row("SELECT 1 FROM apps WHERE name_key = $1", &[&key])
                .await?
                .is_some()
            {
                return Err(deploy::name_taken(workspace, environment, name));
            }
            let app = deploy::new_app(workspace, environment, name, ephemeral);
            put_app(&txn, &app).await?;
            log_change(&txn, &app.app_id).await?;
            txn.commit().await?;
            Ok(app)
        })
    }

    pub(in crate::store) fn deploy(&self, req: &DeployRequest<'_>) -> Result<Deployed> {
        check_name("app name", req.name)?;
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            begin_change(&txn).await?;
            let deployed = deploy_in(&txn, req).await?;
            if deployed.changed {
                log_change(&txn, &deployed.app.app_id).await?;
                txn.commit().await?;
            } else {
                txn.rollback().await?;
            }
            Ok(deployed)
        })
    }

    pub(in crate::store) fn set_app_state(
        &self,
        app_id: &str,
        state: AppState,
    ) -> Result<AppRecord> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            begin_change(&txn).await?;
            let row = txn
                .row("SELECT body FROM apps WHERE app_id = $1", &[&app_id])
                .await?;
            let mut app: AppRecord = record("apps", row)?
                .ok_or_else(|| StoreError::NotFound(format!("no app with id {app_id}")))?;
            app.state = state;
            app.updated_at = now();
            put_app(&txn, &app).await?;
            log_change(&txn, app_id).await?;
            txn.commit().await?;
            Ok(app)
        })
    }

    pub(in crate::store) fn delete_app(&self, app_id: &str) -> Result<()> {
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            begin_change(&txn).await?;
            let gone = txn
                .run("DELETE FROM apps WHERE app_id = $1", &[&app_id])
                .await?;
            if gone == 0 {
                return Err(StoreError::NotFound(format!("no app with id {app_id}")));
            }
            txn.run("DELETE FROM versions WHERE app_id = $1", &[&app_id])
                .await?;
            for table in ["labels", "domains"] {
                txn.run(
                    &format!(
                        "DELETE FROM {table} WHERE function_id IN
                         (SELECT function_id FROM functions WHERE app_id = $1)"
                    ),
                    &[&app_id],
                )
                .await?;
            }
            txn.run("DELETE FROM functions WHERE app_id = $1", &[&app_id])
                .await?;
            log_change(&txn, app_id).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub(in crate::store) fn set_label(
        &self,
        function_id: &str,
        label: &str,
    ) -> Result<FunctionRecord> {
        check_name("label", label)?;
        self.block(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            begin_change(&txn).await?;
            let row = txn
                .row(
                    "SELECT body FROM functions WHERE function_id = $1",
                    &[&function_id],
                )
                .await?;
            let mut function: FunctionRecord = record("functions", row)?.ok_or_else(|| {
                StoreError::NotFound(format!("no web endpoint with id {function_id}"))
            })?;
            let row = txn
                .row(
                    "SELECT body FROM apps WHERE app_id = $1",
                    &[&function.app_id],
                )
                .await?;
            let app: AppRecord = record("apps", row)?
                .ok_or_else(|| StoreError::NotFound(format!("app {} is gone", function.app_id)))?;
            let workspace = app.workspace;
            let key = format!("{workspace}/{label}");
            let what = format!("the label {label:?} in workspace {workspace:?}");
            if let Some(old) = &function.custom_label {
                txn.run(
                    "DELETE FROM labels WHERE key = $1 AND function_id = $2",
                    &[&format!("{workspace}/{old}"), &function_id],
                )
                .await?;
            }
            reserve(&txn, "labels", &key, function_id, &what).await?;
            function.custom_label = Some(label.to_owned());
            put_function(&txn, &function).await?;
            log_change(&txn, &function.app_id).await?;
            txn.commit().await?;
            Ok(function)
        })
    }
}

/// A deploy (see `store::deploy`) in one transaction.
async fn deploy_in(txn: &Transaction<'_>, req: &DeployRequest<'_>) -> Result<Deployed> {
    let key = name_key(req.workspace, req.environment, req.name);
    let row = txn
        .row("SELECT body FROM apps WHERE name_key = $1", &[&key])
        .await?;
    let existing: Option<AppRecord> = record("apps", row)?;
    let previous: Vec<FunctionRecord> = match &existing {
        Some(app) => {
            let rows = txn
                .rows(
                    "SELECT body FROM functions WHERE app_id = $1",
                    &[&app.app_id],
                )
                .await?;
            records("functions", &rows)?
        }
        None => Vec::new(),
    };
    if let Some(app) = &existing {
        let row = txn
            .row(
                "SELECT body FROM versions WHERE app_id = $1 AND version = $2",
                &[&app.app_id, &i64::from(app.version)],
            )
            .await?;
        if let Some(current) = record::<VersionRecord>("versions", row)?
            && deploy::unchanged(app, &current, req)
        {
            return Ok(deploy::as_before(app, current, previous));
        }
    }
    let plan = deploy::plan(req, existing, previous);
    txn.run(
        "INSERT INTO versions (app_id, version, digest, body) VALUES ($1, $2, $3, $4)",
        &[
            &plan.app.app_id,
            &i64::from(plan.app.version),
            &plan.version.digest,
            &encode(&plan.version),
        ],
    )
    .await?;
    put_app(txn, &plan.app).await?;
    for f in plan.active.iter().chain(&plan.gone) {
        put_function(txn, f).await?;
    }
    for gone in &plan.gone {
        for table in ["labels", "domains"] {
            txn.run(
                &format!("DELETE FROM {table} WHERE function_id = $1"),
                &[&gone.function_id],
            )
            .await?;
        }
    }
    for r in &plan.reservations {
        let table = if r.domain { "domains" } else { "labels" };
        reserve(txn, table, &r.key, &r.function_id, &r.what).await?;
    }
    Ok(Deployed {
        app: plan.app,
        version: plan.version,
        changed: true,
        functions: plan.active,
    })
}
