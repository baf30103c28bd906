//! OpenAPI 3.1 documents built from the JSON Schemas a component states in `describe`.

use serde_json::{Map, Value, json};

use crate::engine::{AppManifest, EndpointSpec};

/// Methods whose arguments come from the query string.
fn takes_query(method: &str) -> bool {
    matches!(method, "GET" | "DELETE" | "HEAD")
}

/// The OpenAPI 3.1 document of one endpoint, served at its `/openapi.json`.
pub(super) fn document(manifest: &AppManifest, spec: &EndpointSpec) -> Value {
    let mut schemas = validation_schemas();
    let args = spec.args_schema.clone();
    collect_defs(&args, &mut schemas);
    let properties = args
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = args
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let body_param = args.get("x-wasmhost-body").and_then(Value::as_str);

    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(spec.name));
    operation.insert(
        "summary".into(),
        json!(
            spec.summary
                .clone()
                .unwrap_or_else(|| title_case(&spec.name))
        ),
    );
    let mut parameters = Vec::new();
    let mut body_props = Map::new();
    for (name, schema) in &properties {
        if Some(name.as_str()) == body_param {
            continue;
        }
        if takes_query(&spec.method) {
            parameters.push(json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": rewrite_refs(schema.clone()),
            }));
        } else {
            body_props.insert(name.clone(), rewrite_refs(schema.clone()));
        }
    }
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    let body_schema = match body_param.and_then(|b| properties.get(b)) {
        Some(schema) => Some(rewrite_refs(schema.clone())),
        None if !body_props.is_empty() => {
            let req: Vec<&&str> = required
                .iter()
                .filter(|r| body_props.contains_key(**r))
                .collect();
            Some(json!({ "type": "object", "properties": body_props, "required": req }))
        }
        None => None,
    };
    if let Some(schema) = body_schema {
        operation.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let ok = match &spec.result_schema {
        Some(schema) => {
            collect_defs(schema, &mut schemas);
            let mut schema = rewrite_refs(schema.clone());
            strip_meta(&mut schema);
            json!({ "description": "Successful Response",
                    "content": { "application/json": { "schema": schema } } })
        }
        None => json!({ "description": "Successful Response" }),
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": ok,
            "422": { "description": "Validation Error", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/HTTPValidationError" } } } }
        }),
    );
    let method = spec.method.to_ascii_lowercase();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{} · {}", manifest.app, spec.name),
            "version": manifest.sdk_version,
        },
        "paths": { "/": { method: operation } },
        "components": { "schemas": schemas },
    })
}

/// Moves a schema's `$defs` into `components/schemas`.
fn collect_defs(schema: &Value, into: &mut Map<String, Value>) {
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            into.insert(name.clone(), rewrite_refs(def.clone()));
        }
    }
}

fn strip_meta(schema: &mut Value) {
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$defs");
        obj.remove("$schema");
    }
}

/// Points `#/$defs/X` references at `#/components/schemas/X`.
fn rewrite_refs(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k == "$ref"
                        && let Value::String(s) = child
                        && let Some(name) = s.strip_prefix("#/$defs/")
                    {
                        *s = format!("#/components/schemas/{name}");
                    } else {
                        walk(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

fn title_case(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// FastAPI's validation error schemas, which the guest SDK's 422 bodies follow.
fn validation_schemas() -> Map<String, Value> {
    let v = json!({
        "ValidationError": {
            "type": "object",
            "required": ["loc", "msg", "type"],
            "properties": {
                "loc": { "type": "array", "items": { "anyOf": [{ "type": "string" }, { "type": "integer" }] } },
                "msg": { "type": "string" },
                "type": { "type": "string" }
            }
        },
        "HTTPValidationError": {
            "type": "object",
            "properties": {
                "detail": { "type": "array", "items": { "$ref": "#/components/schemas/ValidationError" } }
            }
        }
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(method: &str, args: Value) -> EndpointSpec {
        EndpointSpec {
            kind: crate::engine::EndpointKind::Function,
            name: "say_hello".into(),
            method: method.into(),
            label: None,
            docs: true,
            requires_proxy_auth: false,
            custom_domains: vec![],
            summary: None,
            args_schema: args,
            result_schema: Some(
                json!({"$ref": "#/$defs/Greeting", "$defs": {"Greeting": {"type": "object"}}}),
            ),
            timeout: None,
            memory_mib: None,
            gpu: None,
            allowed_outbound_hosts: vec![],
            scaling: Default::default(),
            batching: None,
        }
    }

    fn manifest() -> AppManifest {
        AppManifest {
            app: "hello".into(),
            sdk_version: "0.1.0".into(),
            endpoints: vec![],
            functions: vec![],
            pre_init: false,
        }
    }

    #[test]
    fn get_arguments_become_query_parameters() {
        let args = json!({"type": "object", "properties": {"name": {"type": ["string", "null"]}, "n": {"type": "integer"}}, "required": ["n"]});
        let doc = document(&manifest(), &spec("GET", args));
        let op = &doc["paths"]["/"]["get"];
        assert_eq!(op["summary"], "Say Hello");
        let params = op["parameters"].as_array().unwrap();
        assert_eq!(params.len(), 2);
        let n = params.iter().find(|p| p["name"] == "n").unwrap();
        assert_eq!(n["required"], true);
        assert_eq!(n["in"], "query");
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Greeting"
        );
        assert!(doc["components"]["schemas"]["Greeting"].is_object());
    }

    #[test]
    fn whole_body_parameter_becomes_the_request_body() {
        let args = json!({"type": "object", "x-wasmhost-body": "body",
            "properties": {"body": {"$ref": "#/$defs/Item"}}, "required": ["body"],
            "$defs": {"Item": {"type": "object"}}});
        let doc = document(&manifest(), &spec("POST", args));
        let op = &doc["paths"]["/"]["post"];
        assert!(op.get("parameters").is_none());
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Item"
        );
    }
}
