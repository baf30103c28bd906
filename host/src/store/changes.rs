//! Which app each change to what hosts serve touched. A host that sees the change count
//! move follows the apps the log names, instead of reading every app and function again
//! (with 10,000 apps that cost every other host ~40 ms of CPU a deploy).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// How many recent changes the store remembers. A host further behind than this (it was
/// cut off from the database a long while) reads every app again.
pub(super) const KEPT: u64 = 10_000;

/// The apps changed since a host last followed the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedApps {
    /// The change count these changes bring a host to.
    pub seq: u64,
    /// The apps changed, each once, in the order of their first change.
    pub apps: Vec<String>,
}

/// The apps changed after change `since`, from the log's entries after it in order and
/// the count (`current`, read before them). `None` where the entries do not follow on from
/// `since` one by one, or there are none although the count moved: the log no longer
/// reaches back that far (or predates the log), so the caller must read everything.
pub(super) fn after(
    since: u64,
    current: u64,
    entries: impl IntoIterator<Item = (u64, String)>,
) -> Option<ChangedApps> {
    let mut seq = since;
    let mut apps = Vec::new();
    let mut seen = HashSet::new();
    for (at, app) in entries {
        if Some(at) != seq.checked_add(1) {
            return None;
        }
        seq = at;
        if seen.insert(app.clone()) {
            apps.push(app);
        }
    }
    (seq > since || current == since).then_some(ChangedApps { seq, apps })
}

/// The embedded store's count and log, in memory: one process makes every change, so
/// the log only has to outlive a follower's poll.
#[derive(Default)]
pub(super) struct ChangeLog {
    inner: Mutex<Logged>,
}

#[derive(Default)]
struct Logged {
    seq: u64,
    recent: VecDeque<(u64, String)>,
}

impl ChangeLog {
    fn logged(&self) -> std::sync::MutexGuard<'_, Logged> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The change count.
    pub(super) fn seq(&self) -> u64 {
        self.logged().seq
    }

    /// Counts a change to `app_id`.
    pub(super) fn changed(&self, app_id: &str) {
        let mut logged = self.logged();
        logged.seq += 1;
        let seq = logged.seq;
        if logged.recent.len() as u64 >= KEPT {
            logged.recent.pop_front();
        }
        logged.recent.push_back((seq, app_id.to_owned()));
    }

    /// See `Store::changes_since`.
    pub(super) fn since(&self, since: u64) -> Option<ChangedApps> {
        let logged = self.logged();
        let start = logged.recent.partition_point(|(seq, _)| *seq <= since);
        after(since, logged.seq, logged.recent.range(start..).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: u64, apps: &[&str]) -> Vec<(u64, String)> {
        (from..).zip(apps.iter().map(|a| a.to_string())).collect()
    }

    #[test]
    fn each_app_changed_comes_once_in_order() {
        let changed = after(4, 8, entries(5, &["b", "a", "b", "c"])).unwrap();
        assert_eq!(changed.seq, 8);
        assert_eq!(changed.apps, ["b", "a", "c"]);
    }

    #[test]
    fn a_log_that_does_not_reach_back_reads_everything() {
        // Trimmed: the first entry after 4 is gone.
        assert_eq!(after(4, 6, entries(6, &["a"])), None);
        // A hole (cannot happen in a store, but must not be taken for a full log).
        assert_eq!(after(0, 3, vec![(1, "a".into()), (3, "b".into())]), None);
        // Nothing logged, although the count moved (a store from before the log).
        assert_eq!(after(4, 9, Vec::new()), None);
    }

    #[test]
    fn nothing_changed_since_the_count_is_nothing_to_follow() {
        let none = after(4, 4, Vec::new()).unwrap();
        assert_eq!((none.seq, none.apps.len()), (4, 0));
        // Entries logged after the count was read are followed too.
        assert_eq!(after(4, 4, entries(5, &["a"])).unwrap().seq, 5);
    }

    #[test]
    fn the_embedded_log_forgets_the_oldest_changes() {
        let log = ChangeLog::default();
        for i in 0..KEPT + 5 {
            log.changed(&format!("app{}", i % 3));
        }
        assert_eq!(log.seq(), KEPT + 5);
        assert_eq!(log.since(3), None, "changes 4 and 5 were forgotten");
        let recent = log.since(KEPT + 2).unwrap();
        assert_eq!(recent.seq, KEPT + 5);
        assert_eq!(recent.apps.len(), 3);
        assert_eq!(log.since(5).unwrap().seq, KEPT + 5);
        assert_eq!(log.since(KEPT + 5).unwrap().apps, Vec::<String>::new());
    }
}
