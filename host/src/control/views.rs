//! JSON shapes of the API's resources, following the seeds' OpenAPI schemas.

use serde::Serialize;

use super::ControlPlane;
use super::api::ApiError;
use crate::engine::{EndpointSpec, FunctionSpec};
use crate::store::{AppRecord, AppState, Deployed, FunctionRecord};

/// `App`.
#[derive(Debug, Serialize)]
pub struct AppView {
    app_id: String,
    name: String,
    state: AppState,
    environment: String,
    workspace: String,
    version: u32,
    tags: serde_json::Map<String, serde_json::Value>,
    created_at: String,
    updated_at: String,
}

/// `Function`.
#[derive(Debug, Serialize)]
pub struct FunctionView {
    function_id: String,
    app_id: String,
    name: String,
    kind: &'static str,
    web_url: Option<String>,
    method: String,
    timeout: Option<u64>,
    memory: Option<u32>,
    gpu: Option<String>,
    allowed_outbound_hosts: Vec<String>,
    retries: u32,
    requires_proxy_auth: bool,
    min_containers: Option<u32>,
    max_containers: Option<u32>,
    buffer_containers: Option<u32>,
    schedule: Option<String>,
    secrets: Vec<String>,
    volumes: Vec<crate::engine::VolumeMount>,
    params: Vec<String>,
    created_at: String,
}

/// `WebEndpoint`.
#[derive(Debug, Serialize)]
pub struct WebEndpointView {
    endpoint_id: String,
    function_id: String,
    app_id: String,
    app_name: String,
    kind: &'static str,
    url: String,
    urls: Vec<String>,
    custom_label: Option<String>,
    auth: &'static str,
    methods: Vec<String>,
    created_at: String,
}

/// Result of a deploy.
#[derive(Debug, Serialize)]
pub struct DeployResult {
    app_id: String,
    name: String,
    environment: String,
    state: AppState,
    version: u32,
    /// False when the same component was already deployed.
    pub changed: bool,
    functions: Vec<FunctionView>,
}

impl DeployResult {
    /// The deployed app's id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The id of the app's function `name`, if it has one.
    pub fn function_id(&self, name: &str) -> Option<&str> {
        self.functions
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.function_id.as_str())
    }
}

/// Wraps a list as `{"data": [...]}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    data: Vec<T>,
}

impl<T> From<Vec<T>> for Page<T> {
    fn from(data: Vec<T>) -> Self {
        Self { data }
    }
}

impl From<&AppRecord> for AppView {
    fn from(a: &AppRecord) -> Self {
        Self {
            app_id: a.app_id.clone(),
            name: a.name.clone(),
            state: a.state,
            environment: a.environment.clone(),
            workspace: a.workspace.clone(),
            version: a.version,
            tags: Default::default(),
            created_at: a.created_at.clone(),
            updated_at: a.updated_at.clone(),
        }
    }
}

/// The seeds' name for the shape of a web endpoint.
fn web_kind(kind: crate::engine::EndpointKind) -> &'static str {
    use crate::engine::EndpointKind;
    match kind {
        EndpointKind::Function => "fastapi_endpoint",
        EndpointKind::Method => "cls_method",
        EndpointKind::Asgi => "asgi_app",
        EndpointKind::Wsgi => "wsgi_app",
        EndpointKind::WebServer => "web_server",
        EndpointKind::Proxy | EndpointKind::Service => "wasi_http",
    }
}

/// A function of an app with its spec: a web endpoint or a callable function.
enum Entry {
    Web(EndpointSpec, FunctionRecord),
    Callable(FunctionSpec, FunctionRecord),
}

impl ControlPlane {
    fn function_view(&self, app: &AppRecord, entry: &Entry) -> FunctionView {
        let live = app.state != AppState::Stopped;
        match entry {
            Entry::Web(spec, f) => FunctionView {
                function_id: f.function_id.clone(),
                app_id: app.app_id.clone(),
                name: f.name.clone(),
                kind: "fastapi_endpoint",
                web_url: live.then(|| {
                    self.config
                        .urls
                        .url(&self.config.urls.hosts(app, spec, f)[0])
                }),
                method: spec.method.clone(),
                timeout: spec.timeout.map(|t| t.as_secs()),
                memory: spec.memory_mib,
                gpu: spec.gpu.clone(),
                allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
                retries: 0,
                requires_proxy_auth: spec.requires_proxy_auth,
                min_containers: spec.scaling.min_containers,
                max_containers: spec.scaling.max_containers,
                buffer_containers: spec.scaling.buffer_containers,
                schedule: None,
                secrets: Vec::new(),
                volumes: Vec::new(),
                params: Vec::new(),
                created_at: f.created_at.clone(),
            },
            Entry::Callable(spec, f) => FunctionView {
                function_id: f.function_id.clone(),
                app_id: app.app_id.clone(),
                name: f.name.clone(),
                kind: "function",
                web_url: None,
                method: "POST".into(),
                timeout: Some(
                    spec.timeout
                        .unwrap_or(self.engine.config().default_timeout)
                        .as_secs(),
                ),
                memory: spec.memory_mib,
                gpu: spec.gpu.clone(),
                allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
                retries: spec.retries.map_or(0, |r| r.max_retries),
                requires_proxy_auth: false,
                min_containers: None,
                max_containers: None,
                buffer_containers: None,
                schedule: spec.schedule.clone(),
                secrets: spec.secrets.clone(),
                volumes: spec.volumes.clone(),
                params: spec.params.clone(),
                created_at: f.created_at.clone(),
            },
        }
    }

