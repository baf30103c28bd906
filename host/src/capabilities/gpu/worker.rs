//! The GPU thread: owns the wgpu instance, adapter and device, serves requests from every
//! store in arrival order, and waits for submitted work without blocking the others.
//!
//! While work is in flight the thread alternates between taking new requests and waiting
//! (at most [`SLICE`]) on the device's fence for the oldest submission, so one guest's
//! long dispatch does not stop another's buffer writes or shader compiles.
//!
//! The queue runs submissions in order, so a call's GPU time is counted from when every
//! earlier submission has finished (when its own work can start) until its work is done;
//! past its budget the call gets a timeout error. Nothing can cancel work the GPU has
//! started: a timed-out submission stays at the head of the queue until it finishes,
//! and later calls' clocks start only then.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::protocol::{Message, Reply};
use super::session::{DeviceCtx, Session};
use super::work::{Outcome, Wait};
use super::{AdapterSummary, Fallback, GpuConfig, GpuError, GpuStats, Unavailable};

/// The longest the thread waits on the GPU before looking at new requests again.
const SLICE: Duration = Duration::from_millis(2);

/// Stack of the GPU thread: WGSL parsing recurses, and guests control the source.
const STACK_BYTES: usize = 32 << 20;

/// How long dropping the handle waits for the GPU thread to close the device: work the GPU
/// has started cannot be cancelled, so a runaway dispatch must not hold the exit forever.
const TEARDOWN: Duration = Duration::from_secs(5);

/// The handle stores use to reach the GPU thread.
pub(super) struct Worker {
    tx: Sender<Message>,
    /// Disconnects once the GPU thread has dropped the device and the wgpu instance.
    closed: Mutex<Receiver<()>>,
    /// The adapter the device runs on.
    pub(super) adapter: AdapterSummary,
    /// The limits the device was created with.
    pub(super) limits: wgpu::Limits,
    stats: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    submits: AtomicU64,
    gpu_nanos: AtomicU64,
}

impl Worker {
    /// Starts the GPU thread and opens the device; says why when there is none to use.
    pub(super) async fn start(config: GpuConfig) -> Result<Worker, Unavailable> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready) = oneshot::channel();
        let stats = Arc::new(Counters::default());
        let counters = stats.clone();
        let (closing, closed) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("wasmhost-gpu".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                match open(&config) {
                    Ok((ctx, adapter)) => {
                        let limits = ctx.limits.clone();
                        if ready_tx.send(Ok((adapter, limits))).is_ok() {
                            Thread::new(ctx, counters).serve(rx);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                drop(closing);
            })
            .map_err(|e| Unavailable(format!("cannot start the GPU thread: {e}")))?;
        let (adapter, limits) = ready
            .await
            .map_err(|_| Unavailable("the GPU thread stopped while opening the device".into()))??;
        tracing::info!("GPU: {adapter}");
        Ok(Worker {
            tx,
            closed: Mutex::new(closed),
            adapter,
            limits,
            stats,
        })
    }

    /// Queues a message for the GPU thread.
    pub(super) fn send(&self, message: Message) -> Result<(), GpuError> {
        self.tx
            .send(message)
            .map_err(|_| GpuError::Internal("the GPU thread stopped".into()))
    }

    /// Totals of completed work.
    pub(super) fn stats(&self) -> GpuStats {
        GpuStats {
            submits: self.stats.submits.load(Ordering::Relaxed),
            gpu_time: Duration::from_nanos(self.stats.gpu_nanos.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for Worker {
    /// Closes the queue and waits (bounded) for the GPU thread to close the device.
    ///
    /// Destroying the wgpu instance unloads the Vulkan driver, whose exit handlers then
    /// go with it; were the process exiting meanwhile, `exit` could call a handler of a
    /// driver half unloaded (a segfault after a successful `wasmhost run`).
    fn drop(&mut self) {
        let (orphan, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, orphan));
        if let Ok(closed) = self.closed.get_mut() {
            let _ = closed.recv_timeout(TEARDOWN);
        }
    }
}

/// Finds the best adapter the configuration allows and opens a device on it.
fn open(config: &GpuConfig) -> Result<(DeviceCtx, AdapterSummary), Unavailable> {
    let guarded = std::panic::catch_unwind(|| open_unguarded(config));
    guarded.unwrap_or_else(|_| Err(Unavailable("wgpu panicked while opening the device".into())))
}

fn open_unguarded(config: &GpuConfig) -> Result<(DeviceCtx, AdapterSummary), Unavailable> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        flags: wgpu::InstanceFlags::empty(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    let Some(adapter) = adapters.into_iter().next() else {
        return Err(Unavailable(
            "no GPU adapter found (wgpu looked for Vulkan devices; install the GPU's Vulkan \
             driver, or Mesa's software one: apt-get install mesa-vulkan-drivers)"
                .into(),
        ));
    };
    let info = adapter.get_info();
    let summary = AdapterSummary {
        name: info.name.clone(),
        device_type: info.device_type,
        backend: info.backend.to_string(),
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        vendor: info.vendor,
        device: info.device,
    };
    if summary.is_software() && config.fallback != Fallback::Software {
        return Err(Unavailable(format!(
            "this host has only a software GPU adapter ({}); start wasmhost with \
             --gpu-fallback software to use it",
            summary.name
        )));
    }
    if !adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
    {
        return Err(Unavailable(format!(
            "the adapter {} cannot run compute shaders",
            summary.name
        )));
    }
    let limits = device_limits(&adapter.limits(), config);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("wasmhost"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }))
    .map_err(|e| Unavailable(format!("cannot open a device on {}: {e}", summary.name)))?;
    // Every guest-driven call runs inside error scopes; this only catches what escapes
    // them (wgpu's default handler would panic).
    device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
        tracing::warn!("GPU error outside any call: {e}");
    }));
    let lost = Arc::new(Mutex::new(None));
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, message| {
        tracing::error!("GPU device lost ({reason:?}): {message}");
        if let Ok(mut l) = flag.lock() {
            *l = Some(format!("{reason:?}: {message}"));
        }
    });
    let ctx = DeviceCtx {
        device,
        queue,
        limits,
        config: config.clone(),
        lost,
    };
    Ok((ctx, summary))
}

