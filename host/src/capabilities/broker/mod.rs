//! The call broker: a guest's `spawn`/`poll` imports (`wasmhost:guest/host`), carried to
//! whoever runs calls (the functions layer implements [`CallBroker`]) and confined to the
//! guest's own app. Linked from its own bindings ([`bindings`]); nothing to check at
//! deploy (a guest may only reach its own app's functions); per instance a [`BrokerCtx`]
//! around the broker the functions layer grants the call.

pub(crate) mod bindings;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker};

use super::{Capability, CapabilityViews, Declared, WasiSetup};
use bindings::{host, types};

/// A boxed, sendable future that owns its data.
pub type BrokerFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The longest a guest may park a host task in one `poll`.
const MAX_POLL: Duration = Duration::from_secs(86_400);

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

/// Why a guest's `spawn` or `poll` failed; the guest reads its message.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// This instance runs without a broker (`wasmhost run` of an endpoint, `describe`).
    #[error("calls to other functions are only available on a wasmhost server")]
    Unavailable,
    /// The host is stopping.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The guest's app has no such function.
    #[error("this app has no function named {0:?}")]
    NoSuchFunction(String),
    /// The input is not JSON.
    #[error("input is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The input does not fit the function's parameters.
    #[error("invalid input: {0}")]
    InvalidInput(serde_json::Value),
    /// No call with this id belongs to the guest's app.
    #[error("no call with id {0}")]
    NoSuchCall(String),
    /// The functions layer failed (the store, a full queue, ...).
    #[error(transparent)]
    Functions(Box<dyn std::error::Error + Send + Sync>),
}

/// Carries a guest's `spawn`/`poll` imports to whoever runs calls (the functions layer).
pub trait CallBroker: Send + Sync {
    /// Spawns function `function` of the guest's app; returns the call id.
    fn spawn(&self, function: String, input: String) -> BrokerFuture<Result<String, BrokerError>>;
    /// Waits at most `timeout` for call `call_id` and returns its state.
    fn poll(
        &self,
        call_id: String,
        timeout: Duration,
    ) -> BrokerFuture<Result<GuestCallState, BrokerError>>;
}

/// The broker capability of one instance: where its `spawn`/`poll` go, if anywhere.
#[derive(Clone, Default)]
pub struct BrokerCtx {
    broker: Option<Arc<dyn CallBroker>>,
}

impl BrokerCtx {
    /// Calls go to `broker`; `None` refuses them with [`BrokerError::Unavailable`].
    pub fn new(broker: Option<Arc<dyn CallBroker>>) -> Self {
        Self { broker }
    }

    /// Spawns `function` of the guest's app with JSON `input`; returns the call id.
    pub async fn spawn(&self, function: String, input: String) -> Result<String, BrokerError> {
        match &self.broker {
            Some(b) => b.spawn(function, input).await,
            None => Err(BrokerError::Unavailable),
        }
    }

    /// Waits at most `timeout_ms` (bounded by a day) for call `call_id`.
    pub async fn poll(
        &self,
        call_id: String,
        timeout_ms: u64,
    ) -> Result<GuestCallState, BrokerError> {
        let Some(b) = &self.broker else {
            return Err(BrokerError::Unavailable);
        };
        b.poll(call_id, Duration::from_millis(timeout_ms).min(MAX_POLL))
            .await
    }
}

/// Store data that carries a [`BrokerCtx`].
pub trait BrokerView: Send {
    /// The store's broker context.
    fn broker(&mut self) -> &mut BrokerCtx;
}

struct HasBroker;

impl HasData for HasBroker {
    type Data<'a> = &'a mut BrokerCtx;
}

impl types::Host for BrokerCtx {}

impl host::Host for BrokerCtx {
    async fn spawn(
        &mut self,
        name: String,
        input: String,
    ) -> wasmtime::Result<Result<String, String>> {
        // The guest reads the reason; nothing of the host's error types crosses.
        Ok(BrokerCtx::spawn(self, name, input)
            .await
            .map_err(|e| e.to_string()))
    }

    async fn poll(
        &mut self,
        call_id: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<types::CallState, String>> {
        let state = BrokerCtx::poll(self, call_id, timeout_ms).await;
        Ok(state
            .map(|state| match state {
                GuestCallState::Pending => types::CallState::Pending,
                GuestCallState::Success(r) => types::CallState::Success(r),
                GuestCallState::Failure(m) => types::CallState::Failure(m),
            })
            .map_err(|e| e.to_string()))
    }
}

/// The broker capability.
pub struct Broker;

impl Capability for Broker {
    type Config = ();
    type ConfigError = std::convert::Infallible;
    /// Where the call's `spawn`/`poll` go; none refuses them with a reason.
    type Grant<'a> = Option<Arc<dyn CallBroker>>;
    type Instance = BrokerCtx;

    fn link<T: CapabilityViews>(linker: &mut Linker<T>, _p3: bool) -> wasmtime::Result<()> {
        host::add_to_linker::<T, HasBroker>(linker, T::broker)
    }

    /// A guest may only reach its own app's functions: nothing to declare.
    fn configure(_: &Declared<'_>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    fn instance(
        broker: Option<Arc<dyn CallBroker>>,
        _: &mut WasiSetup,
    ) -> std::io::Result<BrokerCtx> {
        Ok(BrokerCtx::new(broker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what reaches it and answers from a fixed table.
    #[derive(Default)]
    struct Recorder {
        polls: Mutex<Vec<Duration>>,
    }

    impl CallBroker for Recorder {
        fn spawn(
            &self,
            function: String,
            input: String,
        ) -> BrokerFuture<Result<String, BrokerError>> {
            Box::pin(async move {
                serde_json::from_str::<serde_json::Value>(&input)?;
                match function.as_str() {
                    "known" => Ok("fc-1".into()),
                    _ => Err(BrokerError::NoSuchFunction(function)),
                }
            })
        }

        fn poll(
            &self,
            call_id: String,
            timeout: Duration,
        ) -> BrokerFuture<Result<GuestCallState, BrokerError>> {
            self.polls.lock().unwrap().push(timeout);
            Box::pin(async move {
                match call_id.as_str() {
                    "fc-1" => Ok(GuestCallState::Success("4".into())),
                    _ => Err(BrokerError::NoSuchCall(call_id)),
                }
            })
        }
    }

    #[tokio::test]
    async fn without_a_broker_calls_are_refused_with_a_reason() {
        let ctx = BrokerCtx::default();
        let err = ctx.spawn("f".into(), "{}".into()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("only available on a wasmhost server")
        );
        assert!(matches!(
            ctx.poll("fc".into(), 1).await,
            Err(BrokerError::Unavailable)
        ));
    }

    #[tokio::test]
    async fn calls_reach_the_broker_and_polls_are_bounded() {
        let recorder = Arc::new(Recorder::default());
        let ctx = BrokerCtx::new(Some(recorder.clone()));
        assert_eq!(
            ctx.spawn("known".into(), "[1]".into()).await.unwrap(),
            "fc-1"
        );
        let bad = ctx.spawn("known".into(), "{".into()).await.unwrap_err();
        assert!(bad.to_string().starts_with("input is not JSON"), "{bad}");
        let missing = ctx.spawn("other".into(), "{}".into()).await.unwrap_err();
        assert_eq!(
            missing.to_string(),
            "this app has no function named \"other\""
        );
        assert_eq!(
            ctx.poll("fc-1".into(), u64::MAX).await.unwrap(),
            GuestCallState::Success("4".into())
        );
        assert_eq!(recorder.polls.lock().unwrap()[0], MAX_POLL);
    }
}
