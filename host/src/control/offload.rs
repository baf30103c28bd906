//! Where the API's requests run when the store is a database across the network.
//!
//! A request to the API makes store calls, and a store call on PostgreSQL holds its
//! thread for a network round trip. On a serving thread that stalls every connection the
//! thread serves: a client listing apps stalled the endpoint beside it from ~119 k to
//! ~11 k requests a second, with a quarter of the CPU idle (bench/floods.py). With
//! PostgreSQL the API therefore runs on threads of its own, which may wait; the embedded
//! store answers in microseconds, and its requests stay where they arrived.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Threads for the API's requests. As many as the store's connection pool has
/// connections: a thread waits on one connection at a time.
const API_THREADS: usize = 16;

/// The runtime the API's requests run on, when they must not run on a serving thread.
pub(super) struct Offload {
    runtime: Option<Runtime>,
}

/// The API's runtime stopped before the request finished (the host is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the host is stopping")]
pub(super) struct Stopped;

impl Offload {
    /// Threads of their own when `waits` (the store's calls wait on the network), none
    /// otherwise.
    pub(super) fn new(waits: bool) -> std::io::Result<Self> {
        let runtime = waits
            .then(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(API_THREADS)
                    .thread_name("wasmhost-api")
                    .enable_all()
                    .build()
            })
            .transpose()?;
        Ok(Self { runtime })
    }

    /// Runs `work` to its end: on the API's threads when there are any, else right here.
    /// Dropping the returned future stops `work` as dropping `work` itself would (a
    /// client that went away).
    pub(super) async fn run<F>(&self, work: F) -> Result<F::Output, Stopped>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Ok(work.await);
        };
        match (AbortOnDrop(runtime.spawn(work))).await {
            Ok(output) => Ok(output),
            // A panic is the request's, as it would have been here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Stopped),
        }
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        // Dropped from within another runtime's task a runtime would panic; nothing of
        // it is needed once the control plane is gone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_on_the_api_threads_only_when_there_are_any() {
        let name = || std::thread::current().name().map(str::to_owned);
        let here = name();
        let inline = Offload::new(false).unwrap();
        assert_eq!(inline.run(async move { name() }).await.unwrap(), here);
        let offload = Offload::new(true).unwrap();
        let there = offload.run(async move { name() }).await.unwrap();
        assert_eq!(there.as_deref(), Some("wasmhost-api"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_request_stops_its_work() {
        /// Sets its flag when the work that owns it is dropped.
        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let offload = Offload::new(true).unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(dropped.clone());
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let run = offload.run(async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await
        });
        tokio::select! {
            _ = run => unreachable!("the work never ends by itself"),
            _ = started => {}
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the work ran on after its request was dropped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_stays_the_requests() {
        use futures_util::FutureExt;
        let offload = Offload::new(true).unwrap();
        let run = std::panic::AssertUnwindSafe(offload.run(async { panic!("in the handler") }));
        assert!(run.catch_unwind().await.is_err());
        // The API's threads still serve.
        assert_eq!(offload.run(async { 7 }).await.unwrap(), 7);
    }
}
