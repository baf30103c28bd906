//! Batched functions (`#[wasmhost::function(batched(max_batch_size = 8, wait_ms = 50))]`,
//! Modal's `@batched`): the host collects calls and sends them as one input,
//! `{"batch": [{"args": [...], "kwargs": {...}}, ...]}`. Each item is read like a lone
//! call's input (a bad one fails only its caller); the function gets a list per
//! parameter and returns one result per item that was read, in order; the answer is
//! `{"batch": [outcome, ...]}` with `{"ok": value}`, `{"failed": message}` or
//! `{"invalid_input": [errors]}` for every item.
//!
//! Batched endpoints (`#[wasmhost::endpoint(batched(...))]`) get the same from the host
//! through `endpoint-handler.handle`: one request whose body is `{"batch": [request,
//! ...]}`; each request is read as a lone one (a bad one gets its own 422), the function
//! gets a list per parameter and returns one result per request read, and the answer is
//! a 200 whose body is `{"batch": [{"status", "headers", "body"}, ...]}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::invoke::CallError;
use crate::{IntoResponse, Request, Response};

/// The items of a batch input, each as the JSON text of one call's input.
pub fn batch_inputs(input: &str) -> Result<Vec<String>, CallError> {
    let mut envelope = match serde_json::from_str::<Value>(input) {
        Ok(Value::Object(map)) => map,
        _ => return Err(not_a_batch()),
    };
    match envelope.remove("batch") {
        Some(Value::Array(items)) => Ok(items.iter().map(Value::to_string).collect()),
        _ => Err(not_a_batch()),
    }
}

fn not_a_batch() -> CallError {
    CallError::Failed(
        "a batched function is called by the host with {\"batch\": [...]}; call it through \
         the host (`.remote`, `.spawn`, `.map`)"
            .into(),
    )
}

/// The outcome of every item of a batch, filled as items are read and results come.
#[derive(Debug)]
pub struct BatchOutcomes {
    outcomes: Vec<Option<Value>>,
    /// The items that were read, in order: the function's results belong to them.
    accepted: Vec<usize>,
}

impl BatchOutcomes {
    /// Outcomes of `size` items, none known yet.
    pub fn new(size: usize) -> Self {
        Self {
            outcomes: vec![None; size],
            accepted: Vec::with_capacity(size),
        }
    }

    /// Item `index` could not be read: its caller gets `error`.
    pub fn reject(&mut self, index: usize, error: CallError) {
        self.outcomes[index] = Some(outcome_of_error(error));
    }

    /// Item `index` was read: it gets the next result.
    pub fn accept(&mut self, index: usize) {
        self.accepted.push(index);
    }

    /// How many items were read (the function is called only when some were).
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// The answer, given one plain result per accepted item.
    pub fn finish_values<T: Serialize>(self, results: Vec<T>) -> Result<String, CallError> {
        let results = results.into_iter().map(Ok::<T, String>);
        self.finish(results.collect())
    }

    /// The answer, given the function's whole result: `Err` fails every caller.
    pub fn finish_batch<T: Serialize, E: fmt::Display>(
        self,
        results: Result<Vec<T>, E>,
    ) -> Result<String, CallError> {
        match results {
            Ok(values) => self.finish_values(values),
            Err(e) => Err(CallError::Failed(e.to_string())),
        }
    }

    /// The answer, given one result per accepted item: an `Err` fails only its caller.
    pub fn finish<T: Serialize, E: fmt::Display>(
        mut self,
        results: Vec<Result<T, E>>,
    ) -> Result<String, CallError> {
        if results.len() != self.accepted.len() {
            return Err(CallError::Failed(format!(
                "the batched function returned {} results for {} inputs; it must return \
                 one result per input, in order",
                results.len(),
                self.accepted.len()
            )));
        }
        for (index, result) in self.accepted.iter().zip(results) {
            self.outcomes[*index] = Some(match result {
                Ok(value) => match serde_json::to_value(value) {
                    Ok(value) => json!({ "ok": value }),
                    Err(e) => json!({
                        "failed": format!("the result could not be serialised to JSON: {e}")
                    }),
                },
                Err(e) => json!({ "failed": e.to_string() }),
            });
        }
        let outcomes: Vec<Value> = self
            .outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| json!({ "failed": "no result for this input" })))
            .collect();
        Ok(json!({ "batch": outcomes }).to_string())
    }
}

/// The requests of a batched endpoint's call: the host sends one request whose body is
/// `{"batch": [request, ...]}`, each `{"method", "path", "query", "headers": [[name,
/// value], ...], "body": [byte, ...]}`. `Err` is the response for the whole call.
pub fn batch_requests(request: &Request) -> Result<Vec<Request>, Response> {
    #[derive(Deserialize)]
    struct Envelope {
        batch: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }
    let envelope: Envelope = serde_json::from_slice(&request.body).map_err(|e| {
        Response::error(
            500,
            format!("a batched endpoint is called by the host with {{\"batch\": [...]}}: {e}"),
        )
    })?;
    Ok(envelope
        .batch
        .into_iter()
        .map(|item| Request {
            method: item.method,
            path: item.path,
            query: item.query,
            headers: item.headers,
            body: item.body,
            params: Vec::new(),
        })
        .collect())
}

