//! Typed errors of the engine: why a component cannot be loaded or a call failed.

use std::path::PathBuf;
use std::time::Duration;

/// Why a file cannot be served as a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The bytes do not start with the WebAssembly magic number.
    #[error(
        "not a WebAssembly binary: it starts with {start:?} instead of \"\\0asm\" \
         (build one with `wasmhost build <crate dir>` or `cargo build --target wasm32-wasip2`)"
    )]
    NotWasm {
        /// Its first bytes, escaped.
        start: String,
    },
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component: wasmhost runs WASI components \
         (build for `wasm32-wasip2`, or wrap a module with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The binary is malformed or truncated.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component exports none of the worlds wasmhost serves.
    #[error(
        "this component targets a world wasmhost does not serve: it exports [{exports}], \
         but an endpoint component must export {expected}"
    )]
    UnknownWorld {
        /// What it exports.
        exports: String,
        /// What wasmhost serves.
        expected: String,
    },
    /// The component imports something the host does not provide.
    #[error("the component imports something wasmhost does not provide: {0:#}")]
    MissingImport(#[source] wasmtime::Error),
    /// The guest's `describe` export failed or returned nonsense.
    #[error("the component's `describe` failed: {0}")]
    Describe(String),
    /// An endpoint or function declares a GPU this host cannot lend.
    #[error("{endpoint:?} declares gpu = {requirement:?}, but {reason}")]
    Gpu {
        /// The endpoint or function.
        endpoint: String,
        /// What it asked for.
        requirement: String,
        /// Why this host cannot lend it.
        reason: String,
    },
    /// The guest's `#[wasmhost::init]` work failed, or its state could not be snapshotted.
    #[error("the component's init work failed: {0}")]
    PreInit(String),
    /// Compilation or cache I/O failed.
    #[error("cannot compile the component: {0:#}")]
    Compile(#[source] wasmtime::Error),
    /// The compiling task ended before it finished (a panic in the compiler).
    #[error("compiling the component was cut short: {0}")]
    CompileTask(#[from] tokio::task::JoinError),
}

/// Why one call into a guest did not produce a response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The guest ran past its time limit and was interrupted.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The guest tried to grow its memory past the cap and then trapped.
    #[error("exceeded its memory limit of {mib} MiB")]
    OutOfMemory {
        /// The cap.
        mib: u64,
    },
    /// The guest trapped (a panic, `unreachable`, a bad memory access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest finished without producing a response (no response start, an error
    /// code instead of a response, ...).
    #[error("produced no response: {0}")]
    NoResponse(String),
    /// The host could not set up an instance (e.g. the pool is exhausted).
    #[error("could not start an instance: {0}")]
    Instantiate(String),
    /// The component lacks the export this call needs: no retry can help.
    #[error("cannot be called this way: the component has no {0} export")]
    MissingExport(&'static str),
}

/// Why a function call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The instance trapped, timed out, ran out of memory or could not start.
    #[error("{0}")]
    Call(#[from] CallError),
    /// The input did not fit the parameters: FastAPI-style error details.
    #[error("invalid input: {0}")]
    InvalidInput(serde_json::Value),
    /// The function returned an error.
    #[error("{0}")]
    Failed(String),
}

impl FunctionError {
    /// Whether another attempt could succeed (bad input or a missing export never will).
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            FunctionError::InvalidInput(_) | FunctionError::Call(CallError::MissingExport(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(FunctionError::Call(CallError::Trap("boom".into())).retryable());
        assert!(FunctionError::Call(CallError::Instantiate("full".into())).retryable());
        assert!(!FunctionError::Call(CallError::MissingExport("function-handler")).retryable());
        assert!(!FunctionError::InvalidInput(serde_json::json!([])).retryable());
    }
}
