//! The embedded backend: every table in one redb file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;

use super::changes::{ChangeLog, ChangedApps};
use super::group::GroupCommit;
use super::{
    AppRecord, AppState, DeployRequest, Deployed, FunctionRecord, Result, StoreError,
    VersionRecord, calls, check_name, decode, deploy, encode, extras, logs, now, seal, secrets,
};

pub(super) const APPS: TableDefinition<&str, &str> = TableDefinition::new("apps");
/// `workspace/environment/name` → app id.
pub(super) const APP_NAMES: TableDefinition<&str, &str> = TableDefinition::new("app_names");
pub(super) const VERSIONS: TableDefinition<(&str, u32), &str> = TableDefinition::new("versions");
pub(super) const FUNCTIONS: TableDefinition<&str, &str> = TableDefinition::new("functions");
/// `app_id/name` → function id.
pub(super) const FUNCTION_NAMES: TableDefinition<&str, &str> =
    TableDefinition::new("function_names");
/// `workspace/label` → function id.
pub(super) const LABELS: TableDefinition<&str, &str> = TableDefinition::new("labels");
/// custom domain → function id.
pub(super) const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
pub(super) const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");

/// The embedded store (one redb file).
pub(super) struct Redb {
    pub(super) db: Database,
    pub(super) key: seal::SecretKey,
    /// Counts changes to what hosts serve, and which app each touched; one process sees
    /// all of them.
    changes: ChangeLog,
    /// Whether the calls left by an earlier process were handed out.
    resumed: AtomicBool,
    /// Call records written from many tasks at once share their commits (boxed: the
    /// backend enum stays the size of its larger handle).
    pub(super) group: Box<GroupCommit>,
}

pub(super) fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static str>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(raw) => Ok(Some(decode(name, raw.value())?)),
        None => Ok(None),
    }
}

pub(super) fn all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static str>,
    name: &'static str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, v) = entry?;
        out.push(decode(name, v.value())?);
    }
    Ok(out)
}

