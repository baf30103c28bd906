//! The `/v1` REST API: bearer auth, routing, JSON in and out.

use std::sync::Arc;

use futures_util::future::Either;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::routes::RouteId as R;
use super::upload::UploadError;
use super::views::{AppView, Page};
use super::{ControlPlane, DeployOptions};
use crate::engine::LoadError;
use crate::gateway::{BoxFuture, ControlApi, TokenCheckFailed};
use crate::http::{Body, json_error, json_response};
use crate::store::{Scope, StoreError, TokenRecord};

/// An API failure: a status and what goes into the `detail` field.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
    /// A structured `detail` (e.g. FastAPI-style validation errors) instead of the message.
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
        }
    }

    /// An error whose `detail` is structured JSON.
    pub fn with_detail(status: StatusCode, detail: serde_json::Value) -> Self {
        Self {
            status,
            message: detail.to_string(),
            detail: Some(detail),
        }
    }

    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }

    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }

    /// 409: the request does not fit the resource's current state.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }

    /// 422.
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, m)
    }

    /// 500.
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            // The shared database cannot be reached: another host, or a retry, may succeed.
            e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Pool(_)
            | StoreError::Db(_)
            | StoreError::Postgres(_)
            | StoreError::Io(_)
            | StoreError::Corrupt { .. }
            | StoreError::Key(_)
            | StoreError::Closed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let status = match &e {
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Empty => StatusCode::BAD_REQUEST,
            UploadError::Io(_) => StatusCode::BAD_REQUEST,
            UploadError::NotAComponent(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.to_string())
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        let status = match &e {
            LoadError::Read { .. } | LoadError::Compile(_) | LoadError::CompileTask(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            LoadError::NotWasm { .. }
            | LoadError::CoreModule
            | LoadError::Invalid(_)
            | LoadError::UnknownLayer
            | LoadError::UnknownWorld { .. }
            | LoadError::MissingImport(_)
            | LoadError::Describe(_)
            | LoadError::PreInit(_)
            | LoadError::Gpu { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, format!("upload refused: {e}"))
    }
}

pub(super) type ApiResult = Result<hyper::Response<Body>, ApiError>;

pub(super) fn ok<T: serde::Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let value = serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(status, &value))
}

fn no_content() -> ApiResult {
    let mut r = hyper::Response::new(crate::http::full(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// Reads a body of at most 1 MiB.
async fn small_body(body: Incoming) -> Result<bytes::Bytes, ApiError> {
    Ok(Limited::new(body, 1 << 20)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?
        .to_bytes())
}

/// Reads a small JSON body.
pub(super) async fn json_body<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    parse_object(&small_body(body).await?)
}

/// Parses a JSON object into `T`; anything else is a 422.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid JSON body: {e}"),
        )
    };
    // Every body is an object: serde would also fill a struct from a list (`[null]`).
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if !value.is_object() {
        return Err(ApiError::unprocessable(
            "invalid JSON body: expected an object",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// A numeric query parameter: absent is `None`, unreadable is a 400.
pub(super) fn number_param<T: std::str::FromStr>(
    req: &hyper::Request<Incoming>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    query_param(req, name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{name} {v:?} is not a number")))
        })
        .transpose()
}

/// A boolean query parameter: absent is false; anything but `true` or `false` is a 400
/// rather than silently false (`?follow=yes` would otherwise never follow).
pub(super) fn bool_param(req: &hyper::Request<Incoming>, name: &str) -> Result<bool, ApiError> {
    match query_param(req, name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} {other:?} is neither true nor false"
        ))),
    }
}

pub(super) fn query_param(req: &hyper::Request<Incoming>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[derive(Deserialize)]
struct AppCreate {
    name: String,
    environment: Option<String>,
    #[serde(default)]
    ephemeral: bool,
}

#[derive(Deserialize, Default)]
struct RollbackRequest {
    /// A JSON number: `3` and `3.0` are the same version to a JSON client.
    version: Option<serde_json::Number>,
}

impl RollbackRequest {
    /// The version asked for, if any; a number that is no version number is a 400.
    fn version(&self) -> Result<Option<u32>, ApiError> {
        let Some(n) = &self.version else {
            return Ok(None);
        };
        let whole = n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
                .map(|f| f as u64)
        });
        whole
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("version {n} is not a version number")))
    }
}

/// Who a token is, for an app's history.
fn deployer(token: &TokenRecord) -> crate::store::Deployer {
    crate::store::Deployer {
        token_id: token.token_id.clone(),
        name: token.name.clone(),
    }
}

