//! The `wasmhost:gpu/compute` imports: guest handles live in the store's resource table;
//! object-backed ones name an object on the GPU thread, encoders and passes record on the
//! host until `submit`.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::bindings::compute::{self as wit, Host, HostBindGroup, HostBindGroupLayout};
use super::bindings::compute::{HostBuffer, HostComputePipeline, HostDevice};
use super::bindings::compute::{HostPipelineLayout, HostShaderModule};
use super::protocol::{BindEntry, BindingKind, ObjectId, Reply, Request};
use super::recording::GpuCommandEncoder;
use super::{Gpu, GpuError};

/// The GPU state of one store: which session it is on the GPU thread and whether the
/// function running in it may use the GPU at all.
pub struct GpuCtx {
    gpu: Gpu,
    session: u64,
    grant: Result<(), String>,
    device: Option<DeviceInfo>,
    opened: bool,
}

/// What `device.adapter-info` and `device.limits` answer.
struct DeviceInfo {
    adapter: super::AdapterSummary,
    limits: wgpu::Limits,
}

impl GpuCtx {
    /// A store whose function may use the GPU.
    pub fn granted(gpu: &Gpu) -> Self {
        Self::new(gpu, Ok(()))
    }

    /// A store whose function may not use the GPU, and why.
    pub fn denied(gpu: &Gpu, reason: impl Into<String>) -> Self {
        Self::new(gpu, Err(reason.into()))
    }

    fn new(gpu: &Gpu, grant: Result<(), String>) -> Self {
        Self {
            gpu: gpu.clone(),
            session: gpu.new_session(),
            grant,
            device: None,
            opened: false,
        }
    }
}

impl Drop for GpuCtx {
    fn drop(&mut self) {
        if self.opened {
            self.gpu.end_session(self.session);
        }
    }
}

/// Borrowed GPU state and resource table of a store, what the imports work on.
pub struct GpuCtxView<'a> {
    /// The store's GPU state.
    pub ctx: &'a mut GpuCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Store data that carries a [`GpuCtx`].
pub trait GpuView: Send {
    /// The store's GPU state and resource table.
    fn gpu(&mut self) -> GpuCtxView<'_>;
}

struct HasGpu;

impl HasData for HasGpu {
    type Data<'a> = GpuCtxView<'a>;
}

/// Adds `wasmhost:gpu/compute` to a linker whose store data is a [`GpuView`].
pub fn add_to_linker<T: GpuView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasGpu>(linker, T::gpu)
}

/// A guest's handle to the device.
pub struct GpuDevice;
/// A guest's handle to the queue.
pub struct GpuQueue;
/// A guest's handle to a buffer on the GPU thread.
pub struct GpuBuffer {
    pub(super) id: ObjectId,
    size: u64,
    usage: wit::BufferUsage,
}
/// A guest's handle to a shader module on the GPU thread.
pub struct GpuShaderModule(ObjectId);
/// A guest's handle to a bind group layout on the GPU thread.
pub struct GpuBindGroupLayout(ObjectId);
/// A guest's handle to a pipeline layout on the GPU thread.
pub struct GpuPipelineLayout(ObjectId);
/// A guest's handle to a compute pipeline on the GPU thread.
pub struct GpuComputePipeline(pub(super) ObjectId);
/// A guest's handle to a bind group on the GPU thread.
pub struct GpuBindGroup(pub(super) ObjectId);

pub(super) type Answer<T> = wasmtime::Result<Result<T, wit::GpuError>>;

pub(super) fn answer<T>(result: Result<T, GpuError>) -> Answer<T> {
    Ok(result.map_err(GpuError::into_wit))
}

impl GpuCtxView<'_> {
    /// Sends a request for this store's session to the GPU thread.
    pub(super) async fn call(&mut self, request: Request) -> Result<Reply, GpuError> {
        self.ctx.opened = true;
        self.ctx.gpu.call(self.ctx.session, request).await
    }

    /// Frees the GPU object behind a dropped handle.
    fn free(&mut self, id: ObjectId) {
        self.ctx.gpu.free(self.ctx.session, id);
    }
}

impl Host for GpuCtxView<'_> {
    async fn request_device(&mut self) -> Answer<Resource<GpuDevice>> {
        if let Err(reason) = &self.ctx.grant {
            return answer(Err(GpuError::Unavailable(reason.clone())));
        }
        let worker = match self.ctx.gpu.worker().await {
            Ok(w) => w,
            Err(e) => return answer(Err(e.into())),
        };
        self.ctx.device = Some(DeviceInfo {
            adapter: worker.adapter.clone(),
            limits: worker.limits.clone(),
        });
        Ok(Ok(self.table.push(GpuDevice)?))
    }
}

