//! The hyper front end: routes each request by its Host to an endpoint, answers CORS,
//! bounds request bodies, logs every request, and shuts down gracefully.

mod drain;
mod host;
mod listen;
mod long;
mod routes;
mod strict;
#[cfg(fuzzing)]
pub use strict::fuzz_heads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;

pub use listen::{ConnectionLimits, ServingThreads, raise_fd_limit};
pub use routes::{Route, RouteTable};

use self::host::host_of;
use crate::http::{Body, full, json_error};
use crate::shapes::{BodyLimits, ClientAddr, RequestBody, limit_body};

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted and how fast it must arrive.
    pub body: BodyLimits,
    /// Limits on connections and request heads.
    pub connections: ConnectionLimits,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// A web call running longer is answered 303 and can be collected later (Modal: 150 s).
    pub request_timeout: Option<Duration>,
    /// Serve `/metrics` to anyone; otherwise (with a control API) only to a bearer token.
    pub public_metrics: bool,
    /// Whether the 404 for an unknown host lists the names served (`wasmhost run` only).
    pub list_hosts: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            body: BodyLimits::default(),
            connections: ConnectionLimits::default(),
            shutdown_grace: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(150)),
            public_metrics: true,
            list_hosts: false,
        }
    }
}

/// What the gateway needs from the control plane above it: the `/v1` API and the
/// check of proxy-auth tokens. Defined here so the arrows keep pointing down.
pub trait ControlApi: Send + Sync {
    /// Serves a request whose path starts with `/v1` or `/dashboard` and whose host names
    /// no endpoint.
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> BoxFuture<'static, hyper::Response<Body>>;
    /// Whether a `Wasmhost-Key`/`Wasmhost-Secret` pair is a valid token, or why that
    /// could not be checked. Awaiting it must not block the serving thread: any client
    /// can ask for the check.
    fn verify_proxy_token(
        &self,
        key: &str,
        secret: &str,
    ) -> BoxFuture<'static, Result<bool, TokenCheckFailed>>;
    /// Whether a request's bearer token may read the host's `/metrics`, or why that could
    /// not be checked; awaited as `verify_proxy_token` is.
    fn may_read_metrics(
        &self,
        headers: &hyper::HeaderMap,
    ) -> BoxFuture<'static, Result<bool, TokenCheckFailed>>;
}

