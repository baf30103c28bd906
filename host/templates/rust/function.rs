//! {{name}}: callable functions (Modal's `.remote`, `.spawn`, `.map`) with retries and
//! a timeout.
//!
//! Try it: `wasmhost run . --function square --args '[7]'`, or deploy it to a server and
//! `wasmhost call {{name}}.square --args '[7]'`.

/// Squares `x`.
#[wasmhost::function(timeout = "30s", retries = 2)]
fn square(x: i64) -> i64 {
    println!("squaring {x}");
    x.wrapping_mul(x)
}

/// Says hello to `name`; an empty name is an error the caller sees.
#[wasmhost::function]
fn hello(name: String) -> Result<String, String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    Ok(format!("Hello, {name}!"))
}
