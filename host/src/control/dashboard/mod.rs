//! The web dashboard at `/dashboard` on the control port: a login form that takes an API
//! token, then pages of apps, versions, functions, calls, logs (live), instances, queues
//! and a chart from the metrics. Every asset is compiled in; no CDN.
//!
//! The browser never holds the token: logging in checks it and sets an HttpOnly,
//! SameSite=Strict cookie naming a random session kept in memory (gone when the server
//! restarts, after 12 hours, or as soon as the token is revoked). The session stands in
//! for the token on the `/v1` API's reads (GET only), which is all the pages use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};

use super::ControlPlane;
use crate::http::{Body, full};
use crate::store::{Scope, StoreError, TokenRecord};

const COOKIE: &str = "wasmhost_session";
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

const INDEX: &str = include_str!("index.html");
const LOGIN: &str = include_str!("login.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Pages only load what the host serves itself.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Logged-in browsers: session id → token id and expiry.
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    fn create(&self, token_id: &str) -> String {
        let bytes: [u8; 32] = rand::random();
        let id = hex::encode(bytes);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(id.clone(), (token_id.to_owned(), now + LIFETIME));
        id
    }

    /// The token id of the session a request's cookie names, if it is current.
    fn token_id(&self, headers: &hyper::HeaderMap) -> Option<String> {
        let id = session_cookie(headers)?;
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (token, expires) = map.get(&id)?;
        (*expires > Instant::now()).then(|| token.clone())
    }

    fn remove(&self, headers: &hyper::HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }
}

/// Our cookie's value among a request's cookies.
fn session_cookie(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn page(status: StatusCode, content_type: &'static str, body: String) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn login_page(status: StatusCode, message: &str) -> hyper::Response<Body> {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    page(
        status,
        "text/html; charset=utf-8",
        LOGIN.replace("{{message}}", &message),
    )
}

fn see_other(location: &'static str, cookie: Option<String>) -> hyper::Response<Body> {
    let mut r = page(StatusCode::SEE_OTHER, "text/plain", String::new());
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// Whether a path belongs to the dashboard.
pub(super) fn is_dashboard(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

impl ControlPlane {
    /// The token behind a request's dashboard session, if it is current and not revoked;
    /// an error when the store could not say. Awaited as [`crate::store::Store::token`] is:
    /// a cookie that names no live session is answered from memory.
    pub(super) fn session_token(
        &self,
        headers: &hyper::HeaderMap,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send + use<> {
        match self.sessions.token_id(headers) {
            Some(id) => Either::Left(self.store.token(&id)),
            None => Either::Right(std::future::ready(Ok(None))),
        }
    }

    /// Serves `/dashboard…`.
    pub(super) async fn dashboard(&self, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
        let path = req.uri().path().trim_end_matches('/');
        match (req.method().clone(), path) {
            (Method::GET, "/dashboard") => match self.session_token(req.headers()).await {
                Ok(Some(_)) => page(StatusCode::OK, "text/html; charset=utf-8", INDEX.to_owned()),
                Ok(None) => login_page(StatusCode::OK, ""),
                // The session may well be valid: nothing to log in again for.
                Err(e) => {
                    tracing::error!("dashboard session: {e}");
                    login_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The state store cannot be reached: try again in a moment.",
                    )
                }
            },
            (Method::GET, "/dashboard/app.js") => page(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                SCRIPT.to_owned(),
            ),
            (Method::GET, "/dashboard/app.css") => {
                page(StatusCode::OK, "text/css; charset=utf-8", STYLE.to_owned())
            }
            (Method::POST, "/dashboard/login") => self.login(req.into_body()).await,
            (Method::POST, "/dashboard/logout") => {
                self.sessions.remove(req.headers());
                let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
                see_other("/dashboard", Some(clear))
            }
            _ => page(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no such dashboard page".into(),
            ),
        }
    }

    /// Checks the form's token and starts a session.
    async fn login(&self, body: Incoming) -> hyper::Response<Body> {
        let Ok(form) = Limited::new(body, 16 << 10).collect().await else {
            return login_page(StatusCode::BAD_REQUEST, "The form could not be read.");
        };
        let form = form.to_bytes();
        let token = url::form_urlencoded::parse(&form)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let record = match self.store.verify_bearer(&token).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return login_page(
                    StatusCode::UNAUTHORIZED,
                    "That token is not valid: paste <token_id>:<token_secret>.",
                );
            }
            Err(e) => {
                tracing::error!("dashboard login: {e}");
                let status = if e.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                return login_page(status, "The state store failed: try again.");
            }
        };
        if record.scope < Scope::Invoke {
            return login_page(
                StatusCode::FORBIDDEN,
                "A proxy-auth token cannot read the API: use an invoke, deploy or admin token.",
            );
        }
        let id = self.sessions.create(&record.token_id);
        tracing::info!(token = %record.token_id, "dashboard login");
        let cookie = format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            LIFETIME.as_secs()
        );
        see_other("/dashboard", Some(cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_from_our_cookie_only() {
        let sessions = Sessions::default();
        let id = sessions.create("tk-1");
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        assert_eq!(sessions.token_id(&headers).as_deref(), Some("tk-1"));
        let mut forged = hyper::HeaderMap::new();
        forged.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}=abc")).unwrap(),
        );
        assert_eq!(sessions.token_id(&forged), None);
        sessions.remove(&headers);
        assert_eq!(sessions.token_id(&headers), None);
    }
}
