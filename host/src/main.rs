//! The `wasmhost` command.

/// mimalloc rather than glibc's malloc: a request allocates and frees dozens of blocks
/// across the serving threads, some past glibc's per-thread cache (hyper's 8 KiB read
/// buffer, boxed futures), where glibc takes its arena lock and consolidates.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wasmhost::cli::main()
}
