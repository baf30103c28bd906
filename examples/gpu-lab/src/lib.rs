//! Endpoints that exercise the edges of the GPU capability: failures on purpose for the
//! host's tests, and timings measured inside the guest for its benchmarks.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::Json;
use wasmhost::gpu::{self, BufferUsage, Device};

/// The matmul kernel of `examples/gpu-matmul`, for the benchmark.
const MATMUL: &str = include_str!("../../gpu-matmul/src/matmul.wgsl");

/// What a successful call did.
#[derive(Serialize, JsonSchema)]
struct Done {
    /// A value read back from the GPU, when there is one.
    value: Option<u32>,
}

/// Creates one storage buffer of `bytes` bytes (past the call's limit: a 413).
#[wasmhost::endpoint(gpu = "any")]
fn alloc(bytes: u64) -> Result<Json<Done>, gpu::Error> {
    let device = Device::request()?;
    let buffer = device.create_buffer(bytes, BufferUsage::STORAGE | BufferUsage::COPY_SRC)?;
    let value = buffer.read(0, Some(4.min(buffer.size())))?;
    Ok(Json(Done {
        value: value
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    }))
}

/// Loops `iterations` times in each of `workgroups` × 64 invocations (keep iterations
/// under 65,535: llvmpipe cuts longer loops). Past the GPU time: a 504.
#[wasmhost::endpoint(gpu = "any")]
fn spin(workgroups: u32, iterations: u32) -> Result<Json<Done>, gpu::Error> {
    const KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read> n: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x;
    for (var i = 0u; i < n[0]; i++) {
        x = x * 1664525u + 1013904223u;
    }
    if x == 7u {
        out[0] = x;
    }
    out[1] = n[0];
}
"#;
    let mut out = [0u32; 2];
    gpu::run(
        KERNEL,
        "main",
        &[gpu::as_bytes(&[iterations])],
        &mut [gpu::as_bytes_mut(&mut out)],
        (workgroups, 1, 1),
    )?;
    Ok(Json(Done {
        value: Some(out[1]),
    }))
}

/// Compiles `wgsl` (a 422 with positions when it does not compile).
#[wasmhost::endpoint(method = "POST", gpu = "any")]
fn compile(wgsl: String) -> Result<Json<Done>, gpu::Error> {
    Device::request()?.create_shader_module(&wgsl)?;
    Ok(Json(Done { value: None }))
}

/// Writes 3 bytes into a buffer: not a multiple of 4, so a validation error (500).
#[wasmhost::endpoint(gpu = "any")]
fn misaligned() -> Result<Json<Done>, gpu::Error> {
    let device = Device::request()?;
    let buffer = device.create_buffer(16, BufferUsage::STORAGE | BufferUsage::COPY_DST)?;
    device.write_buffer(&buffer, 0, &[1, 2, 3])?;
    Ok(Json(Done { value: None }))
}

/// Uses the GPU without declaring it: a 503 saying so.
#[wasmhost::endpoint]
fn undeclared() -> Result<Json<Done>, gpu::Error> {
    Device::request()?;
    Ok(Json(Done { value: None }))
}

/// The adapter the host lends.
#[derive(Serialize, JsonSchema)]
struct Adapter {
    name: String,
    software: bool,
    max_buffer_size: u64,
    call_buffer_bytes: u64,
}

/// Describes the GPU.
#[wasmhost::endpoint(gpu = "any")]
fn adapter() -> Result<Json<Adapter>, gpu::Error> {
    let device = Device::request()?;
    let info = device.adapter_info();
    let limits = device.limits();
    Ok(Json(Adapter {
        name: info.name,
        software: info.device_type == gpu::DeviceType::Cpu,
        max_buffer_size: limits.max_buffer_size,
        call_buffer_bytes: limits.call_buffer_bytes,
    }))
}