impl HostDevice for GpuCtxView<'_> {
    async fn adapter_info(&mut self, _: Resource<GpuDevice>) -> wasmtime::Result<wit::AdapterInfo> {
        let info = self.device_info()?;
        let a = &info.adapter;
        Ok(wit::AdapterInfo {
            name: a.name.clone(),
            vendor: a.vendor,
            device: a.device,
            device_type: match a.device_type {
                wgpu::DeviceType::Other => wit::DeviceType::Other,
                wgpu::DeviceType::IntegratedGpu => wit::DeviceType::IntegratedGpu,
                wgpu::DeviceType::DiscreteGpu => wit::DeviceType::DiscreteGpu,
                wgpu::DeviceType::VirtualGpu => wit::DeviceType::VirtualGpu,
                wgpu::DeviceType::Cpu => wit::DeviceType::Cpu,
            },
            backend: a.backend.clone(),
            driver: a.driver.clone(),
        })
    }

    async fn limits(&mut self, _: Resource<GpuDevice>) -> wasmtime::Result<wit::Limits> {
        let config = self.ctx.gpu.config().clone();
        let l = &self.device_info()?.limits;
        Ok(wit::Limits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_bind_groups: l.max_bind_groups,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroup_size_y: l.max_compute_workgroup_size_y,
            max_compute_workgroup_size_z: l.max_compute_workgroup_size_z,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            call_buffer_bytes: config.call_buffer_bytes,
            call_dispatches: config.call_dispatches,
            call_gpu_time_ms: u64::try_from(config.call_gpu_time.as_millis()).unwrap_or(u64::MAX),
        })
    }

    async fn queue(&mut self, _: Resource<GpuDevice>) -> wasmtime::Result<Resource<GpuQueue>> {
        Ok(self.table.push(GpuQueue)?)
    }

    async fn create_buffer(
        &mut self,
        _: Resource<GpuDevice>,
        d: wit::BufferDescriptor,
    ) -> Answer<Resource<GpuBuffer>> {
        let request = Request::CreateBuffer {
            label: d.label,
            size: d.size,
            usage: usage_to_wgpu(d.usage),
        };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuBuffer {
                id,
                size: d.size,
                usage: d.usage,
            })?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_shader_module(
        &mut self,
        _: Resource<GpuDevice>,
        d: wit::ShaderModuleDescriptor,
    ) -> Answer<Resource<GpuShaderModule>> {
        let request = Request::CreateShader {
            label: d.label,
            code: d.code,
        };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuShaderModule(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_bind_group_layout(
        &mut self,
        _: Resource<GpuDevice>,
        entries: Vec<wit::BindGroupLayoutEntry>,
    ) -> Answer<Resource<GpuBindGroupLayout>> {
        let entries = entries
            .into_iter()
            .map(|e| {
                let kind = match e.type_ {
                    wit::BufferBindingType::Uniform => BindingKind::Uniform,
                    wit::BufferBindingType::Storage => BindingKind::Storage,
                    wit::BufferBindingType::ReadOnlyStorage => BindingKind::ReadOnlyStorage,
                };
                (e.binding, kind)
            })
            .collect();
        let request = Request::CreateBindGroupLayout { entries };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuBindGroupLayout(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_pipeline_layout(
        &mut self,
        _: Resource<GpuDevice>,
        layouts: Vec<Resource<GpuBindGroupLayout>>,
    ) -> Answer<Resource<GpuPipelineLayout>> {
        let layouts = layouts
            .iter()
            .map(|l| Ok(self.table.get(l)?.0))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let request = Request::CreatePipelineLayout { layouts };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuPipelineLayout(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_compute_pipeline(
        &mut self,
        _: Resource<GpuDevice>,
        d: wit::ComputePipelineDescriptor,
    ) -> Answer<Resource<GpuComputePipeline>> {
        let module = self.table.get(&d.module)?.0;
        let layout = match &d.layout {
            Some(l) => Some(self.table.get(l)?.0),
            None => None,
        };
        let request = Request::CreatePipeline {
            label: d.label,
            module,
            entry_point: d.entry_point,
            layout,
        };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuComputePipeline(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_bind_group(
        &mut self,
        _: Resource<GpuDevice>,
        d: wit::BindGroupDescriptor,
    ) -> Answer<Resource<GpuBindGroup>> {
        let layout = self.table.get(&d.layout)?.0;
        let entries = d
            .entries
            .iter()
            .map(|e| {
                Ok(BindEntry {
                    binding: e.binding,
                    buffer: self.table.get(&e.buffer)?.id,
                    offset: e.offset,
                    size: e.size,
                })
            })
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let request = Request::CreateBindGroup {
            label: d.label,
            layout,
            entries,
        };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuBindGroup(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn create_command_encoder(
        &mut self,
        _: Resource<GpuDevice>,
    ) -> wasmtime::Result<Resource<GpuCommandEncoder>> {
        Ok(self.table.push(GpuCommandEncoder::default())?)
    }

    async fn drop(&mut self, rep: Resource<GpuDevice>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl GpuCtxView<'_> {
    fn device_info(&self) -> wasmtime::Result<&DeviceInfo> {
        self.ctx
            .device
            .as_ref()
            .ok_or_else(|| wasmtime::Error::msg("GPU device used before request-device"))
    }
}

/// `drop` for a handle that names one object on the GPU thread.
macro_rules! object_handle {
    ($trait:ident, $ty:ident) => {
        impl $trait for GpuCtxView<'_> {
            async fn drop(&mut self, rep: Resource<$ty>) -> wasmtime::Result<()> {
                let handle = self.table.delete(rep)?;
                self.free(handle.0);
                Ok(())
            }
        }
    };
}

object_handle!(HostShaderModule, GpuShaderModule);
object_handle!(HostBindGroupLayout, GpuBindGroupLayout);
object_handle!(HostPipelineLayout, GpuPipelineLayout);
object_handle!(HostBindGroup, GpuBindGroup);

impl HostComputePipeline for GpuCtxView<'_> {
    async fn get_bind_group_layout(
        &mut self,
        pipeline: Resource<GpuComputePipeline>,
        index: u32,
    ) -> Answer<Resource<GpuBindGroupLayout>> {
        let pipeline = self.table.get(&pipeline)?.0;
        let request = Request::PipelineBindGroupLayout { pipeline, index };
        match self.call(request).await.and_then(Reply::object) {
            Ok(id) => Ok(Ok(self.table.push(GpuBindGroupLayout(id))?)),
            Err(e) => answer(Err(e)),
        }
    }

    async fn drop(&mut self, rep: Resource<GpuComputePipeline>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rep)?;
        self.free(handle.0);
        Ok(())
    }
}

impl HostBuffer for GpuCtxView<'_> {
    async fn size(&mut self, buffer: Resource<GpuBuffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&buffer)?.size)
    }

    async fn usage(&mut self, buffer: Resource<GpuBuffer>) -> wasmtime::Result<wit::BufferUsage> {
        Ok(self.table.get(&buffer)?.usage)
    }

    async fn read(
        &mut self,
        buffer: Resource<GpuBuffer>,
        offset: u64,
        size: Option<u64>,
    ) -> Answer<Vec<u8>> {
        let buffer = self.table.get(&buffer)?.id;
        let request = Request::ReadBuffer {
            buffer,
            offset,
            size,
        };
        answer(self.call(request).await.and_then(Reply::bytes))
    }

    async fn destroy(&mut self, buffer: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        let buffer = self.table.get(&buffer)?.id;
        // Destroying twice or after a failure is harmless; nothing to report.
        let _ = self.call(Request::DestroyBuffer { buffer }).await;
        Ok(())
    }

    async fn drop(&mut self, rep: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rep)?;
        self.free(handle.id);
        Ok(())
    }
}

/// WIT usage flags as wgpu's.
fn usage_to_wgpu(usage: wit::BufferUsage) -> wgpu::BufferUsages {
    use wgpu::BufferUsages as G;
    use wit::BufferUsage as W;
    [
        (W::MAP_READ, G::MAP_READ),
        (W::MAP_WRITE, G::MAP_WRITE),
        (W::COPY_SRC, G::COPY_SRC),
        (W::COPY_DST, G::COPY_DST),
        (W::UNIFORM, G::UNIFORM),
        (W::STORAGE, G::STORAGE),
        (W::INDIRECT, G::INDIRECT),
    ]
    .into_iter()
    .filter(|(w, _)| usage.contains(*w))
    .fold(G::empty(), |all, (_, g)| all | g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usages_map_one_to_one() {
        let u = wit::BufferUsage::STORAGE | wit::BufferUsage::COPY_SRC;
        assert_eq!(
            usage_to_wgpu(u),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC
        );
        assert_eq!(
            usage_to_wgpu(wit::BufferUsage::empty()),
            wgpu::BufferUsages::empty()
        );
    }
}
