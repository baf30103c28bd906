//! The control plane: deploys uploaded components, keeps the live set of apps in step
//! with the store, and serves the REST API under `/v1` (Modal's apps, functions and
//! web-endpoints resources).

mod api;
mod calls;
mod dashboard;
mod directory;
mod history;
mod leftovers;
mod live;
mod logs;
mod offload;
mod openapi;
mod resources;
mod routes;
mod routing;
mod sync;
#[cfg(fuzzing)]
pub use routes::fuzz_route;
#[cfg(fuzzing)]
pub use upload::fuzz_upload_header;
mod upload;
mod urls;
mod views;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use hyper::body::Incoming;

pub use api::ApiError;
pub use urls::UrlScheme;
pub use views::DeployResult;

use crate::engine::{AppManifest, Engine, LoadedComponent, is_dns_label};
use crate::functions::{Functions, FunctionsConfig, Logs, Resolved, Resolver, Schedule};
use crate::gateway::Gateway;
use crate::shapes::WebApp;
use crate::store::{
    AppRecord, AppState, Database, DeployRequest, Deployer, NewToken, Store, StoreError,
};
use live::{LiveApp, LiveApps};
use routing::Routing;

/// Settings of `wasmhost server`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `state.redb`, `components/`, `cache/` and `admin-token`.
    pub data_dir: PathBuf,
    /// Workspace of every app (single-tenant for now).
    pub workspace: String,
    /// Environment used when a deploy names none.
    pub default_environment: String,
    /// How endpoints are named.
    pub urls: UrlScheme,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Inputs of one `map` running at once.
    pub map_concurrency: usize,
    /// How long finished call records are kept.
    pub result_retention: Duration,
    /// Where the state lives: `state.redb` in the data directory, in memory (it ends with
    /// the process), or PostgreSQL shared with other hosts.
    pub database: Database,
}

/// Options of one deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// App name; the component's own name when absent.
    pub name: Option<String>,
    /// Environment; the default when absent.
    pub environment: Option<String>,
    /// Deploy as an ephemeral (`serve`) app.
    pub ephemeral: bool,
    /// The token deploying, recorded in the app's history.
    pub deployed_by: Option<Deployer>,
    /// For a rollback: the earlier version served again.
    pub rollback_of: Option<u32>,
}

/// The control plane: store, engine and the live apps, behind the `/v1` API.
pub struct ControlPlane {
    store: Arc<Store>,
    engine: Arc<Engine>,
    functions: Arc<Functions>,
    config: ServerConfig,
    live: RwLock<LiveApps>,
    /// The routes of the live apps, changed one app at a time.
    routing: Mutex<Routing>,
    /// The callable functions, changed with the routes.
    directory: RwLock<directory::Directory>,
    gateway: RwLock<Weak<Gateway>>,
    /// Serialises changes to the live set so route tables are built from one state.
    changes: tokio::sync::Mutex<()>,
    /// The store's change count that the live apps and routes reflect; the follower
    /// syncs with the store when the store's count differs.
    synced: AtomicU64,
    /// Browsers logged in to the dashboard.
    sessions: dashboard::Sessions,
    /// Where the API's requests run (threads of their own with a remote store).
    offload: offload::Offload,
}

/// What the server says at start-up.
pub struct Startup {
    /// The admin token created on first start, if this was the first start.
    pub admin_token: Option<NewToken>,
    /// Where the admin token file is.
    pub admin_token_path: PathBuf,
    /// Apps brought back from the store.
    pub restored: usize,
    /// Calls resumed after an interrupted run.
    pub resumed_calls: usize,
}

/// The data directory opened before the engine exists: its directories, the store, the
/// first admin token and the call-log writer. A restart opens these while the engine is
/// built.
pub struct OpenedData {
    config: ServerConfig,
    store: Arc<Store>,
    logs: Arc<Logs>,
    admin_token: Option<NewToken>,
    admin_token_path: PathBuf,
}

impl OpenedData {
    /// Tells when the store has closed (see [`Store::close_watch`]).
    pub fn close_watch(&self) -> Option<crate::store::CloseWatch> {
        self.store.close_watch()
    }
}

impl ControlPlane {
    /// Opens the data directory: the store, a first admin token, and every deployed app.
    pub async fn open(
        config: ServerConfig,
        engine: Arc<Engine>,
    ) -> anyhow::Result<(Arc<Self>, Startup)> {
        Self::start(Self::open_data(config)?, engine).await
    }

