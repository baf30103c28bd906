//! The GPU thread's side of guest calls: each session's objects and budget, and the wgpu
//! calls that serve a request, every one inside error scopes so failures become values.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::CompileMessage;
use super::protocol::{BindEntry, BindingKind, ObjectId, Reply, Request};
use super::work::{Outcome, check_range};
use super::{GpuConfig, GpuError};

/// Largest WGSL source accepted, in bytes.
const MAX_SHADER_BYTES: usize = 1 << 20;

/// Most objects one session may hold at once.
const MAX_OBJECTS: usize = 100_000;

/// One object a guest created.
enum Object {
    Buffer(wgpu::Buffer),
    Shader(wgpu::ShaderModule),
    BindGroupLayout(wgpu::BindGroupLayout),
    PipelineLayout(wgpu::PipelineLayout),
    Pipeline(wgpu::ComputePipeline),
    BindGroup(wgpu::BindGroup),
}

/// What one store holds on the GPU thread, and what it has used of its budget.
#[derive(Default)]
pub(super) struct Session {
    objects: HashMap<ObjectId, Object>,
    next_id: ObjectId,
    buffer_bytes: u64,
    pub(super) dispatches: u64,
    /// GPU time waited for so far.
    pub(super) gpu_time: Duration,
}

macro_rules! getter {
    ($name:ident, $variant:ident, $ty:ty, $what:literal) => {
        pub(super) fn $name(&self, id: ObjectId) -> Result<&$ty, GpuError> {
            match self.objects.get(&id) {
                Some(Object::$variant(x)) => Ok(x),
                _ => Err(GpuError::validation(concat!(
                    "the ",
                    $what,
                    " was dropped or destroyed before this use"
                ))),
            }
        }
    };
}

impl Session {
    getter!(buffer, Buffer, wgpu::Buffer, "buffer");
    getter!(shader, Shader, wgpu::ShaderModule, "shader module");
    getter!(
        bind_group_layout,
        BindGroupLayout,
        wgpu::BindGroupLayout,
        "bind group layout"
    );
    getter!(
        pipeline_layout,
        PipelineLayout,
        wgpu::PipelineLayout,
        "pipeline layout"
    );
    getter!(
        pipeline,
        Pipeline,
        wgpu::ComputePipeline,
        "compute pipeline"
    );
    getter!(bind_group, BindGroup, wgpu::BindGroup, "bind group");

    fn insert(&mut self, object: Object) -> Result<ObjectId, GpuError> {
        if self.objects.len() >= MAX_OBJECTS {
            return Err(GpuError::LimitExceeded(format!(
                "this call holds {MAX_OBJECTS} GPU objects already; drop some first"
            )));
        }
        self.next_id = self.next_id.wrapping_add(1);
        while self.objects.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        self.objects.insert(self.next_id, object);
        Ok(self.next_id)
    }

    /// Frees one object (the guest dropped its handle).
    pub(super) fn free(&mut self, id: ObjectId) {
        if let Some(Object::Buffer(buffer)) = self.objects.remove(&id) {
            self.buffer_bytes = self.buffer_bytes.saturating_sub(buffer.size());
            buffer.destroy();
        }
    }

    /// Frees everything (the store ended).
    pub(super) fn free_all(&mut self) {
        for (_, object) in self.objects.drain() {
            if let Object::Buffer(buffer) = object {
                buffer.destroy();
            }
        }
        self.buffer_bytes = 0;
    }
}

/// The device and everything the GPU thread needs to serve requests.
pub(super) struct DeviceCtx {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) limits: wgpu::Limits,
    pub(super) config: GpuConfig,
    /// Why the device was lost, once it has been.
    pub(super) lost: Arc<Mutex<Option<String>>>,
}

