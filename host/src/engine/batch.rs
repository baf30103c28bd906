//! Dynamic batching (Modal's `@batched(max_batch_size, wait_ms)`): calls of a batched
//! function, or requests to a batched typed endpoint, are collected until the batch is
//! full or its first call has waited `wait_ms`, then run as ONE guest call.
//!
//! - A function's batch input is `{"batch": [input, ...]}` (each caller's
//!   `{"args", "kwargs"}`); the guest answers `{"batch": [outcome, ...]}`, one outcome per
//!   input in order: `{"ok": value}`, `{"failed": message}` or `{"invalid_input": [errors]}`.
//! - An endpoint's batch is one `endpoint-handler.handle` call whose body is
//!   `{"batch": [request, ...]}`, each request `{"method", "path", "query", "headers":
//!   [[name, value], ...], "body": [byte, ...]}`; the guest answers status 200 with
//!   `{"batch": [response, ...]}`, each `{"status", "headers", "body"}` in the same form.
//!   The guest reads each request as it reads a lone one, so a bad one gets its own 422.
//!
//! Each caller gets its own outcome; a failed guest call, or an answer of the wrong
//! length, fails every caller of the batch with the reason.
//!
//! A collector task per function only forms batches: the first caller of each batch
//! runs the guest call in its own attempt (its limits, its call context) and hands the
//! others their outcomes, so nothing here needs the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::{BatchError, NoResponse};
use super::{
    Batching, CallContext, CallError, EndpointSpec, Engine, FunctionError, FunctionSpec,
    LoadedComponent, Request, Response,
};

/// One caller waiting for its batch: its input, and where its role goes.
struct Pending<I, O> {
    input: I,
    answer: oneshot::Sender<Role<I, O>>,
}

/// What a caller is told once its batch is formed.
enum Role<I, O> {
    /// Run the batch: this caller's own input first, then these callers'.
    Lead(I, Vec<Pending<I, O>>),
    /// The leader ran the batch; this is this caller's outcome.
    Done(O),
}

/// What joining a batch gives a caller.
enum Joined<I, O> {
    /// Run the batch of these inputs (this caller's first) and answer these callers.
    Lead(Vec<I>, Vec<oneshot::Sender<Role<I, O>>>),
    /// The outcome the leader handed over.
    Done(O),
    /// The leader was stopped before it answered.
    Lost,
}

/// The batch collectors of one component's batched functions or endpoints (inputs `I`,
/// outcomes `O`), started on first use.
pub(crate) struct Batches<I, O> {
    collectors: Mutex<HashMap<String, mpsc::UnboundedSender<Pending<I, O>>>>,
}

impl<I, O> Default for Batches<I, O> {
    fn default() -> Self {
        Self {
            collectors: Mutex::default(),
        }
    }
}

/// A function's outcome for one caller.
type Outcome = Result<String, FunctionError>;
/// A batched endpoint's response for one caller.
type Answer = Result<Response, CallError>;

/// The collectors of batched functions.
pub(crate) type FunctionBatches = Batches<Value, Outcome>;
/// The collectors of batched endpoints.
pub(crate) type EndpointBatches = Batches<Request, Answer>;

impl<I: Send + 'static, O: Send + 'static> Batches<I, O> {
    /// Joins the next batch of `name` (starting its collector if it has none) and waits
    /// until this caller either leads the batch or gets its outcome.
    async fn join(&self, name: &str, batching: Batching, input: I) -> Joined<I, O> {
        let (answer, role) = oneshot::channel();
        {
            let mut collectors = self.collectors.lock().unwrap_or_else(|p| p.into_inner());
            let sender = collectors.entry(name.to_owned()).or_insert_with(|| {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(collect(receiver, batching));
                sender
            });
            // The collector ends only when this sender is dropped, with the component.
            let _ = sender.send(Pending { input, answer });
        }
        match role.await {
            Ok(Role::Done(outcome)) => Joined::Done(outcome),
            Ok(Role::Lead(own, followers)) => {
                let mut inputs = Vec::with_capacity(followers.len() + 1);
                inputs.push(own);
                let mut answers = Vec::with_capacity(followers.len());
                for follower in followers {
                    inputs.push(follower.input);
                    answers.push(follower.answer);
                }
                Joined::Lead(inputs, answers)
            }
            Err(_) => Joined::Lost,
        }
    }
}