    /// The part of [`ControlPlane::open`] that needs no engine: the directories, the
    /// store, a first admin token and the call-log writer thread.
    pub fn open_data(config: ServerConfig) -> anyhow::Result<OpenedData> {
        // Every directory exists from the start, so a refused upload leaves nothing new behind.
        // Tokens' hashes, secrets and call results are for the user running the server.
        for sub in ["components", "uploads", "cache", "volumes"] {
            std::fs::create_dir_all(config.data_dir.join(sub))?;
            restrict_mode(&config.data_dir.join(sub), 0o700)?;
        }
        restrict_mode(&config.data_dir, 0o700)?;
        // No upload is under way yet: whatever is in uploads/ was cut short by a crash.
        leftovers::remove_partial_uploads(&config.data_dir.join("uploads"));
        leftovers::remove_temp_files(&config.data_dir.join("cache"));
        let state = config.data_dir.join("state.redb");
        let store = Arc::new(Store::open_database(&config.database, &state)?);
        if state.exists() {
            restrict_mode(&state, 0o600)?;
        }
        let admin_token_path = config.data_dir.join("admin-token");
        let admin_token = if store.has_tokens()? {
            None
        } else {
            let token = store.create_token("admin", crate::store::Scope::Admin)?;
            write_secret_file(&admin_token_path, &format!("{}\n", token.bearer()))?;
            Some(token)
        };
        // The call log's writer thread starts here, beside the engine's build.
        let logs = Logs::start(store.clone());
        Ok(OpenedData {
            config,
            store,
            logs,
            admin_token,
            admin_token_path,
        })
    }

    /// The rest of [`ControlPlane::open`]: the function workers on `engine`, and every
    /// deployed app brought back.
    pub async fn start(
        data: OpenedData,
        engine: Arc<Engine>,
    ) -> anyhow::Result<(Arc<Self>, Startup)> {
        let OpenedData {
            config,
            store,
            logs,
            admin_token,
            admin_token_path,
        } = data;
        let functions = Functions::start(
            engine.clone(),
            (store.clone(), logs),
            FunctionsConfig {
                workers: 64,
                map_concurrency: config.map_concurrency,
                retention: config.result_retention,
                volumes_dir: config.data_dir.join("volumes"),
            },
        );
        let store_waits = store.is_remote();
        let control = Arc::new(Self {
            store,
            engine,
            functions,
            config,
            live: RwLock::new(LiveApps::default()),
            routing: Mutex::new(Routing::default()),
            directory: RwLock::new(directory::Directory::default()),
            gateway: RwLock::new(Weak::new()),
            changes: tokio::sync::Mutex::new(()),
            synced: AtomicU64::new(0),
            sessions: dashboard::Sessions::default(),
            offload: offload::Offload::new(store_waits)?,
        });
        // Read before restoring, so a change another host makes meanwhile is followed.
        control
            .synced
            .store(control.store.change_seq()?, Ordering::SeqCst);
        let restored = control.restore().await?;
        // After restore, so the components of ephemeral apps it removed go too.
        leftovers::remove_orphan_components(
            &control.config.data_dir.join("components"),
            &control.store.component_digests()?,
        );
        let resolver: Weak<dyn Resolver> = Arc::downgrade(&(control.clone() as Arc<dyn Resolver>));
        let resumed_calls = control.functions.attach(resolver)?;
        tokio::spawn(sync::follow_changes(Arc::downgrade(&control)));
        Ok((
            control,
            Startup {
                admin_token,
                admin_token_path,
                restored,
                resumed_calls,
            },
        ))
    }

    /// Connects the gateway whose routes this control plane maintains.
    pub fn attach(&self, gateway: &Arc<Gateway>) {
        *self.gateway.write().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(gateway);
        gateway.set_routes(self.routing().table());
    }

    /// The store (for commands that run beside the server in-process).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Loads every deployed app's current version; ephemeral apps of a dead session go.
    async fn restore(&self) -> anyhow::Result<usize> {
        for app in self.store.list_apps()? {
            if app.state == AppState::Ephemeral {
                tracing::info!(app = %app.name, "removing ephemeral app left by an earlier session");
                self.store.delete_app(&app.app_id)?;
            }
        }
        let _guard = self.changes.lock().await;
        Ok(self.sync_with_store().await?)
    }

    fn component_path(&self, digest: &str) -> PathBuf {
        self.config
            .data_dir
            .join("components")
            .join(format!("{digest}.wasm"))
    }

