//! Knowing when the store has closed. redb closes its file when the last handle is
//! dropped, which may happen on any thread (often the call-log writer's); a process that
//! exits before that leaves a file that the next start must repair, a scan of the whole
//! file and several extra `fdatasync`s before the host can serve.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Held by the store after its backend: dropped once the backend is closed.
pub(super) struct CloseNotice {
    _closed: Sender<()>,
    watch: Mutex<Option<Receiver<()>>>,
}

impl CloseNotice {
    pub(super) fn new() -> Self {
        let (closed, watch) = mpsc::channel();
        Self {
            _closed: closed,
            watch: Mutex::new(Some(watch)),
        }
    }

    /// The watch of this store's close; only the first caller gets it.
    pub(super) fn take(&self) -> Option<CloseWatch> {
        self.watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(CloseWatch)
    }
}

/// Waits for a store to close (its last handle dropped and its file closed).
pub struct CloseWatch(Receiver<()>);

impl CloseWatch {
    /// Whether the store closed within `timeout`.
    pub fn wait(self, timeout: Duration) -> bool {
        // Nothing is ever sent: the sender's drop, after the backend's, is the signal.
        matches!(
            self.0.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::store::{Scope, Store};

    /// Whether opening `path` with redb needed a repair (a file left open).
    fn needs_repair(path: &std::path::Path) -> bool {
        let repaired = Arc::new(AtomicBool::new(false));
        let seen = repaired.clone();
        let db = redb::Builder::new()
            .set_repair_callback(move |_| seen.store(true, Ordering::SeqCst))
            .open(path)
            .unwrap();
        drop(db);
        repaired.load(Ordering::SeqCst)
    }

    #[test]
    fn the_watch_fires_once_the_last_handle_has_closed_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Arc::new(Store::open(&path).unwrap());
        store.create_token("admin", Scope::Admin).unwrap();
        let watch = store.close_watch().expect("the first watch");
        assert!(store.close_watch().is_none(), "only one watch");
        let held = store.clone();
        drop(store);
        // Another thread holds the last handle for a while, as the call-log writer does.
        let letting_go = Arc::new(AtomicBool::new(false));
        let holder = {
            let letting_go = letting_go.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                letting_go.store(true, Ordering::SeqCst);
                drop(held);
            })
        };
        assert!(watch.wait(Duration::from_secs(10)), "the store closed");
        assert!(
            letting_go.load(Ordering::SeqCst),
            "the watch waited for the last handle"
        );
        holder.join().unwrap();
        assert!(!needs_repair(&path), "a closed store needs no repair");
    }

    #[test]
    fn the_watch_times_out_while_a_handle_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let watch = store.close_watch().unwrap();
        assert!(!watch.wait(Duration::from_millis(50)));
        drop(store);
    }
}
