//! What the functions layer grants the capabilities of the calls it runs: the broker of a
//! guest's `spawn`/`poll` (confined to its own app) and the secrets read from the store.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;

use super::{Functions, FunctionsError};
use crate::capabilities::env::SecretSource;
use crate::engine::{BrokerError, BrokerFuture, CallBroker, GuestCallState};
use crate::store::{CallStatus, Store};

/// A guest's `spawn`/`poll`, confined to its own app.
pub(super) struct GuestBroker {
    pub(super) functions: Weak<Functions>,
    pub(super) app_id: String,
}

impl CallBroker for GuestBroker {
    fn spawn(&self, function: String, input: String) -> BrokerFuture<Result<String, BrokerError>> {
        let (functions, app_id) = (self.functions.clone(), self.app_id.clone());
        Box::pin(async move {
            let f = functions.upgrade().ok_or(BrokerError::ShuttingDown)?;
            let target = f
                .resolver()
                .and_then(|r| r.resolve_by_name(&app_id, &function))
                .ok_or(BrokerError::NoSuchFunction(function))?;
            let input: Value = serde_json::from_str(&input)?;
            match f.spawn_resolved(&target, input, "guest").await {
                Ok(r) => Ok(r.call_id),
                Err(FunctionsError::InvalidInput(d)) => Err(BrokerError::InvalidInput(d)),
                Err(e) => Err(BrokerError::Functions(Box::new(e))),
            }
        })
    }

    fn poll(
        &self,
        call_id: String,
        timeout: Duration,
    ) -> BrokerFuture<Result<GuestCallState, BrokerError>> {
        let (functions, app_id) = (self.functions.clone(), self.app_id.clone());
        Box::pin(async move {
            let f = functions.upgrade().ok_or(BrokerError::ShuttingDown)?;
            let record = f
                .wait(&call_id, timeout)
                .await
                .map_err(|e| BrokerError::Functions(Box::new(e)))?;
            let record = record
                .filter(|r| r.app_id == app_id)
                .ok_or(BrokerError::NoSuchCall(call_id))?;
            Ok(match record.status {
                CallStatus::Success => {
                    GuestCallState::Success(record.result.unwrap_or(Value::Null).to_string())
                }
                CallStatus::Failure | CallStatus::Terminated => GuestCallState::Failure(
                    record
                        .error
                        .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| "failed".into()),
                ),
                CallStatus::Pending | CallStatus::Running => GuestCallState::Pending,
            })
        })
    }
}

/// Secrets come from the store, where they are sealed.
impl SecretSource for Store {
    fn secret(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.get_secret(name)?.map(|s| s.values))
    }
}
