//! How many warm instances are computing right now, host-wide, so the warm pools scale
//! out only when that helps.
//!
//! A synchronous guest (a WASIp2 handler, a Python app) serves one request at a time, so a
//! burst that finds no idle instance used to start a new one for every waiting request. When
//! the guests are busy computing, that adds nothing: the host's cores are already running
//! guest code, and every extra instance costs its first-request page faults and its own
//! share of the caches (measured on the Starlette example with 64 connections on 2 cores:
//! 97 instances served 1,450 requests/s in 1.8 GiB; 8 served 2,160 in 190 MiB).
//! Only instances that are costly to start wait so (see `Prepared::starts_cheaply`): for a
//! ~1 MiB Rust or wasi:http instance, ~10 µs to start, waiting costs more than starting
//! (measured on the wasi:http proxy under `wrk -c64`: p99 6.4 → 4.0 ms).
//!
//! Two signals say the cores are taken. The machine's own: the share of CPU time spent
//! busy over the last few milliseconds, read from `/proc/stat` while pools of costly
//! instances are asking (it sees the host's own work
//! around each call, which is most of a short call's cost, as well as the guests'). And the
//! count of instances computing for a call: an instance counts from the moment a pool hands
//! it out (or starts it) until it is back, except while its guest waits in a host call
//! (reading a body, an outgoing request, a timer). The count is what catches a burst,
//! whose requests all arrive before any guest runs and before the CPU is busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// The cores this process may use, read once: the standard library reads the cgroup's
/// files on every call, and start-up would ask three times.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// How long the cores count as all taken after the count last dropped from there. Under
/// load an instance leaves the count for a moment at the end of every call (sending its
/// response, going back to its pool), and a request arriving in that moment must not take
/// it for a free core.
const HOLD: Duration = Duration::from_millis(2);

/// The machine's CPU counts as busy above this share of its time (per mille).
const BUSY_PER_MILLE: u32 = 900;
/// How often the machine's CPU time is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The machine's CPU time is read only while a pool asked this recently whether the cores
/// are taken.
const ASKED_WITHIN: Duration = Duration::from_secs(1);

/// The count of instances computing for a call, and the cores they share.
#[derive(Debug)]
pub(crate) struct GuestCpu {
    /// Stores out of their pools: while there are none, the sampler naps.
    pub(crate) activity: Arc<super::activity::Activity>,
    /// The machine's busy share over the last sample, per mille (0 where unknown).
    busy: AtomicU32,
    /// Both kinds, as `/metrics` shows them.
    count: Gauge,
    /// Yields to the executor at epoch ticks, as `/metrics` shows them.
    yields: Counter,
    cores: usize,
    hold: Duration,
    start: Instant,
    /// When the count last dropped below `cores`, in nanoseconds since `start`.
    left_full: AtomicU64,
    /// When a pool last asked whether the cores are taken, in nanoseconds since `start`.
    asked: AtomicU64,
}

impl GuestCpu {
    /// A count kept in `count` for a host with `cores` cores to run guests on, which
    /// counts as saturated for `hold` after it last was.
    #[cfg(test)]
    pub(crate) fn new(cores: usize, count: Gauge, hold: Duration) -> Arc<Self> {
        Self::counting(cores, count, Counter::default(), hold)
    }

    fn counting(cores: usize, count: Gauge, yields: Counter, hold: Duration) -> Arc<Self> {
        let cores = cores.max(1);
        Arc::new(Self {
            activity: Arc::default(),
            busy: AtomicU32::new(0),
            count,
            yields,
            cores,
            hold,
            start: Instant::now(),
            left_full: AtomicU64::new(0),
            asked: AtomicU64::new(0),
        })
    }

