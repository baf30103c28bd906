//! Group commit: writes that arrive while another commit is under way share the next one.
//!
//! A durable commit is a disk flush, and a store commits one writer's batch at a time (redb
//! has one writer; PostgreSQL spends most of a one-row transaction on its commit), so a
//! host spawning calls from many connections spent most of each spawn waiting its turn
//! for a flush of its own (~1,100 spawns/s on ext4 against ~3,500/s on tmpfs). Here the
//! first writer to find no commit under way leads: it takes every write queued so far,
//! commits them together and hands each its outcome; writers that came meanwhile wait, and
//! the first of them to wake leads the next batch. Each leader commits one batch, the one
//! with its own write, so no writer waits behind more than the commit before its own. How a
//! batch is committed is the backend's: one redb transaction, or one PostgreSQL statement.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{Database, WriteTransaction};

use super::{Result, StoreError};

/// One redb write, saying whether it wrote: may run twice (in its batch, then alone when
/// the batch failed).
pub(super) type Job = Box<dyn Fn(&WriteTransaction) -> Result<bool> + Send>;

/// Writes of type `J` queued for the next commit, and their outcomes `R`.
pub(super) struct GroupCommit<J = Job, R = bool> {
    state: Mutex<State<J, R>>,
    turn: Condvar,
}

struct State<J, R> {
    queue: Vec<(u64, J)>,
    /// A batch is being committed.
    leading: bool,
    done: HashMap<u64, Result<R>>,
    next: u64,
    /// Commits made, for tests.
    commits: u64,
}

impl<J, R> Default for GroupCommit<J, R> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                leading: false,
                done: HashMap::new(),
                next: 0,
                commits: 0,
            }),
            turn: Condvar::new(),
        }
    }
}

impl<J, R> GroupCommit<J, R> {
    /// Queues `job` and returns its outcome once the commit that holds it is made. The
    /// writer that leads runs `commit` over the jobs queued so far, in order; it returns
    /// each job's outcome in the same order, and how many commits it made.
    pub(super) fn write(
        &self,
        job: J,
        commit: impl FnOnce(Vec<J>) -> (Vec<Result<R>>, u64),
    ) -> Result<R> {
        let mut commit = Some(commit);
        let mut state = self.lock();
        let id = state.next;
        state.next += 1;
        state.queue.push((id, job));
        loop {
            if let Some(result) = state.done.remove(&id) {
                return result;
            }
            if !state.leading
                && let Some(commit) = commit.take()
            {
                state.leading = true;
                let (ids, batch): (Vec<u64>, Vec<J>) =
                    std::mem::take(&mut state.queue).into_iter().unzip();
                drop(state);
                let (results, commits) = catch_unwind(AssertUnwindSafe(|| commit(batch)))
                    .unwrap_or_else(|_| (Vec::new(), 0));
                state = self.lock();
                let mut results = results.into_iter();
                for id in ids {
                    // A panic, or a commit that answered for fewer jobs, leaves no waiter
                    // hanging.
                    let result = results.next().unwrap_or_else(|| Err(panicked()));
                    state.done.insert(id, result);
                }
                state.commits += commits;
                state.leading = false;
                self.turn.notify_all();
                continue;
            }
            state = self.turn.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
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

impl GroupCommit {
    /// Runs `job` in a durable redb commit, shared with the writes queued beside it;
    /// returns what `job` returned.
    pub(super) fn write_redb(&self, db: &Database, job: Job) -> Result<bool> {
        self.write(job, |batch| {
            let all = |batch: &[Job]| {
                in_transaction(db, |txn| batch.iter().map(|job| job(txn)).collect())
            };
            together_or_alone(&batch, all, |job| in_transaction(db, |txn| job(txn)))
        })
    }
}

/// Commits `batch` with `together`, or each job alone with `alone` when that fails, so
/// that an error stays with its job. Returns each job's outcome, in order, and the
/// number of commits made.
pub(super) fn together_or_alone<J, R>(
    batch: &[J],
    together: impl FnOnce(&[J]) -> Result<Vec<R>>,
    alone: impl Fn(&J) -> Result<R>,
) -> (Vec<Result<R>>, u64) {
    if batch.len() > 1
        && let Ok(results) = together(batch)
    {
        return (results.into_iter().map(Ok).collect(), 1);
    }
    let mut commits = 0;
    let results = batch
        .iter()
        .map(|job| {
            let result = alone(job);
            commits += u64::from(result.is_ok());
            result
        })
        .collect();
    (results, commits)
}

/// Runs `work` in a write transaction and commits it, or aborts it when `work` fails.
fn in_transaction<T>(
    db: &Database,
    work: impl FnOnce(&WriteTransaction) -> Result<T>,
) -> Result<T> {
    let txn = db.begin_write()?;
    let value = match work(&txn) {
        Ok(value) => value,
        Err(e) => {
            let _ = txn.abort();
            return Err(e);
        }
    };
    txn.commit()?;
    Ok(value)
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
            Ok(true)
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

    type Writer = std::thread::JoinHandle<Result<bool>>;

    fn writer(db: &Arc<Database>, group: &Arc<GroupCommit>, job: Job) -> Writer {
        let (db, group) = (db.clone(), group.clone());
        std::thread::spawn(move || group.write_redb(&db, job))
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
                Ok(true)
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
                        group.write_redb(&db, put(w * 1000 + i)).expect("write");
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
