//! The `/v1` route table: the router matches requests against it, each route carries the
//! scope it needs, and a test holds the OpenAPI document to exactly these routes.

use hyper::Method;

use crate::store::Scope;

/// What a `/v1` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteId {
    OpenApi,
    ListApps,
    CreateApp,
    GetApp,
    StopApp,
    AppLogs,
    AppVersions,
    Rollback,
    ListFunctions,
    GetFunction,
    ListWebEndpoints,
    GetWebEndpoint,
    SetLabel,
    Deploy,
    Invoke,
    ListInvocations,
    Spawn,
    Map,
    GetCall,
    CancelCall,
    CallLogs,
    ListSecrets,
    CreateSecret,
    DeleteSecret,
    ListVolumes,
    CreateVolume,
    ListVolumeRoot,
    GetVolumeFile,
    PutVolumeFile,
    ListTokens,
    CreateToken,
    RevokeToken,
}

/// One route: method, path template (`{name}` is one segment; a trailing `{path}` is the
/// rest of the path, one or more segments) and the scope a token needs for it.
pub(super) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub scope: Scope,
    pub id: RouteId,
}

const fn route(method: Method, path: &'static str, scope: Scope, id: RouteId) -> Route {
    Route {
        method,
        path,
        scope,
        id,
    }
}

use RouteId as R;
use Scope::{Admin, Deploy, Invoke};

/// Every `/v1` route. Reads and calls need `invoke`; changing what runs needs `deploy`;
/// tokens and secrets need `admin`.
pub(super) static ROUTES: [Route; 32] = [
    route(Method::GET, "/openapi.json", Invoke, R::OpenApi),
    route(Method::GET, "/apps", Invoke, R::ListApps),
    route(Method::POST, "/apps", Deploy, R::CreateApp),
    route(Method::GET, "/apps/{app_id}", Invoke, R::GetApp),
    route(Method::DELETE, "/apps/{app_id}", Deploy, R::StopApp),
    route(Method::GET, "/apps/{app_id}/logs", Invoke, R::AppLogs),
    route(
        Method::GET,
        "/apps/{app_id}/versions",
        Invoke,
        R::AppVersions,
    ),
    route(Method::POST, "/apps/{app_id}/rollback", Deploy, R::Rollback),
    route(
        Method::GET,
        "/apps/{app_id}/functions",
        Invoke,
        R::ListFunctions,
    ),
    route(
        Method::GET,
        "/functions/{function_id}",
        Invoke,
        R::GetFunction,
    ),
    route(Method::GET, "/web-endpoints", Invoke, R::ListWebEndpoints),
    route(
        Method::GET,
        "/web-endpoints/{endpoint_id}",
        Invoke,
        R::GetWebEndpoint,
    ),
    route(
        Method::PUT,
        "/web-endpoints/{endpoint_id}/labels",
        Deploy,
        R::SetLabel,
    ),
    route(Method::POST, "/deployments", Deploy, R::Deploy),
    route(
        Method::POST,
        "/functions/{function_id}/invocations",
        Invoke,
        R::Invoke,
    ),
    route(
        Method::GET,
        "/functions/{function_id}/invocations",
        Invoke,
        R::ListInvocations,
    ),
    route(
        Method::POST,
        "/functions/{function_id}/spawn",
        Invoke,
        R::Spawn,
    ),
    route(Method::POST, "/functions/{function_id}/map", Invoke, R::Map),
    route(Method::GET, "/function-calls/{call_id}", Invoke, R::GetCall),
    route(
        Method::DELETE,
        "/function-calls/{call_id}",
        Invoke,
        R::CancelCall,
    ),
    route(
        Method::GET,
        "/function-calls/{call_id}/logs",
        Invoke,
        R::CallLogs,
    ),
    route(Method::GET, "/secrets", Admin, R::ListSecrets),
    route(Method::POST, "/secrets", Admin, R::CreateSecret),
    route(Method::DELETE, "/secrets/{name}", Admin, R::DeleteSecret),
    route(Method::GET, "/volumes", Deploy, R::ListVolumes),
    route(Method::POST, "/volumes", Deploy, R::CreateVolume),
    route(
        Method::GET,
        "/volumes/{name}/files",
        Deploy,
        R::ListVolumeRoot,
    ),
    route(
        Method::GET,
        "/volumes/{name}/files/{path}",
        Deploy,
        R::GetVolumeFile,
    ),
    route(
        Method::PUT,
        "/volumes/{name}/files/{path}",
        Deploy,
        R::PutVolumeFile,
    ),
    route(Method::GET, "/tokens", Admin, R::ListTokens),
    route(Method::POST, "/tokens", Admin, R::CreateToken),
    route(Method::DELETE, "/tokens/{token_id}", Admin, R::RevokeToken),
];