/// An app's function records, by name: found through `function_names`, whose keys are
/// `app_id/name`, so the cost is the app's functions, not every app's.
fn functions_of(
    names: &impl ReadableTable<&'static str, &'static str>,
    functions: &impl ReadableTable<&'static str, &'static str>,
    app_id: &str,
) -> Result<Vec<FunctionRecord>> {
    let prefix = format!("{app_id}/");
    let mut out = Vec::new();
    for entry in names.range(prefix.as_str()..)? {
        let (key, function_id) = entry?;
        if !key.value().starts_with(&prefix) {
            break;
        }
        if let Some(f) = get(functions, "functions", function_id.value())? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Page cache of the redb file: enough for the hot tables (apps, functions, tokens) and the
/// recent calls a server reads back.
const CACHE_BYTES: usize = 32 << 20;

/// Storage for a store in memory: an anonymous in-memory file, which grows sparsely.
///
/// redb's own `InMemoryBackend` zero-fills every byte the database reserves as it grows,
/// 1 MiB before the first table: 0.8 ms of page faults, a tenth of `wasmhost run`'s time
/// to its first answer.
#[cfg(target_os = "linux")]
fn memory_backend() -> Result<redb::backends::FileBackend> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = memfd_create("wasmhost-state", MemfdFlags::CLOEXEC).map_err(std::io::Error::from)?;
    Ok(redb::backends::FileBackend::new(std::fs::File::from(fd))?)
}

#[cfg(not(target_os = "linux"))]
fn memory_backend() -> Result<redb::backends::InMemoryBackend> {
    Ok(redb::backends::InMemoryBackend::new())
}

impl Redb {
    /// Opens (or creates) the store at `path`, with the key that seals its secrets in
    /// [`KEY_FILE`] beside it (made on first open; a missing or wrong key for existing
    /// sealed secrets is an error).
    pub(super) fn open(path: &Path) -> Result<Self> {
        // redb caches up to 1 GiB of pages by default, which a busy host fills with call
        // records it rarely reads again: resident memory then grows with every call.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        Self::create_tables(&db)?;
        let key = secrets::open_key(&db, path)?;
        Ok(Self::with(db, key))
    }

    /// A store in memory whose secrets' key is never written (see `Store::open_in_memory`).
    pub(super) fn open_in_memory(path: &Path) -> Result<Self> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(memory_backend()?)?;
        Self::create_tables(&db)?;
        Ok(Self::with(db, seal::SecretKey::ephemeral(path)))
    }

    fn with(db: redb::Database, key: seal::SecretKey) -> Self {
        Self {
            db,
            key,
            changes: ChangeLog::default(),
            resumed: AtomicBool::new(false),
            group: Box::default(),
        }
    }

    /// Creates every table up front so readers never meet a missing one.
    fn create_tables(db: &redb::Database) -> Result<()> {
        // A write transaction is a durable commit (two `fdatasync`s on a file), which a
        // store that has every table already (every open but the first) does without.
        let present: HashSet<String> = db
            .begin_read()?
            .list_tables()?
            .map(|table| table.name().to_owned())
            .collect();
        // A store from before the call indexes gets them built from its calls, once.
        let unindexed = !present.contains(calls::CALLS_BY_FUNCTION.name());
        macro_rules! create {
            ($($table:expr),* $(,)?) => {{
                if [$($table.name()),*].iter().all(|name| present.contains(*name)) {
                    return Ok(());
                }
                let txn = db.begin_write()?;
                $(txn.open_table($table)?;)*
                if unindexed {
                    calls::index_existing(&txn)?;
                }
                txn.commit()?;
            }};
        }
        create!(
            APPS,
            APP_NAMES,
            VERSIONS,
            FUNCTIONS,
            FUNCTION_NAMES,
            LABELS,
            DOMAINS,
            TOKENS,
            calls::CALLS,
            calls::CALLS_BY_FUNCTION,
            calls::OPEN_CALLS,
            calls::FINISHED_CALLS,
            secrets::SECRETS,
            extras::VOLUMES,
            extras::SCHEDULES,
            logs::LOGS,
            logs::APP_LOGS,
            logs::CALL_LOGS,
        );
        Ok(())
    }

    /// See `Store::change_seq`.
    pub(super) fn change_seq(&self) -> Result<u64> {
        Ok(self.changes.seq())
    }

    /// See `Store::changes_since`.
    pub(super) fn changes_since(&self, since: u64) -> Result<Option<ChangedApps>> {
        Ok(self.changes.since(since))
    }

    /// See `Store::claim_orphaned_calls`: one process owns every call, so only the calls
    /// an earlier process left are orphans, once.
    pub(super) fn claim_orphaned_calls(&self) -> Result<Vec<super::CallRecord>> {
        if self.resumed.swap(true, Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.unfinished_calls()
    }

    /// See `Store::renew_leases`: the process itself is the lease.
    pub(super) fn renew_leases(&self) -> Result<()> {
        Ok(())
    }

    /// See `Store::schedule_leader`: one process fires every schedule.
    pub(super) fn schedule_leader(&self) -> Result<bool> {
        Ok(true)
    }

    /// See `Store::put_component`: `components/` is where every reader looks already.
    pub(super) fn put_component(&self, _digest: &str, _file: &Path) -> Result<()> {
        Ok(())
    }

    /// See `Store::fetch_component`: the file is either there or lost.
    pub(super) fn fetch_component(&self, digest: &str, file: &Path) -> Result<()> {
        if file.exists() {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!(
                "component {digest} is missing from {}",
                file.display()
            )))
        }
    }

    pub(super) fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    pub(super) fn write(&self) -> Result<WriteTransaction> {
        Ok(self.db.begin_write()?)
    }

    /// The digests of every stored version's component (what `components/` must keep).
    pub(super) fn component_digests(&self) -> Result<std::collections::HashSet<String>> {
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS)?;
        let mut digests = std::collections::HashSet::new();
        for entry in versions.iter()? {
            let (_, raw) = entry?;
            digests.insert(decode::<VersionRecord>("versions", raw.value())?.digest);
        }
        Ok(digests)
    }

    /// Every app.
    pub(super) fn list_apps(&self) -> Result<Vec<AppRecord>> {
        all(&self.read()?.open_table(APPS)?, "apps")
    }

    /// One app by id.
    pub(super) fn get_app(&self, app_id: &str) -> Result<Option<AppRecord>> {
        get(&self.read()?.open_table(APPS)?, "apps", app_id)
    }

    /// One app by workspace, environment and name.
    pub(super) fn find_app(
        &self,
        workspace: &str,
        environment: &str,
        name: &str,
    ) -> Result<Option<AppRecord>> {
        let txn = self.read()?;
        let names = txn.open_table(APP_NAMES)?;
        let Some(id) = names.get(format!("{workspace}/{environment}/{name}").as_str())? else {
            return Ok(None);
        };
        get(&txn.open_table(APPS)?, "apps", id.value())
    }

    /// The version an app serves now.
    pub(super) fn current_version(&self, app: &AppRecord) -> Result<Option<VersionRecord>> {
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS)?;
        match versions.get((app.app_id.as_str(), app.version))? {
            Some(raw) => Ok(Some(decode("versions", raw.value())?)),
            None => Ok(None),
        }
    }

    /// See `Store::current_versions`.
    pub(super) fn current_versions(
        &self,
        apps: &[&AppRecord],
    ) -> Result<std::collections::HashMap<String, VersionRecord>> {
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS)?;
        let mut found = std::collections::HashMap::with_capacity(apps.len());
        for app in apps {
            if let Some(raw) = versions.get((app.app_id.as_str(), app.version))? {
                found.insert(app.app_id.clone(), decode("versions", raw.value())?);
            }
        }
        Ok(found)
    }

    /// Every function record, active or not.
    pub(super) fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        all(&self.read()?.open_table(FUNCTIONS)?, "functions")
    }

    /// Every function record of one app, active or not, by name.
    pub(super) fn app_functions(&self, app_id: &str) -> Result<Vec<FunctionRecord>> {
        let txn = self.read()?;
        functions_of(
            &txn.open_table(FUNCTION_NAMES)?,
            &txn.open_table(FUNCTIONS)?,
            app_id,
        )
    }

    /// One function by id.
    pub(super) fn get_function(&self, function_id: &str) -> Result<Option<FunctionRecord>> {
        get(
            &self.read()?.open_table(FUNCTIONS)?,
            "functions",
            function_id,
        )
    }

    /// Creates an app with no version yet (the API's `POST /apps`).
    pub(super) fn create_app(
        &self,
        workspace: &str,
        environment: &str,
        name: &str,
        ephemeral: bool,
    ) -> Result<AppRecord> {
        check_name("app name", name)?;
        let txn = self.write()?;
        let app = {
            let mut names = txn.open_table(APP_NAMES)?;
            let key = format!("{workspace}/{environment}/{name}");
            if names.get(key.as_str())?.is_some() {
                return Err(deploy::name_taken(workspace, environment, name));
            }
            let app = deploy::new_app(workspace, environment, name, ephemeral);
            names.insert(key.as_str(), app.app_id.as_str())?;
            txn.open_table(APPS)?
                .insert(app.app_id.as_str(), encode(&app).as_str())?;
            app
        };
        txn.commit()?;
        Ok(app)
    }

    /// Records a deploy atomically: a new version (unless the component is unchanged),
    /// function ids kept across versions, labels and domains reserved.
    pub(super) fn deploy(&self, req: &DeployRequest<'_>) -> Result<Deployed> {
        check_name("app name", req.name)?;
        let txn = self.write()?;
        let deployed = deploy_in(&txn, req)?;
        if deployed.changed {
            txn.commit()?;
            self.changes.changed(&deployed.app.app_id);
        } else {
            txn.abort()?;
        }
        Ok(deployed)
    }

    /// Sets an app's state (e.g. stops it).
    pub(super) fn set_app_state(&self, app_id: &str, state: AppState) -> Result<AppRecord> {
        let txn = self.write()?;
        let app = {
            let mut apps = txn.open_table(APPS)?;
            let mut app: AppRecord = get(&apps, "apps", app_id)?
                .ok_or_else(|| StoreError::NotFound(format!("no app with id {app_id}")))?;
            app.state = state;
            app.updated_at = now();
            apps.insert(app_id, encode(&app).as_str())?;
            app
        };
        txn.commit()?;
        self.changes.changed(app_id);
        Ok(app)
    }

    /// Removes an app and everything it owns (used for ephemeral apps).
    pub(super) fn delete_app(&self, app_id: &str) -> Result<()> {
        let txn = self.write()?;
        {
            let mut apps = txn.open_table(APPS)?;
            let Some(app) = get::<AppRecord>(&apps, "apps", app_id)? else {
                return Err(StoreError::NotFound(format!("no app with id {app_id}")));
            };
            apps.remove(app_id)?;
            txn.open_table(APP_NAMES)?
                .remove(format!("{}/{}/{}", app.workspace, app.environment, app.name).as_str())?;
            let mut versions = txn.open_table(VERSIONS)?;
            for v in 1..=app.version {
                versions.remove((app_id, v))?;
            }
            let mut functions = txn.open_table(FUNCTIONS)?;
            let mut names = txn.open_table(FUNCTION_NAMES)?;
            let ours = functions_of(&names, &functions, app_id)?;
            for f in &ours {
                functions.remove(f.function_id.as_str())?;
                names.remove(format!("{app_id}/{}", f.name).as_str())?;
            }
            let ids: Vec<&str> = ours.iter().map(|f| f.function_id.as_str()).collect();
            release_where(&mut txn.open_table(LABELS)?, |id| ids.contains(&id))?;
            release_where(&mut txn.open_table(DOMAINS)?, |id| ids.contains(&id))?;
        }
        txn.commit()?;
        self.changes.changed(app_id);
        Ok(())
    }

    /// Gives a function's web endpoint a custom label; a label held by another is a conflict.
    pub(super) fn set_label(&self, function_id: &str, label: &str) -> Result<FunctionRecord> {
        check_name("label", label)?;
        let txn = self.write()?;
        let function = {
            let mut functions = txn.open_table(FUNCTIONS)?;
            let mut function: FunctionRecord = get(&functions, "functions", function_id)?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("no web endpoint with id {function_id}"))
                })?;
            let workspace = {
                let apps = txn.open_table(APPS)?;
                let app: AppRecord = get(&apps, "apps", &function.app_id)?.ok_or_else(|| {
                    StoreError::NotFound(format!("app {} is gone", function.app_id))
                })?;
                app.workspace
            };
            let mut labels = txn.open_table(LABELS)?;
            let key = format!("{workspace}/{label}");
            if let Some(holder) = labels.get(key.as_str())?
                && holder.value() != function_id
            {
                return Err(StoreError::Conflict(format!(
                    "the label {label:?} is already used by another endpoint in workspace {workspace:?}"
                )));
            }
            if let Some(old) = &function.custom_label {
                labels.remove(format!("{workspace}/{old}").as_str())?;
            }
            labels.insert(key.as_str(), function_id)?;
            function.custom_label = Some(label.to_owned());
            functions.insert(function_id, encode(&function).as_str())?;
            function
        };
        txn.commit()?;
        self.changes.changed(&function.app_id);
        Ok(function)
    }
}

