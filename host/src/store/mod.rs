//! Durable state: apps, versions, functions, labels, domains, tokens, sealed secrets,
//! volumes, calls, schedules and logs, behind one interface with two backends: one redb
//! file (the embedded default; every change is one transaction, so a crash at any point
//! leaves the file consistent) or PostgreSQL, which many hosts share (cluster mode).
//! Nothing outside this module knows which backend holds the state.

mod calls;
mod changes;
mod close;
mod deploy;
mod embedded;
mod extras;
mod group;
mod history;
mod logs;
mod postgres;
mod records;
mod seal;
mod secrets;
mod tokens;

use std::collections::HashSet;
use std::path::Path;

use futures_util::future::Either;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::ids::new_id;
pub use calls::{Attempt, CallRecord, CallStatus};
pub use changes::ChangedApps;
pub use close::CloseWatch;
pub use extras::{ScheduleState, VolumeRecord};
pub use logs::{LogEntry, LogQuery, LogStream};
pub use records::{
    AppRecord, AppState, Deployer, FunctionKind, FunctionRecord, NewToken, Scope, TokenRecord,
    VersionRecord, now,
};
pub use seal::{KEY_FILE, KeyError};
pub use secrets::SecretRecord;

use crate::manifest::{AppManifest, is_dns_label};
use embedded::Redb;
use postgres::Postgres;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, a lock held by another process).
    #[error("state store: {0}")]
    Db(#[from] redb::Error),
    /// PostgreSQL failed or could not be reached.
    #[error("state store (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("state store (PostgreSQL): {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A component file could not be read or written.
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
    /// A record did not decode.
    #[error("state store: corrupt record in table {table}: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// Why it did not decode.
        source: serde_json::Error,
    },
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// No such record.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The key that seals secrets is missing, malformed or not theirs.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store was closed (the host is stopping).
    #[error("the state store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the shared database could not be reached (no connection, a connection that
    /// broke, a server shutting down or refusing sessions): another try, or another host,
    /// may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Closed => true,
            StoreError::Postgres(e) => {
                let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                // SQLSTATE classes 08 (connection exception) and 57P (operator intervention:
                // shutdown, terminated session, cannot connect now).
                let class = e
                    .as_db_error()
                    .map(|d| d.code().code())
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"));
                e.is_closed() || io || class
            }
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// One redb file (`state.redb` in the data directory).
    Embedded,
    /// redb in memory: the state ends with the process (`wasmhost run`, local `serve`).
    InMemory,
    /// A PostgreSQL database shared by every host (`postgres://…`).
    Postgres(String),
}

impl Database {
    /// Reads `--database`: a `postgres://` or `postgresql://` URL; none means embedded.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None => Ok(Database::Embedded),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            Some(other) => Err(StoreError::Invalid(format!(
                "--database {other:?} is not a postgres:// URL (leave it out for the embedded redb store)"
            ))),
        }
    }
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest<'a> {
    /// Workspace of the app.
    pub workspace: &'a str,
    /// Environment of the app.
    pub environment: &'a str,
    /// App name (DNS-safe).
    pub name: &'a str,
    /// sha256 of the component, already saved under that name.
    pub digest: &'a str,
    /// What the component describes.
    pub manifest: &'a AppManifest,
    /// An ephemeral (`serve`) app rather than a deployed one.
    pub ephemeral: bool,
    /// The token deploying it.
    pub deployed_by: Option<Deployer>,
    /// For a rollback: the version being served again.
    pub rollback_of: Option<u32>,
}

/// The outcome of a deploy.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The app after the deploy.
    pub app: AppRecord,
    /// Its current version.
    pub version: VersionRecord,
    /// False when the same component was already deployed (a no-op).
    pub changed: bool,
    /// The app's active functions.
    pub functions: Vec<FunctionRecord>,
}

/// The state store.
pub struct Store {
    backend: Backend,
    /// After `backend`, so it is dropped once the backend has closed.
    closed: close::CloseNotice,
}

enum Backend {
    Redb(Redb),
    // Boxed: a pool, a runtime and a leader session are much larger than a redb handle.
    Postgres(Box<Postgres>),
}

/// Defines each store method once for both backends.
macro_rules! dispatch {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Store {$(
            $(#[$doc])*
            pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                match &self.backend {
                    Backend::Redb(b) => b.$name($($arg),*),
                    Backend::Postgres(b) => b.$name($($arg),*),
                }
            }
        )*}
    };
}

