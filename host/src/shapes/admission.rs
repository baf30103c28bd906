//! Backpressure per endpoint: at most `max_concurrency` calls run at once; more wait in a
//! fair (FIFO) queue with a deadline; only past the queue's bound are requests refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The queue already holds its bound.
    #[error("the endpoint is at capacity and {0} requests are already waiting; retry shortly")]
    QueueFull(usize),
    /// The request waited past the queue's deadline.
    #[error("the endpoint stayed at capacity for {0:?}; retry shortly")]
    Timeout(Duration),
}

/// The admission gate of one endpoint.
pub(crate) struct Admission {
    permits: Semaphore,
    waiting: AtomicUsize,
    queue_depth: usize,
    timeout: Duration,
    /// The endpoint's queue-depth series, resolved once.
    queue_gauge: Gauge,
}

/// Keeps the waiting count right even when a waiting request is dropped.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    gauge: Gauge,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

impl Admission {
    /// A gate letting `max_concurrency` calls in, queueing `queue_depth` more (counted
    /// in `queue_gauge`) for up to `timeout`.
    pub(crate) fn new(
        max_concurrency: usize,
        queue_depth: usize,
        timeout: Duration,
        queue_gauge: Gauge,
    ) -> Self {
        Self {
            permits: Semaphore::new(max_concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            queue_depth,
            timeout,
            queue_gauge,
        }
    }

    /// Waits for a slot; the permit frees it when dropped. It borrows the gate: an owned
    /// permit would take and give back a reference count on the semaphore, a line both
    /// serving threads write, on every request.
    pub(crate) async fn admit(&self) -> Result<SemaphorePermit<'_>, Refused> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let before = self.waiting.fetch_add(1, Ordering::Relaxed);
        self.queue_gauge.inc();
        let _waiting = Waiting {
            count: &self.waiting,
            gauge: self.queue_gauge.clone(),
        };
        if before >= self.queue_depth {
            return Err(Refused::QueueFull(before));
        }
        match tokio::time::timeout(self.timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Timeout(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn queues_then_refuses_past_the_bound() {
        let gauge = Gauge::default();
        let gate = Arc::new(Admission::new(
            1,
            1,
            Duration::from_millis(200),
            gauge.clone(),
        ));
        let first = gate.admit().await.unwrap();
        let queued = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gauge.get(), 1, "one request waits");
        assert!(matches!(gate.admit().await, Err(Refused::QueueFull(1))));
        drop(first);
        assert!(
            queued.await.unwrap().is_ok(),
            "the queued request got the freed slot"
        );
        let _held = gate.admit().await.unwrap();
        assert!(matches!(gate.admit().await, Err(Refused::Timeout(_))));
        assert_eq!(gauge.get(), 0);
    }
}
