// c = a · b, one invocation per element of c: row id.y, column id.x.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
// n, k, m
@group(0) @binding(2) var<storage, read> dims: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = dims[0];
    let k = dims[1];
    let m = dims[2];
    let row = id.y;
    let col = id.x;
    if row >= n || col >= m {
        return;
    }
    var acc = 0.0;
    for (var t = 0u; t < k; t++) {
        acc += a[row * k + t] * b[t * m + col];
    }
    c[row * m + col] = acc;
}
