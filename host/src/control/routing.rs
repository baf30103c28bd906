//! The route table kept one app at a time. A deploy, a stop or a new label re-routes the
//! app it changes; the whole table is rebuilt from the store only when a change touches a
//! name that two apps claim, because then the store's order of apps decides who holds it.
//! With 10,000 apps, rebuilding on every deploy read every app and function record and
//! cost ~25 ms a deploy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::ControlPlane;
use super::directory::Directory;
use crate::gateway::{Route, RouteTable};
use crate::store::{AppRecord, FunctionRecord};

/// The routes of every live app and the names each app claims.
pub(super) struct Routing<R = Route> {
    table: RouteTable<R>,
    /// The names each app claims, held or not.
    claims: HashMap<String, Vec<Arc<str>>>,
    /// Names claimed more than once (by two apps, or twice by one); the first claim in
    /// the store's order of apps holds each.
    contested: HashSet<Arc<str>>,
}

impl<R: Clone> Routing<R> {
    /// Routes every app, in the store's order: `apps` yields each app's id and the routes
    /// it claims. A name claimed again stays with its first claim.
    pub(super) fn build(apps: impl IntoIterator<Item = (String, Vec<(String, R)>)>) -> Self {
        let mut routing = Self {
            table: RouteTable::default(),
            claims: HashMap::new(),
            contested: HashSet::new(),
        };
        for (app_id, routes) in apps {
            let mut names = Vec::with_capacity(routes.len());
            for (host, route) in routes {
                let host: Arc<str> = host.into();
                if !routing.table.insert(host.clone(), route) {
                    tracing::warn!(%host, "host name already routed; keeping the first");
                    routing.contested.insert(host.clone());
                }
                names.push(host);
            }
            if !names.is_empty() {
                routing.claims.insert(app_id, names);
            }
        }
        routing
    }

    /// Re-routes one app to `routes` (none when it is no longer served). Returns false,
    /// changing nothing, when a name it claims or claimed is contested: the caller
    /// rebuilds the table then.
    #[must_use]
    pub(super) fn update(&mut self, app_id: &str, routes: Vec<(String, R)>) -> bool {
        let old = self.claims.get(app_id).map(Vec::as_slice).unwrap_or(&[]);
        let mut new: HashSet<&str> = HashSet::with_capacity(routes.len());
        for (host, _) in &routes {
            let claimed_before = old.iter().any(|h| **h == **host);
            let held_by_another = !claimed_before && self.table.names(host);
            if !new.insert(host.as_str()) || held_by_another || self.contested.contains(&**host) {
                return false;
            }
        }
        if old.iter().any(|h| self.contested.contains(h)) {
            return false;
        }
        for host in self.claims.remove(app_id).unwrap_or_default() {
            self.table.remove(&host);
        }
        let mut names = Vec::with_capacity(routes.len());
        for (host, route) in routes {
            let host: Arc<str> = host.into();
            self.table.insert(host.clone(), route);
            names.push(host);
        }
        if !names.is_empty() {
            self.claims.insert(app_id.to_owned(), names);
        }
        true
    }

    /// The table to publish.
    pub(super) fn table(&self) -> RouteTable<R> {
        self.table.clone()
    }
}

impl<R: Clone> Default for Routing<R> {
    fn default() -> Self {
        Self::build([])
    }
}

impl ControlPlane {
    /// The routes `app` claims: each endpoint of its live version under every name it
    /// has (none when it is not served).
    fn app_routes(&self, app: &AppRecord, functions: &[&FunctionRecord]) -> Vec<(String, Route)> {
        let Some(web) = self.live(&app.app_id) else {
            return Vec::new();
        };
        let mut routes = Vec::new();
        for (index, spec) in web.manifest().endpoints.iter().enumerate() {
            let Some(function) = functions.iter().find(|f| f.active && f.name == spec.name) else {
                continue;
            };
            for host in self.config.urls.hosts(app, spec, function) {
                let route = Route {
                    app: web.clone(),
                    endpoint: index,
                };
                routes.push((host, route));
            }
        }
        routes
    }

    /// Routes every live app again from the store, and publishes the routes. On a store
    /// error the routes served stay as they are.
    pub(super) fn rebuild_routes(&self) {
        match self.store.list_apps() {
            Ok(apps) => self.route_apps(&apps),
            Err(e) => tracing::error!("cannot list apps for routing: {e}"),
        }
    }