    /// A count kept in `count` for this machine's cores (and the guests' yields in
    /// `yields`), with a thread that samples the machine's CPU time for as long as the
    /// count is in use.
    pub(crate) fn for_this_machine(count: Gauge, yields: Counter) -> Arc<Self> {
        let cpu = Self::counting(cores(), count, yields, HOLD);
        // The thread reads `/proc/stat` first (a slow file: the kernel formats every
        // interrupt's count), so start-up does not wait for it.
        let weak = Arc::downgrade(&cpu);
        let _ = std::thread::Builder::new()
            .name("wasmhost-cpu".into())
            .spawn(move || sample(&weak));
        cpu
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn leave(&self) {
        let before = self.count.dec();
        if usize::try_from(before).is_ok_and(|n| n >= self.cores) {
            self.left_full.store(self.nanos(), Ordering::Relaxed);
        }
    }

    /// Instances computing for a call now, those being started for one included.
    pub(crate) fn running(&self) -> usize {
        usize::try_from(self.count.get()).unwrap_or(0)
    }

    /// Counts an instance a pool starts for a call until the returned guard is dropped.
    pub(crate) fn starting(self: &Arc<Self>) -> Starting {
        self.count.inc();
        Starting(self.clone())
    }

    /// Whether a pool asked [`Self::saturated`] within the last second.
    fn asked_lately(&self) -> bool {
        let asked = self.asked.load(Ordering::Relaxed);
        asked != 0 && self.nanos().saturating_sub(asked) < ASKED_WITHIN.as_nanos() as u64
    }

    /// Whether there is an instance computing for every core (or was, a moment ago):
    /// another would only share them.
    pub(crate) fn saturated(&self) -> bool {
        self.asked.store(self.nanos(), Ordering::Relaxed);
        if self.running() >= self.cores || self.busy.load(Ordering::Relaxed) >= BUSY_PER_MILLE {
            return true;
        }
        let left = self.left_full.load(Ordering::Relaxed);
        left != 0 && self.nanos().saturating_sub(left) < self.hold.as_nanos() as u64
    }
}

/// The machine's (busy, total) CPU time so far, in clock ticks, from `/proc/stat`.
fn read_cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    let total: u64 = fields.iter().take(8).sum();
    Some((total.saturating_sub(idle), total))
}

/// Keeps `cpu`'s busy share current until it is dropped.
fn sample(cpu: &std::sync::Weak<GuestCpu>) {
    let Some(activity) = cpu.upgrade().map(|c| c.activity.clone()) else {
        return;
    };
    activity.register_sleeper();
    let mut last = read_cpu_times();
    if last.is_none() {
        // No `/proc/stat` here: the count of instances computing is the only signal.
        return;
    }
    loop {
        if activity.nap_while_quiet() {
            let Some(cpu) = cpu.upgrade() else { return };
            // Nothing ran meanwhile: the next request must not be judged by old figures.
            cpu.busy.store(0, Ordering::Relaxed);
            last = read_cpu_times();
            continue;
        }
        std::thread::sleep(SAMPLE_EVERY);
        let Some(cpu) = cpu.upgrade() else { return };
        if !cpu.asked_lately() {
            // Only a pool of costly instances asks (cheap ones start at once): on a host
            // serving none, reading `/proc/stat` 100 times a second was ~1 % of its CPU
            // under load. The next question after a pause is judged by the count alone.
            cpu.busy.store(0, Ordering::Relaxed);
            last = None;
            continue;
        }
        if last.is_none() {
            last = read_cpu_times();
            continue;
        }
        let now = read_cpu_times();
        if let (Some((busy0, total0)), Some((busy1, total1))) = (last, now)
            && total1 > total0
        {
            let share = (busy1.saturating_sub(busy0)) * 1000 / (total1 - total0);
            cpu.busy
                .store(u32::try_from(share).unwrap_or(1000), Ordering::Relaxed);
        }
        last = now;
    }
}