/// Forms batches of at most `max_batch_size` calls, each closed when full or when its
/// first call has waited `wait`; hands each batch to its first caller still waiting.
async fn collect<I, O>(mut calls: mpsc::UnboundedReceiver<Pending<I, O>>, batching: Batching) {
    while let Some(first) = calls.recv().await {
        let deadline = Instant::now() + batching.wait;
        let mut batch = vec![first];
        while batch.len() < batching.max_batch_size {
            match tokio::time::timeout_at(deadline, calls.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                Ok(None) | Err(_) => break,
            }
        }
        // Callers that went away (their call was terminated) take no part.
        let mut waiting: VecDeque<Pending<I, O>> = batch
            .into_iter()
            .filter(|p| !p.answer.is_closed())
            .collect();
        while let Some(leader) = waiting.pop_front() {
            let role = Role::Lead(leader.input, waiting.drain(..).collect());
            match leader.answer.send(role) {
                Ok(()) => break,
                // The leader left just now: the next caller leads.
                Err(Role::Lead(_, rest)) => waiting = rest.into(),
                Err(Role::Done(_)) => break,
            }
        }
    }
}

/// Hands each follower its outcome (`outcomes` in batch order, the leader's first) and
/// returns the leader's.
fn hand_out<I, O>(
    answers: Vec<oneshot::Sender<Role<I, O>>>,
    outcomes: Vec<O>,
    lost: impl FnOnce() -> O,
) -> O {
    let mut outcomes = outcomes.into_iter();
    let own = outcomes.next();
    for (answer, outcome) in answers.into_iter().zip(outcomes) {
        // A follower that went away needs no answer.
        let _ = answer.send(Role::Done(outcome));
    }
    own.unwrap_or_else(lost)
}

impl Engine {
    /// Runs one call of a batched function: it joins the next batch, and either runs the
    /// batch (first caller) or waits for the outcome the first caller hands it.
    pub(super) async fn call_batched(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &FunctionSpec,
        batching: Batching,
        input: &str,
        ctx: &CallContext,
    ) -> Result<String, FunctionError> {
        let own: Value = serde_json::from_str(input).unwrap_or(Value::Null);
        let (inputs, answers) = match component.batches.join(&spec.name, batching, own).await {
            Joined::Done(outcome) => return outcome,
            Joined::Lead(inputs, answers) => (inputs, answers),
            Joined::Lost => return Err(FunctionError::Failed(BatchError::Lost.to_string())),
        };
        self.observe_batch(component, &spec.name, inputs.len());
        let size = inputs.len();
        let batch = json!({ "batch": inputs }).to_string();
        let ran = self.call_function_once(component, spec, &batch, ctx).await;
        hand_out(answers, split(ran, size), || {
            Err(FunctionError::Failed(BatchError::Missing.to_string()))
        })
    }

    /// Serves one request of a batched typed endpoint: it joins the next batch, and
    /// either runs the batch as one `handle` call (first request) or waits for the
    /// response the first request hands it.
    pub(super) async fn handle_batched(
        self: &Arc<Self>,
        component: &Arc<LoadedComponent>,
        spec: &EndpointSpec,
        batching: Batching,
        request: Request,
    ) -> Result<Response, CallError> {
        let joined = component
            .endpoint_batches
            .join(&spec.name, batching, request)
            .await;
        let (requests, answers) = match joined {
            Joined::Done(answer) => return answer,
            Joined::Lead(requests, answers) => (requests, answers),
            Joined::Lost => return Err(NoResponse::from(BatchError::Lost).into()),
        };
        self.observe_batch(component, &spec.name, requests.len());
        let size = requests.len();
        let items: Vec<Value> = requests.into_iter().map(request_json).collect();
        let batch = Request {
            method: spec.method.clone(),
            path: "/".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({ "batch": items }).to_string().into_bytes(),
        };
        let ran = self.handle_once(component, spec, batch).await;
        hand_out(answers, split_responses(ran, size), || {
            Err(NoResponse::from(BatchError::Missing).into())
        })
    }

    /// Records the size of a batch about to run.
    fn observe_batch(&self, component: &LoadedComponent, name: &str, size: usize) {
        self.metrics
            .batch_size
            .get_or_create(&super::FunctionLabels {
                app: component.manifest.app.clone(),
                function: name.to_owned(),
            })
            .observe(size as f64);
    }
}

/// A request as one item of an endpoint's batch.
fn request_json(request: Request) -> Value {
    json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
    })
}

/// A response from one item of an endpoint's batch answer.
fn response_of(item: Value) -> Result<Response, BatchError> {
    #[derive(serde::Deserialize)]
    struct Item {
        status: u16,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: Vec<u8>,
    }
    let item: Item = serde_json::from_value(item).map_err(|e| BatchError::Item(Arc::new(e)))?;
    Ok(Response {
        status: item.status,
        headers: item.headers,
        body: item.body,
    })
}

/// The items of a `{"batch": [...]}` answer.
fn batch_items(text: &[u8]) -> Result<Vec<Value>, BatchError> {
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(mut map)) => match map.remove("batch") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(BatchError::NotABatch),
        },
        _ => Err(BatchError::NotABatch),
    }
}