/// Preference order of adapter kinds: real GPUs first, software last.
fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// WebGPU's default limits (or the adapter's, where lower), with buffers as large as the
/// adapter allows up to one call's budget.
fn device_limits(supported: &wgpu::Limits, config: &GpuConfig) -> wgpu::Limits {
    let mut limits = wgpu::Limits::default().or_worse_values_from(supported);
    let largest = supported
        .max_buffer_size
        .min(config.call_buffer_bytes.max(4));
    limits.max_buffer_size = limits.max_buffer_size.max(largest);
    limits.max_storage_buffer_binding_size = limits
        .max_storage_buffer_binding_size
        .max(supported.max_storage_buffer_binding_size.min(largest));
    limits
}

/// Work submitted for a call, waiting to finish.
struct Pending {
    session: u64,
    wait: Wait,
    /// GPU time the call has left.
    budget: Duration,
    /// When its work could start (all earlier work done), once it has.
    started: Option<Instant>,
    /// Where the answer goes; `None` once the call timed out.
    reply: Option<oneshot::Sender<Result<Reply, GpuError>>>,
}

impl Pending {
    fn deadline(&self) -> Option<Instant> {
        match (&self.reply, self.started) {
            (Some(_), Some(started)) => Some(started + self.budget),
            _ => None,
        }
    }
}

/// The GPU thread's state.
struct Thread {
    ctx: DeviceCtx,
    sessions: HashMap<u64, Session>,
    /// In submission order, so the front finishes first.
    pending: VecDeque<Pending>,
    stats: Arc<Counters>,
}

impl Thread {
    fn new(ctx: DeviceCtx, stats: Arc<Counters>) -> Self {
        Self {
            ctx,
            sessions: HashMap::new(),
            pending: VecDeque::new(),
            stats,
        }
    }

