//! Dynamic batching (Modal's `@batched(max_batch_size, wait_ms)`): calls of a batched
//! function are collected until the batch is full or its first call has waited
//! `wait_ms`, then run as ONE guest call whose input is `{"batch": [input, ...]}` (each
//! caller's `{"args", "kwargs"}`); the guest answers `{"batch": [outcome, ...]}`, one
//! outcome per input in order: `{"ok": value}`, `{"failed": message}` or
//! `{"invalid_input": [errors]}`. Each caller gets its own outcome; a failed guest call,
//! or an answer of the wrong length, fails every caller of the batch with the reason.
//!
//! A collector task per function only forms batches: the first caller of each batch
//! runs the guest call in its own attempt (its limits, its call context) and hands the
//! others their outcomes, so nothing here needs the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Batching, CallContext, Engine, FunctionError, FunctionSpec, LoadedComponent};

/// One caller waiting for its batch.
struct Pending {
    input: Value,
    answer: oneshot::Sender<Role>,
}

/// What a caller is told once its batch is formed.
enum Role {
    /// Run the batch: this caller's input first, then these callers'.
    Lead(Vec<Pending>),
    /// The leader ran the batch; this is this caller's outcome.
    Done(Result<String, FunctionError>),
}

/// The batch collectors of one component's batched functions, started on first use.
#[derive(Default)]
pub(crate) struct Batches {
    collectors: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl Batches {
    /// Queues `pending` for `function`, starting its collector if it has none.
    fn submit(&self, function: &str, batching: Batching, pending: Pending) {
        let mut collectors = self.collectors.lock().unwrap_or_else(|p| p.into_inner());
        let sender = collectors.entry(function.to_owned()).or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(collect(receiver, batching));
            sender
        });
        // The collector ends only when this sender is dropped, with the component.
        let _ = sender.send(pending);
    }
}

/// Forms batches of at most `max_batch_size` calls, each closed when full or when its
/// first call has waited `wait`; hands each batch to its first caller still waiting.
async fn collect(mut calls: mpsc::UnboundedReceiver<Pending>, batching: Batching) {
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
        let mut waiting: VecDeque<Pending> = batch
            .into_iter()
            .filter(|p| !p.answer.is_closed())
            .collect();
        while let Some(leader) = waiting.pop_front() {
            match leader.answer.send(Role::Lead(waiting.drain(..).collect())) {
                Ok(()) => break,
                // The leader left just now: the next caller leads.
                Err(Role::Lead(rest)) => waiting = rest.into(),
                Err(Role::Done(_)) => break,
            }
        }
    }
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
        let (answer, role) = oneshot::channel();
        let pending = Pending {
            input: own.clone(),
            answer,
        };
        component.batches.submit(&spec.name, batching, pending);
        let followers = match role.await {
            Ok(Role::Done(outcome)) => return outcome,
            Ok(Role::Lead(followers)) => followers,
            Err(_) => {
                return Err(FunctionError::Failed(
                    "the call that ran this input's batch was stopped before it finished".into(),
                ));
            }
        };
        let size = followers.len() + 1;
        self.metrics
            .batch_size
            .get_or_create(&super::FunctionLabels {
                app: component.manifest.app.clone(),
                function: spec.name.clone(),
            })
            .observe(size as f64);
        let mut inputs = Vec::with_capacity(size);
        inputs.push(own);
        let mut answers = Vec::with_capacity(size - 1);
        for follower in followers {
            inputs.push(follower.input);
            answers.push(follower.answer);
        }
        let batch = json!({ "batch": inputs }).to_string();
        let ran = self.call_function_once(component, spec, &batch, ctx).await;
        let mut outcomes = split(ran, size).into_iter();
        for answer in answers {
            if let Some(outcome) = outcomes.next() {
                // A follower that went away needs no answer.
                let _ = answer.send(Role::Done(outcome));
            }
        }
        outcomes.next().unwrap_or_else(|| {
            Err(FunctionError::Failed(
                "the batch lost this call's outcome".into(),
            ))
        })
    }
}

/// Each caller's outcome of a batch of `size` calls (the leader's last, so it can be
/// taken after the others were handed theirs).
fn split(ran: Result<String, FunctionError>, size: usize) -> Vec<Result<String, FunctionError>> {
    let text = match ran {
        Ok(text) => text,
        Err(e) => return vec![Err(e); size],
    };
    let items = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut map)) => match map.remove("batch") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err("its answer is not {\"batch\": [...]}".to_owned()),
        },
        _ => Err("its answer is not {\"batch\": [...]}".to_owned()),
    };
    let items = match items {
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
    let mut outcomes: Vec<_> = items.into_iter().map(outcome).collect();
    // The leader's own outcome (the first input) goes last.
    outcomes.rotate_left(1);
    outcomes
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