/// The response of every request of an endpoint's batch, filled as requests are read
/// and results come.
#[derive(Debug)]
pub struct BatchResponses {
    responses: Vec<Option<Response>>,
    /// The requests that were read, in order: the function's results belong to them.
    accepted: Vec<usize>,
}

impl BatchResponses {
    /// Responses of `size` requests, none known yet.
    pub fn new(size: usize) -> Self {
        Self {
            responses: vec![None; size],
            accepted: Vec::with_capacity(size),
        }
    }

    /// Request `index` could not be read: it gets `response` (a 422).
    pub fn reject(&mut self, index: usize, response: Response) {
        self.responses[index] = Some(response);
    }

    /// Request `index` was read: it gets the next result.
    pub fn accept(&mut self, index: usize) {
        self.accepted.push(index);
    }

    /// How many requests were read (the function is called only when some were).
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// The host's answer, given one result per accepted request; a wrong number of
    /// results answers every request with a 500 that says so.
    pub fn finish<R: IntoResponse>(mut self, results: Vec<R>) -> Response {
        if results.len() != self.accepted.len() {
            let wrong = Response::error(
                500,
                format!(
                    "the batched endpoint returned {} results for {} requests; it must \
                     return one result per request, in order",
                    results.len(),
                    self.accepted.len()
                ),
            );
            self.responses = vec![Some(wrong); self.responses.len()];
        } else {
            for (index, result) in self.accepted.iter().zip(results) {
                self.responses[*index] = Some(result.into_response());
            }
        }
        let items: Vec<Value> = self
            .responses
            .into_iter()
            .map(|r| {
                let r = r.unwrap_or_else(|| Response::error(500, "no result for this request"));
                json!({ "status": r.status, "headers": r.headers, "body": r.body })
            })
            .collect();
        Response::new(200).json(&json!({ "batch": items }))
    }
}

fn outcome_of_error(error: CallError) -> Value {
    match error {
        CallError::InvalidInput(detail) => {
            let detail = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
            json!({ "invalid_input": detail })
        }
        CallError::Failed(message) => json!({ "failed": message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_each_outcome_to_its_item() {
        let items = batch_inputs(r#"{"batch": [{"args": [1]}, {"args": ["x"]}, {"args": [3]}]}"#)
            .expect("a batch");
        assert_eq!(items.len(), 3);
        let mut outcomes = BatchOutcomes::new(3);
        outcomes.accept(0);
        outcomes.reject(
            1,
            CallError::InvalidInput(r#"[{"type":"int_parsing"}]"#.into()),
        );
        outcomes.accept(2);
        let answer = outcomes
            .finish(vec![Ok::<i64, String>(1), Err("three is bad".into())])
            .expect("an answer");
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(
            answer,
            json!({"batch": [
                {"ok": 1},
                {"invalid_input": [{"type": "int_parsing"}]},
                {"failed": "three is bad"},
            ]})
        );
    }

    #[test]
    fn a_wrong_number_of_results_fails_the_batch() {
        let mut outcomes = BatchOutcomes::new(2);
        outcomes.accept(0);
        outcomes.accept(1);
        let err = outcomes
            .finish_values(vec![1])
            .expect_err("one result for two");
        assert!(err.to_string().contains("1 results for 2 inputs"), "{err}");
        assert!(batch_inputs(r#"{"args": [1]}"#).is_err());
    }

    #[test]
    fn an_endpoint_batch_answers_each_request() {
        let envelope = json!({"batch": [
            {"method": "GET", "path": "/", "query": "x=1", "headers": [["accept", "*/*"]], "body": []},
            {"method": "GET", "path": "/", "query": "x=no", "headers": [], "body": [123, 125]},
        ]});
        let mut request = Request {
            body: envelope.to_string().into_bytes(),
            ..Request::default()
        };
        let requests = batch_requests(&request).expect("a batch");
        assert_eq!(requests[0].query, "x=1");
        assert_eq!(requests[0].headers[0].0, "accept");
        assert_eq!(requests[1].body, b"{}");
        let mut responses = BatchResponses::new(2);
        responses.accept(0);
        responses.reject(1, Response::error(422, "bad x"));
        let answer = responses.finish(vec![(201, "one".to_owned())]);
        assert_eq!(answer.status, 200);
        let answer: Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(answer["batch"][0]["status"], 201);
        assert_eq!(answer["batch"][0]["body"], json!(b"one".to_vec()));
        assert_eq!(answer["batch"][1]["status"], 422);

        let mut responses = BatchResponses::new(2);
        responses.accept(0);
        responses.accept(1);
        let answer = responses.finish(vec!["only one"]);
        let answer: Value = serde_json::from_slice(&answer.body).expect("JSON");
        for item in answer["batch"].as_array().expect("items") {
            assert_eq!(item["status"], 500);
            let body: Vec<u8> = serde_json::from_value(item["body"].clone()).expect("bytes");
            let body = String::from_utf8(body).expect("text");
            assert!(body.contains("1 results for 2 requests"), "{body}");
        }
        request.body = b"{}".to_vec();
        assert_eq!(batch_requests(&request).expect_err("no batch").status, 500);
    }
}