/// Reads a small JSON body; an empty body is the type's default.
async fn optional_json_body<T: DeserializeOwned + Default>(body: Incoming) -> Result<T, ApiError> {
    let bytes = small_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_object(&bytes)
}

#[derive(Deserialize)]
struct LabelSet {
    label: String,
}

#[derive(Deserialize)]
struct TokenCreate {
    name: Option<String>,
    /// `admin` (the default), `deploy`, `invoke` or `proxy-auth`.
    scope: Option<String>,
}

/// An API error as its response; server errors are logged.
fn error_response(e: ApiError) -> hyper::Response<Body> {
    if e.status.is_server_error() {
        tracing::error!("API error: {e}");
    }
    match e.detail {
        Some(detail) => json_response(e.status, &serde_json::json!({ "detail": detail })),
        None => json_error(e.status, &e.message),
    }
}

impl ControlApi for ControlPlane {
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> BoxFuture<'static, hyper::Response<Body>> {
        Box::pin(async move {
            let this = self.clone();
            if super::dashboard::is_dashboard(req.uri().path()) {
                return self
                    .offloaded(async move { this.dashboard(req).await })
                    .await;
            }
            // A store that cannot check the token answers 503: the token may be valid.
            let token = match self.request_token(&req).await {
                Ok(token) => token,
                Err(e) => return error_response(ApiError::from(e)),
            };
            let Some(token) = token else {
                let mut r = json_error(
                    StatusCode::UNAUTHORIZED,
                    "missing or invalid token: send `Authorization: Bearer <token_id>:<token_secret>`",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            };
            let path = req.uri().path().trim_start_matches("/v1");
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let needed = super::routes::needed_scope(req.method(), &segments);
            if token.scope < needed {
                return json_error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "this token's scope is {}; {} {} needs {}",
                        token.scope.as_str(),
                        req.method(),
                        req.uri().path(),
                        needed.as_str()
                    ),
                );
            }
            // Checked here, where a wrong token costs no hand-off; what a valid one asks
            // for may wait on the store.
            self.offloaded(async move {
                match this.route_api(req, &token).await {
                    Ok(r) => r,
                    Err(e) => error_response(e),
                }
            })
            .await
        })
    }

    fn verify_proxy_token(
        &self,
        key: &str,
        secret: &str,
    ) -> BoxFuture<'static, Result<bool, TokenCheckFailed>> {
        let check = self.store.verify_token(key, secret);
        Box::pin(async move { Ok(check.await.map_err(check_failed)?.is_some()) })
    }

    fn may_read_metrics(
        &self,
        headers: &hyper::HeaderMap,
    ) -> BoxFuture<'static, Result<bool, TokenCheckFailed>> {
        let check = match self.bearer(headers) {
            Some(check) => Either::Left(check),
            None => Either::Right(self.session_token(headers)),
        };
        Box::pin(async move {
            let token = check.await.map_err(check_failed)?;
            Ok(token.is_some_and(|t| t.scope >= Scope::Invoke))
        })
    }
}

fn check_failed(e: StoreError) -> TokenCheckFailed {
    TokenCheckFailed(Box::new(e))
}

impl ControlPlane {
    /// Serves a request where its store calls may wait (see `offload`).
    async fn offloaded(
        &self,
        work: impl Future<Output = hyper::Response<Body>> + Send + 'static,
    ) -> hyper::Response<Body> {
        match self.offload.run(work).await {
            Ok(response) => response,
            Err(stopped) => json_error(StatusCode::SERVICE_UNAVAILABLE, &stopped.to_string()),
        }
    }

