//! Host bindings of `wasmhost:gpu`, generated from `wit/gpu.wit`. Guest resources map to
//! the host types in [`super::host`]; every import is async (it may wait for the GPU
//! thread) and may trap (a stale handle).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmhost:gpu/imports",
    imports: { default: async | trappable },
    with: {
        "wasmhost:gpu/compute.device": super::host::GpuDevice,
        "wasmhost:gpu/compute.buffer": super::host::GpuBuffer,
        "wasmhost:gpu/compute.shader-module": super::host::GpuShaderModule,
        "wasmhost:gpu/compute.bind-group-layout": super::host::GpuBindGroupLayout,
        "wasmhost:gpu/compute.pipeline-layout": super::host::GpuPipelineLayout,
        "wasmhost:gpu/compute.compute-pipeline": super::host::GpuComputePipeline,
        "wasmhost:gpu/compute.bind-group": super::host::GpuBindGroup,
        "wasmhost:gpu/compute.command-encoder": super::recording::GpuCommandEncoder,
        "wasmhost:gpu/compute.compute-pass": super::recording::GpuComputePass,
        "wasmhost:gpu/compute.command-buffer": super::recording::GpuCommandBuffer,
        "wasmhost:gpu/compute.queue": super::host::GpuQueue,
    },
});

pub use self::wasmhost::gpu::compute;
