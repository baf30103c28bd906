//! The cluster backend: the same records in PostgreSQL, shared by every host. Store calls
//! stay synchronous for their callers: each one runs on a small runtime of the backend's
//! own (which drives the connections), and the calling thread waits for it, as it waits for
//! redb's disk writes in the embedded store.

mod apps;
mod calls;
mod rest;

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error as PgError, Row};

use super::changes::{self, ChangedApps};
use super::group::GroupCommit;
use super::seal::{KeyError, SecretKey};
use super::secrets::{StoredSecret, unseal};
use super::{Result, StoreError, decode, new_id};

/// The schema, in order; `schema_version` records how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("calls-finished.sql"),
    include_str!("app-changes.sql"),
];

/// How long a host's claim on a call lasts unless renewed: a host that dies has its
/// calls run elsewhere this long after its last renewal.
pub(super) const LEASE: Duration = Duration::from_secs(5);

/// Advisory lock keys (any constants unlikely to clash with an application's).
const MIGRATION_LOCK: i64 = 0x7761_736d_0001;
const SCHEDULE_LOCK: i64 = 0x7761_736d_0002;
/// Serialises changes to apps, functions, labels and domains across hosts.
pub(super) const CATALOG_LOCK: i64 = 0x7761_736d_0003;

/// The session that holds, or keeps asking for, the schedule lock.
struct LeaderSession {
    client: tokio_postgres::Client,
    /// Whether it holds the lock (for as long as the session lives).
    holds: bool,
}

/// The PostgreSQL store.
pub(super) struct Postgres {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    config: tokio_postgres::Config,
    key: SecretKey,
    /// This process's name in `claimed_by`.
    host_id: String,
    /// The session holding the schedule lock, once taken (the lock ends with it).
    leader: Mutex<Option<LeaderSession>>,
    /// Call records waiting to share a statement.
    calls: GroupCommit<crate::store::CallRecord, bool>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's task would panic; nothing of it is
        // needed after the store is gone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Postgres {
    /// Connects, applies the migrations not yet applied, and loads the key that seals
    /// secrets (`key_path`, shared by every host).
    pub(super) fn connect(url: &str, key_path: &Path) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmhost-postgres")
            .enable_all()
            .build()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL pool: {e}")))?;
        let key = run_on(&runtime, async {
            migrate(&pool).await?;
            open_key(&pool, key_path).await
        })?;
        Ok(Self {
            runtime: Some(runtime),
            pool,
            config,
            key,
            host_id: new_id("host"),
            leader: Mutex::new(None),
            calls: GroupCommit::default(),
        })
    }

    /// Runs `work` to completion on the backend's runtime; the calling thread waits.
    pub(super) fn block<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let runtime = self.runtime.as_ref().ok_or(StoreError::Closed)?;
        run_on(runtime, work)
    }

    /// Runs `work` as a task of the backend's runtime; its caller awaits the answer
    /// without blocking its thread. For checks made on a serving thread, which `block`
    /// would hold for a network round trip while every connection on it waited.
    pub(super) fn spawn<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let task = self.runtime.as_ref().map(|runtime| runtime.spawn(work));
        async move {
            match task.ok_or(StoreError::Closed)?.await {
                Ok(answer) => answer,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The runtime shut down under it: the store closed.
                Err(_) => Err(StoreError::Closed),
            }
        }
    }

    /// A pooled connection.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// See `Store::schedule_leader`: a session-level advisory lock, held on a connection
    /// of its own, so it passes to another host as soon as this one's session ends.
    pub(super) fn schedule_leader(&self) -> Result<bool> {
        let mut leader = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        if leader.as_ref().is_some_and(|s| s.client.is_closed()) {
            // The session broke (a restarted database): whatever it held is gone.
            *leader = None;
        }
        if let Some(session) = leader.as_ref()
            && session.holds
        {
            return Ok(true);
        }
        let config = self.config.clone();
        self.block(async move {
            if leader.is_none() {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!("schedule leader session ended: {e}");
                    }
                });
                *leader = Some(LeaderSession {
                    client,
                    holds: false,
                });
            }
            let Some(session) = leader.as_mut() else {
                return Ok(false);
            };
            session.holds = session
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SCHEDULE_LOCK])
                .await?
                .get(0);
            if session.holds {
                tracing::info!("this host fires the cluster's schedules");
            }
            Ok(session.holds)
        })
    }

    /// See `Store::change_seq`.
    pub(super) fn change_seq(&self) -> Result<u64> {
        self.block(async {
            let row = self
                .client()
                .await?
                .one("SELECT seq FROM changes", &[])
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    /// See `Store::changes_since`.
    pub(super) fn changes_since(&self, since: u64) -> Result<Option<ChangedApps>> {
        let from = i64::try_from(since).unwrap_or(i64::MAX);
        self.block(async {
            let client = self.client().await?;
            let current: i64 = client.one("SELECT seq FROM changes", &[]).await?.get(0);
            let rows = client
                .rows(
                    "SELECT seq, app_id FROM app_changes WHERE seq > $1 ORDER BY seq",
                    &[&from],
                )
                .await?;
            Ok(changes::after(
                since,
                u64::try_from(current).unwrap_or(0),
                rows.iter()
                    .map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), r.get(1))),
            ))
        })
    }

    /// See `Store::put_component`.
    pub(super) fn put_component(&self, digest: &str, file: &Path) -> Result<()> {
        self.block(async {
            let client = self.client().await?;
            let known = client
                .row("SELECT 1 FROM components WHERE digest = $1", &[&digest])
                .await?
                .is_some();
            if !known {
                let bytes = tokio::fs::read(file).await?;
                client
                    .run(
                        "INSERT INTO components (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&digest, &bytes],
                    )
                    .await?;
            }
            Ok(())
        })
    }

    /// See `Store::fetch_component`.
    pub(super) fn fetch_component(&self, digest: &str, file: &Path) -> Result<()> {
        if file.exists() {
            return Ok(());
        }
        let bytes: Vec<u8> = self.block(async {
            let row = self
                .client()
                .await?
                .row("SELECT bytes FROM components WHERE digest = $1", &[&digest])
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("no component {digest} in the database"))
                })?;
            Ok(row.get(0))
        })?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let temp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(temp.path(), bytes)?;
        temp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Statements through the connection's cache of prepared statements: a statement is
