//! The control API's own OpenAPI 3.1 document, served at `/v1/openapi.json`.

use serde_json::{Value, json};

/// What `since` accepts: seconds, a humantime duration, or an RFC 3339 time in UTC.
const SINCE_PATTERN: &str = concat!(
    r"^\s*([0-9]{1,12}(\.[0-9]{1,9})?",
    r"|[0-9]{1,9} ?(nsec|ns|usec|us|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w)",
    r"( ?[0-9]{1,9} ?(nsec|ns|usec|us|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w))*",
    r"|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z?)\s*$"
);

fn op(tag: &str, id: &str, summary: &str, ok: (&str, Value)) -> Value {
    let e = |d: &str| json!({ "description": d, "content": err() });
    json!({
        "tags": [tag], "operationId": id, "summary": summary,
        "responses": {
            ok.0: ok.1,
            "400": e("Malformed request."),
            "401": e("Missing or invalid bearer token."),
            "403": e("The token's scope does not cover this route."),
            "404": e("Not found."),
            "409": e("Conflicts with the current state (a name taken, the last admin token, no version to roll back to)."),
            "413": e("The body is larger than the limit."),
            "422": e("The input does not fit (detail may be a list of errors).")
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

fn with_param(op: Value, name: &str) -> Value {
    with_params(op, &[name])
}

fn with_params(mut op: Value, names: &[&str]) -> Value {
    let params: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } }))
        .collect();
    op["parameters"] = Value::Array(params);
    op
}

/// Adds optional query parameters: (name, JSON schema, description).
fn with_query(mut op: Value, query: &[(&str, Value, &str)]) -> Value {
    let list = op["parameters"].as_array().cloned().unwrap_or_default();
    let more = query
        .iter()
        .map(|(n, schema, d)| json!({ "name": n, "in": "query", "required": false, "schema": schema, "description": d }));
    op["parameters"] = Value::Array(list.into_iter().chain(more).collect());
    op
}

fn with_body(mut op: Value, schema: Value, content_type: &str) -> Value {
    op["requestBody"] =
        json!({ "required": true, "content": { content_type: { "schema": schema } } });
    op
}

fn with_binary_body(mut op: Value, content_types: &[&str]) -> Value {
    let content: serde_json::Map<String, Value> = content_types
        .iter()
        .map(|t| {
            (
                (*t).to_owned(),
                json!({ "schema": { "type": "string", "format": "binary", "minLength": 8,
                    "description": "A WebAssembly component (its first bytes are checked at once)." } }),
            )
        })
        .collect();
    op["requestBody"] = json!({ "required": true, "content": content });
    op
}

/// A DNS label, as names of apps, environments, secrets, volumes and labels must be.
fn dns() -> Value {
    json!({ "type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" })
}

fn optional_body(mut op: Value) -> Value {
    op["requestBody"]["required"] = json!(false);
    op
}

