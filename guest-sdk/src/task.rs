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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_future_to_completion() {
        let doubled = block_on(async {
            sleep(std::time::Duration::from_millis(1)).await;
            21 * 2
        });
        assert_eq!(doubled, 42);
    }
}