/// parsed and planned once a connection, and each later use is one round trip (Bind and
/// Execute) instead of two (tokio-postgres prepares an unnamed statement, then runs it).
/// Every statement here is one of a fixed set of texts, so the cache stays small.
pub(super) trait Prepared: GenericClient {
    /// `execute`, prepared once a connection.
    async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }

    /// `query`, prepared once a connection.
    async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, PgError> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    /// `query_opt`, prepared once a connection.
    async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, PgError> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    /// `query_one`, prepared once a connection.
    async fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, PgError> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }
}

impl<C: GenericClient> Prepared for C {}

/// Runs `work` on `runtime`'s reactor and waits for it on this thread (which may be
/// another runtime's: only a runtime's own `block_on` is refused there).
///
/// Unconstrained by tokio's cooperative budget: the budget belongs to the task this thread
/// is polling, and while `work` blocks the thread that task cannot yield to renew it. A task
/// that made ~100 store calls in one poll (a restart restoring its apps, a listing of every
/// endpoint) spent it, and from then on every pool checkout and socket read answered
/// "not yet" and woke itself at once: a host with 10,000 apps on PostgreSQL spun a core
/// and never listened.
fn run_on<T>(
    runtime: &tokio::runtime::Runtime,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let _entered = runtime.enter();
    pollster::block_on(tokio::task::unconstrained(work))
}

async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    let txn = client.transaction().await?;
    // Hosts starting together take turns; the first applies, the others find it done.
    txn.run("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    txn.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL)")
        .await?;
    let applied: i64 = txn
        .one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        if version > applied {
            txn.batch_execute(sql).await?;
            txn.run("INSERT INTO schema_version VALUES ($1)", &[&version])
                .await?;
            tracing::info!(version, "applied a PostgreSQL schema migration");
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Loads the sealing key: a missing key file is made only while no sealed secret
/// exists, and a key that does not open what the cluster sealed is refused at start.
async fn open_key(pool: &Pool, key_path: &Path) -> Result<SecretKey> {
    let client = pool.get().await?;
    let rows = client.rows("SELECT body FROM secrets", &[]).await?;
    let stored = rows
        .iter()
        .map(|r| decode::<StoredSecret>("secrets", r.get(0)))
        .collect::<Result<Vec<_>>>()?;
    let key = SecretKey::load(key_path, stored.is_empty())?;
    // Every host must hold the same key: the first one to start leaves a value sealed
    // with its key, and a host with another key is refused now rather than when a
    // function needs a secret.
    let check = super::secrets::seal_record(&key, "(key check)", &Default::default(), super::now());
    client
        .run(
            "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING",
            &[&super::encode(&check)],
        )
        .await?;
    let row = client
        .one("SELECT value FROM meta WHERE key = 'key_check'", &[])
        .await?;
    let check: StoredSecret = decode("meta", row.get(0))?;
    unseal(&key, check).map_err(|_| KeyError::Wrong {
        name: "(key check)".into(),
        path: key_path.to_owned(),
    })?;
    for secret in stored {
        unseal(&key, secret)?;
    }
    Ok(key)
}
