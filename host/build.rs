//! Links the `wasmhost` binary as a non-PIE executable on Linux: the linker then resolves
//! its ~85,000 relative relocations once, instead of the dynamic loader applying them (and
//! dirtying the pages they touch) on every start. That is most of what exec'ing the 45 MB
//! binary costs, and restart-to-first-byte is a target.

fn main() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