/// `schema`, or null for its default.
fn or_null(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn with_json(op: Value, name: &str) -> Value {
    with_body(op, schema(name), "application/json")
}

fn none(description: &str) -> Value {
    json!({ "description": description })
}

/// Every route of the router (a unit test in `routes.rs` holds the two together).
fn paths() -> Value {
    let mut paths = serde_json::Map::new();
    for group in [
        app_paths(),
        call_paths(),
        web_paths(),
        storage_paths(),
        token_paths(),
    ] {
        if let Value::Object(group) = group {
            paths.extend(group);
        }
    }
    Value::Object(paths)
}

/// The meta route and the routes of apps: create, list, logs, versions, rollback.
fn app_paths() -> Value {
    let string = json!({ "type": "string" });
    let boolean = json!({ "type": "boolean" });
    json!({
        "/openapi.json": {
            "get": op("Meta", "getOpenApi", "This document", ("200", none("The OpenAPI 3.1 document.")))
        },
        "/apps": {
            "get": with_query(op("Apps", "listApps", "List apps", ("200", page("App"))), &[
                ("environment", string.clone(), "Only apps of this environment."),
                ("state", json!({ "type": "string", "enum": ["ephemeral", "deployed", "stopped"] }), "Only apps in this state.")]),
            "post": with_json(op("Apps", "createApp", "Create an app", ("201", body("App"))), "AppCreate")
        },
        "/apps/{app_id}": {
            "get": with_param(op("Apps", "getApp", "Get an app", ("200", body("App"))), "app_id"),
            "delete": with_param(op("Apps", "stopApp", "Stop an app: it is no longer served; its record stays (state `stopped`), an ephemeral app's goes", ("204", none("Stopped."))), "app_id")
        },
        "/apps/{app_id}/logs": {
            "get": with_query(with_param(op("Logs", "getAppLogs", "An app's log lines (guest output and host events of its calls and web requests), oldest first; with follow, server-sent events: the lines so far, then each new one as it is written",
                    ("200", json!({ "description": "OK", "content": {
                        "application/json": { "schema": { "type": "object", "properties": { "data": { "type": "array", "items": schema("LogLine") } } } },
                        "text/event-stream": { "schema": { "type": "object", "properties": {
                            "event": { "type": "string", "enum": ["log", "lagged"] }, "data": { "type": "string", "description": "A LogLine as JSON." } } } } } }))), "app_id"),
                &[("follow", boolean, "Stream server-sent events, new lines as they come."),
                  ("function", string, "Only this function's or web endpoint's lines."),
                  ("since", json!({ "type": "string", "pattern": SINCE_PATTERN }), "Only lines since this time: RFC 3339 in UTC, or a duration back from now (`10m`, `1h 30m`, or seconds)."),
                  ("limit", json!({ "type": "integer", "minimum": 1, "maximum": 10000 }), "At most this many of the newest lines (default 1000).")])
        },
        "/apps/{app_id}/versions": {
            "get": with_param(op("Apps", "listAppVersions", "An app's deployed versions, newest first: digest, time, who deployed it", ("200", page("AppVersion"))), "app_id")
        },
        "/apps/{app_id}/rollback": {
            "post": optional_body(with_body(with_param(op("Apps", "rollbackApp", "Serve an earlier version again, as a new version; requests in flight finish on the version they started on",
                    ("200", body("Deployment"))), "app_id"),
                json!({ "type": "object", "properties": { "version": or_null(json!({ "type": "integer", "minimum": 1 })) },
                    "description": "The version to go back to (default: the one before the current)." }), "application/json"))
        },
        "/apps/{app_id}/functions": {
            "get": with_param(op("Functions", "listFunctions", "List an app's functions", ("200", page("Function"))), "app_id")
        }
    })
}

/// The routes of functions and their calls: invoke, spawn, map, status, logs.
fn call_paths() -> Value {
    let boolean = json!({ "type": "boolean" });
    json!({
        "/functions/{function_id}": {
            "get": with_param(op("Functions", "getFunction", "Get a function", ("200", body("Function"))), "function_id")
        },
        "/functions/{function_id}/invocations": {
            "post": optional_body(with_body(with_param(op("Calls", "invoke", "Call a function and wait for its result (Modal's .remote); no body is no arguments",
                    ("200", body("FunctionCall"))), "function_id"), schema("CallInput"), "application/json")),
            "get": with_query(with_param(op("Calls", "listInvocations", "Recent calls of a function, newest first", ("200", page("FunctionCall"))), "function_id"),
                &[("limit", json!({ "type": "integer", "minimum": 1, "maximum": 1000 }), "How many (default 50).")])
        },
        "/functions/{function_id}/spawn": {
            "post": optional_body(with_body(with_param(op("Calls", "spawn", "Queue a call durably and return at once (Modal's .spawn); no body is no arguments",
                    ("202", body("FunctionCall"))), "function_id"), schema("CallInput"), "application/json"))
        },
        "/functions/{function_id}/map": {
            "post": with_query(with_json(with_param(op("Calls", "map", "Call a function over many inputs (Modal's .map); with stream, server-sent events as they finish",
                    ("200", json!({ "description": "OK", "content": {
                        "application/json": { "schema": schema("MapResult") },
                        "text/event-stream": { "schema": { "type": "object", "properties": {
                            "event": { "type": "string", "enum": ["result", "done"] }, "data": { "type": "string" } } } } } }))), "function_id"), "MapRequest"),
                &[("stream", boolean, "Answer with server-sent events.")])
        },
        "/function-calls/{call_id}": {
            "get": with_query(with_param(op("Calls", "getCall", "A call's status, result and attempts", ("200", body("FunctionCall"))), "call_id"),
                &[("wait", json!({ "type": "number", "minimum": 0 }), "Seconds to wait for the call to finish.")]),
            "delete": with_param(op("Calls", "cancelCall", "Cancel a call: it becomes `terminated` and its record stays", ("200", body("FunctionCall"))), "call_id")
        },
        "/function-calls/{call_id}/logs": {
            "get": with_param(op("Logs", "getCallLogs", "A call's log lines, oldest first: what its guest printed and what the host did (start, attempts, retries, timeouts, traps)", ("200", page("LogLine"))), "call_id")
        }
    })
}

/// The routes of web endpoints and of deployments.
fn web_paths() -> Value {
    let boolean = json!({ "type": "boolean" });
    json!({
        "/web-endpoints": {
            "get": op("WebEndpoints", "listWebEndpoints", "List web endpoints", ("200", page("WebEndpoint")))
        },
        "/web-endpoints/{endpoint_id}": {
            "get": with_param(op("WebEndpoints", "getWebEndpoint", "Get a web endpoint", ("200", body("WebEndpoint"))), "endpoint_id")
        },
        "/web-endpoints/{endpoint_id}/labels": {
            "put": with_body(with_param(op("WebEndpoints", "setWebEndpointLabel", "Set a custom URL label", ("204", none("Label set."))), "endpoint_id"),
                json!({ "type": "object", "required": ["label"], "properties": { "label": dns() } }), "application/json")
        },
        "/deployments": {
            "post": with_query(with_binary_body(op("Apps", "deploy", "Upload and deploy a component (refused from its first bytes if they are not a component's)",
                    ("201", body("Deployment"))), &["application/wasm", "application/octet-stream"]), &[
                ("name", dns(), "App name (default: the component's)."),
                ("environment", dns(), "Environment (default: the server's)."),
                ("ephemeral", boolean, "An ephemeral app (as `wasmhost serve` makes).")])
        }
    })
}

/// The routes of secrets and volumes.
fn storage_paths() -> Value {
    json!({
        "/secrets": {
            "get": op("Secrets", "listSecrets", "List secrets (names and keys, never values)", ("200", page("Secret"))),
            "post": with_json(op("Secrets", "createSecret", "Create or replace a secret", ("201", body("Secret"))), "SecretCreate")
        },
        "/secrets/{name}": {
            "delete": with_param(op("Secrets", "deleteSecret", "Delete a secret", ("200", none("Deleted."))), "name")
        },
        "/volumes": {
            "get": op("Volumes", "listVolumes", "List volumes", ("200", page("Volume"))),
            "post": with_json(op("Volumes", "createVolume", "Create a volume", ("201", body("Volume"))), "VolumeCreate")
        },
        "/volumes/{name}/files": {
            "get": with_param(op("Volumes", "listVolumeRoot", "List a volume's top directory", ("200", page("VolumeEntry"))), "name")
        },
        "/volumes/{name}/files/{path}": {
            "get": with_params(op("Volumes", "getVolumeFile", "A file's bytes, or a directory's listing",
                    ("200", json!({ "description": "OK", "content": {
                        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
                        "application/json": { "schema": { "type": "object", "properties": { "data": { "type": "array", "items": schema("VolumeEntry") } } } } } }))),
                &["name", "path"]),
            "put": optional_body(with_body(with_params(op("Volumes", "putVolumeFile", "Write a file (its directories are created; no body is an empty file)",
                    ("201", json!({ "description": "Written.", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "path": { "type": "string" }, "size": { "type": "integer" } } } } } }))),
                &["name", "path"]), json!({ "type": "string", "format": "binary" }), "application/octet-stream"))
        }
    })
}

