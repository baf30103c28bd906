use std::time::Duration;

use super::*;
use crate::manifest::EndpointSpec;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    (dir, store)
}

fn endpoint(name: &str, label: Option<&str>) -> EndpointSpec {
    EndpointSpec {
        kind: crate::manifest::EndpointKind::Function,
        name: name.into(),
        method: "GET".into(),
        label: label.map(str::to_owned),
        docs: false,
        requires_proxy_auth: false,
        custom_domains: vec![],
        summary: None,
        args_schema: serde_json::json!({"type": "object"}),
        result_schema: None,
        timeout: Some(Duration::from_secs(1)),
        memory_mib: None,
        gpu: None,
        allowed_outbound_hosts: vec![],
        scaling: Default::default(),
        batching: None,
    }
}

fn manifest(endpoints: Vec<EndpointSpec>) -> AppManifest {
    AppManifest {
        app: "demo".into(),
        sdk_version: "0.1.0".into(),
        endpoints,
        functions: vec![],
        pre_init: false,
    }
}

fn req<'a>(name: &'a str, digest: &'a str, m: &'a AppManifest) -> DeployRequest<'a> {
    DeployRequest {
        workspace: "main",
        environment: "main",
        name,
        digest,
        manifest: m,
        ephemeral: false,
        deployed_by: None,
        rollback_of: None,
    }
}

#[test]
fn deploy_versions_and_keeps_function_ids() {
    let (_d, s) = store();
    let m1 = manifest(vec![endpoint("a", None), endpoint("b", None)]);
    let first = s.deploy(&req("demo", "d1", &m1)).unwrap();
    assert!(first.changed);
    assert_eq!(first.app.version, 1);
    let again = s.deploy(&req("demo", "d1", &m1)).unwrap();
    assert!(!again.changed, "same digest is a no-op");
    assert_eq!(again.app.version, 1);
    let m2 = manifest(vec![endpoint("a", None)]);
    let second = s.deploy(&req("demo", "d2", &m2)).unwrap();
    assert_eq!(second.app.version, 2);
    assert_eq!(
        second.functions[0].function_id,
        first.functions[0].function_id
    );
    let listed = s.list_functions(&first.app.app_id).unwrap();
    assert_eq!(listed.len(), 1, "b is gone from the current version");
    let current = s.current_version(&second.app).unwrap().unwrap();
    assert_eq!(current.digest, "d2");
    let history = s.list_versions(&first.app.app_id).unwrap();
    let numbers: Vec<u32> = history.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(
        s.get_version(&first.app.app_id, 1).unwrap().unwrap().digest,
        "d1"
    );
    assert!(s.get_version(&first.app.app_id, 3).unwrap().is_none());
}

#[test]
fn labels_are_unique_per_workspace() {
    let (_d, s) = store();
    let m = manifest(vec![endpoint("a", None)]);
    let one = s.deploy(&req("one", "d1", &m)).unwrap();
    let two = s.deploy(&req("two", "d2", &m)).unwrap();
    s.set_label(&one.functions[0].function_id, "greeter")
        .unwrap();
    let clash = s.set_label(&two.functions[0].function_id, "greeter");
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert!(matches!(
        s.set_label(&two.functions[0].function_id, "Not_DNS"),
        Err(StoreError::Invalid(_))
    ));
    // Moving a label frees the old one.
    s.set_label(&one.functions[0].function_id, "hello").unwrap();
    s.set_label(&two.functions[0].function_id, "greeter")
        .unwrap();
    // A manifest label that clashes refuses the whole deploy and stores nothing.
    let m3 = manifest(vec![endpoint("a", Some("greeter"))]);
    assert!(matches!(
        s.deploy(&req("three", "d3", &m3)),
        Err(StoreError::Conflict(_))
    ));
    assert!(s.find_app("main", "main", "three").unwrap().is_none());
}

#[test]
fn delete_removes_everything() {
    let (_d, s) = store();
    let m = manifest(vec![endpoint("a", Some("lbl"))]);
    let dep = s.deploy(&req("demo", "d1", &m)).unwrap();
    s.delete_app(&dep.app.app_id).unwrap();
    assert!(s.list_apps().unwrap().is_empty());
    assert!(s.all_functions().unwrap().is_empty());
    // The label is free again.
    s.deploy(&req("other", "d2", &m)).unwrap();
}

#[test]
fn tokens_verify_only_with_the_right_secret() {
    let (_d, s) = store();
    assert!(!s.has_tokens().unwrap());
    let t = s.create_token("ci", Scope::Invoke).unwrap();
    assert!(s.has_tokens().unwrap());
    assert!(s.verify_bearer(&t.bearer()).unwrap().is_some());
    assert!(s.verify_token(&t.token_id, "wrong").unwrap().is_none());
    assert!(
        s.verify_token("tk-nope", &t.token_secret)
            .unwrap()
            .is_none()
    );
    assert!(s.verify_bearer("garbage").unwrap().is_none());
    let listed = s.list_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&t.token_secret)
    );
    assert_eq!(listed[0].scope, Scope::Invoke);
    // Revoked, it stops working at once.
    assert!(s.revoke_token(&t.token_id).unwrap());
    assert!(s.verify_bearer(&t.bearer()).unwrap().is_none());
    assert!(!s.revoke_token(&t.token_id).unwrap());
    // The last admin token stays: without it no token could be made again.
    let first = s.create_token("admin", Scope::Admin).unwrap();
    assert!(matches!(
        s.revoke_token(&first.token_id),
        Err(StoreError::Conflict(_))
    ));
    let second = s.create_token("admin 2", Scope::Admin).unwrap();
    assert!(s.revoke_token(&first.token_id).unwrap());
    assert!(s.verify_bearer(&second.bearer()).unwrap().is_some());
}

#[test]
fn tokens_from_before_scopes_are_admin() {
    let old = r#"{"token_id":"tk-1","name":"n","secret_hash":"00","salt":"00","created_at":"t"}"#;
    let record: TokenRecord = serde_json::from_str(old).unwrap();
    assert_eq!(record.scope, Scope::Admin);
    assert!(Scope::Deploy > Scope::Invoke && Scope::Invoke > Scope::ProxyAuth);
    assert_eq!("proxy-auth".parse::<Scope>(), Ok(Scope::ProxyAuth));
    assert!("root".parse::<Scope>().is_err());
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let m = manifest(vec![endpoint("a", None)]);
    let id = {
        let s = Store::open(&path).unwrap();
        s.deploy(&req("demo", "d1", &m)).unwrap().app.app_id
    };
    let s = Store::open(&path).unwrap();
    let app = s.get_app(&id).unwrap().unwrap();
    assert_eq!(app.state, AppState::Deployed);
    assert_eq!(s.current_version(&app).unwrap().unwrap().manifest, m);
}
