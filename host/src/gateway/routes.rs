//! Host-name routing: which endpoint a Host header names.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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
///
/// A hash map: a request's lookup costs the same with 10,000 apps as with one. The names
/// are shared, so the copy a change publishes costs a reference count per route.
///
/// Generic in what a name reaches only so that the control plane's bookkeeping of it can
/// be tested without components.
#[derive(Clone)]
pub struct RouteTable<R = Route> {
    by_host: HashMap<Arc<str>, R>,
    fallback: Option<R>,
}

impl<R> Default for RouteTable<R> {
    fn default() -> Self {
        Self {
            by_host: HashMap::new(),
            fallback: None,
        }
    }
}

impl<R> RouteTable<R> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `host` (lower-case, no port) to `route`; returns false if the name was taken.
    pub fn insert(&mut self, host: impl Into<Arc<str>>, route: R) -> bool {
        match self.by_host.entry(host.into()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(route);
                true
            }
        }
    }

    /// Stops routing `host`.
    pub fn remove(&mut self, host: &str) {
        self.by_host.remove(host);
    }

    /// Sets the endpoint that `127.0.0.1`, `[::1]` and `localhost` reach.
    pub fn set_fallback(&mut self, route: R) {
        self.fallback = Some(route);
    }

    /// The host names served, sorted.
    pub fn hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = self.by_host.keys().map(|h| &**h).collect();
        hosts.sort_unstable();
        hosts
    }

    /// Whether `host` is the name of an endpoint (not just the bare address's fallback).
    pub fn names(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    /// Finds the endpoint a host name reaches.
    pub fn lookup(&self, host: &str) -> Option<&R> {
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
        let known = self.hosts();
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
