//! Functions: synchronous invocations, durable spawns, map, retries with backoff,
//! per-attempt timeouts, cancellation, schedules and the guest's own `spawn`/`poll`.
//! Knows the engine and the store; which component serves a function comes from a
//! [`Resolver`] the control plane provides.

mod grants;
pub mod input;
mod leases;
mod logs;
mod runner;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::capabilities::env::{CallIdentity, Env};
use crate::capabilities::volumes::Volumes;
use crate::engine::{CallContext, Engine, FunctionError, FunctionSpec, LoadedComponent};
use crate::store::{CallRecord, CallStatus, Store, StoreError, new_id, now};

pub use logs::{CALL_LOG_BYTES, CallLog, Logs, REDACTED};
pub use schedule::{Schedule, ScheduleError};

/// A callable function as the control plane knows it now.
#[derive(Clone)]
pub struct Resolved {
    /// Its component (the app's current version).
    pub component: Arc<LoadedComponent>,
    /// Its spec.
    pub spec: FunctionSpec,
    /// Its app.
    pub app_id: String,
    /// Its app's current version.
    pub version: u32,
    /// Its id.
    pub function_id: String,
}

/// Finds the live component behind a function (implemented by the control plane).
pub trait Resolver: Send + Sync {
    /// A callable function by id, if its app is live.
    fn resolve(&self, function_id: &str) -> Option<Resolved>;
    /// A callable function by app and name, if live.
    fn resolve_by_name(&self, app_id: &str, name: &str) -> Option<Resolved>;
    /// Every live function that has a schedule.
    fn scheduled(&self) -> Vec<Resolved>;
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    /// Spawned calls running at once.
    pub workers: usize,
    /// Inputs of one `map` running at once.
    pub map_concurrency: usize,
    /// How long finished calls are kept.
    pub retention: Duration,
    /// Where volumes live (`<dir>/<name>`).
    pub volumes_dir: PathBuf,
}

/// Why a call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    /// No such function (or its app is not live).
    #[error("{0}")]
    NotFound(String),
    /// The input does not fit the parameters.
    #[error("invalid input")]
    InvalidInput(Value),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The functions runtime.
pub struct Functions {
    engine: Arc<Engine>,
    store: Arc<Store>,
    config: FunctionsConfig,
    resolver: RwLock<Option<Weak<dyn Resolver>>>,
    queue: mpsc::UnboundedSender<String>,
    running: Mutex<HashMap<String, CancellationToken>>,
    finished: Notify,
    logs: Arc<Logs>,
}

/// One input's outcome in a `map`.
#[derive(Debug, Clone)]
pub struct MapItem {
    /// Position in the inputs.
    pub index: usize,
    /// The result, or the error object.
    pub outcome: Result<Value, Value>,
}

impl Functions {
    /// Starts the runtime: its dispatcher, scheduler and retention sweeper. `logs` keeps
    /// the calls' output in `store` (started apart: it needs no engine).
    pub fn start(
        engine: Arc<Engine>,
        (store, logs): (Arc<Store>, Arc<Logs>),
        config: FunctionsConfig,
    ) -> Arc<Self> {
        let (queue, mut rx) = mpsc::unbounded_channel::<String>();
        let functions = Arc::new(Self {
            engine,
            store,
            logs,
            config,
            resolver: RwLock::new(None),
            queue,
            running: Mutex::new(HashMap::new()),
            finished: Notify::new(),
        });
        let weak = Arc::downgrade(&functions);
        let permits = Arc::new(Semaphore::new(functions.config.workers.max(1)));
        tokio::spawn(async move {
            while let Some(call_id) = rx.recv().await {
                let Some(f) = weak.upgrade() else { break };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                tokio::spawn(async move {
                    f.run_spawned(&call_id).await;
                    drop(permit);
                });
            }
        });
        tokio::spawn(runner::schedule_loop(Arc::downgrade(&functions)));
        tokio::spawn(retention_loop(Arc::downgrade(&functions)));
        functions
    }

    /// Connects the resolver and resumes every call left unfinished by a host that is
    /// gone (a previous process, or in cluster mode another host), now and whenever one
    /// dies later; keeps the leases on this host's calls. Returns how many it resumed now.
    pub fn attach(self: &Arc<Self>, resolver: Weak<dyn Resolver>) -> Result<usize, StoreError> {
        *self.resolver.write().unwrap_or_else(|p| p.into_inner()) = Some(resolver);
        let resumed = self.resume_orphans()?;
        tokio::spawn(leases::lease_loop(Arc::downgrade(self)));
        Ok(resumed)
    }