/// An instance being started for a call, counted until dropped.
#[derive(Debug)]
pub(crate) struct Starting(Arc<GuestCpu>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// One store's part of the count. Dropping it (a store dropped mid-call, a trap) takes
/// its part back.
#[derive(Debug)]
pub(crate) struct GuestRunning {
    cpu: Arc<GuestCpu>,
    /// Its part of the count of stores out of their pools.
    active: super::activity::ActiveStore,
    /// Handed out by a pool for a call (or being started for one): counted, except while
    /// a call on it waits (see [`computing`]).
    claimed: bool,
    /// Set by the epoch callback when the guest yields to the executor on a tick: that
    /// suspension is not a wait, the guest still computes.
    yielded: Arc<AtomicBool>,
}

impl GuestRunning {
    /// A store's part, not handed out.
    pub(crate) fn new(cpu: &Arc<GuestCpu>) -> Self {
        Self {
            cpu: cpu.clone(),
            active: super::activity::ActiveStore::new(&cpu.activity),
            claimed: false,
            yielded: Arc::default(),
        }
    }

    /// Marks the instance handed out for a call (`true`) or back in its pool.
    pub(crate) fn claim(&mut self, claimed: bool) {
        self.active.idle(!claimed);
        if claimed == self.claimed {
            return;
        }
        self.claimed = claimed;
        if claimed {
            self.cpu.count.inc();
        } else {
            self.cpu.leave();
        }
    }

    /// Notes that the guest is about to yield to the executor on an epoch tick.
    pub(crate) fn yielding(&self) {
        self.yielded.store(true, Ordering::Relaxed);
        self.cpu.yields.inc();
    }

    /// What a call on this store needs to take it out of the count while it waits; `None`
    /// where the store is not counted (not handed out by a pool).
    pub(crate) fn for_call<'a>(&self, cpu: &'a GuestCpu) -> Option<Waits<'a>> {
        debug_assert!(std::ptr::eq(cpu, &*self.cpu), "the store's own count");
        self.claimed.then(|| Waits {
            cpu,
            yielded: self.yielded.clone(),
            lent: false,
        })
    }
}

impl Drop for GuestRunning {
    fn drop(&mut self) {
        self.claim(false);
    }
}

/// A call's hold on its store's part of the count.
#[derive(Debug)]
pub(crate) struct Waits<'a> {
    /// The host's count, borrowed: a reference count of it would be taken and given back
    /// on every call by both serving threads.
    cpu: &'a GuestCpu,
    yielded: Arc<AtomicBool>,
    /// The part is given up while the call waits.
    lent: bool,
}

impl Waits<'_> {
    fn resume(&mut self) {
        self.yielded.store(false, Ordering::Relaxed);
        if std::mem::take(&mut self.lent) {
            self.cpu.count.inc();
        }
    }

    fn suspend(&mut self) {
        if !self.yielded.swap(false, Ordering::Relaxed) {
            self.lent = true;
            self.cpu.leave();
        }
    }
}

impl Drop for Waits<'_> {
    fn drop(&mut self) {
        // The store is still handed out: its part goes back to the count, which the
        // store's own `claim(false)` (or drop) then gives up.
        self.resume();
    }
}

/// Runs `call`, a call on a store, taking the store out of the count whenever the guest
/// waits (its future is pending for anything but an epoch yield: a body, a timer, an
/// outgoing request) and back in when it is polled again.
///
/// This replaces a call hook that followed every switch between guest and host: two
/// updates of the host-wide count for every host call, most of which never wait (a
/// wasi:http request makes a dozen), cost ~3 % of a proxied request's CPU under load.
pub(crate) async fn computing<F: Future>(waits: Option<Waits<'_>>, call: F) -> F::Output {
    let Some(mut waits) = waits else {
        return call.await;
    };
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        waits.resume();
        let poll = call.as_mut().poll(cx);
        if poll.is_pending() {
            waits.suspend();
        }
        poll
    })
    .await
}

