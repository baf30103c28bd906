//! Whether any instance is out of its pool, so the host's background threads sleep while
//! it is idle.
//!
//! The epoch ticker (which interrupts guests past their deadline and makes spinning ones
//! yield) and the CPU sampler only matter while guests may run. Ticking every millisecond
//! on an idle host woke it over a thousand times a second, for nothing: each wake-up is a
//! context switch, and while a thread of the process runs on another core, every
//! copy-on-write fault of a starting instance needs a TLB-shootdown interrupt there. So the
//! threads nap once nothing has been active for [`QUIET_BEFORE_NAP`], and the first store
//! to become active again wakes them. Under any steady traffic they never nap, so the
//! request path pays two additions to its own thread's counts per hand-out, nothing else.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::shards::ThreadCount;

/// How long nothing must have been active before the background threads nap.
pub(crate) const QUIET_BEFORE_NAP: Duration = Duration::from_millis(100);
/// The longest nap: a missed wake-up costs at most this.
const NAP: Duration = Duration::from_millis(250);

/// The count of active stores: from creation until their pool takes them back idle, and
/// again from each hand-out. Both counts are kept per thread ([`ThreadCount`]): the
/// serving threads change them on every request, and only the napping threads sum them.
#[derive(Debug)]
pub(crate) struct Activity {
    active: ThreadCount,
    /// Stores made active so far: a napping thread that sees it move knows something was
    /// active since it last looked, even when nothing is now.
    entries: ThreadCount,
    nappers: AtomicUsize,
    sleepers: Mutex<Vec<Thread>>,
    /// What the napping threads saw last: the entries, and since when they have not moved
    /// with nothing active.
    quiet: Mutex<(usize, Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            active: ThreadCount::default(),
            entries: ThreadCount::default(),
            nappers: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::new()),
            quiet: Mutex::new((0, Instant::now())),
        }
    }
}

impl Activity {
    /// Registers the calling thread as one that [`nap_while_quiet`](Self::nap_while_quiet)s.
    pub(crate) fn register_sleeper(&self) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
        sleepers.push(std::thread::current());
    }

    /// One more active store; while threads nap, it wakes them.
    pub(crate) fn enter(&self) {
        self.active.add(1, SeqCst);
        self.entries.add(1, Relaxed);
        if self.nappers.load(SeqCst) > 0 {
            let sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
            for thread in sleepers.iter() {
                thread.unpark();
            }
        }
    }

    /// One active store fewer.
    pub(crate) fn leave(&self) {
        self.active.add(-1, SeqCst);
    }

    /// Stores active now.
    pub(crate) fn active(&self) -> usize {
        self.active.get(SeqCst)
    }

    /// Parks the calling (registered) thread while nothing has been active for
    /// [`QUIET_BEFORE_NAP`], until a store becomes active (or a short nap passes).
    /// Returns whether it napped.
    pub(crate) fn nap_while_quiet(&self) -> bool {
        self.nap_while_quiet_at_most(NAP)
    }

    fn nap_while_quiet_at_most(&self, nap: Duration) -> bool {
        {
            let entries = self.entries.get(Relaxed);
            let mut quiet = self.quiet.lock().unwrap_or_else(|p| p.into_inner());
            if self.active() > 0 || entries != quiet.0 {
                *quiet = (entries, Instant::now());
                return false;
            }
            if quiet.1.elapsed() < QUIET_BEFORE_NAP {
                return false;
            }
        }
        // Announced before the last look, so a store entering now either is seen here or
        // sees this thread napping and wakes it (both sides are sequentially consistent).
        self.nappers.fetch_add(1, SeqCst);
        if self.active() == 0 {
            std::thread::park_timeout(nap);
        }
        self.nappers.fetch_sub(1, SeqCst);
        true
    }
}

/// One store's part of the count: active until `idle(true)`, and dropped with its store.
#[derive(Debug)]
pub(crate) struct ActiveStore {
    activity: std::sync::Arc<Activity>,
    idle: bool,
}

impl ActiveStore {
    /// A new store, active.
    pub(crate) fn new(activity: &std::sync::Arc<Activity>) -> Self {
        activity.enter();
        Self {
            activity: activity.clone(),
            idle: false,
        }
    }

    /// Marks the store idle in its pool (`true`) or handed out again.
    pub(crate) fn idle(&mut self, idle: bool) {
        if idle == self.idle {
            return;
        }
        self.idle = idle;
        if idle {
            self.activity.leave();
        } else {
            self.activity.enter();
        }
    }
}

impl Drop for ActiveStore {
    fn drop(&mut self) {
        self.idle(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_stores_out_of_their_pools() {
        let activity = Arc::new(Activity::default());
        let mut a = ActiveStore::new(&activity);
        let b = ActiveStore::new(&activity);
        assert_eq!(activity.active(), 2);
        a.idle(true);
        a.idle(true);
        assert_eq!(activity.active(), 1);
        drop(a);
        assert_eq!(activity.active(), 1, "an idle store leaves once");
        drop(b);
        assert_eq!(activity.active(), 0);
    }

    #[test]
    fn a_napping_thread_wakes_when_a_store_becomes_active() {
        let activity = Arc::new(Activity::default());
        let (napping, napped) = std::sync::mpsc::channel();
        let (woke, wakes) = std::sync::mpsc::channel();
        let sleeper = {
            let activity = activity.clone();
            std::thread::spawn(move || {
                activity.register_sleeper();
                // Quiet since it was made: naps (for up to a minute, unless woken) until
                // the store below enters.
                let mut told = false;
                while activity.active() == 0 {
                    if !told && activity.nappers.load(SeqCst) == 0 {
                        let _ = napping.send(());
                        told = true;
                    }
                    activity.nap_while_quiet_at_most(Duration::from_secs(60));
                }
                let _ = woke.send(());
            })
        };
        napped.recv().unwrap();
        std::thread::sleep(QUIET_BEFORE_NAP * 2);
        let store = ActiveStore::new(&activity);
        assert!(
            wakes.recv_timeout(Duration::from_secs(30)).is_ok(),
            "the napping thread was not woken"
        );
        sleeper.join().unwrap();
        // Active again: nobody naps.
        assert!(!activity.nap_while_quiet());
        drop(store);
    }
}
