//! Group commit for the embedded store: writes that arrive while another commit is under
//! way share the next one.
//!
//! A durable redb commit is an `fdatasync`, and redb has one writer at a time, so a host
//! spawning calls from many connections spent most of each spawn waiting its turn for a
//! disk flush of its own (~1,100 spawns/s on ext4 against ~3,500/s on tmpfs). Here the
//! first writer to find no commit under way leads: it takes every write queued so far,
//! runs them in one transaction and commits once; writers that came meanwhile wait, and
//! the first of them to wake leads the next batch. Each leader commits one batch, the
//! one with its own write, so no writer waits behind more than the commit before its own.
//! A write that fails does not fail the others: the batch is then rerun one write a
//! transaction.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{Database, WriteTransaction};

use super::{Result, StoreError};

/// One write: may run twice (in its batch, then alone when the batch failed).
pub(super) type Job = Box<dyn Fn(&WriteTransaction) -> Result<()> + Send>;

/// Writes queued for the next commit, and their outcomes.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Default)]
struct State {
    queue: Vec<(u64, Job)>,
    /// A batch is being committed.
    leading: bool,
    done: HashMap<u64, Result<()>>,
    next: u64,
    /// Commits made, for tests.
    commits: u64,
}

impl GroupCommit {
    /// Runs `job` in a durable commit, shared with the writes queued beside it; returns
    /// once that commit is made (or `job`'s own error).
    pub(super) fn write(&self, db: &Database, job: Job) -> Result<()> {
        let mut state = self.lock();
        let id = state.next;
        state.next += 1;
        state.queue.push((id, job));
        loop {
            if let Some(result) = state.done.remove(&id) {
                return result;
            }
            if !state.leading {
                state.leading = true;
                let batch = std::mem::take(&mut state.queue);
                drop(state);
                let ids: Vec<u64> = batch.iter().map(|(id, _)| *id).collect();
                let (results, commits) = catch_unwind(AssertUnwindSafe(|| commit(db, batch)))
                    .unwrap_or_else(|_| {
                        let failed = ids.iter().map(|id| (*id, Err(panicked()))).collect();
                        (failed, 0)
                    });
                state = self.lock();
                state.done.extend(results);
                state.commits += commits;
                state.leading = false;
                self.turn.notify_all();
                continue;
            }
            state = self.turn.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits made so far.
    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// Writes waiting for a commit.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

/// Commits `batch` in one transaction, or each write alone when that fails. Returns each
/// write's outcome and the number of commits made.
fn commit(db: &Database, batch: Vec<(u64, Job)>) -> (Vec<(u64, Result<()>)>, u64) {
    let all = |txn: &WriteTransaction| batch.iter().try_for_each(|(_, job)| job(txn));
    if batch.len() > 1 && in_transaction(db, all).is_ok() {
        return (batch.into_iter().map(|(id, _)| (id, Ok(()))).collect(), 1);
    }
    let mut commits = 0;
    let results = batch
        .into_iter()
        .map(|(id, job)| {
            let result = in_transaction(db, |txn| job(txn));
            commits += u64::from(result.is_ok());
            (id, result)
        })
        .collect();
    (results, commits)
}

/// Runs `work` in a write transaction and commits it, or aborts it when `work` fails.
fn in_transaction(db: &Database, work: impl FnOnce(&WriteTransaction) -> Result<()>) -> Result<()> {
    let txn = db.begin_write()?;
    if let Err(e) = work(&txn) {
        let _ = txn.abort();
        return Err(e);
    }
    txn.commit()?;
    Ok(())
}

fn panicked() -> StoreError {
    StoreError::Io(std::io::Error::other(
        "a write in the same commit panicked; nothing of this one was written",
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn db() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("db")).expect("db");
        (dir, Arc::new(db))
    }

    fn put(key: u64) -> Job {
        Box::new(move |txn| {
            txn.open_table(T)?.insert(key, key * 10)?;
            Ok(())
        })
    }

    fn value(db: &Database, key: u64) -> Option<u64> {
        let txn = db.begin_read().expect("read");
        let table = txn.open_table(T).expect("table");
        table.get(key).expect("get").map(|v| v.value())
    }

    /// Polls `done` for up to 10 s.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out waiting until {what}");
    }

    type Writer = std::thread::JoinHandle<Result<()>>;

    fn writer(db: &Arc<Database>, group: &Arc<GroupCommit>, job: Job) -> Writer {
        let (db, group) = (db.clone(), group.clone());
        std::thread::spawn(move || group.write(&db, job))
    }

    /// Starts a write that holds its commit open until the sender is used, and waits
    /// until it leads.
    fn held_commit(db: &Arc<Database>, group: &Arc<GroupCommit>) -> (mpsc::Sender<()>, Writer) {
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let first = writer(
            db,
            group,
            Box::new(move |_| {
                let _ = held.lock().expect("lock").recv();
                Ok(())
            }),
        );
        eventually("the first write leads", || group.lock().leading);
        (release, first)
    }

    #[test]
    fn writes_queued_during_a_commit_share_the_next_one() {
        let (_dir, db) = db();
        let group = Arc::new(GroupCommit::default());
        let (release, first) = held_commit(&db, &group);
        let others: Vec<_> = (1..=5).map(|key| writer(&db, &group, put(key))).collect();
        eventually("five writes wait", || group.queued() == 5);
        release.send(()).expect("release");
        first.join().expect("first").expect("first write");
        for other in others {
            other.join().expect("writer").expect("write");
        }
        assert_eq!(
            group.commits(),
            2,
            "one commit for the first, one for the five"
        );
        for key in 1..=5 {
            assert_eq!(value(&db, key), Some(key * 10));
        }
    }

    #[test]
    fn a_failing_write_fails_alone() {
        let (_dir, db) = db();
        let group = Arc::new(GroupCommit::default());
        let (release, first) = held_commit(&db, &group);
        let a = writer(&db, &group, put(1));
        let bad = writer(
            &db,
            &group,
            Box::new(|txn| {
                txn.open_table(T)?.insert(99, 99)?;
                Err(StoreError::Invalid("refused".into()))
            }),
        );
        eventually("two writes wait", || group.queued() == 2);
        let b = writer(&db, &group, put(2));
        eventually("three writes wait", || group.queued() == 3);
        release.send(()).expect("release");
        first.join().expect("first").expect("first write");
        a.join().expect("a").expect("a's write");
        b.join().expect("b").expect("b's write");
        let err = bad.join().expect("bad").expect_err("the failing write");
        assert_eq!(err.to_string(), "refused");
        assert_eq!((value(&db, 1), value(&db, 2)), (Some(10), Some(20)));
        assert_eq!(value(&db, 99), None, "nothing of the failed write stays");
    }

    #[test]
    fn many_writers_all_land() {
        let (_dir, db) = db();
        let group = Arc::new(GroupCommit::default());
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let (db, group) = (db.clone(), group.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        group.write(&db, put(w * 1000 + i)).expect("write");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        for w in 0..8u64 {
            for i in 0..50 {
                assert_eq!(value(&db, w * 1000 + i), Some((w * 1000 + i) * 10));
            }
        }
        assert!(group.commits() <= 400);
        assert!(group.lock().done.is_empty() && group.queued() == 0);
    }
}