    fn live_mut(&self) -> std::sync::RwLockWriteGuard<'_, LiveApps> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    fn live_entry(&self, app_id: &str) -> Option<LiveApp> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app_id)
            .cloned()
    }

    fn directory(&self) -> std::sync::RwLockReadGuard<'_, directory::Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    fn directory_mut(&self) -> std::sync::RwLockWriteGuard<'_, directory::Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }

    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, app_id: &str) -> Option<Arc<WebApp>> {
        self.live_entry(app_id).map(|l| l.web)
    }

    /// The web app serving `app_id` now, if the app is live.
    pub fn web_app(&self, app_id: &str) -> Option<Arc<WebApp>> {
        self.live(app_id)
    }

    fn make_live(&self, app_id: &str, version: u32, loaded: LoadedComponent) -> LiveApp {
        loaded.bind_context(self.functions.guest_context(app_id));
        LiveApp {
            web: Arc::new(WebApp::new(self.engine.clone(), Arc::new(loaded))),
            version,
        }
    }

    /// The functions runtime.
    pub fn functions(&self) -> &Arc<Functions> {
        &self.functions
    }

    /// The manifest an app serves (or last served, when stopped).
    fn manifest_of(&self, app: &AppRecord) -> Result<Option<AppManifest>, ApiError> {
        if let Some(web) = self.live(&app.app_id) {
            return Ok(Some(web.manifest().clone()));
        }
        Ok(self.store.current_version(app)?.map(|v| v.manifest))
    }

    /// Receives, validates, compiles and deploys an uploaded component, then switches
    /// the app to it atomically: requests in flight finish on the old version.
    pub async fn deploy(
        &self,
        body: Incoming,
        declared_len: Option<u64>,
        options: DeployOptions,
    ) -> Result<views::DeployResult, ApiError> {
        if let Some(name) = &options.name {
            check_dns("app name", name)?;
        }
        let uploads = self.config.data_dir.join("uploads");
        let temp =
            upload::receive(body, declared_len, &uploads, self.config.max_upload_bytes).await?;
        self.deploy_file(&temp, options).await
    }

    /// Deploys a component file (copied into the data directory); see [`ControlPlane::deploy`].
    pub async fn deploy_file(
        &self,
        path: &Path,
        options: DeployOptions,
    ) -> Result<views::DeployResult, ApiError> {
        if let Some(name) = &options.name {
            check_dns("app name", name)?;
        }
        let environment = options
            .environment
            .clone()
            .unwrap_or_else(|| self.config.default_environment.clone());
        check_dns("environment", &environment)?;
        let loaded = self.engine.load_file(path).await?;
        self.deploy_loaded(path, loaded, options).await
    }

    /// Deploys a component already loaded from `path`; see [`ControlPlane::deploy_file`].
    pub async fn deploy_loaded(
        &self,
        path: &Path,
        mut loaded: LoadedComponent,
        options: DeployOptions,
    ) -> Result<views::DeployResult, ApiError> {
        let environment = options
            .environment
            .clone()
            .unwrap_or_else(|| self.config.default_environment.clone());
        check_dns("environment", &environment)?;
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| loaded.manifest.app.clone());
        check_dns("app name", &name)?;
        loaded.manifest.name_plain_component(&name);
        let overrides = &self.engine.config().scaling_overrides;
        loaded.manifest.apply_overrides(&name, overrides);
        for f in &loaded.manifest.functions {
            if let Some(text) = &f.schedule {
                Schedule::parse(text)
                    .map_err(|e| ApiError::unprocessable(format!("function {:?}: {e}", f.name)))?;
            }
        }
        self.engine.prime(&loaded).await;
        let digest = loaded.digest.clone();
        let target = self.component_path(&digest);
        let existed = target.exists();
        if !existed {
            copy_atomically(path, &target, options.ephemeral)
                .map_err(|e| ApiError::internal(format!("cannot keep the component: {e}")))?;
        }
        // The upload goes; should the cached code go too, this copy compiles again.
        loaded.keep_source(target.clone());
        let _guard = self.changes.lock().await;
        let before = self.store.change_seq().ok();
        let request = DeployRequest {
            workspace: &self.config.workspace,
            environment: &environment,
            name: &name,
            digest: &digest,
            manifest: &loaded.manifest,
            ephemeral: options.ephemeral,
            deployed_by: options.deployed_by.clone(),
            rollback_of: options.rollback_of,
        };
        let shared = self.store.put_component(&digest, &target);
        let deployed = match shared.and_then(|()| self.store.deploy(&request)) {
            Ok(d) => d,
            Err(e) => {
                if !existed {
                    let _ = std::fs::remove_file(&target);
                }
                return Err(e.into());
            }
        };
        for mount in deployed
            .version
            .manifest
            .functions
            .iter()
            .flat_map(|f| &f.volumes)
        {
            self.ensure_volume(&mount.volume)?;
        }
        if deployed.changed || self.live(&deployed.app.app_id).is_none() {
            let live = self.make_live(&deployed.app.app_id, deployed.app.version, loaded);
            self.live_mut().insert(deployed.app.app_id.clone(), live);
            self.reroute(&deployed.app, &deployed.functions);
            tracing::info!(app = %name, version = deployed.app.version, "deployed");
        } else {
            tracing::info!(app = %name, "unchanged component: nothing to deploy");
        }
        self.applied_here(before);
        Ok(self.deploy_result(&deployed))
    }

    /// Stops an app (an ephemeral one is removed): it stops being served at once.
    pub async fn stop(&self, app_id: &str) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        let before = self.store.change_seq().ok();
        let app = self
            .store
            .get_app(app_id)?
            .ok_or_else(|| ApiError::not_found(format!("no app with id {app_id}")))?;
        if app.state == AppState::Ephemeral {
            self.store.delete_app(app_id)?;
        } else {
            self.store.set_app_state(app_id, AppState::Stopped)?;
        }
        self.live_mut().remove(app_id);
        self.unroute(app_id);
        self.applied_here(before);
        tracing::info!(app = %app.name, "stopped");
        Ok(())
    }

    /// Sets a web endpoint's custom label and routes it.
    pub async fn set_label(&self, function_id: &str, label: &str) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        let before = self.store.change_seq().ok();
        let function = self.store.set_label(function_id, label)?;
        match self.store.get_app(&function.app_id)? {
            Some(app) => self.reroute(&app, &self.store.list_functions(&app.app_id)?),
            None => self.rebuild_routes(),
        }
        self.applied_here(before);
        Ok(())
    }

    /// Notes that a change this host made (the store counted `before` until it) is
    /// already served here, so the follower need not sync with the store for it. Only
    /// when the store counted that one change and this host had followed every earlier
    /// one: a change another host made meanwhile still gets its sync.
    fn applied_here(&self, before: Option<u64>) {
        if let Some(before) = before
            && let Ok(now) = self.store.change_seq()
            && now == before + 1
        {
            let _ = self
                .synced
                .compare_exchange(before, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

impl Resolver for ControlPlane {
    fn resolve(&self, function_id: &str) -> Option<Resolved> {
        let listed = self.directory().by_id(function_id)?.clone();
        self.resolved(function_id, &listed.app_id, &listed.name)
    }

    fn resolve_by_name(&self, app_id: &str, name: &str) -> Option<Resolved> {
        let function_id = self.directory().by_name(app_id, name)?.to_owned();
        self.resolved(&function_id, app_id, name)
    }

    fn scheduled(&self) -> Vec<Resolved> {
        let apps: Vec<(String, LiveApp)> = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .scheduled()
            .map(|(id, live)| (id.to_owned(), live.clone()))
            .collect();
        let mut out = Vec::new();
        for (app_id, live) in apps {
            // Only deployed apps run schedules; `serve` sessions do not.
            if !matches!(self.store.get_app(&app_id), Ok(Some(a)) if a.state == AppState::Deployed)
            {
                continue;
            }
            for spec in live
                .web
                .manifest()
                .functions
                .iter()
                .filter(|f| f.schedule.is_some())
            {
                if let Some(r) = self.resolve_by_name(&app_id, &spec.name) {
                    out.push(r);
                }
            }
        }
        out
    }
}

impl ControlPlane {
    /// The function `function_id`, `app_id`'s `name`, as its app's live version has it.
    fn resolved(&self, function_id: &str, app_id: &str, name: &str) -> Option<Resolved> {
        let live = self.live_entry(app_id)?;
        let spec = live.web.manifest().function(name)?.clone();
        Some(Resolved {
            component: live.web.component().clone(),
            spec,
            app_id: app_id.to_owned(),
            version: live.version,
            function_id: function_id.to_owned(),
        })
    }

    /// Creates a volume's record and directory unless it exists.
    fn ensure_volume(&self, name: &str) -> Result<(), ApiError> {
        match self.store.create_volume(name) {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::create_dir_all(self.volume_dir(name))
            .map_err(|e| ApiError::internal(format!("cannot create volume {name:?}: {e}")))
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.config.data_dir.join("volumes").join(name)
    }
}

fn check_dns(what: &str, name: &str) -> Result<(), ApiError> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} {name:?} is not DNS-safe: use 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )))
    }
}

/// Copies `from` to `to` through a temporary file in the target directory.
/// Copies `from` to `to` so that `to` is never seen half written. An ephemeral deploy (its
/// state ends with the process) links instead where it can: a Python component is tens of
/// MiB, and copying it was most of `wasmhost run`'s time between listening and serving.
fn copy_atomically(from: &Path, to: &Path, link: bool) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    if link && std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let temp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::copy(from, temp.path())?;
    temp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Sets `path`'s permission bits (a data directory made by an older version may be 0755).
fn restrict_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