/// Drops every entry of a name table whose function id matches.
fn release_where(
    table: &mut redb::Table<&str, &str>,
    matches: impl Fn(&str) -> bool,
) -> Result<()> {
    let keys: Vec<String> = table
        .iter()?
        .filter_map(|e| e.ok())
        .filter(|(_, v)| matches(v.value()))
        .map(|(k, _)| k.value().to_owned())
        .collect();
    for k in keys {
        table.remove(k.as_str())?;
    }
    Ok(())
}

/// Reserves `key` in a name table for `function_id`, failing if someone else holds it.
fn reserve(
    table: &mut redb::Table<&str, &str>,
    key: &str,
    function_id: &str,
    what: &str,
) -> Result<()> {
    if let Some(holder) = table.get(key)?
        && holder.value() != function_id
    {
        return Err(StoreError::Conflict(format!(
            "{what} is already used by another endpoint"
        )));
    }
    table.insert(key, function_id)?;
    Ok(())
}

fn deploy_in(txn: &WriteTransaction, req: &DeployRequest<'_>) -> Result<Deployed> {
    let mut apps = txn.open_table(APPS)?;
    let mut app_names = txn.open_table(APP_NAMES)?;
    let mut versions = txn.open_table(VERSIONS)?;
    let mut functions = txn.open_table(FUNCTIONS)?;
    let mut function_names = txn.open_table(FUNCTION_NAMES)?;
    let mut labels = txn.open_table(LABELS)?;
    let mut domains = txn.open_table(DOMAINS)?;

    let name_key = format!("{}/{}/{}", req.workspace, req.environment, req.name);
    let existing: Option<AppRecord> = match app_names.get(name_key.as_str())? {
        Some(id) => get(&apps, "apps", id.value())?,
        None => None,
    };
    let previous = match &existing {
        Some(app) => functions_of(&function_names, &functions, &app.app_id)?,
        None => Vec::new(),
    };
    if let Some(app) = &existing
        && let Some(raw) = versions.get((app.app_id.as_str(), app.version))?
    {
        let current: VersionRecord = decode("versions", raw.value())?;
        if deploy::unchanged(app, &current, req) {
            return Ok(deploy::as_before(app, current, previous));
        }
    }
    let plan = deploy::plan(req, existing, previous);
    let app = &plan.app;
    versions.insert(
        (app.app_id.as_str(), app.version),
        encode(&plan.version).as_str(),
    )?;
    app_names.insert(name_key.as_str(), app.app_id.as_str())?;
    apps.insert(app.app_id.as_str(), encode(app).as_str())?;
    for f in plan.active.iter().chain(&plan.gone) {
        let key = format!("{}/{}", app.app_id, f.name);
        function_names.insert(key.as_str(), f.function_id.as_str())?;
        functions.insert(f.function_id.as_str(), encode(f).as_str())?;
    }
    let gone = |id: &str| plan.gone.iter().any(|g| g.function_id == id);
    release_where(&mut labels, gone)?;
    release_where(&mut domains, gone)?;
    for r in &plan.reservations {
        let table = if r.domain { &mut domains } else { &mut labels };
        reserve(table, &r.key, &r.function_id, &r.what)?;
    }
    Ok(Deployed {
        app: plan.app,
        version: plan.version,
        changed: true,
        functions: plan.active,
    })
}