    fn resolver(&self) -> Option<Arc<dyn Resolver>> {
        self.resolver
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .upgrade()
    }

    fn resolve(&self, function_id: &str) -> Result<Resolved, FunctionsError> {
        self.resolver()
            .and_then(|r| r.resolve(function_id))
            .ok_or_else(|| {
                FunctionsError::NotFound(format!("no callable function with id {function_id}"))
            })
    }

    /// The context of a web endpoint or function of `app_id`: guest spawn/poll.
    pub fn guest_context(self: &Arc<Self>, app_id: &str) -> CallContext {
        CallContext {
            env: Vec::new(),
            mounts: Vec::new(),
            broker: Some(Arc::new(grants::GuestBroker {
                functions: Arc::downgrade(self),
                app_id: app_id.to_owned(),
            })),
            output: Some(self.logs.for_app(app_id)),
        }
    }

    /// The call logs.
    pub fn logs(&self) -> &Arc<Logs> {
        &self.logs
    }

    fn new_record(target: &Resolved, input: Value, source: &str, status: CallStatus) -> CallRecord {
        CallRecord {
            call_id: new_id("fc"),
            function_id: target.function_id.clone(),
            app_id: target.app_id.clone(),
            function_name: target.spec.name.clone(),
            input,
            status,
            result: None,
            error: None,
            attempts: Vec::new(),
            source: source.to_owned(),
            created_at: now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Runs a call now and returns its final record (Modal's `.remote`).
    pub async fn invoke(
        self: &Arc<Self>,
        function_id: &str,
        input: Value,
    ) -> Result<CallRecord, FunctionsError> {
        let target = self.resolve(function_id)?;
        input::check(&target.spec, &input).map_err(FunctionsError::InvalidInput)?;
        let mut record = Self::new_record(&target, input, "invoke", CallStatus::Running);
        self.put_call(&record).await?;
        self.execute(&target, &mut record).await;
        Ok(record)
    }

    /// Queues a call durably and returns its record at once (Modal's `.spawn`).
    pub async fn spawn(
        &self,
        function_id: &str,
        input: Value,
        source: &str,
    ) -> Result<CallRecord, FunctionsError> {
        let target = self.resolve(function_id)?;
        self.spawn_resolved(&target, input, source).await
    }

    async fn spawn_resolved(
        &self,
        target: &Resolved,
        input: Value,
        source: &str,
    ) -> Result<CallRecord, FunctionsError> {
        input::check(&target.spec, &input).map_err(FunctionsError::InvalidInput)?;
        let record = Self::new_record(target, input, source, CallStatus::Pending);
        // Durable before anyone is told the call exists.
        self.put_call(&record).await?;
        let _ = self.queue.send(record.call_id.clone());
        Ok(record)
    }

    /// A call's record.
    pub fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.store.get_call(call_id)
    }

    /// Recent calls of a function, newest first.
    pub fn list(&self, function_id: &str, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.store.list_calls(function_id, limit)
    }

    /// Waits at most `timeout` for a call to be over; returns its latest record.
    pub async fn wait(
        &self,
        call_id: &str,
        timeout: Duration,
    ) -> Result<Option<CallRecord>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.finished.notified();
            let record = self.store.call(call_id).await?;
            match &record {
                Some(r) if !r.status.is_final() => {}
                _ => return Ok(record),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(record);
            }
            // Another host may finish the call (cluster mode): look again now and then.
            let _ = tokio::time::timeout_at(deadline.min(now + FOREIGN_POLL), notified).await;
        }
    }

