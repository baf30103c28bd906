//! WSGI-like apps (Modal's `wsgi_app`): a small Flask-like API. The host passes the
//! environ and a `wsgi.input` reader; the app answers with `start_response` and body
//! chunks.
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! use wasmhost::wsgi::App;
//!
//! #[wasmhost::wsgi_app]
//! fn flask() -> App {
//!     App::new()
//!         .get("/", |_req| "Hello from WSGI!")
//!         .get("/api/data", |_req| wasmhost::Json(serde_json::json!({"data": [1, 2, 3]})))
//! }
//! # fn main() {}
//! ```

use crate::router::{Found, Router};
use crate::{Headers, IntoResponse, Request, Response};

/// The WSGI environ's standard keys (mirrors the WIT `environ` record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environ {
    /// `REQUEST_METHOD`.
    pub request_method: String,
    /// `SCRIPT_NAME`.
    pub script_name: String,
    /// `PATH_INFO`.
    pub path_info: String,
    /// `QUERY_STRING`.
    pub query_string: String,
    /// `SERVER_NAME`.
    pub server_name: String,
    /// `SERVER_PORT`.
    pub server_port: String,
    /// `SERVER_PROTOCOL`.
    pub server_protocol: String,
    /// `wsgi.url_scheme`.
    pub url_scheme: String,
    /// `REMOTE_ADDR`.
    pub remote_addr: String,
    /// `HTTP_*` headers, as lower-case names.
    pub headers: Headers,
}

/// Bytes sent per `write` call when a body goes out in chunks.
pub const CHUNK: usize = 64 * 1024;

type Handler = Box<dyn Fn(Request) -> Response>;
type BeforeHook = Box<dyn Fn(&Request) -> Option<Response>>;

/// A Flask-like app: routes with `{name}` path parameters and `before_request` hooks.
#[derive(Default)]
pub struct App {
    routes: Router<Handler>,
    before: Vec<BeforeHook>,
}

impl App {
    /// An app with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `method` (or `*`) on `path` to `handler`.
    #[must_use]
    pub fn route<R: IntoResponse>(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.routes
            .add(method, path, Box::new(move |r| handler(r).into_response()));
        self
    }

    /// Routes `GET` (and `HEAD`) on `path`.
    #[must_use]
    pub fn get<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.route("GET", path, handler)
    }

    /// Routes `POST` on `path`.
    #[must_use]
    pub fn post<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.route("POST", path, handler)
    }

    /// Runs before every request; returning a response answers it instead of the route.
    #[must_use]
    pub fn before_request(mut self, hook: impl Fn(&Request) -> Option<Response> + 'static) -> Self {
        self.before.push(Box::new(hook));
        self
    }

    /// Answers one request; usable without a host.
    pub fn call(&self, mut request: Request) -> Response {
        for hook in &self.before {
            if let Some(response) = hook(&request) {
                return response;
            }
        }
        match self.routes.find(&request.method, &request.path) {
            Found::Route(handler, params) => {
                request.params = params;
                handler(request)
            }
            Found::WrongMethod(allowed) => {
                Response::error(405, "Method Not Allowed").header("allow", allowed.join(", "))
            }
            Found::Nothing => Response::error(404, "Not Found"),
        }
    }

    /// Answers the request described by `environ` and `body`.
    pub fn serve(&self, environ: Environ, body: Vec<u8>) -> Response {
        self.call(Request {
            method: environ.request_method,
            path: environ.path_info,
            query: environ.query_string,
            headers: environ.headers,
            body,
            params: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_hooks() {
        let app = App::new()
            .get("/", |_r| "Hello from WSGI!")
            .get("/users/{id}", |r: Request| -> Result<String, Response> {
                Ok(format!("user {}", r.param::<u32>("id")?))
            })
            .before_request(|r| (r.path == "/blocked").then(|| Response::error(403, "no")));
        let get = |path: &str| {
            app.serve(
                Environ {
                    request_method: "GET".into(),
                    path_info: path.into(),
                    ..Environ::default()
                },
                Vec::new(),
            )
        };
        assert_eq!(get("/").body, b"Hello from WSGI!");
        assert_eq!(get("/users/7").body, b"user 7");
        assert_eq!(get("/users/x").status, 422);
        assert_eq!(get("/blocked").status, 403);
        assert_eq!(get("/missing").status, 404);
    }
}