    fn web_endpoint_view(
        &self,
        app: &AppRecord,
        spec: &EndpointSpec,
        f: &FunctionRecord,
    ) -> WebEndpointView {
        let urls: Vec<String> = self
            .config
            .urls
            .hosts(app, spec, f)
            .iter()
            .map(|h| self.config.urls.url(h))
            .collect();
        WebEndpointView {
            endpoint_id: f.function_id.clone(),
            function_id: f.function_id.clone(),
            app_id: app.app_id.clone(),
            app_name: app.name.clone(),
            kind: web_kind(spec.kind),
            url: urls[0].clone(),
            urls,
            custom_label: f.custom_label.clone().or_else(|| spec.label.clone()),
            auth: if spec.requires_proxy_auth {
                "proxy_token"
            } else {
                "none"
            },
            methods: vec![spec.method.clone()],
            created_at: f.created_at.clone(),
        }
    }

    /// Functions of one app with their specs: endpoints, then callable functions.
    fn functions_of(&self, app: &AppRecord) -> Result<Vec<Entry>, ApiError> {
        let Some(manifest) = self.manifest_of(app)? else {
            return Ok(Vec::new());
        };
        let records = self.store.list_functions(&app.app_id)?;
        let find = |name: &str| records.iter().find(|f| f.name == name).cloned();
        let mut out = Vec::new();
        for spec in manifest.endpoints {
            if let Some(f) = find(&spec.name) {
                out.push(Entry::Web(spec, f));
            }
        }
        for spec in manifest.functions {
            if let Some(f) = find(&spec.name) {
                out.push(Entry::Callable(spec, f));
            }
        }
        Ok(out)
    }

    pub(super) fn app_functions(&self, app: &AppRecord) -> Result<Vec<FunctionView>, ApiError> {
        Ok(self
            .functions_of(app)?
            .iter()
            .map(|e| self.function_view(app, e))
            .collect())
    }

    /// A function and its app, by function id.
    fn function_parts(&self, function_id: &str) -> Result<(AppRecord, Entry), ApiError> {
        let missing = || ApiError::not_found(format!("no function with id {function_id}"));
        let f = self
            .store
            .get_function(function_id)?
            .filter(|f| f.active)
            .ok_or_else(missing)?;
        let app = self.store.get_app(&f.app_id)?.ok_or_else(missing)?;
        let entry = self
            .functions_of(&app)?
            .into_iter()
            .find(|e| match e {
                Entry::Web(_, r) | Entry::Callable(_, r) => r.function_id == function_id,
            })
            .ok_or_else(missing)?;
        Ok((app, entry))
    }

    pub(super) fn function(&self, function_id: &str) -> Result<FunctionView, ApiError> {
        let (app, entry) = self.function_parts(function_id)?;
        Ok(self.function_view(&app, &entry))
    }

    pub(super) fn web_endpoint(&self, endpoint_id: &str) -> Result<WebEndpointView, ApiError> {
        let (app, entry) = self.function_parts(endpoint_id)?;
        let Entry::Web(spec, f) = entry else {
            return Err(ApiError::not_found(format!(
                "{endpoint_id} is a function, not a web endpoint"
            )));
        };
        if app.state == AppState::Stopped {
            return Err(ApiError::not_found(format!(
                "the app of web endpoint {endpoint_id} is stopped"
            )));
        }
        Ok(self.web_endpoint_view(&app, &spec, &f))
    }

    pub(super) fn web_endpoints(&self) -> Result<Vec<WebEndpointView>, ApiError> {
        let mut out = Vec::new();
        for app in self.store.list_apps()? {
            if app.state == AppState::Stopped {
                continue;
            }
            for entry in self.functions_of(&app)? {
                if let Entry::Web(spec, f) = entry {
                    out.push(self.web_endpoint_view(&app, &spec, &f));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn deploy_result(&self, d: &Deployed) -> DeployResult {
        let find = |name: &str| d.functions.iter().find(|f| f.name == name).cloned();
        let manifest = &d.version.manifest;
        let entries = manifest
            .endpoints
            .iter()
            .filter_map(|spec| Some(Entry::Web(spec.clone(), find(&spec.name)?)))
            .chain(
                manifest
                    .functions
                    .iter()
                    .filter_map(|spec| Some(Entry::Callable(spec.clone(), find(&spec.name)?))),
            );
        let functions = entries.map(|e| self.function_view(&d.app, &e)).collect();
        DeployResult {
            app_id: d.app.app_id.clone(),
            name: d.app.name.clone(),
            environment: d.app.environment.clone(),
            state: d.app.state,
            version: d.app.version,
            changed: d.changed,
            functions,
        }
    }
}
