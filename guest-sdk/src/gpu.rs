//! GPU compute: run WGSL compute shaders on the host's GPU (`wasmhost:gpu/compute`).
//!
//! An endpoint that uses the GPU declares it, `#[wasmhost::endpoint(gpu = "any")]` (or an
//! adapter name such as `gpu = "H100"`); the host refuses to load it where it has no such
//! GPU. The common case is one call to [`run`]:
//!
//! ```no_run
//! # extern crate wasmhost_sdk as wasmhost;
//! # fn main() -> Result<(), wasmhost::gpu::Error> {
//! use wasmhost::gpu;
//! const ADD: &str = r#"
//! @group(0) @binding(0) var<storage, read> a: array<f32>;
//! @group(0) @binding(1) var<storage, read> b: array<f32>;
//! @group(0) @binding(2) var<storage, read_write> sum: array<f32>;
//! @compute @workgroup_size(64)
//! fn main(@builtin(global_invocation_id) id: vec3<u32>) {
//!     if id.x < arrayLength(&sum) { sum[id.x] = a[id.x] + b[id.x]; }
//! }"#;
//!
//! let (a, b) = (vec![1.0f32, 2.0], vec![10.0f32, 20.0]);
//! let mut sum = vec![0.0f32; 2];
//! wasmhost::gpu::run(
//!     ADD,
//!     "main",
//!     &[gpu::as_bytes(&a), gpu::as_bytes(&b)],
//!     &mut [gpu::as_bytes_mut(&mut sum)],
//!     (1, 1, 1),
//! )?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Device`] offers the steps one by one (buffers, shaders, pipelines, bind groups,
//! dispatches, reads) for work that keeps data on the GPU between dispatches, and
//! [`raw`] is the whole WIT interface. Every failure is an [`Error`] value: a shader that
//! does not compile says where ([`CompileMessage`]), and the call's limits (buffer bytes,
//! dispatches, GPU time) come back as errors rather than traps.

use std::fmt;

/// The generated `wasmhost:gpu/compute` bindings, for what the wrappers do not cover.
#[cfg(target_family = "wasm")]
pub use crate::component::wasmhost::gpu::compute as raw;
#[cfg(target_family = "wasm")]
use raw as wit;

/// A compiler message about a WGSL source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileMessage {
    /// What the compiler says, with the offending source line.
    pub message: String,
    /// 1-based line (0 when the message has no position).
    pub line: u32,
    /// 1-based column in bytes (0 when the message has no position).
    pub column: u32,
}

/// Why a GPU call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host has no usable GPU, or this endpoint did not declare `gpu`.
    Unavailable(String),
    /// The WGSL source does not compile.
    Compilation(Vec<CompileMessage>),
    /// A WebGPU rule was broken (sizes, bindings, usages).
    Validation(String),
    /// One of the call's limits would be passed (buffer bytes, dispatches, sizes).
    LimitExceeded(String),
    /// The GPU work did not finish within the call's GPU time.
    Timeout(String),
    /// The GPU is out of memory.
    OutOfMemory(String),
    /// The device was lost or the host failed.
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "GPU unavailable: {m}"),
            Error::Compilation(messages) => {
                f.write_str("WGSL does not compile")?;
                if let Some(m) = messages.first() {
                    let text = m.message.lines().next().unwrap_or_default();
                    write!(f, " at line {}, column {}: {text}", m.line, m.column)?;
                }
                Ok(())
            }
            Error::Validation(m) => write!(f, "GPU validation error: {m}"),
            Error::LimitExceeded(m) => write!(f, "GPU limit exceeded: {m}"),
            Error::Timeout(m) => write!(f, "GPU timeout: {m}"),
            Error::OutOfMemory(m) => write!(f, "GPU out of memory: {m}"),
            Error::Internal(m) => write!(f, "GPU error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The HTTP status an endpoint answers with when it fails with this error: 503 without
    /// a GPU, 422 for WGSL that does not compile, 413 past a limit, 504 past the GPU time,
    /// 500 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unavailable(_) | Error::OutOfMemory(_) => 503,
            Error::Compilation(_) => 422,
            Error::LimitExceeded(_) => 413,
            Error::Timeout(_) => 504,
            Error::Validation(_) | Error::Internal(_) => 500,
        }
    }
}

