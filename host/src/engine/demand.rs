//! What one endpoint's warm pool knows of the calls it serves: how many of its instances
//! are handed out, how many are being started, and a signal when one comes back. With the
//! host-wide count in [`super::cpu`], it decides whether a request that finds no idle
//! instance waits for a busy one or starts another. A [`Reply`] tells it when an instance
//! has delivered its response and is about to come back.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::cpu::GuestCpu;
use super::shards::ThreadCount;

/// How long a request waits while every core computes and none of the endpoint's busy
/// instances comes back, before it may start one: long calls must not hold up short ones
/// behind them for long. Measured from the last return, not from the request's arrival:
/// under a steady queue of short calls instances come back all the time, and each
/// request's wait is its place in the queue.
pub(crate) const PATIENCE: Duration = Duration::from_millis(100);

/// How long a request that finds no idle instance waits for one whose response is out
/// and whose call is returning, before it starts another: the return takes microseconds,
/// this bounds a guest that works on after its response without computing (a background
/// task waiting on I/O), and an instance whose thread the OS holds up for a while.
pub(crate) const RETURN_PATIENCE: Duration = Duration::from_millis(50);

/// Epoch ticks a guest may compute after its response was delivered before requests stop
/// waiting for it: past that it is working on (a background task), not returning.
const TICKS_PAST_REPLY: u8 = 5;

/// The calls in flight on one endpoint's pool.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    /// Instances handed out: added to and taken from on every request, by both serving
    /// threads.
    out: ThreadCount,
    starting: AtomicUsize,
    returned: Notify,
    /// Instances whose response was delivered while their call has not returned yet.
    finishing: AtomicUsize,
    /// When an instance last came back while a request waited, in nanoseconds since
    /// [`base`].
    last_return: AtomicU64,
    /// Requests in [`Demand::wait_for_idle`]. Only while there are any does a return
    /// read the clock and signal: on every check-in those would write lines that both
    /// serving threads share.
    waiting: AtomicUsize,
}

