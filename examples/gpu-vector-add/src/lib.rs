//! Vector addition on the GPU: `POST {"a": [1, 2], "b": [10, 20]}` → `{"sum": [11, 22]}`,
//! and the same as a function (`vector_sum`, which declares `gpu` like the endpoint;
//! `vector_sum_undeclared` does not, and is refused the GPU).
//!
//! The whole GPU part is one `wasmhost::gpu::run` call: the two inputs are bound at
//! bindings 0 and 1, the output at 2, and one invocation adds one pair.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::gpu;
use wasmhost::{IntoResponse, Json, Response};

/// Invocations per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: usize = 64;

/// Most workgroups per dispatch dimension WebGPU guarantees.
const MAX_GROUPS_PER_DIM: usize = 65_535;

/// One invocation per element; workgroups are laid out in 2D so that more than
/// 65,535 × 64 elements fit in one dispatch.
const KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (group.y * groups.x + group.x) * 64u + local;
    if i < arrayLength(&sum) {
        sum[i] = a[i] + b[i];
    }
}
"#;

/// The element-wise sum.
#[derive(Serialize, JsonSchema)]
struct Sum {
    /// `a[i] + b[i]` for every `i`.
    sum: Vec<f32>,
}

/// Adds two vectors of the same length, element by element, on the GPU.
#[wasmhost::endpoint(method = "POST", gpu = "any", docs = true)]
fn vector_add(a: Vec<f32>, b: Vec<f32>) -> Result<Json<Sum>, Response> {
    add(&a, &b).map(|sum| Json(Sum { sum }))
}

/// The element-wise sum of two vectors, computed on the GPU by a function.
#[wasmhost::function(gpu = "any")]
fn vector_sum(a: Vec<f32>, b: Vec<f32>) -> Result<Vec<f32>, String> {
    add(&a, &b).map_err(|r| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
}

/// Like `vector_sum`, but without declaring a GPU: the host refuses it one.
#[wasmhost::function]
fn vector_sum_undeclared(a: Vec<f32>, b: Vec<f32>) -> Result<Vec<f32>, String> {
    add(&a, &b).map_err(|r| String::from_utf8_lossy(&r.body).into_owned())
}

/// `a + b` on the GPU, or the error response.
fn add(a: &[f32], b: &[f32]) -> Result<Vec<f32>, Response> {
    if a.len() != b.len() {
        return Err(Response::error(
            422,
            format!("a has {} elements but b has {}", a.len(), b.len()),
        ));
    }
    if a.is_empty() {
        return Ok(Vec::new());
    }
    let mut sum = vec![0.0f32; a.len()];
    let groups = a.len().div_ceil(WORKGROUP);
    let x = groups.min(MAX_GROUPS_PER_DIM);
    let y = groups.div_ceil(MAX_GROUPS_PER_DIM);
    let too_big = || Response::error(413, "too many elements for one dispatch");
    let workgroups = (
        u32::try_from(x).map_err(|_| too_big())?,
        u32::try_from(y).map_err(|_| too_big())?,
        1,
    );
    gpu::run(
        KERNEL,
        "main",
        &[gpu::as_bytes(a), gpu::as_bytes(b)],
        &mut [gpu::as_bytes_mut(&mut sum)],
        workgroups,
    )
    .map_err(IntoResponse::into_response)?;
    Ok(sum)
}