    /// Serves messages until every sender is gone.
    fn serve(mut self, rx: Receiver<Message>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(message) => self.handle(message),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if self.pending.is_empty() {
                match rx.recv() {
                    Ok(message) => self.handle(message),
                    Err(_) => return,
                }
                continue;
            }
            self.wait_a_little();
            self.settle();
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Call {
                session,
                request,
                reply,
            } => {
                let s = self.sessions.entry(session).or_default();
                match self.ctx.handle(s, request) {
                    Ok(Outcome::Ready(answer)) => {
                        let _ = reply.send(Ok(answer));
                    }
                    Ok(Outcome::Wait(wait)) => {
                        let budget = self.ctx.remaining(s);
                        self.pending.push_back(Pending {
                            session,
                            wait,
                            budget,
                            started: None,
                            reply: Some(reply),
                        });
                        self.settle();
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Message::Free { session, id } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.free(id);
                }
            }
            Message::EndSession { session } => {
                if let Some(mut s) = self.sessions.remove(&session) {
                    s.free_all();
                }
            }
        }
    }

    /// Blocks on the fence of the oldest pending submission, at most [`SLICE`] or until
    /// its deadline.
    fn wait_a_little(&self) {
        let Some(oldest) = self.pending.front() else {
            return;
        };
        let now = Instant::now();
        let until = oldest
            .deadline()
            .map_or(now + SLICE, |d| d.min(now + SLICE));
        let timeout = until.saturating_duration_since(now);
        let poll = wgpu::PollType::Wait {
            submission_index: Some(oldest.wait.index.clone()),
            timeout: Some(timeout),
        };
        match self.ctx.device.poll(poll) {
            Ok(_) | Err(wgpu::PollError::Timeout) => {}
            Err(e) => tracing::warn!("polling the GPU failed: {e}"),
        }
    }

    /// Answers every pending call whose work finished, starts the clock of the oldest
    /// unfinished one, and fails it once its GPU time is spent.
    fn settle(&mut self) {
        let now = Instant::now();
        let mut still = VecDeque::with_capacity(self.pending.len());
        while let Some(mut p) = self.pending.pop_front() {
            if p.wait.finished() {
                self.finish(p, now);
                continue;
            }
            if still.is_empty() {
                // The oldest unfinished submission: its work runs now.
                let started = *p.started.get_or_insert(now);
                if p.reply.is_some() && now >= started + p.budget {
                    self.time_out(&mut p, now);
                }
            }
            still.push_back(p);
        }
        self.pending = still;
    }

    fn finish(&mut self, p: Pending, now: Instant) {
        let elapsed = p
            .started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let Some(reply) = p.reply else {
            return; // It timed out already; it only held up the queue.
        };
        if let Some(s) = self.sessions.get_mut(&p.session) {
            s.gpu_time += elapsed;
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.stats.gpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        if p.wait.is_submit() {
            self.stats.submits.fetch_add(1, Ordering::Relaxed);
        }
        let _ = reply.send(self.ctx.complete(p.wait));
    }

    fn time_out(&mut self, p: &mut Pending, now: Instant) {
        let limit = self.ctx.config.call_gpu_time;
        if let Some(s) = self.sessions.get_mut(&p.session) {
            s.gpu_time = limit;
        }
        let elapsed = p
            .started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.stats.gpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        if let Some(reply) = p.reply.take() {
            let _ = reply.send(Err(GpuError::Timeout(format!(
                "the GPU work did not finish within this call's GPU time of {limit:?} \
                 (it runs on until done: a GPU cannot stop a dispatch)"
            ))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_gpus_come_before_software() {
        let mut kinds = [
            wgpu::DeviceType::Cpu,
            wgpu::DeviceType::IntegratedGpu,
            wgpu::DeviceType::DiscreteGpu,
        ];
        kinds.sort_by_key(|k| rank(*k));
        assert_eq!(kinds[0], wgpu::DeviceType::DiscreteGpu);
        assert_eq!(kinds[2], wgpu::DeviceType::Cpu);
    }

    #[test]
    fn limits_stay_within_the_adapter() {
        let adapter = wgpu::Limits {
            max_buffer_size: 4 << 30,
            max_storage_buffer_binding_size: 4 << 30,
            ..Default::default()
        };
        let config = GpuConfig::default();
        let limits = device_limits(&adapter, &config);
        assert_eq!(limits.max_buffer_size, config.call_buffer_bytes);
        assert!(limits.check_limits(&adapter));
        let small = wgpu::Limits::downlevel_defaults();
        assert!(device_limits(&small, &config).check_limits(&small));
    }
}
