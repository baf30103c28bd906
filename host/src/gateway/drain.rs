//! Graceful shutdown of the connections on a serving thread. hyper-util's
//! `GracefulShutdown` watches one channel shared by every connection, and polling its
//! receiver locks that channel's waiter list: every poll of every connection took a lock
//! whose cache line the serving threads passed back and forth. Here each serving thread
//! keeps its own list of its connections' wakers, which only that thread touches, and a
//! poll costs a flag read and a waker comparison.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;

/// One serving thread's connections and whether they are being drained.
#[derive(Default)]
struct Registry {
    draining: Cell<bool>,
    wakers: RefCell<slab::Slab<Waker>>,
}

thread_local! {
    static REGISTRY: Registry = Registry::default();
}

/// Asks every connection open on the calling serving thread, and every one that opens
/// there later, to finish its in-flight requests and close.
pub(super) fn drain_this_thread() {
    REGISTRY.with(|r| {
        r.draining.set(true);
        // Woken outside the borrow: a waker may poll in place on some executors.
        let wakers: Vec<Waker> = r.wakers.borrow().iter().map(|(_, w)| w.clone()).collect();
        wakers.into_iter().for_each(Waker::wake);
    });
}

/// A connection that can be asked to close once its in-flight requests are answered.
pub(super) trait Drainable: Future {
    /// Starts the connection's graceful shutdown.
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drainable for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Drainable for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: Read + Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

pin_project_lite::pin_project! {
    /// A connection registered with its serving thread's drain.
    pub(super) struct Drained<C> {
        #[pin]
        conn: C,
        key: Option<usize>,
        told: bool,
    }

    impl<C> PinnedDrop for Drained<C> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(key) = this.project().key.take() {
                // The registry may be gone already when the thread itself is ending.
                let _ = REGISTRY.try_with(|r| r.wakers.borrow_mut().try_remove(key));
            }
        }
    }
}

impl<C> Drained<C> {
    /// Watches `conn` on the thread that polls it.
    pub(super) fn new(conn: C) -> Self {
        Self {
            conn,
            key: None,
            told: false,
        }
    }
}

impl<C: Drainable> Future for Drained<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        let draining = REGISTRY.with(|r| {
            let mut wakers = r.wakers.borrow_mut();
            match this.key.and_then(|k| wakers.get_mut(k)) {
                Some(waker) => waker.clone_from(cx.waker()),
                None => *this.key = Some(wakers.insert(cx.waker().clone())),
            }
            r.draining.get()
        });
        if draining && !*this.told {
            *this.told = true;
            this.conn.as_mut().drain();
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Pending until drained, then ready; counts its polls.
    struct Idle {
        drained: bool,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Idle {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.drained {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Drainable for Idle {
        fn drain(mut self: Pin<&mut Self>) {
            self.drained = true;
        }
    }

    #[tokio::test]
    async fn a_drain_wakes_open_connections_and_reaches_new_ones() {
        let polls = Arc::new(AtomicUsize::new(0));
        let idle = || Idle {
            drained: false,
            polls: polls.clone(),
        };
        let open = tokio::spawn(Drained::new(idle()));
        tokio::task::yield_now().await;
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        assert!(!open.is_finished());
        drain_this_thread();
        open.await.unwrap();
        // A connection that opens after the drain closes at its first poll.
        Drained::new(idle()).await;
        assert_eq!(REGISTRY.with(|r| r.wakers.borrow().len()), 0);
    }
}
