//! GPU compute end to end: guests run WGSL on the host's GPU through `wasmhost:gpu`, served
//! over real HTTP. Without a GPU they run on Mesa's software Vulkan (lavapipe), which CI
//! installs; on a machine with no Vulkan adapter at all each test prints a notice and
//! passes without checking anything.

mod common;

use std::sync::OnceLock;

use common::{Host, client, example, shared_cache, wasmhost};
use serde_json::{Value, json};

/// Whether any Vulkan adapter (software included) exists; prints why not, once.
fn have_gpu() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let (code, out) = wasmhost(&["gpu", "--gpu-fallback", "software"]);
        if code != 0 {
            // .ci/run installs lavapipe: in CI a missing adapter is a failure, not a skip.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no Vulkan adapter: {}",
                out.trim()
            );
            eprintln!(
                "NOTICE: no Vulkan adapter on this machine, GPU tests skipped \
                 (apt-get install mesa-vulkan-drivers libvulkan1): {}",
                out.trim()
            );
        }
        code == 0
    })
}

/// Skips the test (with a notice) when there is no adapter.
macro_rules! require_gpu {
    () => {
        if !have_gpu() {
            eprintln!("NOTICE: skipped: no Vulkan adapter");
            return;
        }
    };
}

fn software(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--gpu-fallback", "software"];
    args.extend_from_slice(extra);
    args
}

/// Deterministic pseudo-random numbers in [-1, 1).
fn numbers(seed: u32, count: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..count)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn matrix(seed: u32, rows: usize, columns: usize) -> Vec<Vec<f32>> {
    numbers(seed, rows * columns)
        .chunks(columns.max(1))
        .map(<[f32]>::to_vec)
        .take(rows)
        .collect()
}

fn cpu_product(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let m = b.first().map_or(0, Vec::len);
    a.iter()
        .map(|row| {
            (0..m)
                .map(|j| {
                    row.iter()
                        .zip(b)
                        .map(|(x, r)| *x as f64 * r[j] as f64)
                        .sum()
                })
                .collect()
        })
        .collect()
}