    /// On an orderly stop: records the attempts running now as `stopped`, which do not count
    /// against the retries (an attempt cut short by a crash does). The calls run again,
    /// as their next attempt, when the host starts again. Returns how many there were.
    pub fn stop(&self) -> usize {
        let ids: Vec<String> = self.running_mut().keys().cloned().collect();
        ids.iter()
            .filter(|id| {
                // In one transaction: a call that finished meanwhile keeps its outcome.
                let marked = self.store.update_call(id, |call| {
                    let Some(last) = call.attempts.last_mut() else {
                        return false;
                    };
                    if call.status.is_final() || last.outcome != "running" {
                        return false;
                    }
                    last.outcome = runner::STOPPED.into();
                    last.error = Some("the host was stopped during this attempt".into());
                    true
                });
                marked.unwrap_or_else(|e| {
                    tracing::error!(call_id = %id, "cannot record the stop: {e}");
                    false
                })
            })
            .count()
    }

    /// Cancels a call: it becomes `terminated` and a running attempt is stopped.
    pub async fn cancel(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(mut record) = self.store.get_call(call_id)? else {
            return Ok(None);
        };
        if !record.status.is_final() {
            record.status = CallStatus::Terminated;
            record.finished_at = Some(now());
            record.error = Some(json!({"type": "terminated", "message": "the call was cancelled"}));
            // A call over by now keeps its outcome; nothing is left to stop.
            if !self.put_call(&record).await? {
                return self.store.get_call(call_id);
            }
            if let Some(token) = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(call_id)
            {
                token.cancel();
            }
            self.finished.notify_waiters();
        }
        Ok(Some(record))
    }

    /// Runs `function` over every input with bounded parallelism; `ordered` keeps input
    /// order, otherwise items arrive as they complete. A failed input is reported in
    /// its place and never stops the others.
    pub fn map(
        self: &Arc<Self>,
        function_id: &str,
        inputs: Vec<Value>,
        ordered: bool,
    ) -> Result<mpsc::Receiver<MapItem>, FunctionsError> {
        use futures_util::StreamExt;
        let target = self.resolve(function_id)?;
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            let n = this.config.map_concurrency.max(1);
            let jobs = futures_util::stream::iter(inputs.into_iter().enumerate()).map(|(index, input)| {
                let (this, target) = (this.clone(), target.clone());
                async move {
                    let outcome = match input::check(&target.spec, &input) {
                        Err(detail) => Err(json!({"type": "invalid_input", "message": "input does not fit the parameters", "detail": detail})),
                        Ok(()) => {
                            let call_id = new_id("fc");
                            let token = CancellationToken::new();
                            runner::run_attempts(&this, &target, &call_id, &input, &token, Vec::new(), |_| std::future::ready(())).await.0
                        }
                    };
                    MapItem { index, outcome }
                }
            });
            if ordered {
                let mut s = jobs.buffered(n);
                while let Some(item) = s.next().await {
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            } else {
                let mut s = jobs.buffer_unordered(n);
                while let Some(item) = s.next().await {
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn run_spawned(self: &Arc<Self>, call_id: &str) {
        let record = match self.store.get_call(call_id) {
            Ok(Some(r)) if !r.status.is_final() => r,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(call_id, "cannot read call: {e}");
                return;
            }
        };
        let mut record = record;
        match self.resolve_soon(&record.function_id).await {
            Ok(target) => self.execute(&target, &mut record).await,
            Err(e) => {
                record.status = CallStatus::Failure;
                record.error = Some(json!({"type": "not_found", "message": e.to_string()}));
                record.finished_at = Some(now());
                self.save(&mut record).await;
            }
        }
    }

    /// Runs every attempt of a recorded call and stores the outcome.
    async fn execute(self: &Arc<Self>, target: &Resolved, record: &mut CallRecord) {
        let token = CancellationToken::new();
        self.running_mut()
            .insert(record.call_id.clone(), token.clone());
        record.status = CallStatus::Running;
        record.started_at.get_or_insert_with(now);
        let input = record.input.clone();
        let call_id = record.call_id.clone();
        let shared = Arc::new(Mutex::new(record.clone()));
        // Each attempt is recorded before it runs, with the status and start above (no
        // write of its own for those: the first attempt's is a moment later).
        // A cancel written meanwhile wins: the store keeps a call that is over as it is.
        let progress = {
            let (shared, this) = (shared.clone(), self.clone());
            move |attempts: &[crate::store::Attempt]| {
                let record = {
                    let mut r = shared.lock().unwrap_or_else(|p| p.into_inner());
                    r.attempts = attempts.to_vec();
                    r.clone()
                };
                let this = this.clone();
                async move {
                    if let Err(e) = this.put_call(&record).await {
                        tracing::error!(call_id = %record.call_id, "cannot record attempt: {e}");
                    }
                }
            }
        };
        let prior = std::mem::take(&mut record.attempts);
        let (outcome, attempts) =
            runner::run_attempts(self, target, &call_id, &input, &token, prior, progress).await;
        self.running_mut().remove(&call_id);
        *record = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        record.attempts = attempts;
        match outcome {
            Ok(result) => {
                record.status = CallStatus::Success;
                record.result = Some(result);
            }
            Err(error) => {
                record.status = CallStatus::Failure;
                record.error = Some(error);
            }
        }
        record.finished_at = Some(now());
        self.save(record).await;
    }

    /// Writes `record` durably without holding up this runtime thread: it waits for its
    /// commit on a blocking thread, so the writes of many calls wait at once and share a
    /// commit (the embedded store's group commit) instead of queueing one flush each
    /// behind the runtime's few threads. Returns whether it was written: a call that is
    /// over already keeps its record.
    async fn put_call(&self, record: &CallRecord) -> Result<bool, StoreError> {
        let (store, record) = (self.store.clone(), record.clone());
        tokio::task::spawn_blocking(move || store.put_call(&record))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io(std::io::Error::other(format!(
                    "the thread writing the call failed: {e}"
                ))))
            })
    }