/// A host with one core and a counted instance busy on it (for tests here and in the pools').
#[cfg(test)]
pub(crate) fn busy_single_core() -> (Arc<GuestCpu>, GuestRunning) {
    let cpu = GuestCpu::new(1, Gauge::default(), Duration::ZERO);
    let mut busy = GuestRunning::new(&cpu);
    busy.claim(true);
    (cpu, busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `call` once, as an executor would.
    fn poll_once<F: Future>(call: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        call.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn counts_handed_out_instances_not_calls_that_wait() {
        let cpu = GuestCpu::new(2, Gauge::default(), Duration::ZERO);
        let mut a = GuestRunning::new(&cpu);
        let mut b = GuestRunning::new(&cpu);
        // Not handed out: an idle instance, or one outside the pools, computes for no call.
        assert!(a.for_call(&cpu).is_none());
        assert_eq!(cpu.running(), 0);
        a.claim(true);
        assert_eq!(cpu.running(), 1);
        assert!(!cpu.saturated());
        b.claim(true);
        assert!(cpu.saturated());
        // A guest waiting in a host call (a body, a timer) frees its core...
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = std::pin::pin!(computing(a.for_call(&cpu), rx));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(cpu.running(), 1);
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(cpu.running(), 1);
        // ...and takes it again once the wait is over.
        tx.send(7).unwrap();
        assert!(matches!(
            poll_once(call.as_mut()),
            std::task::Poll::Ready(Ok(7))
        ));
        assert_eq!(cpu.running(), 2);
        a.claim(false);
        b.claim(false);
        assert_eq!(cpu.running(), 0);
    }

    #[test]
    fn a_guest_yielding_on_a_tick_still_computes() {
        let (cpu, a) = busy_single_core();
        let running = &a;
        let mut ticks = 2;
        let spinning = std::future::poll_fn(|_| {
            if ticks == 0 {
                return std::task::Poll::Ready(());
            }
            ticks -= 1;
            // What the epoch callback does before the guest yields.
            running.yielding();
            std::task::Poll::Pending
        });
        let mut call = std::pin::pin!(computing(running.for_call(&cpu), spinning));
        for _ in 0..2 {
            assert!(poll_once(call.as_mut()).is_pending());
            assert_eq!(cpu.running(), 1);
        }
        assert!(poll_once(call.as_mut()).is_ready());
        assert_eq!(cpu.running(), 1);
    }

    #[test]
    fn a_call_dropped_while_waiting_leaves_the_count_right() {
        let (cpu, a) = busy_single_core();
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        {
            let mut call = std::pin::pin!(computing(a.for_call(&cpu), rx));
            assert!(poll_once(call.as_mut()).is_pending());
            assert_eq!(cpu.running(), 0);
        }
        // Timed out or cancelled: the store, still handed out, counts until it is back.
        assert_eq!(cpu.running(), 1);
        drop(a);
        assert_eq!(cpu.running(), 0);
    }

    #[test]
    fn repeated_marks_count_once_and_a_dropped_store_gives_its_part_back() {
        let (cpu, mut a) = busy_single_core();
        a.claim(true);
        assert_eq!(cpu.running(), 1);
        drop(a);
        assert_eq!(cpu.running(), 0);
        assert!(!cpu.saturated());
        // An instance being started counts: a burst's requests arrive before any runs.
        let starting = cpu.starting();
        assert!(cpu.saturated());
        drop(starting);
        assert_eq!(cpu.running(), 0);
    }

    #[test]
    fn reads_the_machines_cpu_time() {
        if let Some((busy, total)) = read_cpu_times() {
            assert!(busy <= total && total > 0);
        }
    }

    #[test]
    fn the_cores_count_as_taken_for_a_moment_after_the_count_drops() {
        let cpu = GuestCpu::new(1, Gauge::default(), Duration::from_secs(60));
        assert!(!cpu.saturated(), "never full yet");
        let mut a = GuestRunning::new(&cpu);
        a.claim(true);
        // Its call ends: the next request arriving now must not start another instance.
        a.claim(false);
        assert_eq!(cpu.running(), 0);
        assert!(cpu.saturated());
    }
}
