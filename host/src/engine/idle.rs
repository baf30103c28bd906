//! One endpoint's idle instances, kept apart by the thread that checked each one in.
//!
//! Both serving threads check instances out and in on every request. With one list for
//! both, each request took a lock and read entries the other core had just written: the
//! lock word and the list's lines moved between the cores' caches on every request (the
//! pool was ~4 % of a typed request's CPU, most of it those misses). Now a thread checks
//! an instance in to its own shard and takes from it first, so under steady traffic a
//! thread touches only its own shard; it takes from another thread's shard only when its
//! own is empty. An instance also stays on the core whose cache holds its store and
//! memory.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use super::shards::{SHARDS, Slots, home};

/// One thread's idle instances, the most recently used last.
type Shard<T> = Mutex<Vec<T>>;

/// What the list needs to know of an idle instance.
pub(super) trait Idle {
    /// When it went idle.
    fn idle_since(&self) -> Instant;
}

/// The idle instances of one endpoint.
pub(super) struct IdleList<T> {
    shards: Slots<Shard<T>>,
    /// The endpoint's idle gauge, made at its first check-in and set from the shards when
    /// the metrics are read (setting it on every check-out and check-in would write a line
    /// both threads share).
    gauge: OnceLock<Gauge>,
}

fn lock<T>(shard: &Shard<T>) -> MutexGuard<'_, Vec<T>> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Idle> Default for IdleList<T> {
    fn default() -> Self {
        Self {
            shards: Slots::default(),
            gauge: OnceLock::new(),
        }
    }
}

impl<T: Idle> IdleList<T> {
    /// The most recently used instance this thread checked in, else another thread's.
    pub(super) fn pop(&self) -> Option<T> {
        let home = home();
        if let Some(live) = self.shards.get(home).and_then(|s| lock(s).pop()) {
            return Some(live);
        }
        (1..SHARDS).find_map(|k| lock(self.shards.get((home + k) % SHARDS)?).pop())
    }

    /// Checks `live` in on this thread's shard; `gauge` makes the endpoint's idle gauge the
    /// first time.
    pub(super) fn push(&self, live: T, gauge: impl FnOnce() -> Gauge) {
        self.gauge.get_or_init(gauge);
        lock(self.shards.mine()).push(live);
    }

    /// How many wait.
    pub(super) fn len(&self) -> usize {
        self.shards.made().map(|(_, s)| lock(s).len()).sum()
    }

    /// Sets the idle gauge, if there is one, to how many wait.
    pub(super) fn refresh_gauge(&self) {
        if let Some(gauge) = self.gauge.get() {
            gauge.set(self.len() as i64);
        }
    }

    /// Takes every instance out, the longest idle first.
    pub(super) fn take_all(&self) -> Vec<T> {
        let mut all: Vec<T> = self
            .shards
            .made()
            .flat_map(|(_, s)| std::mem::take(&mut *lock(s)))
            .collect();
        all.sort_by_key(Idle::idle_since);
        all
    }

    /// When the instance idle the longest went idle.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.shards
            .made()
            .filter_map(|(_, s)| lock(s).first().map(Idle::idle_since))
            .min()
    }

    /// Takes out the instance idle the longest.
    pub(super) fn take_oldest(&self) -> Option<T> {
        let (shard, _) = self
            .shards
            .made()
            .filter_map(|(_, s)| Some((s, lock(s).first()?.idle_since())))
            .min_by_key(|&(_, since)| since)?;
        let mut shard = lock(shard);
        (!shard.is_empty()).then(|| shard.remove(0))
    }

    /// Takes out the instances idle for `window` or longer, except that the `keep` most
    /// recently used stay.
    pub(super) fn take_expired(&self, window: Duration, keep: usize) -> Vec<T> {
        let mut kept = 0;
        let mut old = Vec::new();
        for (i, shard) in self.shards.made() {
            let mut shard = lock(shard);
            let (expired, fresh): (Vec<T>, Vec<T>) = std::mem::take(&mut *shard)
                .into_iter()
                .partition(|l| l.idle_since().elapsed() >= window);
            kept += fresh.len();
            *shard = fresh;
            old.extend(expired.into_iter().map(|l| (i, l)));
        }
        old.sort_by_key(|(_, l)| l.idle_since());
        while kept < keep
            && let Some((i, live)) = old.pop()
        {
            // Back where it was, older than every instance left there.
            if let Some(shard) = self.shards.get(i) {
                lock(shard).insert(0, live);
            }
            kept += 1;
        }
        old.into_iter().map(|(_, l)| l).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(u32, Instant);

    impl Idle for Fake {
        fn idle_since(&self) -> Instant {
            self.1
        }
    }

    fn gauge() -> Gauge {
        Gauge::default()
    }

    /// Runs `f` on a thread whose shard is not this thread's (thread numbers are handed
    /// out in order, so one of the next few has another shard).
    fn on_another_shard(f: impl Fn() + Sync) {
        let here = home();
        std::thread::scope(|s| {
            while !s
                .spawn(|| (home() != here).then(&f).is_some())
                .join()
                .unwrap()
            {}
        });
    }

    #[test]
    fn a_thread_gets_back_its_own_instances_first_and_takes_others_when_it_has_none() {
        let list = IdleList::default();
        let now = Instant::now();
        list.push(Fake(1, now), gauge);
        on_another_shard(|| list.push(Fake(2, now), gauge));
        list.push(Fake(3, now), gauge);
        assert_eq!(list.len(), 3);
        // This thread's, the most recent first; then the other thread's.
        let order: Vec<u32> = std::iter::from_fn(|| list.pop()).map(|f| f.0).collect();
        assert_eq!(order, [3, 1, 2]);
        assert!(list.pop().is_none());
    }

    #[test]
    fn the_longest_idle_goes_first_whichever_thread_holds_it() {
        let list = IdleList::default();
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        list.push(Fake(1, later(20)), gauge);
        on_another_shard(|| list.push(Fake(2, later(10)), gauge));
        list.push(Fake(3, later(30)), gauge);
        assert_eq!(list.oldest(), Some(later(10)));
        assert_eq!(list.take_oldest().map(|f| f.0), Some(2));
        let rest: Vec<u32> = list.take_all().into_iter().map(|f| f.0).collect();
        assert_eq!(rest, [1, 3]);
    }

    #[test]
    fn expired_instances_go_but_the_most_recent_are_kept_warm() {
        let list = IdleList::default();
        let long_ago = Instant::now() - Duration::from_secs(60);
        for (n, age) in [(1, 3), (2, 2), (3, 1)] {
            list.push(Fake(n, long_ago - Duration::from_secs(age)), gauge);
        }
        list.push(Fake(4, Instant::now()), gauge);
        // 4 is fresh; of the expired, the most recent (3) is kept to make two warm.
        let gone: Vec<u32> = list
            .take_expired(Duration::from_secs(30), 2)
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(gone, [1, 2]);
        let left: Vec<u32> = list.take_all().into_iter().map(|f| f.0).collect();
        assert_eq!(left, [3, 4]);
    }

    #[test]
    fn the_gauge_is_made_at_the_first_check_in_and_set_when_refreshed() {
        let list = IdleList::default();
        list.refresh_gauge();
        let made = Gauge::default();
        list.push(Fake(1, Instant::now()), || made.clone());
        list.push(Fake(2, Instant::now()), gauge);
        assert_eq!(made.get(), 0);
        list.refresh_gauge();
        assert_eq!(made.get(), 2);
    }
}
