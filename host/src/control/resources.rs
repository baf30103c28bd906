//! Secrets and volumes over the API. Volume files are reached through cap-std, so a
//! path can never leave its volume (`..`, absolute paths and escaping symlinks fail).

use std::collections::BTreeMap;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ControlPlane;
use super::api::{ApiError, ApiResult, json_body, ok};

#[derive(Deserialize)]
struct SecretCreate {
    name: String,
    values: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct VolumeCreate {
    name: String,
}

fn io_error(path: &str, e: std::io::Error) -> ApiError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            ApiError::not_found(format!("{path:?} does not exist in the volume"))
        }
        std::io::ErrorKind::PermissionDenied => ApiError::bad_request(format!(
            "{path:?} is outside the volume: paths stay inside it"
        )),
        _ => ApiError::bad_request(format!("{path:?}: {e}")),
    }
}

impl ControlPlane {
    pub(super) fn list_secrets(&self) -> ApiResult {
        // Names and keys only: values never leave the store through the API.
        let data: Vec<Value> = self
            .store
            .list_secrets()?
            .into_iter()
            .map(|s| json!({"name": s.name, "keys": s.values.keys().collect::<Vec<_>>(), "created_at": s.created_at}))
            .collect();
        ok(StatusCode::OK, &json!({ "data": data }))
    }

    pub(super) async fn create_secret(&self, body: Incoming) -> ApiResult {
        let request: SecretCreate = json_body(body).await?;
        let record = self.store.put_secret(&request.name, request.values)?;
        tracing::info!(secret = %record.name, keys = record.values.len(), "secret stored");
        ok(
            StatusCode::CREATED,
            &json!({"name": record.name, "keys": record.values.keys().collect::<Vec<_>>(), "created_at": record.created_at}),
        )
    }

    pub(super) fn delete_secret(&self, name: &str) -> ApiResult {
        self.store.delete_secret(name)?;
        ok(StatusCode::OK, &json!({ "deleted": name }))
    }

    pub(super) fn list_volumes(&self) -> ApiResult {
        ok(
            StatusCode::OK,
            &json!({ "data": self.store.list_volumes()? }),
        )
    }

    pub(super) async fn create_volume(&self, body: Incoming) -> ApiResult {
        let request: VolumeCreate = json_body(body).await?;
        let record = self.store.create_volume(&request.name)?;
        std::fs::create_dir_all(self.volume_dir(&record.name))
            .map_err(|e| ApiError::internal(format!("cannot create the volume directory: {e}")))?;
        ok(StatusCode::CREATED, &record)
    }

    fn open_volume(&self, name: &str) -> Result<Dir, ApiError> {
        if self.store.get_volume(name)?.is_none() {
            return Err(ApiError::not_found(format!("no volume named {name:?}")));
        }
        Dir::open_ambient_dir(self.volume_dir(name), ambient_authority())
            .map_err(|e| ApiError::internal(format!("cannot open volume {name:?}: {e}")))
    }

    /// A file's bytes, or a directory's listing as JSON.
    pub(super) fn volume_get(&self, name: &str, path: &str) -> ApiResult {
        let dir = self.open_volume(name)?;
        let target = if path.is_empty() { "." } else { path };
        let meta = dir.metadata(target).map_err(|e| io_error(path, e))?;
        if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in dir.read_dir(target).map_err(|e| io_error(path, e))? {
                let entry = entry.map_err(|e| io_error(path, e))?;
                let meta = entry.metadata().map_err(|e| io_error(path, e))?;
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let full = if path.is_empty() {
                    file_name
                } else {
                    format!("{path}/{file_name}")
                };
                entries.push(json!({
                    "path": full,
                    "type": if meta.is_dir() { "directory" } else { "file" },
                    "size": meta.len(),
                }));
            }
            entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            return ok(StatusCode::OK, &json!({ "data": entries }));
        }
        let bytes = dir.read(target).map_err(|e| io_error(path, e))?;
        let mut response = hyper::Response::new(crate::http::full(bytes));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(response)
    }

    /// Writes a file (creating its directories).
    pub(super) async fn volume_put(&self, name: &str, path: &str, body: Incoming) -> ApiResult {
        if path.is_empty() {
            return Err(ApiError::bad_request(
                "name the file: PUT /v1/volumes/<name>/files/<path>",
            ));
        }
        let dir = self.open_volume(name)?;
        let limit = self.config.max_upload_bytes as usize;
        let bytes = http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?
            .to_bytes();
        let parent = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            dir.create_dir_all(parent).map_err(|e| io_error(path, e))?;
        }
        dir.write(path, &bytes).map_err(|e| io_error(path, e))?;
        ok(
            StatusCode::CREATED,
            &json!({ "path": path, "size": bytes.len() }),
        )
    }
}
