//! A library component with no exports: `wasmhost run` refuses it and lists what it has.

/// Adds two numbers (a core export only; the component exports nothing).
#[unsafe(no_mangle)]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}
