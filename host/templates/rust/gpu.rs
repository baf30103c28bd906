//! {{name}}: a GPU endpoint. `POST {"a": [1, 2], "b": [10, 20]}` answers
//! `{"sum": [11, 22]}`, added by a WGSL compute shader.
//!
//! Try it: `wasmhost run .` (add `--gpu-fallback software` on a machine without a GPU)
//! then `curl -d '{"a": [1, 2], "b": [10, 20]}' http://127.0.0.1:8000/`.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::gpu;
use wasmhost::{IntoResponse, Json, Response};

/// Invocations per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: usize = 64;

/// One invocation adds one pair.
const KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&sum) {
        sum[id.x] = a[id.x] + b[id.x];
    }
}
"#;

/// The element-wise sum.
#[derive(Serialize, JsonSchema)]
struct Sum {
    /// `a[i] + b[i]` for every `i`.
    sum: Vec<f32>,
}

/// Adds two vectors of the same length on the GPU.
#[wasmhost::endpoint(method = "POST", gpu = "any", docs = true)]
fn add(a: Vec<f32>, b: Vec<f32>) -> Result<Json<Sum>, Response> {
    if a.len() != b.len() {
        return Err(Response::error(422, "a and b differ in length"));
    }
    if a.is_empty() {
        return Ok(Json(Sum { sum: Vec::new() }));
    }
    let groups = u32::try_from(a.len().div_ceil(WORKGROUP))
        .ok()
        .filter(|g| *g <= 65_535)
        .ok_or_else(|| Response::error(413, "too many elements for one dispatch"))?;
    let mut sum = vec![0.0f32; a.len()];
    gpu::run(
        KERNEL,
        "main",
        &[gpu::as_bytes(&a), gpu::as_bytes(&b)],
        &mut [gpu::as_bytes_mut(&mut sum)],
        (groups, 1, 1),
    )
    .map_err(IntoResponse::into_response)?;
    Ok(Json(Sum { sum }))
}
