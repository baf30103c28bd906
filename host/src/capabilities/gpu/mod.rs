//! GPU compute for guests (`wasmhost:gpu/compute`): guests create buffers, compile WGSL
//! compute shaders, dispatch and read back; the host runs them with wgpu.
//!
//! One wgpu device per host, owned by one dedicated thread ([`worker`]): wgpu's error
//! scopes are per thread, so every guest-driven call is made there, inside scopes, and
//! comes back as a value; nothing a guest sends can panic the host. Guests hold handles
//! into their store's resource table; the objects themselves live on the GPU thread,
//! grouped by store ("session") and freed when the store ends. Each session has a budget
//! (buffer bytes, dispatches, GPU time) from [`GpuConfig`].
//!
//! Discovery is lazy: the first endpoint that declares `gpu`, the first guest call, or
//! `wasmhost gpu` opens the device.

pub(crate) mod bindings;
mod error;
mod host;
mod protocol;
mod recording;
mod session;
mod work;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, oneshot};
use wasmtime::component::Linker;

use super::{Capability, CapabilityViews, Declared, WasiSetup};

pub use error::{CompileMessage, GpuError, Unavailable};
pub use host::{GpuCtx, GpuCtxView, GpuView};
use protocol::{Message, ObjectId, Reply, Request};

/// Whether a software adapter (lavapipe, llvmpipe) may stand in for a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Only hardware adapters; a host with just a software one has no GPU.
    #[default]
    None,
    /// A software adapter is used when there is no hardware one.
    Software,
}

/// Settings of the GPU capability: which adapters count, and each call's budget.
#[derive(Debug, Clone)]
pub struct GpuConfig {
    /// Whether a software adapter may be used.
    pub fallback: Fallback,
    /// Bytes of buffers one call (guest instance) may hold at once.
    pub call_buffer_bytes: u64,
    /// Dispatches one call may submit in all.
    pub call_dispatches: u32,
    /// GPU time one call may wait for in all.
    pub call_gpu_time: Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            fallback: Fallback::None,
            call_buffer_bytes: 512 << 20,
            call_dispatches: 10_000,
            call_gpu_time: Duration::from_secs(30),
        }
    }
}

/// The adapter the host's device runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Hardware or software, discrete or integrated.
    pub device_type: wgpu::DeviceType,
    /// Backend API, e.g. "vulkan".
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// PCI device id.
    pub device: u32,
}

impl AdapterSummary {
    /// Whether it is a software rasteriser rather than a GPU.
    pub fn is_software(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "software",
            wgpu::DeviceType::Other => "other",
        };
        write!(f, "{} ({kind}, {}", self.name, self.backend)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// Totals since the host started, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Submissions that ran to completion.
    pub submits: u64,
    /// Time spent waiting for GPU work, summed over calls.
    pub gpu_time: Duration,
}

/// The host's GPU, shared by every store: cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    config: GpuConfig,
    worker: OnceCell<Result<worker::Worker, Unavailable>>,
    next_session: AtomicU64,
}

