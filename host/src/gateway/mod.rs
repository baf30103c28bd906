//! The hyper front end: routes each request by its Host to an endpoint, answers CORS,
//! bounds request bodies, logs every request, and shuts down gracefully.

mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use routes::{Route, RouteTable};

use crate::shapes::{Body, ClientAddr, json_error, limit_body};

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The HTTP front end; its route table can be swapped while serving.
pub struct Gateway {
    routes: RwLock<Arc<RouteTable>>,
    config: GatewayConfig,
}

impl Gateway {
    /// A gateway serving `routes`.
    pub fn new(routes: RouteTable, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Self {
            routes: RwLock::new(Arc::new(routes)),
            config,
        })
    }

    /// Replaces the route table; requests already routed finish on the old one.
    pub fn set_routes(&self, routes: RouteTable) {
        let mut slot = self.routes.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(routes);
    }

    fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Accepts connections until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Running out of file descriptors is transient: back off, keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let gateway = self.clone();
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(req, peer).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!("shutdown grace period over; dropping open connections");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let host = host_of(&req);
        let path = req.uri().path().to_owned();
        let mut response = self.route(req, &host, peer).await;
        let headers = response.headers_mut();
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        tracing::info!(
            target: "wasmhost::access",
            %peer,
            "{method} {host}{path} -> {} in {:.1} ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3
        );
        response
    }

    async fn route(
        &self,
        req: hyper::Request<Incoming>,
        host: &str,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let routes = self.routes();
        let Some(route) = routes.lookup(host) else {
            return json_error(StatusCode::NOT_FOUND, &routes.not_found_message(host));
        };
        if is_preflight(&req) {
            return preflight(&req);
        }
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ClientAddr(peer));
        // Bodies stream through to the shape, bounded; upgrades stay in the extensions.
        let body = limit_body(body, self.config.max_body_bytes);
        route
            .app
            .serve(route.endpoint, hyper::Request::from_parts(parts, body))
            .await
    }
}

/// The host name a request was sent to, lower-cased and without the port.
fn host_of<B>(req: &hyper::Request<B>) -> String {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            let authority: hyper::http::uri::Authority = h.parse().ok()?;
            Some(authority.host().to_owned())
        })
        .unwrap_or_default();
    raw.trim_end_matches('.').to_ascii_lowercase()
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
    let mut r = hyper::Response::new(crate::shapes::full(Bytes::new()));
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
    fn host_without_port_and_case() {
        let req = hyper::Request::builder()
            .uri("/x")
            .header("host", "Hello-Hello.LOCALHOST:8000")
            .body(())
            .unwrap();
        assert_eq!(host_of(&req), "hello-hello.localhost");
        let req = hyper::Request::builder()
            .uri("http://127.0.0.1:9/")
            .body(())
            .unwrap();
        assert_eq!(host_of(&req), "127.0.0.1");
    }

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
