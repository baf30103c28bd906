//! Matrix multiplication on the GPU: `POST {"a": [[..]], "b": [[..]]}` → `{"c": [[..]]}`,
//! where `a` is n×k, `b` is k×m and `c = a · b` is n×m, all f32.
//!
//! A request may bring its own WGSL as `"kernel"` (same bindings and entry point `main`);
//! one that does not compile is answered 422 with the compiler's line and column.

use schemars::JsonSchema;
use serde::Serialize;
use wasmhost::gpu;
use wasmhost::{IntoResponse, Json, Response};

/// Longest inner dimension: each output element loops `k` times, and software Vulkan
/// (llvmpipe) silently cuts loops past 65,535 iterations.
const MAX_K: usize = 4096;

/// Side of the square workgroup (the shader's `@workgroup_size(8, 8)`).
const TILE: usize = 8;

/// One invocation per element of `c` (also used by `examples/gpu-lab`'s benchmark).
const KERNEL: &str = include_str!("matmul.wgsl");

/// The product.
#[derive(Serialize, JsonSchema)]
struct Product {
    /// `a · b`, n rows of m columns.
    c: Vec<Vec<f32>>,
}

/// Multiplies the n×k matrix `a` by the k×m matrix `b` on the GPU.
///
/// `kernel` optionally replaces the built-in WGSL: bindings 0 `a`, 1 `b` (row-major
/// f32), 2 `[n, k, m]` (u32), 3 `c` (read-write), entry point `main`, 8×8 workgroups.
#[wasmhost::endpoint(method = "POST", gpu = "any", docs = true)]
fn matmul(
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    kernel: Option<String>,
) -> Result<Json<Product>, Response> {
    let (n, k) = shape("a", &a)?;
    let (k2, m) = shape("b", &b)?;
    if k != k2 && n > 0 {
        return Err(Response::error(
            422,
            format!("a is {n}×{k} but b is {k2}×{m}: a's columns must match b's rows"),
        ));
    }
    if k > MAX_K {
        return Err(Response::error(
            422,
            format!("k = {k} is over {MAX_K}, the longest inner dimension this kernel takes"),
        ));
    }
    if n == 0 || m == 0 || k == 0 {
        return Ok(Json(Product {
            c: vec![vec![0.0; m]; n],
        }));
    }
    let groups = |len: usize| u32::try_from(len.div_ceil(TILE));
    let (Ok(gx), Ok(gy)) = (groups(m), groups(n)) else {
        return Err(Response::error(413, "the product is too large"));
    };
    let dims: Vec<u32> = [n, k, m]
        .iter()
        .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
        .collect();
    let a: Vec<f32> = a.concat();
    let b: Vec<f32> = b.concat();
    let mut c = vec![0.0f32; n * m];
    gpu::run(
        kernel.as_deref().unwrap_or(KERNEL),
        "main",
        &[gpu::as_bytes(&a), gpu::as_bytes(&b), gpu::as_bytes(&dims)],
        &mut [gpu::as_bytes_mut(&mut c)],
        (gx, gy, 1),
    )
    .map_err(IntoResponse::into_response)?;
    Ok(Json(Product {
        c: c.chunks(m).map(<[f32]>::to_vec).collect(),
    }))
}

/// Rows and columns of a matrix whose rows all have the same length.
fn shape(name: &str, rows: &[Vec<f32>]) -> Result<(usize, usize), Response> {
    let columns = rows.first().map_or(0, Vec::len);
    match rows.iter().position(|r| r.len() != columns) {
        Some(i) => Err(Response::error(
            422,
            format!(
                "{name} is not a matrix: row 0 has {columns} columns but row {i} has {}",
                rows[i].len()
            ),
        )),
        None => Ok((rows.len(), columns)),
    }
}
