//! A wasi:cli command; `wasmhost run` refuses it as a component of another world.

fn main() {
    println!("hello from a command");
}
