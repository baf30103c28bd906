//! Async handlers: the future type the macros box them into, `block_on` for the
//! synchronous exports, and `sleep` (with the `async` feature, on WASIp3's clock).

use std::future::Future;
use std::pin::Pin;

/// A boxed future of an async handler; components are single-threaded, so not `Send`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// Runs `future` to completion on the calling thread.
///
/// In a component built with the `async` feature this is wit-bindgen's event loop, so
/// WASIp3 I/O makes progress; elsewhere (native tests, components without the feature,
/// which have no async I/O to wait on) the future is polled until it is ready.
pub fn block_on<T: 'static>(future: impl Future<Output = T>) -> T {
    #[cfg(all(target_family = "wasm", feature = "async"))]
    {
        wit_bindgen::block_on(future)
    }
    #[cfg(not(all(target_family = "wasm", feature = "async")))]
    {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
            std::thread::yield_now();
        }
    }
}

/// Waits `duration` without holding the instance: other inputs run meanwhile (the
/// WASIp3 monotonic clock's `wait-for`).
#[cfg(all(target_family = "wasm", feature = "async"))]
pub async fn sleep(duration: std::time::Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    wasip3::clocks::monotonic_clock::wait_for(nanos).await;
}

/// Waits `duration` (natively: the thread sleeps).
#[cfg(not(all(target_family = "wasm", feature = "async")))]
pub async fn sleep(duration: std::time::Duration) {
    std::thread::sleep(duration);
}

/// Who the running function call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The call's id (`fc-...`).
    pub call_id: String,
    /// Its attempt, from 1.
    pub attempt: u32,
}

thread_local! {
    /// The call whose future is being polled (async functions), if any.
    static CURRENT: std::cell::RefCell<Option<CallInfo>> = const { std::cell::RefCell::new(None) };
}

/// The function call this code runs for: its id and attempt. Calls of an `async`
/// function that share an instance share its environment, so only this tells them
/// apart; a synchronous function may also read `WASMHOST_CALL_ID` and
/// `WASMHOST_ATTEMPT`. `None` outside a function call (endpoints, native tests).
pub fn current_call() -> Option<CallInfo> {
    CURRENT.with(|c| c.borrow().clone()).or_else(|| {
        let call_id = std::env::var("WASMHOST_CALL_ID").ok()?;
        let attempt = std::env::var("WASMHOST_ATTEMPT").ok()?.parse().ok()?;
        Some(CallInfo { call_id, attempt })
    })
}

/// `future`, run as `call`: while it is polled, [`current_call`] answers `call`.
pub fn as_call<F: Future>(call: CallInfo, future: F) -> impl Future<Output = F::Output> {
    AsCall {
        call: Some(call),
        future: Box::pin(future),
    }
}

struct AsCall<F> {
    call: Option<CallInfo>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for AsCall<F> {
    type Output = F::Output;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // Other calls' futures are polled in between: each poll puts its own call in
        // place and takes it back after.
        let this = &mut *self;
        let previous = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), this.call.take()));
        let polled = this.future.as_mut().poll(cx);
        this.call = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_sees_its_own_identity_while_polled() {
        let call = |id: &str, attempt| CallInfo {
            call_id: id.into(),
            attempt,
        };
        let seen = block_on(async {
            let first = as_call(call("fc-1", 1), async {
                sleep(std::time::Duration::from_millis(1)).await;
                current_call()
            });
            let second = as_call(call("fc-2", 3), async { current_call() });
            (first.await, second.await)
        });
        assert_eq!(seen, (Some(call("fc-1", 1)), Some(call("fc-2", 3))));
        assert_eq!(CURRENT.with(|c| c.borrow().clone()), None);
    }

    #[test]
    fn runs_a_future_to_completion() {
        let doubled = block_on(async {
            sleep(std::time::Duration::from_millis(1)).await;
            21 * 2
        });
        assert_eq!(doubled, 42);
    }
}
