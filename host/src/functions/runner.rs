//! The attempt loop (retries with backoff, per-attempt timeouts, cancellation) and the
//! scheduler (its loop fires on one host of a cluster, the leader).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::logs::CallLog;
use super::schedule::Schedule;
use super::{Functions, Resolved};
use crate::engine::{CallError, FunctionError};
use crate::store::{Attempt, CallStatus, ScheduleState, StoreError, now};

fn terminated() -> Value {
    json!({"type": "terminated", "message": "the call was cancelled"})
}

/// The kind and message of a failed attempt, and the error object a caller sees.
fn describe(e: &FunctionError) -> (&'static str, Value) {
    let (kind, message, detail) = match e {
        FunctionError::InvalidInput(d) => (
            "invalid_input",
            "input does not fit the parameters".to_string(),
            Some(d.clone()),
        ),
        FunctionError::Failed(m) => ("failed", m.clone(), None),
        FunctionError::Call(CallError::Timeout(t)) => {
            ("timeout", format!("timed out after {t:?}"), None)
        }
        FunctionError::Call(CallError::OutOfMemory { mib }) => (
            "out_of_memory",
            format!("exceeded its memory limit of {mib} MiB"),
            None,
        ),
        FunctionError::Call(CallError::Trap(m)) => ("trap", format!("trapped: {m}"), None),
        FunctionError::Call(CallError::Instantiate(m)) => (
            "unavailable",
            format!("could not start an instance: {m}"),
            None,
        ),
        FunctionError::Call(e @ (CallError::NoResponse(_) | CallError::MissingExport(_))) => {
            ("failed", e.to_string(), None)
        }
    };
    let mut v = json!({"type": kind, "message": message});
    if let Some(d) = detail {
        v["detail"] = d;
    }
    (kind, v)
}

/// How an attempt cut short by the host dying (kill -9, a crash) is recorded; it counts
/// against the retries.
pub(super) const INTERRUPTED: &str = "interrupted";

/// How an attempt cut short by an orderly stop (SIGTERM, Ctrl-C) is recorded; it does not
/// count against the retries.
pub(super) const STOPPED: &str = "stopped";

/// Marks the attempts a process that died left `running` as interrupted; they count
/// against the retries like any failed attempt, so a call that kills its host cannot
/// crash-loop. Returns how many there were.
fn close_interrupted(attempts: &mut [Attempt]) -> usize {
    let mut n = 0;
    for a in attempts.iter_mut().filter(|a| a.outcome == "running") {
        a.outcome = INTERRUPTED.into();
        a.error = Some("the host died during this attempt".into());
        n += 1;
    }
    n
}

/// Which attempts a call may still run, from those already recorded.
struct Span {
    /// The number of the next attempt.
    first: u32,
    /// The number of the last attempt allowed.
    last: u32,
    /// Attempts cut short by an orderly stop, which do not count against the retries.
    stopped: u32,
}

/// Runs the attempts of one call after those already recorded (`prior`, from a process
/// that stopped); `progress` sees the attempt list whenever an attempt starts or fails
/// and must record it before the attempt runs. Returns the outcome and every attempt.
pub(super) async fn run_attempts<Recorded: Future<Output = ()>>(
    f: &Arc<Functions>,
    target: &Resolved,
    call_id: &str,
    input: &Value,
    token: &CancellationToken,
    prior: Vec<Attempt>,
    mut progress: impl FnMut(&[Attempt]) -> Recorded,
) -> (Result<Value, Value>, Vec<Attempt>) {
    let text = input.to_string();
    let log = f.logs.for_call(&target.app_id, &target.spec.name, call_id);
    let mut attempts = prior;
    let span = match resume(&mut attempts, target, call_id, &log) {
        Ok(span) => span,
        Err(error) => return (Err(error), attempts),
    };
    for number in span.first..=span.last {
        let started = Instant::now();
        attempts.push(running(number));
        // Durable before the guest runs: a crash now leaves this attempt to be counted.
        progress(&attempts).await;
        log.event(&format!("attempt {number} started"));
        let result = match f.attempt_context(target, call_id, number, &log) {
            Err(e) => Err(e),
            Ok(ctx) => tokio::select! {
                r = f.engine().call_function(&target.component, &target.spec, &text, &ctx) => r,
                () = token.cancelled() => {
                    log.event("cancelled");
                    return (Err(terminated()), attempts);
                }
            },
        };
        let Some(last) = attempts.last_mut() else {
            return (
                Err(json!({"type": "internal", "message": "no attempt"})),
                attempts,
            );
        };
        last.finished_at = Some(now());
        last.duration_ms = Some(started.elapsed().as_millis() as u64);
        let e = match result {
            Ok(out) => return (Ok(succeeded(last, number, out, &log)), attempts),
            Err(e) => e,
        };
        let (error, delay) = failed(last, &e, number, &span, target, &log, call_id);
        let Some(delay) = delay else {
            return (Err(error), attempts);
        };
        log.event(&format!(
            "retrying in {} ms (attempt {} of at most {})",
            delay.as_millis(),
            number + 1,
            span.last
        ));
        progress(&attempts).await;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = token.cancelled() => {
                log.event("cancelled");
                return (Err(terminated()), attempts);
            }
        }
    }
    (
        Err(json!({"type": "internal", "message": "retries exhausted"})),
        attempts,
    )
}

