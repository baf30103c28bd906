//! Host-name routing: which endpoint a Host header names.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

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
/// Hash tables: a request's lookup costs one hash of its host name and one probe with
/// 10,000 apps as with one. The names are split over [`SHARDS`] tables that copies of the
/// table share, so publishing a copy after a change costs a reference count per shard,
/// and the change that follows copies the one shard it touches: with 10,000 apps a
/// whole-table copy cost a cluster host ~7 ms for every deploy made on another host.
///
/// Generic in what a name reaches only so that the control plane's bookkeeping of it can
/// be tested without components.
#[derive(Clone)]
pub struct RouteTable<R = Route> {
    hasher: DefaultHashBuilder,
    shards: Box<[Arc<Shard<R>>]>,
    fallback: Option<R>,
}

/// One of the tables the names are split over: each name with what it reaches.
type Shard<R> = HashTable<(Arc<str>, R)>;

/// How many tables the names are split over.
pub const SHARDS: usize = 64;

impl<R> Default for RouteTable<R> {
    fn default() -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS).map(|_| Arc::new(HashTable::new())).collect(),
            fallback: None,
        }
    }
}

impl<R> RouteTable<R> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hash of `host` and the shard it lives in. The shard comes from bits that a
    /// shard's own table uses neither for its bucket (the low bits) nor for its tags
    /// (the top seven).
    fn place(&self, host: &str) -> (u64, usize) {
        let hash = self.hasher.hash_one(host);
        let shard = (hash >> 32) as usize % SHARDS;
        (hash, shard)
    }

    /// Whether `host` is the name of an endpoint (not just the bare address's fallback).
    pub fn names(&self, host: &str) -> bool {
        self.get(host).is_some()
    }

    fn get(&self, host: &str) -> Option<&R> {
        let (hash, shard) = self.place(host);
        self.shards[shard]
            .find(hash, |(name, _)| **name == *host)
            .map(|(_, route)| route)
    }

    /// The host names served, sorted.
    pub fn hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = self
            .shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(name, _)| &**name))
            .collect();
        hosts.sort_unstable();
        hosts
    }

    /// Finds the endpoint a host name reaches.
    pub fn lookup(&self, host: &str) -> Option<&R> {
        if let Some(route) = self.get(host) {
            return Some(route);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" || bare.parse::<IpAddr>().is_ok() {
            return self.fallback.as_ref();
        }
        None
    }

    /// Sets the endpoint that `127.0.0.1`, `[::1]` and `localhost` reach.
    pub fn set_fallback(&mut self, route: R) {
        self.fallback = Some(route);
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

impl<R: Clone> RouteTable<R> {
    /// Routes `host` (lower-case, no port) to `route`; returns false if the name was taken.
    pub fn insert(&mut self, host: impl Into<Arc<str>>, route: R) -> bool {
        let host = host.into();
        let (hash, shard) = self.place(&host);
        let hasher = &self.hasher;
        // Copies the shard first only while a published copy of the table shares it.
        let table = Arc::make_mut(&mut self.shards[shard]);
        match table.entry(
            hash,
            |(name, _)| **name == *host,
            |(name, _)| hasher.hash_one(&**name),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((host, route));
                true
            }
        }
    }

    /// Stops routing `host`.
    pub fn remove(&mut self, host: &str) {
        let (hash, shard) = self.place(host);
        if self.shards[shard]
            .find(hash, |(name, _)| **name == *host)
            .is_none()
        {
            return;
        }
        let table = Arc::make_mut(&mut self.shards[shard]);
        if let Ok(entry) = table.find_entry(hash, |(name, _)| **name == *host) {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> RouteTable<usize> {
        let mut table = RouteTable::new();
        for i in 0..n {
            assert!(table.insert(format!("app{i}.example"), i));
        }
        table
    }

    #[test]
    fn names_are_found_refused_twice_and_removed() {
        let mut t = table(1000);
        for i in 0..1000 {
            assert_eq!(t.lookup(&format!("app{i}.example")), Some(&i));
        }
        assert!(!t.insert("app7.example", 99), "a taken name is refused");
        assert_eq!(t.lookup("app7.example"), Some(&7));
        t.remove("app7.example");
        t.remove("never.example");
        assert_eq!(t.lookup("app7.example"), None);
        assert!(!t.names("app7.example"));
        assert!(t.insert("app7.example", 70));
        assert_eq!(t.lookup("app7.example"), Some(&70));
        assert_eq!(t.hosts().len(), 1000);
        assert!(t.hosts().is_sorted());
        // The names spread over the shards.
        assert!(t.shards.iter().all(|s| !s.is_empty()));
    }

    #[test]
    fn bare_addresses_and_localhost_reach_the_fallback_only() {
        let mut t = table(3);
        assert_eq!(t.lookup("127.0.0.1"), None);
        t.set_fallback(42);
        for host in ["127.0.0.1", "[::1]", "localhost"] {
            assert_eq!(t.lookup(host), Some(&42), "{host}");
            assert!(!t.names(host));
        }
        assert_eq!(t.lookup("other.example"), None);
        assert_eq!(t.lookup("app1.example"), Some(&1));
    }

    #[test]
    fn a_published_copy_keeps_its_routes_and_a_change_copies_one_shard() {
        let mut live = table(10_000);
        let published = live.clone();
        assert!(live.insert("new.example", 1));
        live.remove("app5.example");
        assert_eq!(published.lookup("new.example"), None);
        assert_eq!(published.lookup("app5.example"), Some(&5));
        assert_eq!(live.lookup("new.example"), Some(&1));
        assert_eq!(live.lookup("app5.example"), None);
        let copied = live
            .shards
            .iter()
            .zip(published.shards.iter())
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count();
        let touched = [live.place("new.example").1, live.place("app5.example").1];
        let expected = if touched[0] == touched[1] { 1 } else { 2 };
        assert_eq!(copied, expected, "only the shards changed are copied");
        // Without a copy outstanding, a change copies nothing.
        drop(published);
        let before: Vec<_> = live.shards.iter().map(Arc::as_ptr).collect();
        assert!(live.insert("newer.example", 2));
        let after: Vec<_> = live.shards.iter().map(Arc::as_ptr).collect();
        assert_eq!(before, after);
    }
}