    /// Writes `record`; when it ends the call, counts and announces the outcome. A call
    /// that was over already (a cancel, or another host that ran it too, came first)
    /// keeps what is stored, and `record` becomes that: its outcome was counted by
    /// whoever wrote it.
    async fn save(&self, record: &mut CallRecord) {
        match self.put_call(record).await {
            Ok(true) => {}
            Ok(false) => {
                if let Ok(Some(stored)) = self.store.get_call(&record.call_id) {
                    *record = stored;
                }
                return;
            }
            Err(e) => tracing::error!(call_id = %record.call_id, "cannot record call: {e}"),
        }
        if record.status.is_final() {
            let status = serde_json::to_value(record.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.engine
                .metrics()
                .calls
                .get_or_create(&crate::engine::CallLabels {
                    function: record.function_name.clone(),
                    status,
                })
                .inc();
            self.finished.notify_waiters();
        }
    }

    fn running_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What one attempt runs with: secrets, volumes, call identity, guest calls.
    fn attempt_context(
        self: &Arc<Self>,
        target: &Resolved,
        call_id: &str,
        attempt: u32,
        log: &Arc<CallLog>,
    ) -> Result<CallContext, FunctionError> {
        let mut ctx = self.guest_context(&target.app_id);
        ctx.output = Some(log.clone());
        let identity = CallIdentity {
            call_id,
            attempt,
            function: &target.spec.name,
        };
        ctx.env = Env::prepare(&target.spec.secrets, &*self.store, identity)
            .map_err(|e| FunctionError::Failed(e.to_string()))?;
        // Everything in the environment but the call's identity comes from its secrets.
        let identity = ["WASMHOST_CALL_ID", "WASMHOST_ATTEMPT", "WASMHOST_FUNCTION"];
        log.hide(
            ctx.env
                .iter()
                .filter(|(k, _)| !identity.contains(&k.as_str()))
                .map(|(_, v)| v.clone()),
        );
        let mounts = target.spec.volumes.iter();
        ctx.mounts = Volumes::new(self.config.volumes_dir.clone())
            .prepare(mounts.map(|v| (v.volume.as_str(), v.path.as_str())))
            .map_err(|e| FunctionError::Failed(e.to_string()))?;
        Ok(ctx)
    }

    fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// How often a waiter looks for an outcome written by another host.
const FOREIGN_POLL: Duration = Duration::from_millis(200);

/// Deletes finished calls past the retention period, hourly.
async fn retention_loop(functions: Weak<Functions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(f) = functions.upgrade() else { break };
        let cutoff = std::time::SystemTime::now()
            .checked_sub(f.config.retention)
            .unwrap_or(std::time::UNIX_EPOCH);
        let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
        match f.store.purge_calls(&cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} call record(s) past retention"),
            Err(e) => tracing::error!("retention sweep failed: {e}"),
        }
        match f.store.purge_logs(&cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} log line(s) past retention"),
            Err(e) => tracing::error!("log retention sweep failed: {e}"),
        }
    }
}
