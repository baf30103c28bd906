//! What a guest call runs with besides its limits, as the layer above grants it: its
//! environment (`capabilities::env`), mounted volumes (`capabilities::volumes`) and the
//! broker through which it calls other functions of its app (`capabilities::broker`).

use std::sync::Arc;

use crate::capabilities::broker::CallBroker;
use crate::capabilities::volumes::Mount;

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
