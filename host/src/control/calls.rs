//! The invocation API: invoke, spawn, map (ordered or streamed as SSE), function calls.

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ControlPlane;
use super::api::{ApiError, ApiResult, json_body, ok};
use crate::functions::FunctionsError;
use crate::store::CallRecord;

impl From<FunctionsError> for ApiError {
    fn from(e: FunctionsError) -> Self {
        match e {
            FunctionsError::NotFound(m) => ApiError::not_found(m),
            FunctionsError::InvalidInput(detail) => {
                ApiError::with_detail(StatusCode::UNPROCESSABLE_ENTITY, detail)
            }
            FunctionsError::Store(e) => e.into(),
        }
    }
}

/// `InvocationResult` / `FunctionCall`, with every attempt.
pub(super) fn call_view(c: &CallRecord) -> Value {
    json!({
        "call_id": c.call_id,
        "function_id": c.function_id,
        "function_name": c.function_name,
        "status": c.status,
        "result": c.result,
        "error": c.error,
        "attempts": c.attempts,
        "source": c.source,
        "created_at": c.created_at,
        "started_at": c.started_at,
        "finished_at": c.finished_at,
    })
}

#[derive(Deserialize)]
struct MapRequest {
    inputs: Vec<Value>,
    #[serde(default)]
    stream: bool,
}

/// One map input as a call input: a list is positional args, an object with `args` or
/// `kwargs` is taken as is, any other object is kwargs, anything else one argument.
fn map_input(v: Value) -> Value {
    match v {
        Value::Array(args) => json!({ "args": args }),
        Value::Object(o) if o.contains_key("args") || o.contains_key("kwargs") => Value::Object(o),
        Value::Object(o) => json!({ "kwargs": o }),
        other => json!({ "args": [other] }),
    }
}

/// Reads an invocation body; an empty body means no arguments.
async fn invocation_input(body: Incoming) -> Result<Value, ApiError> {
    let bytes = http_body_util::Limited::new(body, 16 << 20)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::unprocessable(format!("invalid JSON body: {e}")))
}

impl ControlPlane {
    pub(super) async fn invoke(&self, function_id: &str, body: Incoming) -> ApiResult {
        let input = invocation_input(body).await?;
        let record = self.functions.invoke(function_id, input).await?;
        // Arguments the guest refused are the caller's fault: 422, like a schema mismatch.
        let status = match &record.error {
            Some(e) if e["type"] == "invalid_input" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::OK,
        };
        let mut view = call_view(&record);
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            view["detail"] = record
                .error
                .as_ref()
                .map(|e| e["detail"].clone())
                .unwrap_or_default();
        }
        ok(status, &view)
    }

    pub(super) async fn spawn(&self, function_id: &str, body: Incoming) -> ApiResult {
        let input = invocation_input(body).await?;
        let record = self.functions.spawn(function_id, input, "spawn").await?;
        ok(StatusCode::ACCEPTED, &call_view(&record))
    }

    pub(super) fn invocations(&self, function_id: &str, limit: Option<usize>) -> ApiResult {
        if self.store.get_function(function_id)?.is_none() {
            return Err(ApiError::not_found(format!(
                "no function with id {function_id}"
            )));
        }
        let calls: Vec<Value> = self
            .functions
            .list(function_id, limit.unwrap_or(50).min(1000))?
            .iter()
            .map(call_view)
            .collect();
        ok(StatusCode::OK, &json!({ "data": calls }))
    }

    pub(super) async fn function_call(&self, call_id: &str, wait: Option<f64>) -> ApiResult {
        let record = match wait {
            Some(secs) if secs > 0.0 => {
                let wait = std::time::Duration::from_secs_f64(secs.min(300.0));
                self.functions.wait(call_id, wait).await?
            }
            _ => self.functions.get(call_id)?,
        };
        let record = record
            .ok_or_else(|| ApiError::not_found(format!("no function call with id {call_id}")))?;
        ok(StatusCode::OK, &call_view(&record))
    }

    pub(super) async fn cancel_call(&self, call_id: &str) -> ApiResult {
        let record =
            self.functions.cancel(call_id).await?.ok_or_else(|| {
                ApiError::not_found(format!("no function call with id {call_id}"))
            })?;
        ok(StatusCode::OK, &call_view(&record))
    }

    pub(super) async fn map(
        &self,
        function_id: &str,
        body: Incoming,
        stream_query: bool,
    ) -> ApiResult {
        let request: MapRequest = json_body(body).await?;
        let stream = request.stream || stream_query;
        let count = request.inputs.len();
        let inputs: Vec<Value> = request.inputs.into_iter().map(map_input).collect();
        let mut rx = self.functions.map(function_id, inputs, !stream)?;
        if !stream {
            let mut results = vec![Value::Null; count];
            let mut errors = Vec::new();
            while let Some(item) = rx.recv().await {
                match item.outcome {
                    Ok(v) => results[item.index] = v,
                    Err(e) => errors.push(json!({ "index": item.index, "error": e })),
                }
            }
            return ok(
                StatusCode::OK,
                &json!({ "results": results, "errors": errors }),
            );
        }
        // Server-sent events, one per input as it completes, then `done`.
        let events = futures_util::stream::unfold(
            (rx, 0usize, false),
            move |(mut rx, failures, done)| async move {
                if done {
                    return None;
                }
                match rx.recv().await {
                    Some(item) => {
                        let (event, failures) = match item.outcome {
                            Ok(v) => (
                                json!({"index": item.index, "status": "success", "result": v}),
                                failures,
                            ),
                            Err(e) => (
                                json!({"index": item.index, "status": "failure", "error": e}),
                                failures + 1,
                            ),
                        };
                        Some((super::logs::event("result", &event), (rx, failures, false)))
                    }
                    None => {
                        let done = json!({"count": count, "failures": failures});
                        Some((super::logs::event("done", &done), (rx, failures, true)))
                    }
                }
            },
        );
        Ok(super::logs::event_stream(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_inputs_become_call_inputs() {
        assert_eq!(map_input(json!([1, 2])), json!({"args": [1, 2]}));
        assert_eq!(map_input(json!(3)), json!({"args": [3]}));
        assert_eq!(map_input(json!({"x": 1})), json!({"kwargs": {"x": 1}}));
        assert_eq!(map_input(json!({"args": [1]})), json!({"args": [1]}));
    }
}
