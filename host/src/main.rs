//! The `wasmhost` command.

/// mimalloc rather than glibc's malloc: a request allocates and frees dozens of blocks
/// across the serving threads, some past glibc's per-thread cache (hyper's 8 KiB read
/// buffer, boxed futures), where glibc takes its arena lock and consolidates.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    give_back_freed_memory();
    wasmhost::cli::main()
}

/// mimalloc returns freed memory to the system (after its purge delay, 1 s) only when some
/// thread allocates on a slow path or collects: after a burst of large bodies, a host that
/// then goes quiet kept hundreds of MiB until a thread happened to exit
/// (`tests/hostile.rs::memory_is_given_back_after_large_bodies`). A small thread collects
/// once a second.
fn give_back_freed_memory() {
    let collector = std::thread::Builder::new()
        .name("wasmhost-alloc".into())
        .stack_size(64 << 10)
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                // SAFETY: `mi_collect` takes no pointers and may be called from any thread;
                // without `force` it only purges what its delay has let expire.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
        });
    if let Err(e) = collector {
        eprintln!("wasmhost: cannot start the memory collector thread: {e}");
    }
}
