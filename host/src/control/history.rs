//! An app's history of versions and rollbacks to an earlier one.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, ok};
use super::views::DeployResult;
use super::{ControlPlane, DeployOptions};
use crate::store::{AppState, Deployer};

impl ControlPlane {
    /// `GET /apps/{app_id}/versions`: newest first.
    pub(super) fn app_versions(&self, app_id: &str) -> ApiResult {
        let app = self.app(app_id)?;
        let versions: Vec<Value> = self
            .store
            .list_versions(app_id)?
            .into_iter()
            .map(|v| {
                json!({
                    "version": v.version,
                    "digest": v.digest,
                    "component": v.manifest.app,
                    "created_at": v.created_at,
                    "deployed_by": v.deployed_by,
                    "rollback_of": v.rollback_of,
                    "current": v.version == app.version,
                })
            })
            .collect();
        ok(StatusCode::OK, &json!({ "data": versions }))
    }

    /// Serves version `to` (default: the one before the current) again, as a new version.
    /// The switch is one store transaction and one swap of the live app: requests in
    /// flight keep the component they started on.
    pub async fn rollback(
        &self,
        app_id: &str,
        to: Option<u32>,
        by: Option<Deployer>,
    ) -> Result<DeployResult, ApiError> {
        let app = self.app(app_id)?;
        if app.state == AppState::Ephemeral {
            return Err(ApiError::bad_request(format!(
                "app {:?} is ephemeral (a `serve` session): it has no history to go back to",
                app.name
            )));
        }
        let to = match to {
            Some(n) => n,
            None if app.version > 1 => app.version - 1,
            None => {
                return Err(ApiError::conflict(format!(
                    "app {:?} has no version before {}",
                    app.name, app.version
                )));
            }
        };
        if to == app.version && app.state == AppState::Deployed {
            return Err(ApiError::conflict(format!(
                "app {:?} already serves version {to}",
                app.name
            )));
        }
        let version = self.store.get_version(app_id, to)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "app {:?} has no version {to} (it has 1 to {})",
                app.name, app.version
            ))
        })?;
        let path = self.component_path(&version.digest);
        let loaded = self.engine.load_file(&path).await?;
        let options = DeployOptions {
            name: Some(app.name.clone()),
            environment: Some(app.environment.clone()),
            ephemeral: false,
            deployed_by: by,
            rollback_of: Some(to),
        };
        let result = self.deploy_loaded(&path, loaded, options).await?;
        tracing::info!(app = %app.name, from = app.version, to, "rolled back");
        Ok(result)
    }
}