/// The instant the return times count from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Demand {
    /// Counts an instance as handed out until the guard is dropped.
    pub(crate) fn hand_out(self: &Arc<Self>) -> HandedOut {
        let mut out = HandedOut::default();
        out.count_in(self);
        out
    }

    /// Counts an instance as being started until the guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Starting {
        self.starting.fetch_add(1, Ordering::Relaxed);
        Starting(self.clone())
    }

    /// Wakes one request waiting for an instance: one came back (it is in its list).
    pub(crate) fn came_back(&self) {
        // Pairs with the waiter's count before it looks in the list: either it finds the
        // instance, or the count is seen here.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
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
    /// worth it. While an instance that delivered its response is returning, it waits
    /// for it (up to [`RETURN_PATIENCE`]): a client sending requests one after another
    /// would otherwise race that return and meet a fresh instance, without the state the
    /// last request left. Beyond that a `cheap` instance is started at once; a costly one
    /// at once while a core is free (per `cpu`) or none of this endpoint's instances is
    /// out (nothing would come back), otherwise after each return, and once nothing came
    /// back for `patience`, as soon as no other request of this endpoint is starting one.
    /// `None`: start one.
    pub(crate) async fn wait_for_idle<T>(
        &self,
        cpu: &GuestCpu,
        (patience, cheap): (Duration, bool),
        mut pop: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let arrival = Instant::now();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _counted = Waiting(self);
        loop {
            let until = self.progress_since(arrival) + patience;
            let back = self.returned.notified();
            // Read before looking, not after: an instance is checked in before its reply
            // settles, so a count of none read here means a returning instance is in the
            // list by now. Read after a fruitless look, the instance could come back and
            // settle in between, and this request would start another beside it.
            let returning = self.finishing.load(Ordering::Acquire) > 0;
            if let Some(found) = pop() {
                return Some(found);
            }
            if returning {
                let bound = arrival + RETURN_PATIENCE;
                if Instant::now() < bound {
                    let _ = tokio::time::timeout_at(bound, back).await;
                    continue;
                }
            }
            if cheap || !cpu.saturated() || self.out.get(Ordering::Relaxed) == 0 {
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

/// A request counted in [`Demand::waiting`] until dropped.
struct Waiting<'a>(&'a Demand);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An instance's part in its endpoint's count of handed-out instances: counted while it
/// is handed out, until checked back in or dropped (after a failed call). It keeps the
/// endpoint's [`Demand`] across check-ins, so handing the instance out again takes no
/// reference count.
#[derive(Debug, Default)]
pub(crate) struct HandedOut {
    demand: Option<Arc<Demand>>,
    counted: bool,
}

impl HandedOut {
    /// Counts the instance as handed out by `demand`'s endpoint.
    pub(crate) fn count_in(&mut self, demand: &Arc<Demand>) {
        if !self.demand.as_ref().is_some_and(|d| Arc::ptr_eq(d, demand)) {
            self.uncount();
            self.demand = Some(demand.clone());
        }
        if !self.counted {
            demand.out.add(1, Ordering::Relaxed);
            self.counted = true;
        }
    }

    /// The instance is back: no longer counted.
    pub(crate) fn uncount(&mut self) {
        if std::mem::take(&mut self.counted)
            && let Some(demand) = &self.demand
        {
            demand.out.add(-1, Ordering::Relaxed);
        }
    }

    /// The reply of the call this handed-out instance serves, to mark when it is
    /// delivered; `None` for an instance no pool handed out.
    pub(crate) fn reply(&self) -> Option<Arc<Reply>> {
        let demand = self.demand.as_ref().filter(|_| self.counted)?;
        Some(Arc::new(Reply {
            state: AtomicU8::new(STREAMING),
            ticks: AtomicU8::new(0),
            demand: demand.clone(),
        }))
    }
}

const STREAMING: u8 = 0;
const FINISHING: u8 = 1;
const SETTLED: u8 = 2;

/// A call's response as its endpoint's pool sees it. Once delivered (the client has all
/// of it) the instance is about to come back, and requests that find no idle instance
/// wait for it ([`Demand::wait_for_idle`]) until it settles: it came back or was retired
/// ([`Settles`]), or it computed on for [`TICKS_PAST_REPLY`] ticks.
#[derive(Debug)]
pub(crate) struct Reply {
    state: AtomicU8,
    /// Epoch ticks on which the guest computed since its response was delivered.
    ticks: AtomicU8,
    demand: Arc<Demand>,
}

impl Reply {
    /// The client has the whole response (or went away): the call is returning.
    pub(crate) fn delivered(&self) {
        // Most calls have returned by the time hyper is done with their body.
        if self.state.load(Ordering::Acquire) != STREAMING {
            return;
        }
        // Counted before the state says so: whoever settles it then finds the count up.
        self.demand.finishing.fetch_add(1, Ordering::AcqRel);
        let marked =
            self.state
                .compare_exchange(STREAMING, FINISHING, Ordering::AcqRel, Ordering::Acquire);
        if marked.is_err() {
            // Settled (or delivered) already: a waiter that saw the count looks again.
            self.demand.finishing.fetch_sub(1, Ordering::AcqRel);
            self.demand.returned.notify_waiters();
        }
    }

    /// The guest yields on an epoch tick: past [`TICKS_PAST_REPLY`] after delivery it is
    /// working on rather than returning.
    pub(crate) fn ticked(&self) {
        if self.state.load(Ordering::Acquire) == FINISHING
            && self.ticks.fetch_add(1, Ordering::Relaxed) + 1 >= TICKS_PAST_REPLY
        {
            self.settle();
        }
    }

    fn settle(&self) {
        if self.state.swap(SETTLED, Ordering::AcqRel) == FINISHING {
            self.demand.finishing.fetch_sub(1, Ordering::AcqRel);
            self.demand.returned.notify_waiters();
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Settles a [`Reply`] when dropped: its instance's call is over, the instance checked
/// back in or gone.
#[derive(Debug)]
pub(crate) struct Settles(pub(crate) Arc<Reply>);

impl Drop for Settles {
    fn drop(&mut self) {
        self.0.settle();
    }
}

impl Drop for HandedOut {
    fn drop(&mut self) {
        self.uncount();
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
            demand
                .wait_for_idle(&idle, (PATIENCE, false), || None::<u8>)
                .await,
            None
        );
        let fresh = Arc::new(Demand::default());
        let (cpu, _busy) = saturated();
        // Saturated, but none of this endpoint's instances is out: waiting gains nothing.
        let started = Instant::now();
        assert_eq!(
            fresh
                .wait_for_idle(&cpu, (PATIENCE, false), || None::<u8>)
                .await,
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
        assert_eq!(
            demand.wait_for_idle(&cpu, (PATIENCE, false), pop).await,
            Some(7)
        );
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
            tokio::spawn(async move {
                demand
                    .wait_for_idle(&cpu, (PATIENCE, false), || None::<u8>)
                    .await
            })
        };
        tokio::time::sleep(PATIENCE * 3).await;
        assert!(
            !waiter.is_finished(),
            "it waits for the instance being started"
        );
        drop(starting);
        assert_eq!(waiter.await.unwrap(), None, "then it starts its own");
    }

    #[tokio::test]
    async fn waits_for_an_instance_returning_after_its_reply_even_a_cheap_one() {
        let demand = Arc::new(Demand::default());
        let free = GuestCpu::new(1, Default::default(), Duration::ZERO);
        let out = demand.hand_out();
        let reply = out.reply().unwrap();
        let settles = Settles(reply.clone());
        reply.delivered();
        let idle = Arc::new(Mutex::new(Vec::new()));
        let back = {
            let (demand, idle) = (demand.clone(), idle.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(out);
                idle.lock().unwrap().push(7u8);
                demand.came_back();
                drop(settles);
            })
        };
        let pop = || idle.lock().unwrap().pop();
        let found = demand.wait_for_idle(&free, (PATIENCE, true), pop).await;
        assert_eq!(found, Some(7));
        back.await.unwrap();
        assert_eq!(demand.finishing.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_instance_that_comes_back_between_a_look_and_the_count_is_found() {
        let demand = Arc::new(Demand::default());
        let free = GuestCpu::new(1, Default::default(), Duration::ZERO);
        let out = demand.hand_out();
        let reply = out.reply().unwrap();
        let mut settles = Some(Settles(reply.clone()));
        reply.delivered();
        drop(reply);
        let mut idle = Vec::new();
        // The first look finds nothing; the instance is checked in and settles right after.
        let mut looks = 0;
        let pop = || {
            looks += 1;
            if looks == 1 {
                idle.push(7u8);
                demand.came_back();
                drop(settles.take());
                return None;
            }
            idle.pop()
        };
        let found = demand.wait_for_idle(&free, (PATIENCE, false), pop).await;
        assert_eq!(found, Some(7), "it looks again instead of starting another");
        drop(out);
    }

    #[tokio::test]
    async fn a_reply_that_computes_on_or_never_returns_holds_requests_briefly() {
        let demand = Arc::new(Demand::default());
        let free = GuestCpu::new(1, Default::default(), Duration::ZERO);
        let none = || None::<u8>;
        // Computing on past its response (a background task): not waited for.
        let out = demand.hand_out();
        let reply = out.reply().unwrap();
        let _settles = Settles(reply.clone());
        reply.delivered();
        for _ in 0..TICKS_PAST_REPLY {
            reply.ticked();
        }
        let started = Instant::now();
        assert_eq!(
            demand.wait_for_idle(&free, (PATIENCE, true), none).await,
            None
        );
        assert!(started.elapsed() < RETURN_PATIENCE);
        // Waiting without computing, or held up: waited for up to RETURN_PATIENCE.
        let other = demand.hand_out().reply().unwrap();
        other.delivered();
        let started = Instant::now();
        assert_eq!(
            demand.wait_for_idle(&free, (PATIENCE, true), none).await,
            None
        );
        assert!(started.elapsed() >= RETURN_PATIENCE);
        // A reply delivered after its call settled counts for nothing.
        drop(other);
        let late = demand.hand_out().reply().unwrap();
        drop(Settles(late.clone()));
        late.delivered();
        assert_eq!(demand.finishing.load(Ordering::Acquire), 0);
    }
}
