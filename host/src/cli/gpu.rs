//! `wasmhost gpu`: which adapter guests would get on this host, like `nvidia-smi -L`.

use super::GpuArgs;
use crate::capabilities::gpu::Gpu;

/// Prints the adapter and the per-call budget; fails (exit code 1) when there is none.
pub(super) async fn show(args: GpuArgs) -> anyhow::Result<()> {
    let config = args.gpu_config();
    let gpu = Gpu::new(config.clone());
    let adapter = gpu
        .adapter()
        .await
        .map_err(|e| anyhow::anyhow!("no GPU: {e}"))?;
    println!("adapter: {adapter}");
    println!(
        "per call: {} MiB of buffers, {} dispatches, {:?} of GPU time",
        config.call_buffer_bytes >> 20,
        config.call_dispatches,
        config.call_gpu_time
    );
    Ok(())
}
