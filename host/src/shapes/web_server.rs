//! The `web_server` shape: the host starts the guest command, waits (up to the startup
//! timeout) for its port to accept connections, and proxies each request to it.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Body, Request, failure, json_error};
use crate::engine::{EndpointSpec, Engine, LoadedComponent};

pub(super) async fn serve(
    engine: &Engine,
    component: &LoadedComponent,
    spec: &EndpointSpec,
    request: Request,
) -> hyper::Response<Body> {
    let server = match engine.web_server(component, spec).await {
        Ok(server) => server,
        Err(e) => return failure(&component.manifest.app, spec, e),
    };
    let startup = engine.config().startup_timeout;
    let started = Instant::now();
    // Wait for the port to accept, unless the guest already stopped.
    let stream = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", server.port)).await {
            break stream;
        }
        let gave_up = started.elapsed() >= startup;
        if let Some(why) = server.exited() {
            return unavailable(&format!(
                "the web server never listened on port {}: {why}",
                server.inner_port
            ));
        }
        if gave_up {
            return unavailable(&format!(
                "the web server did not listen on port {} within its startup timeout of {startup:?}",
                server.inner_port
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => return bad_gateway(&format!("could not talk to the web server: {e}")),
        };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("web server connection ended: {e}");
        }
    });
    let (mut parts, body) = request.into_parts();
    // The guest sees an origin-form request for its own port.
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "bad request target"),
    };
    if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{}", server.inner_port)) {
        parts.headers.insert(hyper::header::HOST, host);
    }
    match sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(|b| b.map_err(std::io::Error::other).boxed_unsync()),
        Err(e) => bad_gateway(&format!("the web server failed to answer: {e}")),
    }
}

fn unavailable(message: &str) -> hyper::Response<Body> {
    let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn bad_gateway(message: &str) -> hyper::Response<Body> {
    json_error(StatusCode::BAD_GATEWAY, message)
}