async fn post(url: &str, host: Option<String>, body: &Value) -> (u16, Value) {
    let mut request = client().post(url).json(body);
    if let Some(h) = host {
        request = request.header("host", h);
    }
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(host: &Host, function: &str, query: &str) -> (u16, Value) {
    let r = client()
        .get(host.url(&format!("/?{query}")))
        .header(
            "host",
            format!("gpu-lab-{function}.localhost:{}", host.port),
        )
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Multiplies on the host and checks against the CPU.
async fn check_matmul(host: &Host, n: usize, k: usize, m: usize, seed: u32) {
    let (a, b) = (matrix(seed, n, k), matrix(seed + 1, k, m));
    let (status, body) = post(&host.url("/"), None, &json!({"a": a, "b": b})).await;
    assert_eq!(status, 200, "{n}×{k}·{k}×{m}: {body}");
    let want = cpu_product(&a, &b);
    let c = body["c"].as_array().expect("c is a list");
    assert_eq!(c.len(), n);
    for (i, row) in c.iter().enumerate() {
        let row = row.as_array().expect("rows are lists");
        assert_eq!(row.len(), m);
        for (j, got) in row.iter().enumerate() {
            let got = got.as_f64().expect("a number");
            let diff = (got - want[i][j]).abs();
            assert!(
                diff < 1e-4 * (k as f64).max(1.0),
                "c[{i}][{j}] = {got}, want {}",
                want[i][j]
            );
        }
    }
}

#[tokio::test]
async fn vector_add_matches_the_cpu() {
    require_gpu!();
    let host = Host::run(&example("gpu-vector-add"), &software(&[]));
    for len in [1, 1000, 70_001] {
        let (a, b) = (numbers(1, len), numbers(2, len));
        let (status, body) = post(&host.url("/"), None, &json!({"a": a, "b": b})).await;
        assert_eq!(status, 200, "{body}");
        let sum = body["sum"].as_array().expect("sum");
        assert_eq!(sum.len(), len);
        for (i, s) in sum.iter().enumerate() {
            assert_eq!(s.as_f64().unwrap() as f32, a[i] + b[i], "element {i}");
        }
    }
    let (status, body) = post(&host.url("/"), None, &json!({"a": [1.0], "b": []})).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn matmul_matches_the_cpu() {
    require_gpu!();
    let host = Host::run(&example("gpu-matmul"), &software(&[]));
    check_matmul(&host, 33, 17, 29, 7).await;
    check_matmul(&host, 1, 1, 1, 3).await;
    check_matmul(&host, 64, 300, 48, 11).await;
    let (status, body) = post(
        &host.url("/"),
        None,
        &json!({"a": [[1.0, 2.0]], "b": [[1.0]]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn invalid_wgsl_is_a_positioned_error_and_the_host_keeps_serving() {
    require_gpu!();
    let host = Host::run(&example("gpu-matmul"), &software(&[]));
    let kernel = "@compute @workgroup_size(8, 8)\nfn main() {\n    let x = 1 +;\n}\n";
    let body = json!({"a": [[1.0]], "b": [[2.0]], "kernel": kernel});
    let (status, body) = post(&host.url("/"), None, &body).await;
    assert_eq!(status, 422, "{body}");
    let first = &body["errors"][0];
    assert_eq!(first["line"], 3, "{body}");
    assert!(first["column"].as_u64().unwrap_or(0) > 0, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("line 3"), "{detail}");
    // The same host answers the next request correctly.
    check_matmul(&host, 5, 4, 3, 21).await;
    // A valid shader with the wrong entry point is an error value too.
    let wrong = "@compute @workgroup_size(1) fn other() {}";
    let (status, body) = post(
        &host.url("/"),
        None,
        &json!({"a": [[1.0]], "b": [[2.0]], "kernel": wrong}),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    check_matmul(&host, 2, 2, 2, 5).await;
}

#[tokio::test]
async fn oversize_misaligned_and_undeclared_use_are_clean_errors() {
    require_gpu!();
    let host = Host::run(&example("gpu-lab"), &software(&["--gpu-memory", "16"]));
    let (status, body) = get(&host, "alloc", &format!("bytes={}", 64u64 << 20)).await;
    assert_eq!(status, 413, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("limit"), "{detail}");
    let (status, body) = get(&host, "alloc", &format!("bytes={}", 1u64 << 40)).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = get(&host, "alloc", "bytes=1024").await;
    assert_eq!((status, &body["value"]), (200, &json!(0)), "{body}");
    let (status, body) = get(&host, "alloc", "bytes=6").await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = get(&host, "misaligned", "").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("of 4 bytes"),
        "{body}"
    );
    let (status, body) = get(&host, "undeclared", "").await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("does not declare"), "{detail}");
    let (status, body) = get(&host, "adapter", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["call_buffer_bytes"], 16u64 << 20, "{body}");
}

#[test]
fn a_function_uses_the_gpu_only_when_it_declares_one() {
    require_gpu!();
    let wasm = example("gpu-vector-add").display().to_string();
    let cache = shared_cache().display().to_string();
    let run = |function: &str| {
        wasmhost(&[
            "run",
            &wasm,
            "--function",
            function,
            "--args",
            "[[1, 2, 3], [10, 20, 30]]",
            "--gpu-fallback",
            "software",
            "--cache-dir",
            &cache,
        ])
    };
    let (code, out) = run("vector_sum");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[11.0,22.0,33.0]"), "{out}");
    let (code, out) = run("vector_sum_undeclared");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not declare a GPU"), "{out}");
    assert!(out.contains("#[wasmhost::function] attribute"), "{out}");
}

#[tokio::test]
async fn gpu_timeout_is_a_clean_error_and_later_calls_work() {
    require_gpu!();
    let host = Host::run(&example("gpu-lab"), &software(&["--gpu-timeout", "100ms"]));
    let started = std::time::Instant::now();
    let (status, body) = get(&host, "spin", "workgroups=512&iterations=60000").await;
    assert_eq!(status, 504, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("GPU time"), "{detail}");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    // Quick work after it is served (once the GPU has finished the long dispatch).
    let (status, body) = get(&host, "spin", "workgroups=1&iterations=10").await;
    assert_eq!((status, &body["value"]), (200, &json!(10)), "{body}");
}

#[tokio::test]
async fn concurrent_gpu_calls_are_each_correct() {
    require_gpu!();
    let host = Host::run(&example("gpu-matmul"), &software(&[]));
    tokio::join!(
        check_matmul(&host, 40, 30, 20, 100),
        check_matmul(&host, 17, 64, 33, 200),
        check_matmul(&host, 8, 8, 8, 300),
        check_matmul(&host, 50, 5, 60, 400),
    );
}

#[tokio::test]
async fn gpu_endpoints_need_a_usable_adapter_to_load() {
    require_gpu!();
    let (code, out) = wasmhost(&["gpu"]);
    if code == 0 {
        eprintln!("NOTICE: this machine has a hardware GPU; the refusal check does not apply");
        return;
    }
    assert!(out.contains("--gpu-fallback software"), "{out}");
    let wasm = example("gpu-matmul").display().to_string();
    let cache = shared_cache().display().to_string();
    let args = [
        "run",
        wasm.as_str(),
        "--port",
        "0",
        "--cache-dir",
        cache.as_str(),
    ];
    let (code, out) = wasmhost(&args);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("gpu = \"any\"") && out.contains("--gpu-fallback software"),
        "{out}"
    );
}

/// The kernel both sides of the benchmark run.
const MATMUL: &str = include_str!("../examples/gpu-matmul/src/matmul.wgsl");

/// A native wgpu device on the adapter the host would pick.
fn native_device() -> (wgpu::Device, wgpu::Queue) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        flags: wgpu::InstanceFlags::empty(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    adapters.sort_by_key(|a| a.get_info().device_type == wgpu::DeviceType::Cpu);
    let adapter = adapters.into_iter().next().expect("an adapter");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: wgpu::Limits::default().or_worse_values_from(&adapter.limits()),
        ..Default::default()
    }))
    .expect("a device")
}

/// Best and mean microseconds of `reps` rounds of: encode one dispatch, submit, wait.
fn time_dispatches(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    pipeline: &wgpu::ComputePipeline,
    group: &wgpu::BindGroup,
    workgroups: (u32, u32),
    reps: u32,
) -> (f64, f64) {
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let started = std::time::Instant::now();
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(workgroups.0, workgroups.1, 1);
        }
        queue.submit([encoder.finish()]);
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let best = times.iter().copied().fold(f64::MAX, f64::min);
    (best, times.iter().sum::<f64>() / times.len() as f64)
}

/// Compiles `wgsl` and binds `buffers` at bindings 0.. of group 0 (auto layout).
fn native_pipeline(
    device: &wgpu::Device,
    wgsl: &str,
    buffers: &[wgpu::Buffer],
) -> (wgpu::ComputePipeline, wgpu::BindGroup) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(wgsl.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .zip(0..)
        .map(|(b, binding)| wgpu::BindGroupEntry {
            binding,
            resource: b.as_entire_binding(),
        })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    (pipeline, group)
}

/// Native wgpu, the same kernel and data kept on the GPU: microseconds of the best and the
/// mean of `reps` submit-and-wait rounds.
fn native_matmul_us(n: u32, reps: u32) -> (f64, f64) {
    let (device, queue) = native_device();
    let len = (n as usize) * (n as usize);
    let a: Vec<f32> = (0..len).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.5).collect();
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let buffer = |bytes: &[u8], usage| {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.len() as u64,
            usage,
            mapped_at_creation: false,
        });
        queue.write_buffer(&buffer, 0, bytes);
        buffer
    };
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let dims: Vec<u8> = [n, n, n].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bufs = [
        buffer(&f32_bytes(&a), storage),
        buffer(&f32_bytes(&b), storage),
        buffer(&dims, storage),
        buffer(&vec![0; len * 4], storage | wgpu::BufferUsages::COPY_SRC),
    ];
    let (pipeline, group) = native_pipeline(&device, MATMUL, &bufs);
    queue.submit([]);
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    let groups = n.div_ceil(8);
    time_dispatches(&device, &queue, &pipeline, &group, (groups, groups), reps)
}

