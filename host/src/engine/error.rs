//! Typed errors of the engine: why a component cannot be loaded or a call failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::manifest::ManifestError;

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
    #[error("invalid component: {0:#}")]
    Invalid(#[source] wasmtime::Error),
    /// A WebAssembly binary of a version or layer this host does not read.
    #[error("invalid component: unknown WebAssembly binary version or layer")]
    UnknownLayer,
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
    /// The guest's `describe` export failed or returned a manifest the host refuses.
    #[error("the component's `describe` failed: {0}")]
    Describe(#[from] DescribeError),
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
    PreInit(#[from] PreInitError),
    /// Compilation or cache I/O failed.
    #[error("cannot compile the component: {0:#}")]
    Compile(#[source] wasmtime::Error),
    /// The compiling task ended before it finished (a panic in the compiler).
    #[error("compiling the component was cut short: {0}")]
    CompileTask(#[from] tokio::task::JoinError),
}

impl LoadError {
    /// Turns the error of reading the component file `path` into [`LoadError::Read`].
    pub fn reading(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| LoadError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

/// Why `describe` gave no manifest the host can serve.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// No store could be made to run it in.
    #[error("{0}")]
    Store(#[source] CallError),
    /// It trapped or could not be called.
    #[error("{0}")]
    Failed(#[source] Trap),
    /// It ran past its time limit.
    #[error("`describe` did not finish within {0:?}")]
    Timeout(Duration),
    /// Its manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// It states something the component has no export to serve.
    #[error("{what} but the component does not export {export}")]
    MissingExport {
        /// What the manifest states (`endpoint "x" is Asgi`, `it has init work`, ...).
        what: String,
        /// The export that would serve it.
        export: &'static str,
    },
}

/// Why `#[wasmhost::init]` work gave no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PreInitError {
    /// A step of the snapshot (instrumenting, looking up the export, snapshotting) failed.
    #[error("{step}: {source:#}")]
    Snapshot {
        /// The step.
        step: &'static str,
        /// What wasmtime or wizer said.
        source: wasmtime::Error,
    },
    /// The init work itself failed (trapped, ran out of memory, ...) or no store could be
    /// made for it.
    #[error("{0}")]
    Call(#[source] CallError),
    /// It ran past the startup timeout.
    #[error("it did not finish within the startup timeout of {0:?}")]
    Timeout(Duration),
}

/// A wasmtime error shared by every caller one failure answers (a batch, the requests
/// queued behind an instance that never started): errors themselves are not `Clone`.
#[derive(Debug, Clone)]
pub struct Shared(Arc<wasmtime::Error>);

impl Shared {
    /// The error that was shared.
    pub fn get(&self) -> &wasmtime::Error {
        &self.0
    }
}

impl From<wasmtime::Error> for Shared {
    fn from(e: wasmtime::Error) -> Self {
        Self(Arc::new(e))
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The whole chain: the outermost message alone is often only "error while
        // executing at wasm backtrace".
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
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
    Trap(#[from] Trap),
    /// The guest finished without producing a response.
    #[error("produced no response: {0}")]
    NoResponse(#[from] NoResponse),
    /// The host could not set up an instance (e.g. the pool is exhausted).
    #[error("could not start an instance: {0}")]
    Instantiate(#[from] InstantiateError),
    /// The component lacks the export this call needs: no retry can help.
    #[error("cannot be called this way: the component has no {0} export")]
    MissingExport(&'static str),
}

/// How a guest trapped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Trap {
    /// wasmtime stopped the guest; `panic` is the message it printed when it panicked.
    #[error("{}", wasm_trap(panic.as_deref(), source.get()))]
    Wasm {
        /// The guest's panic message, read from its stderr.
        panic: Option<String>,
        /// wasmtime's trap (or the root of its error chain).
        source: Shared,
    },
    /// A hook that runs before the instance serves (a class's `enter`, an ASGI app's
    /// lifespan startup) returned an error.
    #[error("its {hook} failed: {message}")]
    Hook {
        /// Which hook.
        hook: &'static str,
        /// What the guest returned.
        message: String,
    },
    /// Its init work failed in this instance.
    #[error("its init work failed: {0}")]
    Init(#[source] Box<CallError>),
    /// The instance ended before it answered.
    #[error("the instance ended before it answered")]
    Ended,
    /// The host task running the guest panicked or was cancelled.
    #[error("the guest's task failed: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
}

/// A trap as a user should read it: the trap code (or the root of the chain: the
/// outermost message is only "error while executing at wasm backtrace"), after the
/// guest's panic message when it printed one.
fn wasm_trap(panic: Option<&str>, e: &wasmtime::Error) -> String {
    let trap = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => e.root_cause().to_string(),
    };
    match panic {
        Some(panic) => format!("{panic} ({trap})"),
        None => trap,
    }
}

/// Why a guest that ran produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoResponse {
    /// A `wasi:http@0.2` guest answered with an error code.
    #[error("the guest answered with an error: {0:?}")]
    ErrorCode(Box<wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>),
    /// A `wasi:http@0.3` guest answered with an error code.
    #[error("the guest answered with an error: {0:?}")]
    ErrorCodeP3(Box<wasmtime_wasi_http::p3::bindings::http::types::ErrorCode>),
    /// The guest returned without setting a response.
    #[error("the guest returned without setting a response")]
    NotSet,
    /// A `wasi:http@0.3` call ended without an answer.
    #[error("the call ended without an answer")]
    Unanswered,
    /// The guest answered the other kind of call (a value for a request, ...).
    #[error("the guest answered a {0}")]
    WrongReply(&'static str),
    /// A batch did not give this call its answer.
    #[error("{0}")]
    Batch(#[from] BatchError),
}

/// How a batched guest call failed one of its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The call running this input's batch was stopped before it finished.
    #[error("the call that ran this input's batch was stopped before it finished")]
    Lost,
    /// The batch lost this call's outcome.
    #[error("the batch lost this call's outcome")]
    Missing,
    /// A batched endpoint answered a status other than 200 for the whole batch.
    #[error("the batched endpoint's guest answered status {status} instead of its batch: {body}")]
    Status {
        /// Its status.
        status: u16,
        /// Its body, as text.
        body: String,
    },
    /// The answer has a different number of items than the batch.
    #[error(
        "the batched endpoint returned {got} responses for {expected} requests; it must \
         return one result per request, in order"
    )]
    Count {
        /// Items answered.
        got: usize,
        /// Items sent.
        expected: usize,
    },
    /// The answer is not `{"batch": [...]}`.
    #[error(
        "the batched endpoint's guest broke the batch protocol: its answer is not {{\"batch\": [...]}}"
    )]
    NotABatch,
    /// An item of the answer is not a response.
    #[error("the batched endpoint's guest broke the batch protocol: an answer item: {0}")]
    Item(#[source] Arc<serde_json::Error>),
}

/// Why the host could not set up an instance.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstantiateError {
    /// Every pool slot is taken: the host is at capacity, the guest did nothing wrong.
    #[error("the host is at capacity: {0}")]
    AtCapacity(#[source] Shared),
    /// wasmtime could not instantiate the component or reach its exports.
    #[error("{0}")]
    Wasmtime(#[source] Shared),
    /// The instance's WASI context could not be built (a volume's directory).
    #[error("cannot set up its sandbox: {0}")]
    Sandbox(#[source] Arc<std::io::Error>),
    /// Its resource table is full.
    #[error("{0}")]
    Table(#[source] Arc<wasmtime::component::ResourceTableError>),
    /// No loopback port was free for a web server.
    #[error("no free port: {0}")]
    NoPort(#[source] Arc<std::io::Error>),
    /// The app was stopped or replaced while the instance started.
    #[error("the app was stopped")]
    Stopped,
    /// Instances kept ending before they took the request.
    #[error("{0} instances in a row stopped before taking the request")]
    Restarts(usize),
    /// A web server's instance runs on its own, not per request.
    #[error("a web server's instance is not called per request")]
    WebServer,
    /// Its evicted code could not be loaded again.
    #[error("cannot load the component: {0}")]
    Load(#[source] Arc<LoadError>),
}

impl From<wasmtime::Error> for InstantiateError {
    fn from(e: wasmtime::Error) -> Self {
        match e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            Some(_) => Self::AtCapacity(e.into()),
            None => Self::Wasmtime(e.into()),
        }
    }
}

impl From<wasmtime::component::ResourceTableError> for InstantiateError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        Self::Table(Arc::new(e))
    }
}

/// Why a function call produced no result.
#[derive(Debug, Clone, thiserror::Error)]
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
        assert!(FunctionError::Call(Trap::Ended.into()).retryable());
        assert!(FunctionError::Call(InstantiateError::Stopped.into()).retryable());
        assert!(!FunctionError::Call(CallError::MissingExport("function-handler")).retryable());
        assert!(!FunctionError::InvalidInput(serde_json::json!([])).retryable());
    }
}