    /// Routes every live app of `apps` (the store's list, in its order), and publishes
    /// the routes. On a store error the routes served stay as they are.
    pub(super) fn route_apps(&self, apps: &[AppRecord]) {
        let functions = match self.store.all_functions() {
            Ok(functions) => functions,
            Err(e) => {
                tracing::error!("cannot list functions for routing: {e}");
                return;
            }
        };
        *self.directory_mut() = Directory::build(&functions);
        // One pass over the functions, not one per app.
        let mut by_app: HashMap<&str, Vec<&FunctionRecord>> = HashMap::new();
        for f in &functions {
            by_app.entry(f.app_id.as_str()).or_default().push(f);
        }
        let routing = Routing::build(apps.iter().map(|app| {
            let functions = by_app.remove(app.app_id.as_str()).unwrap_or_default();
            (app.app_id.clone(), self.app_routes(app, &functions))
        }));
        *self.routing() = routing;
        self.publish_routes();
    }

    /// Routes `app` again after a change to it alone (`functions` are its records), and
    /// publishes the routes.
    pub(super) fn reroute(&self, app: &AppRecord, functions: &[FunctionRecord]) {
        self.directory_mut().set_app(&app.app_id, functions);
        let functions: Vec<&FunctionRecord> = functions.iter().collect();
        let routes = self.app_routes(app, &functions);
        self.route_one(&app.app_id, routes);
    }

    /// Takes away the routes of `app_id`, no longer served (stopped, or removed from the
    /// store), and publishes the routes.
    pub(super) fn unroute(&self, app_id: &str) {
        self.directory_mut().remove_app(app_id);
        self.route_one(app_id, Vec::new());
    }

    fn route_one(&self, app_id: &str, routes: Vec<(String, Route)>) {
        if self.routing().update(app_id, routes) {
            self.publish_routes();
        } else {
            // A name two apps claim: the store's order of apps decides who holds it.
            self.rebuild_routes();
        }
    }

    pub(super) fn publish_routes(&self) {
        if let Some(gateway) = self
            .gateway
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade()
        {
            gateway.set_routes(self.routing().table());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(names: &[&str], app: &'static str) -> Vec<(String, &'static str)> {
        names.iter().map(|n| (n.to_string(), app)).collect()
    }

    fn holder<'a>(r: &'a Routing<&'static str>, host: &str) -> Option<&'a str> {
        r.table.lookup(host).copied()
    }

    #[test]
    fn an_app_is_rerouted_alone_and_its_old_names_go() {
        let mut r = Routing::build([
            ("a".to_string(), routes(&["a1", "a2"], "a")),
            ("b".to_string(), routes(&["b1"], "b")),
        ]);
        assert!(r.update("a", routes(&["a2", "a3"], "a-v2")));
        assert_eq!(holder(&r, "a1"), None);
        assert_eq!(holder(&r, "a2"), Some("a-v2"));
        assert_eq!(holder(&r, "a3"), Some("a-v2"));
        assert_eq!(holder(&r, "b1"), Some("b"));
        // A new app, then a stopped one.
        assert!(r.update("c", routes(&["c1"], "c")));
        assert!(r.update("b", Vec::new()));
        assert_eq!(holder(&r, "b1"), None);
        assert_eq!(holder(&r, "c1"), Some("c"));
        assert_eq!(r.table().hosts(), ["a2", "a3", "c1"]);
    }

    #[test]
    fn a_name_another_app_holds_asks_for_a_rebuild() {
        let mut r = Routing::build([("a".to_string(), routes(&["x"], "a"))]);
        assert!(!r.update("b", routes(&["b1", "x"], "b")));
        // Nothing changed.
        assert_eq!(holder(&r, "b1"), None);
        assert_eq!(holder(&r, "x"), Some("a"));
        // One app naming a host twice is a clash too.
        assert!(!r.update("c", routes(&["c1", "c1"], "c")));
    }

    #[test]
    fn contested_names_stay_with_the_first_claim_until_a_rebuild() {
        let mut r = Routing::build([
            ("a".to_string(), routes(&["x", "a1"], "a")),
            ("b".to_string(), routes(&["x", "b1"], "b")),
        ]);
        assert_eq!(holder(&r, "x"), Some("a"));
        assert_eq!(holder(&r, "b1"), Some("b"));
        // Either side changing involves the contested name: rebuild.
        assert!(!r.update("a", Vec::new()));
        assert!(!r.update("b", routes(&["b1"], "b")));
        assert_eq!(holder(&r, "x"), Some("a"));
        // Another app is unaffected.
        assert!(r.update("c", routes(&["c1"], "c")));
        // The rebuild after `a` stops hands the name to `b`.
        let r = Routing::build([("b".to_string(), routes(&["x", "b1"], "b"))]);
        assert_eq!(holder(&r, "x"), Some("b"));
    }
}