/// A token could not be checked (the state store did not answer): neither valid nor
/// invalid, so the request is answered 503, not 401.
#[derive(Debug, thiserror::Error)]
#[error("the token could not be checked: {0}")]
pub struct TokenCheckFailed(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl TokenCheckFailed {
    /// The 503 a request gets, logged with what it was for.
    fn response(&self, what: &str) -> hyper::Response<Body> {
        tracing::error!("{what}: {self}");
        json_error(StatusCode::SERVICE_UNAVAILABLE, &self.to_string())
    }
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The HTTP front end; its route table can be swapped while serving.
pub struct Gateway {
    /// Read by every request on every serving thread, replaced on deploys: a read takes
    /// no lock and no reference count, which both threads would write on every request.
    routes: ArcSwap<RouteTable>,
    config: GatewayConfig,
    api: Option<Arc<dyn ControlApi>>,
    long: long::LongRequests,
    engine: std::sync::OnceLock<Arc<crate::engine::Engine>>,
}

impl Gateway {
    /// A gateway serving `routes`.
    pub fn new(routes: RouteTable, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Self {
            routes: ArcSwap::from_pointee(routes),
            config,
            api: None,
            long: Default::default(),
            engine: std::sync::OnceLock::new(),
        })
    }

    /// A gateway that also serves the control plane's `/v1` API and checks proxy auth with it.
    pub fn with_api(
        routes: RouteTable,
        config: GatewayConfig,
        api: Arc<dyn ControlApi>,
    ) -> Arc<Self> {
        Arc::new(Self {
            routes: ArcSwap::from_pointee(routes),
            config,
            api: Some(api),
            long: Default::default(),
            engine: std::sync::OnceLock::new(),
        })
    }

    /// Records request metrics into `engine`'s registry and serves them at `/metrics`.
    pub fn observe(&self, engine: Arc<crate::engine::Engine>) {
        let _ = self.engine.set(engine);
    }

    /// Replaces the route table; requests already routed finish on the old one.
    pub fn set_routes(&self, routes: RouteTable) {
        self.routes.store(Arc::new(routes));
    }

    fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// Accepts connections until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let threads = ServingThreads::start(&self.config.connections)?;
        self.serve_on(threads, listener, shutdown).await
    }

    /// [`Gateway::serve`] on threads started earlier (with this gateway's
    /// [`ConnectionLimits`]).
    pub async fn serve_on(
        self: Arc<Self>,
        threads: ServingThreads,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        listen::serve(self, threads, listener, shutdown).await
    }

    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let started = Instant::now();
        let host = host_of(&req);
        // Only for the access log, which is off unless asked for.
        let logged = tracing::enabled!(target: "wasmhost::access", tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        let routes = self.routes();
        let found = routes.lookup(&host);
        let mut response = match self.oversized(&req) {
            Some(refusal) => refusal,
            None => {
                self.route(req, (&*host, started), peer, &routes, found)
                    .await
            }
        };
        let headers = response.headers_mut();
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        let took = started.elapsed();
        if let Some(engine) = self.engine.get() {
            let status = response.status().as_u16();
            match found {
                Some(r) => r.app.record_request(r.endpoint, status, took),
                None => engine.metrics().request("", "", status, took),
            }
        }
        if let Some((method, path)) = logged {
            // Per request, so DEBUG: at INFO a busy host wrote hundreds of MB a minute.
            tracing::debug!(
                target: "wasmhost::access",
                %peer,
                "{method} {host}{path} -> {} in {:.1} ms",
                response.status().as_u16(),
                took.as_secs_f64() * 1e3
            );
        }
        response
    }

    async fn route(
        &self,
        req: hyper::Request<Incoming>,
        (host, started): (&str, Instant),
        peer: SocketAddr,
        routes: &RouteTable,
        found: Option<&Route>,
    ) -> hyper::Response<Body> {
        // `/metrics` on the bare address (or any host that names no endpoint) is the
        // host's own; an app reached by its name keeps its `/metrics` path.
        if let Some(engine) = self.engine.get()
            && req.uri().path() == "/metrics"
            && !routes.names(host)
        {
            let allowed = match &self.api {
                Some(api) if !self.config.public_metrics => {
                    api.may_read_metrics(req.headers()).await
                }
                _ => Ok(true),
            };
            if let Err(e) = &allowed {
                return e.response("/metrics");
            }
            if allowed.is_ok_and(|ok| !ok) {
                let mut r = json_error(
                    StatusCode::UNAUTHORIZED,
                    "/metrics needs a token here: send `Authorization: Bearer <token_id>:<token_secret>` (or start the server with --public-metrics)",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
            let mut r = hyper::Response::new(full(engine.render_metrics()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return r;
        }
        let Some(route) = found else {
            let path = req.uri().path();
            if let Some(api) = &self.api
                && (path == "/v1"
                    || path.starts_with("/v1/")
                    || path == "/dashboard"
                    || path.starts_with("/dashboard/"))
            {
                // Boxed by `handle`, so the API's large future does not size every request's.
                return api.clone().handle(req).await;
            }
            return json_error(
                StatusCode::NOT_FOUND,
                &routes.not_found_message(host, self.config.list_hosts),
            );
        };
        if is_preflight(&req) {
            return preflight(&req);
        }
        if route.requires_proxy_auth() {
            match self.proxy_auth_ok(&req).await {
                Ok(true) => {}
                Ok(false) => {
                    return json_error(
                        StatusCode::UNAUTHORIZED,
                        "this endpoint requires proxy auth: send a token as the Wasmhost-Key and Wasmhost-Secret headers",
                    );
                }
                Err(e) => return e.response("proxy auth"),
            }
        }
        let (mut parts, body) = req.into_parts();
        if route.wants_client_addr() {
            parts.extensions.insert(ClientAddr(peer));
        }
        // Bodies stream through to the shape, bounded; upgrades stay in the extensions.
        // A request without a body (most GETs) gets the empty body, which costs nothing.
        let body = if hyper::body::Body::is_end_stream(&body) {
            RequestBody::default()
        } else {
            limit_body(body, self.config.body)
        };
        let request = hyper::Request::from_parts(parts, body);
        // Only whole-response shapes can be parked and collected later; streams and
        // WebSockets stay on their connection.
        let cap = self.config.request_timeout.filter(|_| route.buffered());
        let Some(cap) = cap else {
            return route.app.serve(route.endpoint, request).await;
        };
        if let Some(id) = long::call_id_of(request.uri()) {
            return Box::pin(self.long.follow(host, &id, request.uri(), cap)).await;
        }
        let uri = request.uri().clone();
        let (app, index) = (route.app.clone(), route.endpoint);
        self.long
            .run(host, &uri, (started, cap), async move {
                app.serve(index, request).await
            })
            .await
    }
}

impl Gateway {
    /// A 414 or 431 for a request whose target or headers pass the limits (hyper itself
    /// answers 431 when the whole head does not fit its buffer).
    fn oversized<B>(&self, req: &hyper::Request<B>) -> Option<hyper::Response<Body>> {
        let limits = &self.config.connections;
        let url = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if url > limits.max_url_bytes {
            return Some(json_error(
                StatusCode::URI_TOO_LONG,
                &format!("the URL is longer than {} bytes", limits.max_url_bytes),
            ));
        }
        let headers: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if headers > limits.max_header_bytes {
            return Some(json_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                &format!(
                    "the request headers are larger than {} bytes",
                    limits.max_header_bytes
                ),
            ));
        }
        None
    }

    async fn proxy_auth_ok<B>(&self, req: &hyper::Request<B>) -> Result<bool, TokenCheckFailed> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        match (&self.api, header("wasmhost-key"), header("wasmhost-secret")) {
            (Some(api), Some(key), Some(secret)) => api.verify_proxy_token(key, secret).await,
            _ => Ok(false),
        }
    }
}

/// Fuzzing entry: the host name of a request with this URI and `Host` header (each used
/// when it parses), and how the route table answers it.
#[cfg(fuzzing)]
pub fn fuzz_host(uri: &[u8], host: &[u8]) {
    let mut req = hyper::Request::new(());
    if let Ok(uri) = hyper::Uri::try_from(uri) {
        *req.uri_mut() = uri;
    }
    if let Ok(value) = HeaderValue::from_bytes(host) {
        req.headers_mut().insert(header::HOST, value);
    }
    let name = host_of(&req);
    let name: &str = &name;
    assert_eq!(name, host::parsed_host(&req));
    assert_eq!(name, name.to_ascii_lowercase());
    assert!(!name.ends_with('.'), "{name:?}");
    let table = RouteTable::new();
    assert!(table.lookup(&name).is_none());
    let _ = table.not_found_message(&name, true);
}

fn is_preflight<B>(req: &hyper::Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a CORS preflight the way Modal's endpoints do: any origin, the asked method and headers.
fn preflight<B>(req: &hyper::Request<B>) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    let asked = |name| req.headers().get(name).cloned();
    if let Some(m) = asked(header::ACCESS_CONTROL_REQUEST_METHOD) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    if let Some(hs) = asked(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, hs);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_needs_origin_and_method() {
        let req = hyper::Request::builder()
            .method("OPTIONS")
            .header("origin", "http://example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(())
            .unwrap();
        assert!(is_preflight(&req));
        let r = preflight(&req);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type"
        );
        let plain = hyper::Request::builder()
            .method("OPTIONS")
            .body(())
            .unwrap();
        assert!(!is_preflight(&plain));
    }
}
