//! The `wasmhost` command.

fn main() -> std::process::ExitCode {
    wasmhost::cli::main()
}