/// `{"detail": "..."}` with [`Error::status`]; compile errors add
/// `"errors": [{"line", "column", "message"}]`.
impl crate::IntoResponse for Error {
    fn into_response(self) -> crate::Response {
        let status = self.status();
        let detail = self.to_string();
        match self {
            Error::Compilation(messages) => {
                let errors: Vec<serde_json::Value> = messages
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "line": m.line,
                            "column": m.column,
                            "message": m.message,
                        })
                    })
                    .collect();
                crate::Response::new(status)
                    .json(&serde_json::json!({ "detail": detail, "errors": errors }))
            }
            _ => crate::Response::error(status, detail),
        }
    }
}

/// Numbers that travel to and from the GPU as their bytes.
///
/// Implemented for `f32`, `u32` and `i32`, WGSL's 32-bit scalars: every bit pattern is a
/// valid value and there is no padding, so their slices can be viewed as bytes (in memory
/// order, which is little-endian on wasm, as the GPU expects).
pub trait Scalar: Copy + sealed::Sealed {}
impl Scalar for f32 {}
impl Scalar for u32 {}
impl Scalar for i32 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
}

/// The bytes of a slice of 32-bit scalars, to use as a GPU input.
pub fn as_bytes<T: Scalar>(values: &[T]) -> &[u8] {
    // SAFETY: `Scalar` types are 4-byte plain numbers without padding; u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// The bytes of a mutable slice of 32-bit scalars, to receive a GPU output.
pub fn as_bytes_mut<T: Scalar>(values: &mut [T]) -> &mut [u8] {
    let len = std::mem::size_of_val(values);
    // SAFETY: as in `as_bytes`, and every bit pattern is a valid `Scalar`.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), len) }
}

/// `len` rounded up to a positive multiple of 4, the size unit of GPU buffers.
#[cfg(any(target_family = "wasm", test))]
fn padded(len: usize) -> u64 {
    (len.max(1) as u64).div_ceil(4) * 4
}

/// Runs one compute shader once: `inputs` are bound at `@group(0) @binding(0..)` as
/// `var<storage, read>`, `outputs` after them as `var<storage, read_write>` (zeroed), then
/// `workgroups` (x, y, z) are dispatched on `entry_point` and each output is read back.
///
/// Every binding must be used by the shader (the layout is derived from it).
pub fn run(
    wgsl: &str,
    entry_point: &str,
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
    workgroups: (u32, u32, u32),
) -> Result<(), Error> {
    imp::run(wgsl, entry_point, inputs, outputs, workgroups)
}

#[cfg(target_family = "wasm")]
pub use imp::{BindGroup, Buffer, ComputePipeline, Device, ShaderModule};
#[cfg(target_family = "wasm")]
pub use wit::{AdapterInfo, BufferUsage, DeviceType, Limits};

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::Error;

    pub(super) fn run(
        _: &str,
        _: &str,
        _: &[&[u8]],
        _: &mut [&mut [u8]],
        _: (u32, u32, u32),
    ) -> Result<(), Error> {
        Err(Error::Unavailable(
            "the GPU is reachable only from a wasm component".into(),
        ))
    }
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::{CompileMessage, Error, padded, wit};

    impl From<wit::GpuError> for Error {
        fn from(e: wit::GpuError) -> Self {
            match e {
                wit::GpuError::Unavailable(m) => Error::Unavailable(m),
                wit::GpuError::Compilation(messages) => Error::Compilation(
                    messages
                        .into_iter()
                        .map(|m| CompileMessage {
                            message: m.message,
                            line: m.line,
                            column: m.column,
                        })
                        .collect(),
                ),
                wit::GpuError::Validation(m) => Error::Validation(m),
                wit::GpuError::LimitExceeded(m) => Error::LimitExceeded(m),
                wit::GpuError::Timeout(m) => Error::Timeout(m),
                wit::GpuError::OutOfMemory(m) => Error::OutOfMemory(m),
                wit::GpuError::Internal(m) => Error::Internal(m),
            }
        }
    }

    pub(super) fn run(
        wgsl: &str,
        entry_point: &str,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        workgroups: (u32, u32, u32),
    ) -> Result<(), Error> {
        let device = Device::request()?;
        let module = device.create_shader_module(wgsl)?;
        let pipeline = device.create_compute_pipeline(&module, Some(entry_point))?;
        let mut buffers = Vec::with_capacity(inputs.len() + outputs.len());
        for input in inputs {
            buffers.push(device.create_buffer_init(input, wit::BufferUsage::STORAGE)?);
        }
        for output in outputs.iter() {
            let usage = wit::BufferUsage::STORAGE | wit::BufferUsage::COPY_SRC;
            buffers.push(device.create_buffer(padded(output.len()), usage)?);
        }
        let bound: Vec<&Buffer> = buffers.iter().collect();
        let group = device.create_bind_group(&pipeline, 0, &bound)?;
        device.dispatch(&pipeline, &[&group], workgroups)?;
        for (output, buffer) in outputs.iter_mut().zip(&buffers[inputs.len()..]) {
            buffer.read_into(output)?;
        }
        Ok(())
    }

    /// The host's GPU device and its queue.
    pub struct Device {
        device: wit::Device,
        queue: wit::Queue,
    }

    /// GPU memory.
    pub struct Buffer(wit::Buffer);

    /// Compiled WGSL.
    pub struct ShaderModule(wit::ShaderModule);

    /// A compute entry point with its layout.
    pub struct ComputePipeline(wit::ComputePipeline);

    /// Buffers bound to a pipeline's bind group layout.
    pub struct BindGroup(wit::BindGroup);

    impl Device {
        /// The host's GPU, or why this call cannot have it.
        pub fn request() -> Result<Device, Error> {
            let device = wit::request_device()?;
            let queue = device.queue();
            Ok(Device { device, queue })
        }

        /// The adapter the device runs on.
        pub fn adapter_info(&self) -> wit::AdapterInfo {
            self.device.adapter_info()
        }

        /// The device's limits and this call's budget.
        pub fn limits(&self) -> wit::Limits {
            self.device.limits()
        }

        /// The WIT device, for the whole interface.
        pub fn raw(&self) -> (&wit::Device, &wit::Queue) {
            (&self.device, &self.queue)
        }

        /// A zeroed buffer of `size` bytes (a multiple of 4).
        pub fn create_buffer(&self, size: u64, usage: wit::BufferUsage) -> Result<Buffer, Error> {
            let descriptor = wit::BufferDescriptor {
                label: None,
                size,
                usage,
            };
            Ok(Buffer(self.device.create_buffer(&descriptor)?))
        }

        /// A buffer holding `data`, zero-padded to a multiple of 4 bytes (`copy-dst` is added).
        pub fn create_buffer_init(
            &self,
            data: &[u8],
            usage: wit::BufferUsage,
        ) -> Result<Buffer, Error> {
            let buffer =
                self.create_buffer(padded(data.len()), usage | wit::BufferUsage::COPY_DST)?;
            if data.len().is_multiple_of(4) {
                self.write_buffer(&buffer, 0, data)?;
            } else {
                let mut bytes = data.to_vec();
                bytes.resize(padded(data.len()) as usize, 0);
                self.write_buffer(&buffer, 0, &bytes)?;
            }
            Ok(buffer)
        }

        /// Writes `data` at `offset` (both multiples of 4); the buffer needs `copy-dst`.
        pub fn write_buffer(&self, buffer: &Buffer, offset: u64, data: &[u8]) -> Result<(), Error> {
            Ok(self.queue.write_buffer(&buffer.0, offset, data)?)
        }

        /// Compiles WGSL; a source that does not compile gives [`Error::Compilation`].
        pub fn create_shader_module(&self, wgsl: &str) -> Result<ShaderModule, Error> {
            let descriptor = wit::ShaderModuleDescriptor {
                label: None,
                code: wgsl.to_owned(),
            };
            Ok(ShaderModule(self.device.create_shader_module(&descriptor)?))
        }

        /// A pipeline for `entry_point` (the only `@compute` function when `None`), with
        /// its layout derived from the shader.
        pub fn create_compute_pipeline(
            &self,
            module: &ShaderModule,
            entry_point: Option<&str>,
        ) -> Result<ComputePipeline, Error> {
            let descriptor = wit::ComputePipelineDescriptor {
                label: None,
                module: &module.0,
                entry_point: entry_point.map(str::to_owned),
                layout: None,
            };
            Ok(ComputePipeline(
                self.device.create_compute_pipeline(&descriptor)?,
            ))
        }

        /// Binds `buffers[i]` at `@binding(i)` of `@group(group)` of `pipeline`.
        pub fn create_bind_group(
            &self,
            pipeline: &ComputePipeline,
            group: u32,
            buffers: &[&Buffer],
        ) -> Result<BindGroup, Error> {
            let layout = pipeline.0.get_bind_group_layout(group)?;
            let entries: Vec<wit::BindGroupEntry<'_>> = buffers
                .iter()
                .zip(0u32..)
                .map(|(buffer, binding)| wit::BindGroupEntry {
                    binding,
                    buffer: &buffer.0,
                    offset: 0,
                    size: None,
                })
                .collect();
            let descriptor = wit::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries,
            };
            Ok(BindGroup(self.device.create_bind_group(&descriptor)?))
        }

        /// Dispatches `workgroups` (x, y, z) of `pipeline` with `bind_groups` at groups
        /// 0, 1, ..., and waits until the GPU is done.
        pub fn dispatch(
            &self,
            pipeline: &ComputePipeline,
            bind_groups: &[&BindGroup],
            workgroups: (u32, u32, u32),
        ) -> Result<(), Error> {
            let encoder = self.device.create_command_encoder();
            {
                // The pass is a child of the encoder: it must go first.
                let pass = encoder.begin_compute_pass()?;
                pass.set_pipeline(&pipeline.0);
                for (group, index) in bind_groups.iter().zip(0u32..) {
                    pass.set_bind_group(index, &group.0);
                }
                let (x, y, z) = workgroups;
                pass.dispatch_workgroups(x, Some(y), Some(z));
                pass.end()?;
            }
            let commands = encoder.finish()?;
            Ok(self.queue.submit(vec![commands])?)
        }
    }

    impl Buffer {
        /// Size in bytes.
        pub fn size(&self) -> u64 {
            self.0.size()
        }

        /// Reads `size` bytes at `offset` back from the GPU (the rest when `None`); the
        /// buffer needs `copy-src`.
        pub fn read(&self, offset: u64, size: Option<u64>) -> Result<Vec<u8>, Error> {
            Ok(self.0.read(offset, size)?)
        }

        /// Fills `out` from the start of the buffer.
        pub fn read_into(&self, out: &mut [u8]) -> Result<(), Error> {
            let bytes = self.read(0, Some(padded(out.len())))?;
            match bytes.get(..out.len()) {
                Some(b) => {
                    out.copy_from_slice(b);
                    Ok(())
                }
                None => Err(Error::Internal("the host returned too few bytes".into())),
            }
        }

        /// The WIT buffer, for the whole interface.
        pub fn raw(&self) -> &wit::Buffer {
            &self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_view_as_little_endian_bytes() {
        let values = [1.0f32, -2.5];
        let bytes = as_bytes(&values);
        assert_eq!(bytes.len(), 8);
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        let mut out = [0u32; 2];
        as_bytes_mut(&mut out).copy_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn sizes_pad_to_four() {
        assert_eq!(padded(0), 4);
        assert_eq!(padded(5), 8);
        assert_eq!(padded(8), 8);
    }

    #[test]
    fn compile_errors_print_their_position() {
        let e = Error::Compilation(vec![CompileMessage {
            message: "expected `;`, found `}`\n ┌─ wgsl:3:5".into(),
            line: 3,
            column: 5,
        }]);
        assert_eq!(
            e.to_string(),
            "WGSL does not compile at line 3, column 5: expected `;`, found `}`"
        );
    }

    #[test]
    fn errors_answer_with_a_fitting_status() {
        use crate::IntoResponse;
        let response = Error::Compilation(vec![CompileMessage {
            message: "unknown identifier".into(),
            line: 2,
            column: 7,
        }])
        .into_response();
        assert_eq!(response.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["errors"][0]["line"], 2);
        assert_eq!(body["errors"][0]["column"], 7);
        assert_eq!(Error::Timeout("t".into()).into_response().status, 504);
        assert_eq!(Error::LimitExceeded("l".into()).into_response().status, 413);
        assert_eq!(Error::Unavailable("u".into()).into_response().status, 503);
        assert_eq!(Error::Validation("v".into()).into_response().status, 500);
    }

    #[test]
    fn outside_wasm_there_is_no_gpu() {
        #[cfg(not(target_family = "wasm"))]
        assert!(matches!(
            run("", "main", &[], &mut [], (1, 1, 1)),
            Err(Error::Unavailable(_))
        ));
    }
}
