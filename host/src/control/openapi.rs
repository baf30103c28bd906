//! The control API's own OpenAPI 3.1 document, served at `/v1/openapi.json`.

use serde_json::{Value, json};

fn op(tag: &str, id: &str, summary: &str, ok: (&str, Value)) -> Value {
    json!({
        "tags": [tag], "operationId": id, "summary": summary,
        "responses": {
            ok.0: ok.1,
            "401": { "description": "Missing or invalid bearer token.", "content": err() },
            "404": { "description": "Not found.", "content": err() }
        }
    })
}

fn err() -> Value {
    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } })
}

fn body(schema: &str) -> Value {
    json!({ "description": "OK", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn page(schema: &str) -> Value {
    json!({ "description": "OK", "content": { "application/json": { "schema": {
        "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/{schema}") } } } } } } })
}

fn with_param(mut op: Value, name: &str) -> Value {
    op["parameters"] =
        json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }]);
    op
}

fn with_body(mut op: Value, schema: Value, content_type: &str) -> Value {
    op["requestBody"] =
        json!({ "required": true, "content": { content_type: { "schema": schema } } });
    op
}

/// The document.
pub(super) fn document() -> Value {
    let none = |d: &str| json!({ "description": d });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wasmhost control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Apps, functions and web endpoints of a wasmhost server (Modal's REST surface, for WebAssembly components)."
        },
        "servers": [{ "url": "/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/apps": {
                "get": op("Apps", "listApps", "List apps", ("200", page("App"))),
                "post": with_body(op("Apps", "createApp", "Create an app", ("201", body("App"))),
                    json!({ "$ref": "#/components/schemas/AppCreate" }), "application/json")
            },
            "/apps/{app_id}": {
                "get": with_param(op("Apps", "getApp", "Get an app", ("200", body("App"))), "app_id"),
                "delete": with_param(op("Apps", "stopApp", "Stop an app", ("204", none("Stopped."))), "app_id")
            },
            "/apps/{app_id}/functions": {
                "get": with_param(op("Functions", "listFunctions", "List an app's functions", ("200", page("Function"))), "app_id")
            },
            "/functions/{function_id}": {
                "get": with_param(op("Functions", "getFunction", "Get a function", ("200", body("Function"))), "function_id")
            },
            "/web-endpoints": {
                "get": op("WebEndpoints", "listWebEndpoints", "List web endpoints", ("200", page("WebEndpoint")))
            },
            "/web-endpoints/{endpoint_id}": {
                "get": with_param(op("WebEndpoints", "getWebEndpoint", "Get a web endpoint", ("200", body("WebEndpoint"))), "endpoint_id")
            },
            "/web-endpoints/{endpoint_id}/labels": {
                "put": with_body(with_param(op("WebEndpoints", "setWebEndpointLabel", "Set a custom URL label", ("204", none("Label set."))), "endpoint_id"),
                    json!({ "type": "object", "required": ["label"], "properties": { "label": { "type": "string" } } }), "application/json")
            },
            "/deployments": {
                "post": with_body(op("Apps", "deploy", "Upload and deploy a component (query: name, environment, ephemeral)", ("201", body("Deployment"))),
                    json!({ "type": "string", "format": "binary" }), "application/wasm")
            },
            "/tokens": {
                "get": op("Tokens", "listTokens", "List tokens (no secrets)", ("200", page("Token"))),
                "post": with_body(op("Tokens", "createToken", "Create a token; its secret is shown once", ("201", body("Token"))),
                    json!({ "type": "object", "properties": { "name": { "type": "string" }, "scope": { "$ref": "#/components/schemas/Scope" } } }), "application/json")
            },
            "/tokens/{token_id}": {
                "delete": with_param(op("Tokens", "revokeToken", "Revoke a token: it stops working at once", ("200", none("Revoked."))), "token_id")
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "`<token_id>:<token_secret>`" } },
            "schemas": {
                "Error": { "type": "object", "properties": { "detail": { "type": "string" } } },
                "App": { "type": "object", "properties": {
                    "app_id": { "type": "string" }, "name": { "type": "string" },
                    "state": { "type": "string", "enum": ["ephemeral", "deployed", "stopped"] },
                    "environment": { "type": "string" }, "workspace": { "type": "string" },
                    "version": { "type": "integer" }, "tags": { "type": "object" },
                    "created_at": { "type": "string", "format": "date-time" } } },
                "AppCreate": { "type": "object", "required": ["name"], "properties": {
                    "name": { "type": "string" }, "environment": { "type": "string" }, "ephemeral": { "type": "boolean" } } },
                "Function": { "type": "object", "properties": {
                    "function_id": { "type": "string" }, "app_id": { "type": "string" }, "name": { "type": "string" },
                    "kind": { "type": "string" }, "web_url": { "type": ["string", "null"], "format": "uri" },
                    "method": { "type": "string" }, "timeout": { "type": ["integer", "null"] },
                    "memory": { "type": ["integer", "null"] }, "gpu": { "type": ["string", "null"] },
                    "retries": { "type": "integer" } } },
                "WebEndpoint": { "type": "object", "properties": {
                    "endpoint_id": { "type": "string" }, "function_id": { "type": "string" },
                    "kind": { "type": "string", "enum": ["fastapi_endpoint", "asgi_app", "wsgi_app", "web_server"] },
                    "url": { "type": "string", "format": "uri" }, "custom_label": { "type": ["string", "null"] },
                    "auth": { "type": "string", "enum": ["none", "proxy_token"] },
                    "methods": { "type": "array", "items": { "type": "string" } } } },
                "Deployment": { "type": "object", "properties": {
                    "app_id": { "type": "string" }, "name": { "type": "string" }, "version": { "type": "integer" },
                    "changed": { "type": "boolean" },
                    "functions": { "type": "array", "items": { "$ref": "#/components/schemas/Function" } } } },
                "Token": { "type": "object", "properties": {
                    "token_id": { "type": "string" }, "name": { "type": "string" }, "token_secret": { "type": "string" },
                    "scope": { "$ref": "#/components/schemas/Scope" } } },
                "Scope": { "type": "string", "enum": ["admin", "deploy", "invoke", "proxy-auth"],
                    "description": "admin: everything; deploy: deploys, apps, volumes and what invoke may; invoke: reads and function calls; proxy-auth: only proxy-auth web endpoints. A route a token's scope does not cover answers 403." }
            }
        }
    })
}
