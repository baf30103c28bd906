//! Keeping a host in step with the store: each deployed app served at its current version,
//! nothing of a stopped or removed one. In cluster mode other hosts change the store; each
//! host polls the store's change count and follows.

use std::collections::HashSet;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::ControlPlane;
use crate::store::{AppRecord, AppState, StoreError, VersionRecord};

/// How often a host looks for changes other hosts made (deploys, stops, labels).
const CHANGE_POLL: Duration = Duration::from_millis(250);

/// Follows changes other hosts make to the store, so every host serves the same apps. A
/// change this host made and applied itself needs no sync (`ControlPlane::applied_here`).
pub(super) async fn follow_changes(control: Weak<ControlPlane>) {
    let mut tick = tokio::time::interval(CHANGE_POLL);
    loop {
        tick.tick().await;
        let Some(control) = control.upgrade() else {
            break;
        };
        let behind = |control: &ControlPlane| match control.store.change_seq() {
            Ok(seq) => (seq != control.synced.load(Ordering::SeqCst)).then_some(seq),
            Err(e) => {
                tracing::error!("cannot look for changes: {e}");
                None
            }
        };
        if behind(&control).is_none() {
            continue;
        }
        let _guard = control.changes.lock().await;
        // Again under the lock: a change made here meanwhile may have caught up.
        let Some(seq) = behind(&control) else {
            continue;
        };
        match control.follow(seq).await {
            Ok(seq) => control.synced.store(seq, Ordering::SeqCst),
            Err(e) => tracing::error!("cannot follow changes: {e}"),
        }
    }
}

impl ControlPlane {
    /// Follows the changes made since the count this host last followed: the apps the
    /// store's log names, or every app where the log does not reach back that far (then
    /// up to `seq`, the count read before). Returns the count followed. Callers hold
    /// `changes`.
    async fn follow(&self, seq: u64) -> Result<u64, StoreError> {
        let since = self.synced.load(Ordering::SeqCst);
        match self.store.changes_since(since)? {
            Some(changed) => {
                for app_id in &changed.apps {
                    self.follow_app(app_id).await?;
                }
                Ok(changed.seq)
            }
            None => {
                tracing::info!(
                    since,
                    seq,
                    "reading every app: the store's change log does not reach back that far"
                );
                self.sync_with_store().await?;
                Ok(seq)
            }
        }
    }

    /// Serves one app as the store says, and routes it again.
    async fn follow_app(&self, app_id: &str) -> Result<(), StoreError> {
        match self.store.get_app(app_id)? {
            Some(app) if app.state != AppState::Stopped => {
                if self.needs_load(&app) {
                    let version = self.store.current_version(&app)?;
                    self.load_current(&app, version).await;
                }
                self.reroute(&app, &self.store.app_functions(app_id)?);
            }
            _ => {
                if self.live_mut().remove(app_id) {
                    tracing::info!(%app_id, "no longer served (stopped or removed on another host)");
                }
                self.unroute(app_id);
            }
        }
        Ok(())
    }

    /// Whether `app` is deployed at a version this host does not serve yet.
    fn needs_load(&self, app: &AppRecord) -> bool {
        let current = self.live_entry(&app.app_id).map(|l| l.version);
        app.state == AppState::Deployed && current != Some(app.version)
    }

    /// Serves `app` at `version`, its current one (none: nothing to load). Returns whether
    /// it loaded. A component that cannot be fetched or loaded is logged and the app left
    /// as it was served.
    async fn load_current(&self, app: &AppRecord, version: Option<VersionRecord>) -> bool {
        let Some(version) = version else {
            return false;
        };
        let path = self.component_path(&version.digest);
        if let Err(e) = self.store.fetch_component(&version.digest, &path) {
            tracing::error!(app = %app.name, "cannot fetch the component: {e}");
            return false;
        }
        // The code is mapped on the app's first call, not now.
        match self.engine.load_deployed(&path, &version.digest).await {
            Ok(mut component) => {
                component.manifest.name_plain_component(&app.name);
                let overrides = &self.engine.config().scaling_overrides;
                component.manifest.apply_overrides(&app.name, overrides);
                tracing::info!(
                    app = %app.name,
                    version = version.version,
                    "loaded in {:.1} ms ({:?})",
                    component.load_time.as_secs_f64() * 1e3,
                    component.cache
                );
                let live = self.make_live(&app.app_id, app.version, component);
                self.live_mut().insert(app.app_id.clone(), live);
                true
            }
            Err(e) => {
                tracing::error!(app = %app.name, "cannot load: {e}");
                false
            }
        }
    }

    /// Serves what the store says (other hosts change it in cluster mode): each deployed
    /// app at its current version, nothing of a stopped or deleted one, the labels and
    /// domains of now. Returns how many apps it loaded. Callers hold `changes`.
    pub(super) async fn sync_with_store(&self) -> Result<usize, StoreError> {
        let apps = self.store.list_apps()?;
        let wanted: Vec<&AppRecord> = apps.iter().filter(|a| self.needs_load(a)).collect();
        // One read for every version to load, not a round trip each.
        let mut versions = self.store.current_versions(&wanted)?;
        let mut loaded = 0;
        for app in wanted {
            let version = versions.remove(&app.app_id);
            loaded += usize::from(self.load_current(app, version).await);
        }
        // A set, not a scan of the list per live app: that was quadratic in the apps a
        // host serves, on every restart and every change another host makes.
        let served: HashSet<&str> = apps
            .iter()
            .filter(|a| a.state != AppState::Stopped)
            .map(|a| a.app_id.as_str())
            .collect();
        let gone: Vec<String> = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ids()
            .filter(|id| !served.contains(id))
            .map(str::to_owned)
            .collect();
        for app_id in gone {
            tracing::info!(%app_id, "no longer served (stopped or removed on another host)");
            self.live_mut().remove(&app_id);
        }
        // The list read above, not a second read of every app.
        self.route_apps(&apps);
        Ok(loaded)
    }
}