/// A request matched to a route.
pub(super) struct Matched<'r, 's> {
    /// The route.
    pub route: &'r Route,
    /// The values of its `{…}` segments, in order (the rest of the path excluded).
    pub params: Vec<&'s str>,
    /// The segments a trailing `{path}` took.
    pub rest: &'s [&'s str],
}

impl Matched<'_, '_> {
    /// The `i`th `{…}` value ("" if the template has fewer).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or("")
    }
}

/// The route for `method` and the path's non-empty segments (after `/v1`).
pub(super) fn find<'s>(method: &Method, segments: &'s [&'s str]) -> Option<Matched<'static, 's>> {
    ROUTES
        .iter()
        .filter(|r| r.method == *method)
        .find_map(|r| matches(r, segments))
}

fn matches<'s>(route: &'static Route, segments: &'s [&'s str]) -> Option<Matched<'static, 's>> {
    let template: Vec<&str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = Vec::new();
    for (i, t) in template.iter().enumerate() {
        if *t == "{path}" && i == template.len() - 1 {
            let rest = segments.get(i..).filter(|r| !r.is_empty())?;
            return Some(Matched {
                route,
                params,
                rest,
            });
        }
        let s = *segments.get(i)?;
        if t.starts_with('{') {
            params.push(s);
        } else if *t != s {
            return None;
        }
    }
    (segments.len() == template.len()).then_some(Matched {
        route,
        params,
        rest: &[],
    })
}

/// The methods some route has for this path (empty: no route has the path at all).
pub(super) fn methods_for(segments: &[&str]) -> Vec<&'static str> {
    ROUTES
        .iter()
        .filter(|r| matches(r, segments).is_some())
        .map(|r| r.method.as_str())
        .collect()
}

/// The scope a request needs: its route's, or `invoke` for a path no route has (it is
/// answered 404 once the token is known to be valid).
pub(super) fn needed_scope(method: &Method, segments: &[&str]) -> Scope {
    find(method, segments).map_or(Invoke, |m| m.route.scope)
}

/// Fuzzing entry: matches an arbitrary method and path against the table.
#[cfg(fuzzing)]
pub fn fuzz_route(method: &[u8], path: &str) {
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let segments: Vec<&str> = path
        .trim_start_matches("/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(m) = find(&method, &segments) {
        assert_eq!(m.route.method, method);
        assert!(m.params.len() + m.rest.len() <= segments.len());
        let _ = m.param(0);
    }
    let _ = needed_scope(&method, &segments);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn segments(path: &str) -> Vec<&str> {
        path.split('/').filter(|s| !s.is_empty()).collect()
    }

    #[test]
    fn every_route_matches_its_own_template_and_nothing_else_does() {
        for r in &ROUTES {
            let filled = r
                .path
                .replace("{path}", "a/b")
                .replace('{', "x")
                .replace('}', "");
            let segs = segments(&filled);
            let m = find(&r.method, &segs).unwrap_or_else(|| panic!("{} {}", r.method, r.path));
            assert_eq!(m.route.id, r.id, "{} {}", r.method, r.path);
        }
        assert!(find(&Method::GET, &segments("/apps/a/b")).is_none());
        assert!(find(&Method::PATCH, &segments("/apps")).is_none());
        let file = segments("/volumes/v/files/a/b%20c");
        let m = find(&Method::GET, &file).unwrap();
        assert_eq!(
            (m.route.id, m.param(0), m.rest),
            (R::GetVolumeFile, "v", &["a", "b%20c"][..])
        );
        let ids: BTreeSet<String> = ROUTES.iter().map(|r| format!("{:?}", r.id)).collect();
        assert_eq!(ids.len(), ROUTES.len(), "one entry per route");
    }

    #[test]
    fn scopes_follow_what_a_route_changes() {
        let scope = |m: Method, p: &str| needed_scope(&m, &segments(p));
        assert_eq!(scope(Method::GET, "/apps"), Invoke);
        assert_eq!(scope(Method::POST, "/deployments"), Deploy);
        assert_eq!(scope(Method::DELETE, "/apps/x"), Deploy);
        assert_eq!(scope(Method::POST, "/apps/x/rollback"), Deploy);
        assert_eq!(scope(Method::GET, "/apps/x/logs"), Invoke);
        assert_eq!(scope(Method::GET, "/volumes/v/files/a"), Deploy);
        assert_eq!(scope(Method::GET, "/secrets"), Admin);
        assert_eq!(scope(Method::DELETE, "/tokens/t"), Admin);
        assert_eq!(scope(Method::POST, "/functions/f/spawn"), Invoke);
        assert_eq!(scope(Method::GET, "/nowhere"), Invoke);
    }

    /// The OpenAPI document describes exactly the routes the router serves, with every
    /// path parameter declared.
    #[test]
    fn the_openapi_document_lists_every_route_and_no_other() {
        let doc = super::super::openapi::document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let in_template: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_template, "{method} {path}");
                assert!(op["operationId"].is_string(), "{method} {path}");
            }
        }
        let served: BTreeSet<String> = ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(documented, served);
    }
}
