//! Modal-style names: `<workspace>[-<env>]--<app>-<function>[-dev].<base-domain>`.

use crate::engine::EndpointSpec;
use crate::store::{AppRecord, AppState, FunctionRecord};

/// How the server names endpoints.
#[derive(Debug, Clone)]
pub struct UrlScheme {
    /// Base domain (default `localhost`, which resolves to loopback).
    pub base_domain: String,
    /// Port the endpoints are served on.
    pub port: u16,
    /// The environment left out of names.
    pub default_environment: String,
}

impl UrlScheme {
    fn prefix(&self, app: &AppRecord) -> String {
        if app.environment == self.default_environment {
            app.workspace.clone()
        } else {
            format!("{}-{}", app.workspace, app.environment)
        }
    }

    /// The generated host name of a function's web endpoint.
    pub fn endpoint_host(&self, app: &AppRecord, spec: &EndpointSpec) -> String {
        let dev = if app.state == AppState::Ephemeral {
            "-dev"
        } else {
            ""
        };
        format!(
            "{}--{}-{}{dev}.{}",
            self.prefix(app),
            app.name,
            spec.dns_name(),
            self.base_domain
        )
    }

    /// The host name a custom label gives.
    pub fn label_host(&self, app: &AppRecord, label: &str) -> String {
        format!("{}--{label}.{}", self.prefix(app), self.base_domain)
    }

    /// Every host name that reaches this endpoint, the preferred one first.
    pub fn hosts(
        &self,
        app: &AppRecord,
        spec: &EndpointSpec,
        function: &FunctionRecord,
    ) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(label) = &function.custom_label {
            hosts.push(self.label_host(app, label));
        }
        if let Some(label) = &spec.label {
            hosts.push(self.label_host(app, label));
        }
        hosts.push(self.endpoint_host(app, spec));
        hosts.extend(spec.custom_domains.iter().map(|d| d.to_ascii_lowercase()));
        hosts.dedup();
        hosts
    }

    /// `http://<host>[:port]/`.
    pub fn url(&self, host: &str) -> String {
        if self.port == 80 {
            format!("http://{host}/")
        } else {
            format!("http://{host}:{}/", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(env: &str, state: AppState) -> AppRecord {
        AppRecord {
            app_id: "ap-1".into(),
            name: "hello-app".into(),
            workspace: "main".into(),
            environment: env.into(),
            state,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn spec() -> EndpointSpec {
        serde_json::from_value(serde_json::json!({
            "kind": "function", "name": "say_hi", "method": "GET", "label": null, "docs": false,
            "requires_proxy_auth": false, "custom_domains": ["API.example.com"], "summary": null,
            "args_schema": {}, "result_schema": null, "timeout": null, "memory_mib": null
        }))
        .unwrap()
    }

    #[test]
    fn modal_style_names() {
        let s = UrlScheme {
            base_domain: "localhost".into(),
            port: 8000,
            default_environment: "main".into(),
        };
        assert_eq!(
            s.endpoint_host(&app("main", AppState::Deployed), &spec()),
            "main--hello-app-say-hi.localhost"
        );
        assert_eq!(
            s.endpoint_host(&app("dev", AppState::Deployed), &spec()),
            "main-dev--hello-app-say-hi.localhost"
        );
        assert_eq!(
            s.endpoint_host(&app("main", AppState::Ephemeral), &spec()),
            "main--hello-app-say-hi-dev.localhost"
        );
        let f = FunctionRecord {
            kind: crate::store::FunctionKind::Web,
            function_id: "fu-1".into(),
            app_id: "ap-1".into(),
            name: "say_hi".into(),
            custom_label: Some("greeter".into()),
            active: true,
            created_at: String::new(),
        };
        let hosts = s.hosts(&app("main", AppState::Deployed), &spec(), &f);
        assert_eq!(hosts[0], "main--greeter.localhost");
        assert!(hosts.contains(&"api.example.com".to_string()));
        assert_eq!(s.url(&hosts[0]), "http://main--greeter.localhost:8000/");
    }
}
