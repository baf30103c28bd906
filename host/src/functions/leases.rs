//! Calls and the hosts that run them: this host's calls stay leased to it while it lives,
//! the calls of hosts that died are claimed and run here, and a cancel written through
//! another host stops the attempt running here. (One process of the embedded store owns
//! every call; only what a previous process left is claimed, once.)

use std::sync::Weak;
use std::time::Duration;

use super::{FOREIGN_POLL, Functions, FunctionsError, Resolved};
use crate::store::{CallStatus, StoreError};

/// How long a queued call waits for its function's app to load on this host.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// How often leases are renewed and dead hosts' calls looked for: well inside the lease.
const LEASE_TICK: Duration = Duration::from_secs(1);

/// Keeps this host's calls leased to it, and runs the calls of hosts that died.
pub(super) async fn lease_loop(functions: Weak<Functions>) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(f) = functions.upgrade() else { break };
        if let Err(e) = f.store.renew_leases() {
            tracing::error!("cannot renew the leases of this host's calls: {e}");
        }
        if let Err(e) = f.resume_orphans() {
            tracing::error!("cannot look for calls of hosts that died: {e}");
        }
        f.stop_cancelled_elsewhere();
    }
}

impl Functions {
    /// Resolves a function the store knows as active, waiting a few seconds for its app to
    /// load here (in cluster mode a host may take over a call of an app deployed through
    /// another host a moment ago).
    pub(super) async fn resolve_soon(&self, function_id: &str) -> Result<Resolved, FunctionsError> {
        let deadline = tokio::time::Instant::now() + LOAD_WAIT;
        loop {
            let resolved = self.resolve(function_id);
            let active = || matches!(self.store.get_function(function_id), Ok(Some(f)) if f.active);
            if resolved.is_ok() || tokio::time::Instant::now() >= deadline || !active() {
                return resolved;
            }
            tokio::time::sleep(FOREIGN_POLL).await;
        }
    }

    /// Stops the attempts of calls cancelled through another host (cluster mode), with
    /// one read for every call running here.
    fn stop_cancelled_elsewhere(&self) {
        let running: Vec<String> = self.running_mut().keys().cloned().collect();
        if running.is_empty() {
            return;
        }
        let over = match self.store.calls_over(&running) {
            Ok(over) => over,
            Err(e) => {
                tracing::warn!("cannot look for calls cancelled elsewhere: {e}");
                return;
            }
        };
        let running = self.running_mut();
        for call in over {
            if call.status == CallStatus::Terminated
                && let Some(token) = running.get(&call.call_id)
            {
                token.cancel();
            }
        }
    }

    pub(super) fn resume_orphans(&self) -> Result<usize, StoreError> {
        let orphans = self.store.claim_orphaned_calls()?;
        for call in &orphans {
            tracing::info!(call_id = %call.call_id, function = %call.function_name, "resuming call");
            let _ = self.queue.send(call.call_id.clone());
        }
        Ok(orphans.len())
    }
}