/// Each request's response of a batch of `size` requests, in batch order.
fn split_responses(ran: Answer, size: usize) -> Vec<Answer> {
    let all = |why: BatchError| vec![Err(CallError::NoResponse(why.into())); size];
    let response = match ran {
        Ok(response) => response,
        Err(e) => return vec![Err(e); size],
    };
    if response.status != 200 {
        let body = String::from_utf8_lossy(&response.body);
        return all(BatchError::Status {
            status: response.status,
            body: body.into_owned(),
        });
    }
    let items = match batch_items(&response.body) {
        Ok(items) if items.len() == size => items,
        Ok(items) => {
            return all(BatchError::Count {
                got: items.len(),
                expected: size,
            });
        }
        Err(why) => return all(why),
    };
    items
        .into_iter()
        .map(|item| response_of(item).map_err(|why| CallError::NoResponse(why.into())))
        .collect()
}

/// Each caller's outcome of a batch of `size` calls, in batch order.
fn split(ran: Outcome, size: usize) -> Vec<Outcome> {
    let text = match ran {
        Ok(text) => text,
        Err(e) => return vec![Err(e); size],
    };
    let items = match batch_items(text.as_bytes()) {
        Ok(items) if items.len() == size => items,
        Ok(items) => {
            return vec![
                Err(FunctionError::Failed(format!(
                    "the batched function returned {} results for {size} inputs; it must \
                     return one result per input, in order",
                    items.len()
                )));
                size
            ];
        }
        Err(why) => {
            return vec![
                Err(FunctionError::Failed(format!(
                    "the batched function's guest broke the batch protocol: {why}"
                )));
                size
            ];
        }
    };
    items.into_iter().map(outcome).collect()
}

/// One caller's outcome from its item of the guest's answer.
fn outcome(item: Value) -> Result<String, FunctionError> {
    let Value::Object(mut map) = item else {
        return Err(FunctionError::Failed(format!(
            "the batched function's guest answered {item} for an input, not {{\"ok\": ...}}, \
             {{\"failed\": ...}} or {{\"invalid_input\": ...}}"
        )));
    };
    if let Some(value) = map.remove("ok") {
        return Ok(value.to_string());
    }
    if let Some(message) = map.remove("failed") {
        return Err(FunctionError::Failed(match message {
            Value::String(s) => s,
            other => other.to_string(),
        }));
    }
    if let Some(detail) = map.remove("invalid_input") {
        return Err(FunctionError::InvalidInput(detail));
    }
    Err(FunctionError::Failed(
        "the batched function's guest answered an input with neither `ok`, `failed` nor \
         `invalid_input`"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> Answer {
        Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        })
    }

    #[test]
    fn each_request_gets_its_own_response_in_order() {
        let ran = answer(json!({"batch": [
            {"status": 200, "headers": [["content-type", "application/json"]], "body": b"6".to_vec()},
            {"status": 422, "headers": [], "body": b"{}".to_vec()},
        ]}));
        let responses: Vec<_> = split_responses(ran, 2)
            .into_iter()
            .map(|r| r.expect("a response"))
            .collect();
        assert_eq!(
            (responses[0].status, responses[0].body.as_slice()),
            (200, &b"6"[..])
        );
        assert_eq!(responses[0].headers[0].0, "content-type");
        assert_eq!(responses[1].status, 422);
    }

    #[test]
    fn a_broken_answer_fails_every_request_with_the_reason() {
        let wrong_length = answer(json!({"batch": [{"status": 200}]}));
        let cases = [
            (wrong_length, "returned 1 responses for 3 requests"),
            (answer(json!({"results": []})), "is not {\"batch\": [...]}"),
            (answer(json!({"batch": [1, 2, 3]})), "an answer item"),
            (
                Ok(Response {
                    status: 500,
                    headers: Vec::new(),
                    body: b"oops".to_vec(),
                }),
                "status 500 instead of its batch: oops",
            ),
            (Err(CallError::Trap(super::super::Trap::Ended)), "ended"),
        ];
        for (ran, why) in cases {
            let outcomes = split_responses(ran, 3);
            assert_eq!(outcomes.len(), 3);
            for outcome in outcomes {
                let err = outcome.expect_err("failed").to_string();
                assert!(err.contains(why), "{err} lacks {why}");
            }
        }
    }

    #[test]
    fn a_request_travels_whole() {
        let item = request_json(Request {
            method: "GET".into(),
            path: "/".into(),
            query: "x=1".into(),
            headers: vec![("accept".into(), "*/*".into())],
            body: vec![0, 255],
        });
        assert_eq!(
            item,
            json!({"method": "GET", "path": "/", "query": "x=1",
                   "headers": [["accept", "*/*"]], "body": [0, 255]})
        );
    }
}
