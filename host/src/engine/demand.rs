//! What one endpoint's warm pool knows of the calls it serves: how many of its instances
//! are handed out, how many are being started, and a signal when one comes back. With the
//! host-wide count in [`super::cpu`], it decides whether a request that finds no idle
//! instance waits for a busy one or starts another.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::cpu::GuestCpu;

/// How long a request waits while every core computes and none of the endpoint's busy
/// instances comes back, before it may start one: long calls must not hold up short ones
/// behind them for long. Measured from the last return, not from the request's arrival:
/// under a steady queue of short calls instances come back all the time, and each
/// request's wait is its place in the queue.
pub(crate) const PATIENCE: Duration = Duration::from_millis(100);

/// The calls in flight on one endpoint's pool.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    out: AtomicUsize,
    starting: AtomicUsize,
    returned: Notify,
    /// When an instance last came back, in nanoseconds since [`base`].
    last_return: AtomicU64,
}

/// The instant the return times count from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Demand {
    /// Counts an instance as handed out until the guard is dropped.
    pub(crate) fn hand_out(self: &Arc<Self>) -> HandedOut {
        self.out.fetch_add(1, Ordering::Relaxed);
        HandedOut(self.clone())
    }

    /// Counts an instance as being started until the guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Starting {
        self.starting.fetch_add(1, Ordering::Relaxed);
        Starting(self.clone())
    }

    /// Wakes one request waiting for an instance: one came back.
    pub(crate) fn came_back(&self) {
        let since = Instant::now().saturating_duration_since(base()).as_nanos();
        self.last_return
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.returned.notify_one();
    }

    /// The later of `arrival` and the last return.
    fn progress_since(&self, arrival: Instant) -> Instant {
        let last = base() + Duration::from_nanos(self.last_return.load(Ordering::Relaxed));
        last.max(arrival)
    }

    /// Looks for an idle instance with `pop` until one is found or starting another is
    /// worth it: at once while a core is free (per `cpu`) or none of this endpoint's
    /// instances is out (nothing would come back); otherwise after each return, and once
    /// nothing came back for `patience`, as soon as no other request of this endpoint is
    /// starting one. `None`: start one.
    pub(crate) async fn wait_for_idle<T>(
        &self,
        cpu: &GuestCpu,
        patience: Duration,
        mut pop: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let arrival = Instant::now();
        loop {
            let until = self.progress_since(arrival) + patience;
            let back = self.returned.notified();
            if let Some(found) = pop() {
                return Some(found);
            }
            if !cpu.saturated() || self.out.load(Ordering::Relaxed) == 0 {
                return None;
            }
            let late = Instant::now() >= until;
            if late && self.starting.load(Ordering::Relaxed) == 0 {
                return None;
            }
            if late {
                back.await;
            } else {
                let _ = tokio::time::timeout_at(until, back).await;
            }
        }
    }
}

/// An instance handed out by its endpoint's pool, counted until dropped (checked back in,
/// or dropped after a failed call).
#[derive(Debug)]
pub(crate) struct HandedOut(Arc<Demand>);

impl Drop for HandedOut {
    fn drop(&mut self) {
        self.0.out.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An instance being started for a call, counted until dropped.
#[derive(Debug)]
pub(crate) struct Starting(Arc<Demand>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.starting.fetch_sub(1, Ordering::Relaxed);
        // A request that waits only because this start was under way looks again (the
        // start may have failed, and then nothing comes back from it).
        self.0.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    // A host with one core that an instance of the endpoint is busy on.
    use crate::engine::cpu::busy_single_core as saturated;

    #[tokio::test]
    async fn starts_at_once_while_a_core_is_free_or_nothing_would_come_back() {
        let demand = Arc::new(Demand::default());
        let idle = GuestCpu::new(1, Default::default(), Duration::ZERO);
        let _out = demand.hand_out();
        assert_eq!(
            demand.wait_for_idle(&idle, PATIENCE, || None::<u8>).await,
            None
        );
        let fresh = Arc::new(Demand::default());
        let (cpu, _busy) = saturated();
        // Saturated, but none of this endpoint's instances is out: waiting gains nothing.
        let started = Instant::now();
        assert_eq!(
            fresh.wait_for_idle(&cpu, PATIENCE, || None::<u8>).await,
            None
        );
        assert!(started.elapsed() < PATIENCE);
    }

    #[tokio::test]
    async fn waits_for_a_busy_instance_to_come_back_while_every_core_computes() {
        let demand = Arc::new(Demand::default());
        let (cpu, _busy) = saturated();
        let out = demand.hand_out();
        let idle = Arc::new(Mutex::new(Vec::new()));
        let back = {
            let (demand, idle) = (demand.clone(), idle.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(out);
                idle.lock().unwrap().push(7u8);
                demand.came_back();
            })
        };
        let pop = || idle.lock().unwrap().pop();
        assert_eq!(demand.wait_for_idle(&cpu, PATIENCE, pop).await, Some(7));
        back.await.unwrap();
    }

    #[tokio::test]
    async fn past_its_patience_a_request_starts_one_unless_another_is_starting() {
        let demand = Arc::new(Demand::default());
        let (cpu, _busy) = saturated();
        let _long_call = demand.hand_out();
        let starting = demand.start();
        let waiter = {
            let (demand, cpu) = (demand.clone(), cpu.clone());
            tokio::spawn(async move { demand.wait_for_idle(&cpu, PATIENCE, || None::<u8>).await })
        };
        tokio::time::sleep(PATIENCE * 3).await;
        assert!(
            !waiter.is_finished(),
            "it waits for the instance being started"
        );
        drop(starting);
        assert_eq!(waiter.await.unwrap(), None, "then it starts its own");
    }
}