    /// The token a request to the API carries: its bearer token, or for a read its
    /// dashboard session's (a session reads the API as its token does and changes
    /// nothing). An error when the store could not check it.
    async fn request_token(
        &self,
        req: &hyper::Request<Incoming>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        if let Some(check) = self.bearer(req.headers())
            && let Some(token) = check.await?
        {
            return Ok(Some(token));
        }
        if matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD) {
            return self.session_token(req.headers()).await;
        }
        Ok(None)
    }

    /// The check of the token a request's `Authorization: Bearer` header names, if it
    /// has one: `None` from the check when it is not valid, an error when the store could
    /// not check it.
    fn bearer(
        &self,
        headers: &hyper::HeaderMap,
    ) -> Option<impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send + 'static>
    {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())?;
        let bearer = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        Some(self.store.verify_bearer(bearer.trim()))
    }

    async fn route_api(&self, req: hyper::Request<Incoming>, token: &TokenRecord) -> ApiResult {
        let path = req.uri().path().trim_start_matches("/v1").to_owned();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        let Some(m) = super::routes::find(&method, &segments) else {
            return no_route(&method, &path, &segments);
        };
        let id = m.param(0);
        match m.route.id {
            R::OpenApi => ok(StatusCode::OK, &super::openapi::document()),
            R::ListApps => self.list_apps_api(&req),
            R::CreateApp => self.create_app_api(req).await,
            R::GetApp => {
                let app = self.app(id)?;
                ok(StatusCode::OK, &AppView::from(&app))
            }
            R::StopApp => {
                self.stop(id).await?;
                no_content()
            }
            R::AppLogs => self.app_logs(id, &req).await,
            R::AppVersions => self.app_versions(id),
            R::Rollback => self.rollback_api(id, req, token).await,
            R::ListFunctions => {
                let app = self.app(id)?;
                ok(StatusCode::OK, &Page::from(self.app_functions(&app)?))
            }
            R::GetFunction => ok(StatusCode::OK, &self.function(id)?),
            R::ListWebEndpoints => ok(StatusCode::OK, &Page::from(self.web_endpoints()?)),
            R::GetWebEndpoint => ok(StatusCode::OK, &self.web_endpoint(id)?),
            R::SetLabel => self.set_label_api(id, req).await,
            R::Deploy => self.deploy_api(req, token).await,
            R::Invoke => self.invoke(id, req.into_body()).await,
            R::ListInvocations => self.list_invocations_api(id, &req),
            R::Spawn => self.spawn(id, req.into_body()).await,
            R::Map => {
                let stream = bool_param(&req, "stream")?;
                self.map(id, req.into_body(), stream).await
            }
            R::GetCall => self.get_call_api(id, &req).await,
            R::CancelCall => self.cancel_call(id).await,
            R::CallLogs => self.call_logs(id).await,
            R::ListSecrets => self.list_secrets(),
            R::CreateSecret => self.create_secret(req.into_body()).await,
            R::DeleteSecret => self.delete_secret(id),
            R::ListVolumes => self.list_volumes(),
            R::CreateVolume => self.create_volume(req.into_body()).await,
            R::ListVolumeRoot | R::GetVolumeFile => {
                let path = volume_path(m.rest)?;
                self.volume_get(id, &path)
            }
            R::PutVolumeFile => {
                let (name, path) = (id.to_string(), volume_path(m.rest)?);
                self.volume_put(&name, &path, req.into_body()).await
            }
            R::ListTokens => self.list_tokens_api(),
            R::CreateToken => self.create_token_api(req).await,
            R::RevokeToken => {
                if !self.store.revoke_token(id)? {
                    return Err(ApiError::not_found(format!("no token with id {id}")));
                }
                ok(StatusCode::OK, &serde_json::json!({ "revoked": id }))
            }
        }
    }

    /// `GET /v1/apps`: the apps, filtered by `environment` and `state`.
    fn list_apps_api(&self, req: &hyper::Request<Incoming>) -> ApiResult {
        let env = query_param(req, "environment");
        let state = query_param(req, "state");
        if let Some(s) = &state
            && !["ephemeral", "deployed", "stopped"].contains(&s.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "state {s:?} is none of ephemeral, deployed, stopped"
            )));
        }
        let apps: Vec<AppView> = self
            .store
            .list_apps()?
            .iter()
            .filter(|a| env.as_ref().is_none_or(|e| &a.environment == e))
            .filter(|a| {
                state
                    .as_ref()
                    .is_none_or(|s| serde_json::to_value(a.state).is_ok_and(|v| v == s.as_str()))
            })
            .map(AppView::from)
            .collect();
        ok(StatusCode::OK, &Page::from(apps))
    }

    /// `POST /v1/apps`: creates an app, in the default environment unless one is named.
    async fn create_app_api(&self, req: hyper::Request<Incoming>) -> ApiResult {
        let body: AppCreate = json_body(req.into_body()).await?;
        let env = body
            .environment
            .unwrap_or_else(|| self.config.default_environment.clone());
        super::check_dns("environment", &env)?;
        let app =
            self.store
                .create_app(&self.config.workspace, &env, &body.name, body.ephemeral)?;
        ok(StatusCode::CREATED, &AppView::from(&app))
    }

    /// `POST /v1/apps/{app_id}/rollback`: rolls the app back, to the version asked for if any.
    async fn rollback_api(
        &self,
        id: &str,
        req: hyper::Request<Incoming>,
        token: &TokenRecord,
    ) -> ApiResult {
        let id = id.to_string();
        let body: RollbackRequest = optional_json_body(req.into_body()).await?;
        let result = self
            .rollback(&id, body.version()?, Some(deployer(token)))
            .await?;
        ok(StatusCode::OK, &result)
    }

    /// `PUT /v1/web-endpoints/{endpoint_id}/labels`: the endpoint must exist before its body is read.
    async fn set_label_api(&self, id: &str, req: hyper::Request<Incoming>) -> ApiResult {
        let id = id.to_string();
        self.web_endpoint(&id)?;
        let body: LabelSet = json_body(req.into_body()).await?;
        self.set_label(&id, &body.label).await?;
        no_content()
    }

    /// `POST /v1/deployments`: deploys the uploaded component; 201 when something changed.
    async fn deploy_api(&self, req: hyper::Request<Incoming>, token: &TokenRecord) -> ApiResult {
        let options = DeployOptions {
            name: query_param(&req, "name"),
            environment: query_param(&req, "environment"),
            ephemeral: query_param(&req, "ephemeral").is_some_and(|v| v == "true" || v == "1"),
            deployed_by: Some(deployer(token)),
            rollback_of: None,
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let result = self.deploy(req.into_body(), declared, options).await?;
        let status = if result.changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        ok(status, &result)
    }

    /// `GET /v1/functions/{function_id}/invocations`: recent calls, at most `limit`.
    fn list_invocations_api(&self, id: &str, req: &hyper::Request<Incoming>) -> ApiResult {
        let limit: Option<usize> = number_param(req, "limit")?;
        if limit.is_some_and(|l| !(1..=1000).contains(&l)) {
            return Err(ApiError::bad_request("limit is 1 to 1000"));
        }
        self.invocations(id, limit)
    }

    /// `GET /v1/function-calls/{call_id}`: a call, waiting up to `wait` seconds for its end.
    async fn get_call_api(&self, id: &str, req: &hyper::Request<Incoming>) -> ApiResult {
        let wait: Option<f64> = number_param(req, "wait")?;
        if wait.is_some_and(|w| w.is_nan() || w < 0.0) {
            return Err(ApiError::bad_request(
                "wait is a number of seconds, 0 or more",
            ));
        }
        self.function_call(id, wait).await
    }

    /// `GET /v1/tokens`: every token, without its secret.
    fn list_tokens_api(&self) -> ApiResult {
        let tokens: Vec<serde_json::Value> = self
            .store
            .list_tokens()?
            .into_iter()
            .map(|t| serde_json::json!({"token_id": t.token_id, "name": t.name, "scope": t.scope, "created_at": t.created_at}))
            .collect();
        ok(StatusCode::OK, &Page::from(tokens))
    }

    /// `POST /v1/tokens`: a new token (admin unless a scope is named), its secret shown once.
    async fn create_token_api(&self, req: hyper::Request<Incoming>) -> ApiResult {
        let body: TokenCreate = json_body(req.into_body()).await?;
        let scope = match body.scope.as_deref() {
            Some(s) => s.parse().map_err(ApiError::bad_request)?,
            None => Scope::Admin,
        };
        let token = self
            .store
            .create_token(body.name.as_deref().unwrap_or("token"), scope)?;
        ok(
            StatusCode::CREATED,
            &serde_json::json!({
                "token_id": token.token_id,
                "token_secret": token.token_secret,
                "name": token.name,
                "scope": token.scope,
                "bearer": token.bearer(),
            }),
        )
    }

    pub(super) fn app(&self, id: &str) -> Result<crate::store::AppRecord, ApiError> {
        self.store
            .get_app(id)?
            .ok_or_else(|| ApiError::not_found(format!("no app with id {id}")))
    }
}

/// The answer when no route matches: 405 with `Allow` if the path has other methods, else 404.
fn no_route(method: &hyper::Method, path: &str, segments: &[&str]) -> ApiResult {
    let allowed = super::routes::methods_for(segments);
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!(
            "no API route {method} /v1{path}"
        )));
    }
    let allow = allowed.join(", ");
    let mut r = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("/v1{path} answers {allow}, not {method}"),
    );
    if let Ok(v) = HeaderValue::from_str(&allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    Ok(r)
}

/// A file path inside a volume from the URL's segments, each percent-decoded (the CLI
/// encodes them, so `my file.txt` arrives as `my%20file.txt`).
fn volume_path(segments: &[&str]) -> Result<String, ApiError> {
    let decoded: Result<Vec<_>, _> = segments
        .iter()
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8())
        .collect();
    decoded.map(|parts| parts.join("/")).map_err(|_| {
        ApiError::bad_request("a volume path must be UTF-8 once percent-decoded".to_string())
    })
}
