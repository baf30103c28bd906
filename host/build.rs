//! Two link settings for a faster start on Linux, where restart-to-first-byte is a target.
//!
//! - The `wasmhost` binary is a non-PIE executable: the linker then resolves its ~85,000
//!   relative relocations once, instead of the dynamic loader applying them (and dirtying
//!   the pages they touch) on every start. That is most of what exec'ing the 45 MB binary
//!   cost.
//! - With glibc, the unwinder (panics, backtraces, wasmtime's registration of its code's
//!   unwind tables) is linked in from libgcc_eh rather than loaded from libgcc_s.so.1.
//!   Loading that library costs every start its symbol lookups and its constructor, which
//!   runs `cpuid` some twenty times, and on a VM each `cpuid` is an exit to the
//!   hypervisor. The copy is private to the binary, so a library loaded later (the
//!   Vulkan driver) keeps using its own.

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        if var("CARGO_CFG_TARGET_ENV") == "gnu" {
            // Linked where this crate's libraries go, before the standard library's
            // `-lgcc_s`, which `--as-needed` then drops as unused.
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
    }
}