dispatch! {
    /// The digests of every stored version's component (what `components/` must keep).
    fn component_digests(&self) -> HashSet<String>;
    /// Every app.
    fn list_apps(&self) -> Vec<AppRecord>;
    /// One app by id.
    fn get_app(&self, app_id: &str) -> Option<AppRecord>;
    /// One app by workspace, environment and name.
    fn find_app(&self, workspace: &str, environment: &str, name: &str) -> Option<AppRecord>;
    /// The version an app serves now.
    fn current_version(&self, app: &AppRecord) -> Option<VersionRecord>;
    /// The current versions of `apps` by app id, in one read (a restart's thousands of
    /// apps in one round trip to PostgreSQL); an app without one is left out.
    fn current_versions(&self, apps: &[&AppRecord]) -> std::collections::HashMap<String, VersionRecord>;
    /// Every function record, active or not.
    fn all_functions(&self) -> Vec<FunctionRecord>;
    /// Every function record of one app, active or not, by name.
    fn app_functions(&self, app_id: &str) -> Vec<FunctionRecord>;
    /// One function by id.
    fn get_function(&self, function_id: &str) -> Option<FunctionRecord>;
    /// Creates an app with no version yet (the API's `POST /apps`).
    fn create_app(&self, workspace: &str, environment: &str, name: &str, ephemeral: bool) -> AppRecord;
    /// Records a deploy atomically: a new version (unless the component is unchanged),
    /// function ids kept across versions, labels and domains reserved.
    fn deploy(&self, req: &DeployRequest<'_>) -> Deployed;
    /// Sets an app's state (e.g. stops it).
    fn set_app_state(&self, app_id: &str, state: AppState) -> AppRecord;
    /// Removes an app and everything it owns (used for ephemeral apps).
    fn delete_app(&self, app_id: &str) -> ();
    /// Gives a function's web endpoint a custom label; a label held by another is a conflict.
    fn set_label(&self, function_id: &str, label: &str) -> FunctionRecord;
    /// Every version of an app, newest first.
    fn list_versions(&self, app_id: &str) -> Vec<VersionRecord>;
    /// One version of an app.
    fn get_version(&self, app_id: &str, version: u32) -> Option<VersionRecord>;
    /// Creates a token; its secret is returned now and never again.
    fn create_token(&self, name: &str, scope: Scope) -> NewToken;
    /// Every token (without secrets).
    fn list_tokens(&self) -> Vec<TokenRecord>;
    /// Deletes a token so it stops working at once; false if there was none. The last
    /// admin token is kept (a conflict): without it no one could make tokens again.
    fn revoke_token(&self, token_id: &str) -> bool;
    /// Whether any token exists yet.
    fn has_tokens(&self) -> bool;
    /// Creates or replaces a secret.
    fn put_secret(&self, name: &str, values: std::collections::BTreeMap<String, String>) -> SecretRecord;
    /// One secret with its values.
    fn get_secret(&self, name: &str) -> Option<SecretRecord>;
    /// Every secret (callers must not show values).
    fn list_secrets(&self) -> Vec<SecretRecord>;
    /// Deletes a secret.
    fn delete_secret(&self, name: &str) -> ();
    /// Writes a call record (new or updated) durably; a call not over is this host's
    /// to run (in cluster mode, under a lease it renews). A call that is over keeps its
    /// record: a later write of it changes nothing, and returns false.
    fn put_call(&self, call: &CallRecord) -> bool;
    /// Changes a call in one transaction (no other write comes between reading and
    /// writing it); `change` returns whether to write. Returns whether it wrote.
    fn update_call(&self, call_id: &str, change: impl FnOnce(&mut CallRecord) -> bool) -> bool;
    /// One call.
    fn get_call(&self, call_id: &str) -> Option<CallRecord>;
    /// Of `call_ids`, the calls that are over (one query, however many).
    fn calls_over(&self, call_ids: &[String]) -> Vec<CallRecord>;
    /// The most recent calls of a function, newest first.
    fn list_calls(&self, function_id: &str, limit: usize) -> Vec<CallRecord>;
    /// Calls that are not over and that no live host runs, oldest first; they become this
    /// host's to run. At the start of an embedded store that is every unfinished call (the
    /// process that ran them is gone), later none; in cluster mode, calls whose host's
    /// lease ran out (it died).
    fn claim_orphaned_calls(&self) -> Vec<CallRecord>;
    /// Extends the leases on the calls this host runs (nothing to do for one process).
    fn renew_leases(&self) -> ();
    /// Deletes final calls that finished before `cutoff` (RFC 3339); returns how many.
    fn purge_calls(&self, cutoff: &str) -> usize;
    /// Records a volume; a name in use is a conflict.
    fn create_volume(&self, name: &str) -> VolumeRecord;
    /// One volume.
    fn get_volume(&self, name: &str) -> Option<VolumeRecord>;
    /// Every volume.
    fn list_volumes(&self) -> Vec<VolumeRecord>;
    /// The schedule state of a function.
    fn get_schedule(&self, function_id: &str) -> Option<ScheduleState>;
    /// Writes a schedule state.
    fn put_schedule(&self, state: &ScheduleState) -> ();
    /// Records a scheduled run atomically: the call is queued and the next run moved on in
    /// one transaction, so a crash can neither lose nor repeat the run. False (nothing
    /// written) when the run was already recorded, by this host or another.
    fn record_scheduled_run(&self, call: &CallRecord, state: &ScheduleState) -> bool;
    /// Whether this host fires schedules: always for one process; in cluster mode, the
    /// one host holding an advisory lock, taken over when its session ends.
    fn schedule_leader(&self) -> bool;
    /// Appends log lines in one transaction.
    fn append_logs(&self, entries: &[LogEntry]) -> ();
    /// The position of the newest line (0 when there is none).
    fn last_log_seq(&self) -> u64;
    /// Every line of one call, oldest first.
    fn call_logs(&self, call_id: &str) -> Vec<LogEntry>;
    /// An app's newest lines that match `query`, oldest first.
    fn app_logs(&self, app_id: &str, query: &LogQuery<'_>) -> Vec<LogEntry>;
    /// Deletes lines written before `cutoff` (RFC 3339); returns how many.
    fn purge_logs(&self, cutoff: &str) -> usize;
    /// Keeps a component's bytes where every host can fetch them (the embedded store's
    /// `components/` directory already is that place).
    fn put_component(&self, digest: &str, file: &Path) -> ();
    /// Writes a component's bytes to `file` unless it exists (from the shared store).
    fn fetch_component(&self, digest: &str, file: &Path) -> ();
    /// A number that changes whenever apps, versions, labels or domains change, on any
    /// host: a host whose number differs refreshes what it serves.
    fn change_seq(&self) -> u64;
    /// The apps changed after change `since` (a count `change_seq` returned), and the
    /// count that brings a host to; `None` when the store no longer remembers that far
    /// back, and the host must read every app.
    fn changes_since(&self, since: u64) -> Option<ChangedApps>;
}

impl Store {
    /// Opens (or creates) the embedded store at `path`, with the key that seals its
    /// secrets in [`KEY_FILE`] beside it (made on first open; a missing or wrong key for
    /// existing sealed secrets is an error).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::with(Backend::Redb(Redb::open(path)?)))
    }

    /// A store held in memory only, for a host whose state ends with the process
    /// (`wasmhost run`, local `serve`): nothing is written or synced to disk (ten
    /// `fdatasync`s were half of such a host's start), and its secrets' key is never
    /// written either.
    pub fn open_in_memory(path: &Path) -> Result<Self> {
        Ok(Self::with(Backend::Redb(Redb::open_in_memory(path)?)))
    }

    /// Opens the store `database` names: the embedded one at `path`, or PostgreSQL with
    /// its schema brought up to date and secrets sealed with the key file beside `path`
    /// (every host of a cluster needs the same key file).
    pub fn open_database(database: &Database, path: &Path) -> Result<Self> {
        match database {
            Database::Embedded => Self::open(path),
            Database::InMemory => Self::open_in_memory(path),
            Database::Postgres(url) => Ok(Self::with(Backend::Postgres(Box::new(
                Postgres::connect(url, &seal::SecretKey::path_for(path))?,
            )))),
        }
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend,
            closed: close::CloseNotice::new(),
        }
    }

    /// Whether the store is a database across the network (PostgreSQL), whose calls hold
    /// their thread for a round trip.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Tells when this store has closed; `None` after the first call. A server waits for
    /// it before exiting, because an embedded store left open is repaired at the next
    /// start.
    pub fn close_watch(&self) -> Option<CloseWatch> {
        self.closed.take()
    }

    /// Every function of an app that its current version has.
    pub fn list_functions(&self, app_id: &str) -> Result<Vec<FunctionRecord>> {
        Ok(self
            .app_functions(app_id)?
            .into_iter()
            .filter(|f| f.active)
            .collect())
    }

    /// Checks a bearer value `<token_id>:<token_secret>`.
    pub fn verify_bearer(
        &self,
        bearer: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>>> + Send + use<> {
        match bearer.split_once(':') {
            Some((id, secret)) => Either::Left(self.verify_token(id, secret)),
            None => Either::Right(std::future::ready(Ok(None))),
        }
    }

    /// Checks a token id and secret; the comparison takes the same time whatever matches.
    /// Awaited as [`Store::token`] is.
    pub fn verify_token(
        &self,
        token_id: &str,
        secret: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>>> + Send + use<> {
        let (record, secret) = (self.token(token_id), secret.to_owned());
        async move { Ok(tokens::check_secret(record.await?, &secret)) }
    }

    /// One call. Answered at once by the embedded store; on PostgreSQL the read runs on
    /// the store's runtime while the caller's thread serves other requests.
    pub fn call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>>> + Send + use<> {
        match &self.backend {
            Backend::Redb(b) => Either::Left(std::future::ready(b.get_call(call_id))),
            Backend::Postgres(b) => Either::Right(b.call(call_id)),
        }
    }

    /// One token by id.
    ///
    /// The future borrows nothing, and awaiting it blocks no thread: a client without a
    /// token can ask for this lookup, and on PostgreSQL it waits a network round trip,
    /// which would otherwise stall every connection of the serving thread that asked.
    pub fn token(
        &self,
        token_id: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>>> + Send + use<> {
        match &self.backend {
            // A local read of microseconds: answered now.
            Backend::Redb(b) => Either::Left(std::future::ready(b.token(token_id))),
            Backend::Postgres(b) => Either::Right(b.token(token_id)),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    // Our records are plain data: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(table: &'static str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|source| StoreError::Corrupt { table, source })
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} {name:?} is not DNS-safe: use 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )))
    }
}