/// The routes of tokens.
fn token_paths() -> Value {
    json!({
        "/tokens": {
            "get": op("Tokens", "listTokens", "List tokens (no secrets)", ("200", page("Token"))),
            "post": with_body(op("Tokens", "createToken", "Create a token; its secret is shown once", ("201", body("Token"))),
                json!({ "type": "object", "properties": {
                    "name": or_null(json!({ "type": "string", "minLength": 1, "maxLength": 100 })),
                    "scope": or_null(schema("Scope")) } }), "application/json")
        },
        "/tokens/{token_id}": {
            "delete": with_param(op("Tokens", "revokeToken", "Revoke a token: it stops working at once", ("200", none("Revoked."))), "token_id")
        }
    })
}

/// The document.
pub(super) fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wasmhost control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Apps, functions and web endpoints of a wasmhost server (Modal's REST surface, for WebAssembly components)."
        },
        "servers": [{ "url": "/v1" }],
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "`<token_id>:<token_secret>`" } },
            "schemas": {
                "Error": { "type": "object", "properties": { "detail": {
                    "description": "What went wrong: a message, or a list of validation errors." } } },
                "CallInput": { "type": "object", "additionalProperties": false, "properties": {
                    "args": { "type": "array" }, "kwargs": { "type": "object" } } },
                "Attempt": { "type": "object", "properties": {
                    "number": { "type": "integer" }, "started_at": { "type": "string" },
                    "finished_at": { "type": ["string", "null"] },
                    "outcome": { "type": "string", "description": "running, success, failed, timeout, trap, out_of_memory, unavailable, invalid_input, interrupted (the host died during it: counted against the retries) or stopped (an orderly stop: not counted)" },
                    "error": { "type": ["string", "null"] }, "duration_ms": { "type": ["integer", "null"] },
                    "retry_delay_ms": { "type": ["integer", "null"] } } },
                "FunctionCall": { "type": "object", "properties": {
                    "call_id": { "type": "string" }, "function_id": { "type": "string" }, "function_name": { "type": "string" },
                    "status": { "type": "string", "enum": ["pending", "running", "success", "failure", "terminated"] },
                    "result": {}, "error": { "type": ["object", "null"] },
                    "attempts": { "type": "array", "items": schema("Attempt") },
                    "source": { "type": "string" }, "created_at": { "type": "string" },
                    "started_at": { "type": ["string", "null"] }, "finished_at": { "type": ["string", "null"] } } },
                "LogLine": { "type": "object", "properties": {
                    "seq": { "type": "integer", "description": "Position in the host's log." },
                    "time": { "type": "string", "format": "date-time" },
                    "app_id": { "type": "string" }, "function": { "type": "string" },
                    "call_id": { "type": ["string", "null"], "description": "The function call; null for a web request." },
                    "stream": { "type": "string", "enum": ["stdout", "stderr", "event"] },
                    "text": { "type": "string", "description": "The line; values of the call's secrets read [redacted]." } } },
                "AppVersion": { "type": "object", "properties": {
                    "version": { "type": "integer" }, "digest": { "type": "string" },
                    "component": { "type": "string", "description": "The name the component gives itself." },
                    "created_at": { "type": "string", "format": "date-time" },
                    "deployed_by": { "type": ["object", "null"], "properties": {
                        "token_id": { "type": "string" }, "name": { "type": "string" } } },
                    "rollback_of": { "type": ["integer", "null"], "description": "The version this one serves again, for a rollback." },
                    "current": { "type": "boolean" } } },
                "MapRequest": { "type": "object", "required": ["inputs"], "properties": {
                    "inputs": { "type": "array", "description": "Each a list (positional args), an object with args/kwargs, another object (kwargs) or one value." },
                    "stream": { "type": "boolean" } } },
                "MapResult": { "type": "object", "properties": {
                    "results": { "type": "array" },
                    "errors": { "type": "array", "items": { "type": "object", "properties": {
                        "index": { "type": "integer" }, "error": { "type": "object" } } } } } },
                "Secret": { "type": "object", "properties": {
                    "name": { "type": "string" }, "keys": { "type": "array", "items": { "type": "string" } },
                    "created_at": { "type": "string" } } },
                "SecretCreate": { "type": "object", "required": ["name", "values"], "properties": {
                    "name": dns(),
                    "values": { "type": "object", "additionalProperties": { "type": "string" },
                        "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" } } } },
                "Volume": { "type": "object", "properties": {
                    "name": { "type": "string" }, "created_at": { "type": "string" } } },
                "VolumeCreate": { "type": "object", "required": ["name"], "properties": { "name": dns() } },
                "VolumeEntry": { "type": "object", "properties": {
                    "path": { "type": "string" }, "type": { "type": "string", "enum": ["file", "directory"] },
                    "size": { "type": "integer" } } },
                "App": { "type": "object", "properties": {
                    "app_id": { "type": "string" }, "name": { "type": "string" },
                    "state": { "type": "string", "enum": ["ephemeral", "deployed", "stopped"] },
                    "environment": { "type": "string" }, "workspace": { "type": "string" },
                    "version": { "type": "integer" }, "tags": { "type": "object" },
                    "created_at": { "type": "string", "format": "date-time" } } },
                "AppCreate": { "type": "object", "required": ["name"], "properties": {
                    "name": dns(), "environment": or_null(dns()), "ephemeral": { "type": "boolean" } } },
                "Function": { "type": "object", "properties": {
                    "function_id": { "type": "string" }, "app_id": { "type": "string" }, "name": { "type": "string" },
                    "kind": { "type": "string" }, "web_url": { "type": ["string", "null"], "format": "uri" },
                    "method": { "type": "string" }, "timeout": { "type": ["integer", "null"] },
                    "memory": { "type": ["integer", "null"] }, "gpu": { "type": ["string", "null"] },
                    "allowed_outbound_hosts": { "type": "array", "items": { "type": "string" } },
                    "retries": { "type": "integer" } } },
                "WebEndpoint": { "type": "object", "properties": {
                    "endpoint_id": { "type": "string" }, "function_id": { "type": "string" },
                    "kind": { "type": "string", "enum": ["fastapi_endpoint", "asgi_app", "wsgi_app", "web_server", "wasi_http", "cls_method"] },
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