impl DeviceCtx {
    /// Runs `f` inside out-of-memory, internal and validation error scopes (and a panic
    /// guard), turning whatever wgpu reports into a [`GpuError`].
    pub(super) fn scoped<T>(&self, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        if let Some(reason) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(GpuError::Internal(format!(
                "the GPU device was lost ({reason})"
            )));
        }
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
        // Scopes pop in reverse order; on native the futures are ready at once.
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(internal.pop()),
            pollster::block_on(oom.pop()),
        ];
        match outcome {
            Err(panic) => Err(GpuError::Internal(format!(
                "wgpu panicked: {}",
                panic_text(panic.as_ref())
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(value)) => match errors.into_iter().flatten().next() {
                Some(e) => Err(e.into()),
                None => Ok(value),
            },
        }
    }

    /// GPU time `session` may still wait for.
    pub(super) fn remaining(&self, session: &Session) -> Duration {
        self.config.call_gpu_time.saturating_sub(session.gpu_time)
    }

    pub(super) fn require_time(&self, session: &Session) -> Result<(), GpuError> {
        if self.remaining(session).is_zero() {
            return Err(GpuError::Timeout(format!(
                "this call has used up its GPU time of {:?}",
                self.config.call_gpu_time
            )));
        }
        Ok(())
    }

    /// Serves one request of `session`.
    pub(super) fn handle(&self, s: &mut Session, request: Request) -> Result<Outcome, GpuError> {
        let object = |id| Ok(Outcome::Ready(Reply::Object(id)));
        match request {
            Request::CreateBuffer { label, size, usage } => {
                object(self.create_buffer(s, label.as_deref(), size, usage)?)
            }
            Request::CreateShader { label, code } => {
                object(self.create_shader(s, label.as_deref(), &code)?)
            }
            Request::CreateBindGroupLayout { entries } => {
                let layout = self.scoped(|| Ok(self.bind_group_layout(&entries)))?;
                object(s.insert(Object::BindGroupLayout(layout))?)
            }
            Request::CreatePipelineLayout { layouts } => {
                let layout = {
                    let layouts = layouts
                        .iter()
                        .map(|id| s.bind_group_layout(*id).map(Some))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.scoped(|| {
                        Ok(self
                            .device
                            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                                label: None,
                                bind_group_layouts: &layouts,
                                immediate_size: 0,
                            }))
                    })?
                };
                object(s.insert(Object::PipelineLayout(layout))?)
            }
            Request::CreatePipeline {
                label,
                module,
                entry_point,
                layout,
            } => {
                let module = s.shader(module)?;
                let layout = layout.map(|id| s.pipeline_layout(id)).transpose()?;
                let pipeline = self.scoped(|| {
                    Ok(self
                        .device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: label.as_deref(),
                            layout,
                            module,
                            entry_point: entry_point.as_deref(),
                            compilation_options: Default::default(),
                            cache: None,
                        }))
                })?;
                object(s.insert(Object::Pipeline(pipeline))?)
            }
            Request::PipelineBindGroupLayout { pipeline, index } => {
                let pipeline = s.pipeline(pipeline)?;
                let layout = self.scoped(|| Ok(pipeline.get_bind_group_layout(index)))?;
                object(s.insert(Object::BindGroupLayout(layout))?)
            }
            Request::CreateBindGroup {
                label,
                layout,
                entries,
            } => object(self.create_bind_group(s, label.as_deref(), layout, &entries)?),
            Request::WriteBuffer {
                buffer,
                offset,
                data,
            } => {
                let buffer = s.buffer(buffer)?;
                let len = data.len() as u64;
                check_range("queue.write-buffer", buffer.size(), offset, len)?;
                self.scoped(|| {
                    self.queue.write_buffer(buffer, offset, &data);
                    Ok(())
                })?;
                Ok(Outcome::Ready(Reply::Done))
            }
            Request::Submit { command_buffers } => self.submit(s, &command_buffers),
            Request::ReadBuffer {
                buffer,
                offset,
                size,
            } => self.read(s, buffer, offset, size),
            Request::DestroyBuffer { buffer } => {
                s.free(buffer);
                Ok(Outcome::Ready(Reply::Done))
            }
        }
    }

    fn create_buffer(
        &self,
        s: &mut Session,
        label: Option<&str>,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<ObjectId, GpuError> {
        if !size.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            return Err(GpuError::validation(format!(
                "a buffer's size must be a multiple of 4 bytes, not {size}"
            )));
        }
        if size > self.limits.max_buffer_size {
            return Err(GpuError::LimitExceeded(format!(
                "a buffer of {size} bytes is larger than the largest this device allows \
                 ({} bytes)",
                self.limits.max_buffer_size
            )));
        }
        let total = s.buffer_bytes.saturating_add(size);
        if total > self.config.call_buffer_bytes {
            return Err(GpuError::LimitExceeded(format!(
                "a buffer of {size} bytes would bring this call's GPU buffers to {total} \
                 bytes, over its limit of {} bytes",
                self.config.call_buffer_bytes
            )));
        }
        let buffer = self.scoped(|| {
            Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label,
                size,
                usage,
                mapped_at_creation: false,
            }))
        })?;
        let id = s.insert(Object::Buffer(buffer))?;
        s.buffer_bytes = total;
        Ok(id)
    }

    fn create_shader(
        &self,
        s: &mut Session,
        label: Option<&str>,
        code: &str,
    ) -> Result<ObjectId, GpuError> {
        if code.len() > MAX_SHADER_BYTES {
            return Err(GpuError::LimitExceeded(format!(
                "a WGSL source of {} bytes is over the limit of {MAX_SHADER_BYTES} bytes",
                code.len()
            )));
        }
        let mut module = None;
        let created = self.scoped(|| {
            module = Some(
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label,
                        source: wgpu::ShaderSource::Wgsl(code.into()),
                    }),
            );
            Ok(())
        });
        match (created, module) {
            (Ok(()), Some(module)) => s.insert(Object::Shader(module)),
            (Err(e), Some(module)) => {
                let info = pollster::block_on(module.get_compilation_info());
                let messages: Vec<CompileMessage> = info
                    .messages
                    .into_iter()
                    .filter(|m| m.message_type == wgpu::CompilationMessageType::Error)
                    .map(|m| {
                        let at = m.location;
                        CompileMessage {
                            message: super::error::compile_report(&m.message),
                            line: at.map_or(0, |l| l.line_number),
                            column: at.map_or(0, |l| l.line_position),
                            offset: at.map_or(0, |l| l.offset),
                            length: at.map_or(0, |l| l.length),
                        }
                    })
                    .collect();
                Err(if messages.is_empty() {
                    e
                } else {
                    GpuError::Compilation(messages)
                })
            }
            (Err(e), None) => Err(e),
            (Ok(()), None) => Err(GpuError::Internal("no shader module was created".into())),
        }
    }

    fn bind_group_layout(&self, entries: &[(u32, BindingKind)]) -> wgpu::BindGroupLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = entries
            .iter()
            .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::Storage => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                        BindingKind::ReadOnlyStorage => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        self.device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            })
    }

    fn create_bind_group(
        &self,
        s: &mut Session,
        label: Option<&str>,
        layout: ObjectId,
        entries: &[BindEntry],
    ) -> Result<ObjectId, GpuError> {
        let group = self.bind_group(s, label, layout, entries)?;
        s.insert(Object::BindGroup(group))
    }

    fn bind_group(
        &self,
        s: &Session,
        label: Option<&str>,
        layout: ObjectId,
        entries: &[BindEntry],
    ) -> Result<wgpu::BindGroup, GpuError> {
        let layout = s.bind_group_layout(layout)?;
        let mut resolved = Vec::with_capacity(entries.len());
        for e in entries {
            let buffer = s.buffer(e.buffer)?;
            let size = match e.size {
                Some(size) => Some(NonZeroU64::new(size).ok_or_else(|| {
                    GpuError::validation(format!("binding {}: a size of 0 bytes", e.binding))
                })?),
                None => None,
            };
            let len = size.map_or(buffer.size().saturating_sub(e.offset), NonZeroU64::get);
            check_range(
                &format!("binding {}", e.binding),
                buffer.size(),
                e.offset,
                len,
            )?;
            resolved.push(wgpu::BindGroupEntry {
                binding: e.binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: e.offset,
                    size,
                }),
            });
        }
        self.scoped(|| {
            Ok(self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label,
                layout,
                entries: &resolved,
            }))
        })
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
