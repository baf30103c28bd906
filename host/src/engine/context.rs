//! What a guest call runs with besides its limits: environment, mounted volumes, and
//! the broker through which a guest calls other functions of its app.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future that owns its data.
pub type BrokerFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The state of a call as a guest sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestCallState {
    /// Not finished.
    Pending,
    /// Finished with this JSON result.
    Success(String),
    /// Failed with this message.
    Failure(String),
}

/// Carries a guest's `spawn`/`poll` imports to whoever runs calls (the functions layer).
pub trait CallBroker: Send + Sync {
    /// Spawns function `function` of the guest's app; returns the call id.
    fn spawn(&self, function: String, input: String) -> BrokerFuture<Result<String, String>>;
    /// Waits at most `timeout` for call `call_id` and returns its state.
    fn poll(
        &self,
        call_id: String,
        timeout: Duration,
    ) -> BrokerFuture<Result<GuestCallState, String>>;
}

/// A host directory mounted into the guest.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (e.g. `/data`).
    pub guest: String,
}

/// Everything a call runs with beyond its limits.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Environment variables (secrets, call id, attempt).
    pub env: Vec<(String, String)>,
    /// Preopened directories; the guest cannot leave them.
    pub mounts: Vec<Mount>,
    /// Where guest `spawn`/`poll` go; none means they fail with a message.
    pub broker: Option<Arc<dyn CallBroker>>,
    /// Where the guest's output is kept besides the host's log.
    pub output: Option<Arc<dyn super::output::OutputSink>>,
}