/// Closes the attempts a dead process left running and works out which may still run;
/// the error is the call's outcome when no retries are left.
fn resume(
    attempts: &mut [Attempt],
    target: &Resolved,
    call_id: &str,
    log: &CallLog,
) -> Result<Span, Value> {
    let max_retries = target.spec.retries.map_or(0, |p| p.max_retries);
    let interrupted = close_interrupted(attempts);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let stopped = count(attempts.iter().filter(|a| a.outcome == STOPPED).count());
    let last = (max_retries + 1).saturating_add(stopped);
    let first = count(attempts.len()).saturating_add(1);
    if first > last {
        let error = json!({
            "type": INTERRUPTED,
            "message": format!(
                "the host died during attempt {} and no retries are left ({max_retries} allowed)",
                first - 1
            ),
        });
        log.event(&format!(
            "the host died during attempt {} and no retries are left",
            first - 1
        ));
        return Err(error);
    }
    if first == 1 {
        log.event("call started");
    }
    if interrupted > 0 {
        log.event(&format!(
            "attempt {} was cut short when the host died; running it again",
            first - 1
        ));
        tracing::warn!(call_id, function = %target.spec.name, attempt = first, "re-running a call whose attempt was cut short when the host died");
    }
    Ok(Span {
        first,
        last,
        stopped,
    })
}

/// A new attempt, running.
fn running(number: u32) -> Attempt {
    Attempt {
        number,
        started_at: now(),
        finished_at: None,
        outcome: "running".into(),
        error: None,
        duration_ms: None,
        retry_delay_ms: None,
    }
}

/// Records a successful attempt; returns its output, as JSON where it is JSON.
fn succeeded(last: &mut Attempt, number: u32, out: String, log: &CallLog) -> Value {
    last.outcome = "success".into();
    log.event(&format!(
        "attempt {number} succeeded in {} ms",
        last.duration_ms.unwrap_or(0)
    ));
    // Recorded with the result in one write by the caller.
    serde_json::from_str(&out).unwrap_or(Value::String(out))
}

/// Records a failed attempt; returns the error a caller sees and, if it is to be
/// retried, the delay before the next attempt.
fn failed(
    last: &mut Attempt,
    e: &FunctionError,
    number: u32,
    span: &Span,
    target: &Resolved,
    log: &CallLog,
    call_id: &str,
) -> (Value, Option<Duration>) {
    let (kind, error) = describe(e);
    last.outcome = kind.into();
    last.error = error
        .get("message")
        .and_then(Value::as_str)
        .map(|m| log.redact(m));
    let retry = e.retryable() && number < span.last;
    let delay = target
        .spec
        .retries
        .filter(|_| retry)
        .map(|p| p.delay(number.saturating_sub(span.stopped)));
    last.retry_delay_ms = delay.map(|d| d.as_millis() as u64);
    let message = last.error.as_deref().unwrap_or(kind);
    log.event(&format!("attempt {number} failed ({kind}): {message}"));
    tracing::warn!(call_id, function = %target.spec.name, attempt = number, "attempt failed: {message}");
    (error, delay)
}

/// Checks one scheduled function: resets its clock after a (re)deploy, or queues a due run.
pub(super) fn schedule_tick(f: &Functions, target: &Resolved) -> Result<(), StoreError> {
    let Some(text) = &target.spec.schedule else {
        return Ok(());
    };
    let Ok(schedule) = Schedule::parse(text) else {
        return Ok(()); // refused at deploy; nothing to run
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let state = f.store.get_schedule(&target.function_id)?;
    match state {
        Some(s) if s.version == target.version && &s.schedule == text => {
            if s.next_run_ms > now_ms {
                return Ok(());
            }
            // Runs missed while the host was down collapse into this one: the next
            // run is counted from now, not from the missed time.
            let record = Functions::new_record(target, json!({}), "schedule", CallStatus::Pending);
            let next = ScheduleState {
                next_run_ms: schedule.next_after(now_ms).unwrap_or(i64::MAX),
                last_run_ms: Some(now_ms),
                ..s
            };
            // False when another host recorded this run already.
            if f.store.record_scheduled_run(&record, &next)? {
                tracing::info!(function = %target.spec.name, call_id = %record.call_id, "scheduled run");
                let _ = f.queue.send(record.call_id);
            }
        }
        previous => {
            f.store.put_schedule(&ScheduleState {
                function_id: target.function_id.clone(),
                schedule: text.clone(),
                version: target.version,
                next_run_ms: schedule.next_after(now_ms).unwrap_or(i64::MAX),
                last_run_ms: previous.and_then(|p| p.last_run_ms),
            })?;
        }
    }
    Ok(())
}

/// Runs due schedules: a run is queued and the next one moved on in one transaction, by
/// one host of a cluster (the leader).
pub(super) async fn schedule_loop(functions: Weak<Functions>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(f) = functions.upgrade() else { break };
        let Some(resolver) = f.resolver() else {
            continue;
        };
        match f.store.schedule_leader() {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!("schedule: cannot tell which host leads: {e}");
                continue;
            }
        }
        for target in resolver.scheduled() {
            if let Err(e) = schedule_tick(&f, &target) {
                tracing::error!(function = %target.spec.name, "schedule: {e}");
            }
        }
    }
}
