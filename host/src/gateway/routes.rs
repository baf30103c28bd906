//! Host-name routing: which endpoint a Host header names.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::EndpointKind;
use crate::shapes::WebApp;

/// One routable endpoint: an app and the index of the endpoint in its manifest.
#[derive(Clone)]
pub struct Route {
    /// The app serving it.
    pub app: Arc<WebApp>,
    /// Index into the app's `manifest.endpoints`.
    pub endpoint: usize,
}

impl Route {
    /// The endpoint's kind, from its app's manifest.
    fn kind(&self) -> Option<EndpointKind> {
        let endpoints = &self.app.manifest().endpoints;
        endpoints.get(self.endpoint).map(|e| e.kind)
    }

    /// Whether the endpoint answers with a whole response (typed functions and class
    /// methods), so a long call can be answered 303 and collected later.
    pub fn buffered(&self) -> bool {
        matches!(
            self.kind(),
            Some(EndpointKind::Function | EndpointKind::Method)
        )
    }

    /// Whether the endpoint's shape hands the client's address to the guest (ASGI's
    /// `client`, WSGI's `REMOTE_ADDR`); only those requests carry it.
    pub fn wants_client_addr(&self) -> bool {
        matches!(self.kind(), Some(EndpointKind::Asgi | EndpointKind::Wsgi))
    }

    /// Whether callers must present a proxy-auth token.
    pub fn requires_proxy_auth(&self) -> bool {
        self.app
            .manifest()
            .endpoints
            .get(self.endpoint)
            .is_some_and(|e| e.requires_proxy_auth)
    }
}

/// Host names to endpoints, plus the endpoint a bare IP or `localhost` reaches.
#[derive(Clone, Default)]
pub struct RouteTable {
    by_host: BTreeMap<String, Route>,
    fallback: Option<Route>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `host` (lower-case, no port) to `route`; returns false if the name was taken.
    pub fn insert(&mut self, host: String, route: Route) -> bool {
        if self.by_host.contains_key(&host) {
            return false;
        }
        self.by_host.insert(host, route);
        true
    }

    /// Sets the endpoint that `127.0.0.1`, `[::1]` and `localhost` reach.
    pub fn set_fallback(&mut self, route: Route) {
        self.fallback = Some(route);
    }

    /// The host names served, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }

    /// Whether `host` is the name of an endpoint (not just the bare address's fallback).
    pub fn names(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    /// Finds the endpoint a host name reaches.
    pub fn lookup(&self, host: &str) -> Option<&Route> {
        if let Some(route) = self.by_host.get(host) {
            return Some(route);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" || bare.parse::<IpAddr>().is_ok() {
            return self.fallback.as_ref();
        }
        None
    }

    /// What a 404 for an unknown host says; `list` adds the names served (helpful on a
    /// developer's machine, but elsewhere it tells anyone who asks what the host runs,
    /// proxy-auth endpoints included).
    pub fn not_found_message(&self, host: &str, list: bool) -> String {
        let known: Vec<&str> = self.hosts().collect();
        if known.is_empty() && self.fallback.is_none() {
            format!("no endpoint is named {host:?}: nothing is deployed here")
        } else if list {
            format!(
                "no endpoint is named {host:?}; this host serves: {}",
                known.join(", ")
            )
        } else {
            format!("no endpoint is named {host:?} on this host")
        }
    }
}