/// Native wgpu: one workgroup of one invocation, submitted and waited for.
fn native_empty_dispatch_us(reps: u32) -> f64 {
    let (device, queue) = native_device();
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let nop = "@group(0) @binding(0) var<storage, read_write> x: array<u32>;\n\
               @compute @workgroup_size(1) fn main() { x[0] = x[0] + 1u; }";
    let (pipeline, group) = native_pipeline(&device, nop, &[buffer]);
    let (_, mean) = time_dispatches(&device, &queue, &pipeline, &group, (1, 1), reps);
    mean
}

/// `cargo test --test gpu -- --ignored --nocapture bench`: matmul from a guest against the
/// same kernel from native wgpu, and the per-call overhead of the host API. Sizes from
/// `WASMHOST_BENCH_SIZES` (default `256,512,1024`), repetitions from `WASMHOST_BENCH_REPS`.
#[tokio::test]
#[ignore = "a benchmark: run it on purpose"]
async fn bench_matmul_guest_against_native() {
    require_gpu!();
    let sizes: Vec<u32> = std::env::var("WASMHOST_BENCH_SIZES")
        .unwrap_or_else(|_| "256,512,1024".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let reps: u32 = std::env::var("WASMHOST_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let host = Host::run(&example("gpu-lab"), &software(&["--gpu-timeout", "10m"]));
    let (_, adapter) = wasmhost(&["gpu", "--gpu-fallback", "software"]);
    println!(
        "{}",
        adapter
            .lines()
            .find(|l| l.starts_with("adapter"))
            .unwrap_or("")
    );
    let (status, o) = get(&host, "overhead", "reps=200").await;
    assert_eq!(status, 200, "{o}");
    println!(
        "per call: local {:.2} µs, write-buffer {:.1} µs, empty dispatch {:.1} µs, read 4 B {:.1} µs",
        o["local_us"].as_f64().unwrap_or(0.0),
        o["write_us"].as_f64().unwrap_or(0.0),
        o["dispatch_us"].as_f64().unwrap_or(0.0),
        o["read_us"].as_f64().unwrap_or(0.0),
    );
    let native = tokio::task::spawn_blocking(|| native_empty_dispatch_us(200))
        .await
        .unwrap();
    println!("native wgpu: empty dispatch {native:.1} µs");
    for n in sizes {
        let (status, g) = get(&host, "bench-matmul", &format!("n={n}&reps={reps}")).await;
        assert_eq!(status, 200, "{g}");
        let (guest_best, guest_mean) = (
            g["best_us"].as_f64().unwrap(),
            g["mean_us"].as_f64().unwrap(),
        );
        let (native_best, native_mean) =
            tokio::task::spawn_blocking(move || native_matmul_us(n, reps))
                .await
                .unwrap();
        println!(
            "matmul {n}²: guest best {:.1} ms (mean {:.1}), native best {:.1} ms (mean {:.1}): \
             guest at {:.0} % of native",
            guest_best / 1e3,
            guest_mean / 1e3,
            native_best / 1e3,
            native_mean / 1e3,
            100.0 * native_best / guest_best
        );
    }
}