/// Timings measured inside the guest, in microseconds.
#[derive(Serialize, JsonSchema)]
struct Timings {
    /// Fastest of the repetitions.
    best_us: f64,
    /// Mean of the repetitions.
    mean_us: f64,
    /// A checksum of the result, so the work cannot be skipped.
    checksum: f64,
}

/// Multiplies two n×n matrices `reps` times with data kept on the GPU, timing each
/// dispatch from submit to completion (what native wgpu's `submit` + `poll` measures).
#[wasmhost::endpoint(gpu = "any", timeout = "30m")]
fn bench_matmul(n: u32, reps: u32) -> Result<Json<Timings>, gpu::Error> {
    let device = Device::request()?;
    let len = (n as usize) * (n as usize);
    let a: Vec<f32> = (0..len).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.5).collect();
    let storage = BufferUsage::STORAGE;
    let bufs = [
        device.create_buffer_init(gpu::as_bytes(&a), storage)?,
        device.create_buffer_init(gpu::as_bytes(&b), storage)?,
        device.create_buffer_init(gpu::as_bytes(&[n, n, n]), storage)?,
        device.create_buffer((len * 4) as u64, storage | BufferUsage::COPY_SRC)?,
    ];
    let module = device.create_shader_module(MATMUL)?;
    let pipeline = device.create_compute_pipeline(&module, Some("main"))?;
    let group = device.create_bind_group(&pipeline, 0, &bufs.iter().collect::<Vec<_>>())?;
    let groups = n.div_ceil(8);
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let started = Instant::now();
        device.dispatch(&pipeline, &[&group], (groups, groups, 1))?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let c = bufs[3].read(0, Some(64.min(len as u64 * 4)))?;
    Ok(Json(Timings {
        best_us: times.iter().copied().fold(f64::MAX, f64::min),
        mean_us: times.iter().sum::<f64>() / times.len() as f64,
        checksum: c.iter().map(|&b| f64::from(b)).sum(),
    }))
}

/// Per-call cost of the host API, in microseconds per call.
#[derive(Serialize, JsonSchema)]
struct Overhead {
    /// `buffer.size()`: a host call that stays in the store.
    local_us: f64,
    /// `queue.write-buffer` of 4 bytes: a round trip to the GPU thread.
    write_us: f64,
    /// An empty dispatch, submitted and waited for.
    dispatch_us: f64,
    /// `buffer.read` of 4 bytes (copy, submit, map, wait).
    read_us: f64,
}

/// Measures the per-call overhead of the GPU API with `reps` calls of each kind.
#[wasmhost::endpoint(gpu = "any", timeout = "10m")]
fn overhead(reps: u32) -> Result<Json<Overhead>, gpu::Error> {
    const NOP: &str = "@group(0) @binding(0) var<storage, read_write> x: array<u32>;\n\
        @compute @workgroup_size(1) fn main() { x[0] = x[0] + 1u; }";
    let reps = reps.max(1);
    let device = Device::request()?;
    let usage = BufferUsage::STORAGE | BufferUsage::COPY_DST | BufferUsage::COPY_SRC;
    let buffer = device.create_buffer(16, usage)?;
    let module = device.create_shader_module(NOP)?;
    let pipeline = device.create_compute_pipeline(&module, None)?;
    let group = device.create_bind_group(&pipeline, 0, &[&buffer])?;
    let per_call = |f: &mut dyn FnMut() -> Result<(), gpu::Error>| {
        let started = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        Ok::<_, gpu::Error>(started.elapsed().as_secs_f64() * 1e6 / f64::from(reps))
    };
    let local_us = per_call(&mut || {
        std::hint::black_box(buffer.size());
        Ok(())
    })?;
    let write_us = per_call(&mut || device.write_buffer(&buffer, 0, &[0; 4]))?;
    let dispatch_us = per_call(&mut || device.dispatch(&pipeline, &[&group], (1, 1, 1)))?;
    let read_us = per_call(&mut || buffer.read(0, Some(4)).map(drop))?;
    Ok(Json(Overhead {
        local_us,
        write_us,
        dispatch_us,
        read_us,
    }))
}