impl Gpu {
    /// A GPU capability with `config`; nothing is opened until first use.
    pub fn new(config: GpuConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                worker: OnceCell::new(),
                next_session: AtomicU64::new(1),
            }),
        }
    }

    /// The capability's settings.
    pub fn config(&self) -> &GpuConfig {
        &self.inner.config
    }

    async fn worker(&self) -> Result<&worker::Worker, Unavailable> {
        let config = self.inner.config.clone();
        self.inner
            .worker
            .get_or_init(|| worker::Worker::start(config))
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Opens the device on first use and describes its adapter, or says why there is none.
    pub async fn adapter(&self) -> Result<AdapterSummary, Unavailable> {
        Ok(self.worker().await?.adapter.clone())
    }

    /// Checks that this host can serve an endpoint declaring `gpu = requirement`: `"any"`,
    /// or a name matched (case-insensitively, as a substring) against the adapter's.
    pub async fn check(&self, requirement: &str) -> Result<AdapterSummary, Unavailable> {
        let adapter = self.adapter().await?;
        if matches_requirement(&adapter.name, requirement) {
            Ok(adapter)
        } else {
            Err(Unavailable(format!(
                "it needs a {requirement:?} GPU, but this host's adapter is {adapter}"
            )))
        }
    }

    /// Totals of completed GPU work.
    pub fn stats(&self) -> GpuStats {
        match self.inner.worker.get() {
            Some(Ok(w)) => w.stats(),
            _ => GpuStats::default(),
        }
    }

    fn new_session(&self) -> u64 {
        self.inner.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one request for `session` to the GPU thread and waits for its answer.
    async fn call(&self, session: u64, request: Request) -> Result<Reply, GpuError> {
        let worker = self.worker().await?;
        let (reply, answer) = oneshot::channel();
        worker.send(Message::Call {
            session,
            request,
            reply,
        })?;
        answer
            .await
            .map_err(|_| GpuError::Internal("the GPU thread stopped".into()))?
    }

    /// Frees one object of `session` (fire and forget).
    fn free(&self, session: u64, id: ObjectId) {
        if let Some(Ok(w)) = self.inner.worker.get() {
            let _ = w.send(Message::Free { session, id });
        }
    }

    /// Frees everything `session` still holds (fire and forget).
    fn end_session(&self, session: u64) {
        if let Some(Ok(w)) = self.inner.worker.get() {
            let _ = w.send(Message::EndSession { session });
        }
    }
}

/// Whether an adapter named `name` satisfies `gpu = requirement`.
fn matches_requirement(name: &str, requirement: &str) -> bool {
    let requirement = requirement.trim();
    requirement.eq_ignore_ascii_case("any")
        || name
            .to_ascii_lowercase()
            .contains(&requirement.to_ascii_lowercase())
}

/// Why a GPU declaration is refused at deploy (before the adapter is asked).
#[derive(Debug, thiserror::Error)]
#[error("declares gpu = {0:?}: use \"any\" or an adapter name")]
pub struct GpuDeclarationError(pub String);

/// What one instance is granted of the GPU.
pub struct GpuGrant {
    /// The host's GPU.
    pub gpu: Gpu,
    /// Why the instance may not use it (its endpoint or function declares no GPU, or it
    /// runs deploy-time work); every use then fails with this reason. None: granted.
    pub denied: Option<String>,
}

impl GpuGrant {
    /// The GPU for an instance of the endpoint or function `name` (`what` is
    /// `"endpoint"` or `"function"`), which may use it only when it declared one.
    pub fn if_declared(gpu: &Gpu, declared: bool, what: &str, name: &str) -> Self {
        Self {
            gpu: gpu.clone(),
            denied: (!declared).then(|| {
                format!(
                    "{what} {name:?} does not declare a GPU; add `gpu = \"any\"` to its \
                     #[wasmhost::{what}] attribute"
                )
            }),
        }
    }

    /// No GPU for this instance, for `why`.
    pub fn denied(gpu: &Gpu, why: &str) -> Self {
        Self {
            gpu: gpu.clone(),
            denied: Some(why.to_owned()),
        }
    }
}

impl Capability for Gpu {
    /// The requirement, if any: this host's adapter is checked against it at load
    /// ([`Gpu::check`], which opens the device).
    type Config = Option<String>;
    type ConfigError = GpuDeclarationError;
    type Grant<'a> = GpuGrant;
    type Instance = GpuCtx;

    fn link<T: CapabilityViews>(linker: &mut Linker<T>, _p3: bool) -> wasmtime::Result<()> {
        host::add_to_linker(linker)
    }

    fn configure(declared: &Declared<'_>) -> Result<Option<String>, GpuDeclarationError> {
        match declared.gpu {
            Some(gpu) if gpu.trim().is_empty() || gpu.len() > 100 => {
                Err(GpuDeclarationError(gpu.to_owned()))
            }
            gpu => Ok(gpu.map(str::to_owned)),
        }
    }

    fn instance(grant: GpuGrant, _: &mut WasiSetup) -> std::io::Result<GpuCtx> {
        Ok(match grant.denied {
            None => GpuCtx::granted(&grant.gpu),
            Some(reason) => GpuCtx::denied(&grant.gpu, reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_match_by_name() {
        let name = "NVIDIA H100 80GB HBM3";
        assert!(matches_requirement(name, "any"));
        assert!(matches_requirement(name, "ANY"));
        assert!(matches_requirement(name, "h100"));
        assert!(!matches_requirement(name, "A100"));
        assert!(matches_requirement("llvmpipe (LLVM 15)", "llvmpipe"));
    }

    #[test]
    fn declarations_are_checked_at_deploy() {
        let declared = |gpu| Declared {
            what: "function",
            name: "f",
            secrets: &[],
            volumes: &[],
            allowed_outbound_hosts: &[],
            gpu,
        };
        assert_eq!(Gpu::configure(&declared(None)).unwrap(), None);
        assert_eq!(
            Gpu::configure(&declared(Some("H100"))).unwrap().as_deref(),
            Some("H100")
        );
        let long = "x".repeat(101);
        for bad in [" ", long.as_str()] {
            let err = Gpu::configure(&declared(Some(bad))).unwrap_err();
            assert!(err.to_string().contains("use \"any\""), "{err}");
        }
    }

    #[test]
    fn adapters_print_kind_and_backend() {
        let a = AdapterSummary {
            name: "llvmpipe".into(),
            device_type: wgpu::DeviceType::Cpu,
            backend: "vulkan".into(),
            driver: "llvmpipe 22.3".into(),
            vendor: 0x10005,
            device: 0,
        };
        assert!(a.is_software());
        assert_eq!(a.to_string(), "llvmpipe (software, vulkan, llvmpipe 22.3)");
    }
}
