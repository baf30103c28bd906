//! State the serving threads write on every request, kept in a slot per thread.
//!
//! Two cores writing one cache line on every request pass it back and forth: each write
//! waits for the line to come over from the other core. A count both serving threads add
//! to per request (instances handed out, stores active) is therefore kept in slots, one
//! per thread, each on lines of its own; the rare reader sums them.

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Slots per sharded structure. Threads take slots by their number (`this_thread() %
/// SHARDS`): the serving threads start together and get consecutive numbers, so up to
/// this many have a slot each.
pub(super) const SHARDS: usize = 16;

/// This thread's number, from 1.
pub(super) fn this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    thread_local! {
        static THIS: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    THIS.with(|n| *n)
}

/// This thread's slot.
pub(super) fn home() -> usize {
    this_thread() % SHARDS
}

/// One slot of a [`ThreadCount`], on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(AtomicIsize);

/// A count each thread adds to in its own slot. A slot may go below zero (an instance
/// handed out on one thread can come back on another); the sum is the count.
#[derive(Debug)]
pub(super) struct ThreadCount {
    slots: Box<[Slot]>,
}

impl Default for ThreadCount {
    fn default() -> Self {
        Self {
            slots: (0..SHARDS).map(|_| Slot::default()).collect(),
        }
    }
}

impl ThreadCount {
    /// Adds `n` in this thread's slot.
    pub(super) fn add(&self, n: isize, order: Ordering) {
        self.slots[home()].0.fetch_add(n, order);
    }

    /// The count: the sum of the slots (never below zero).
    pub(super) fn get(&self, order: Ordering) -> usize {
        let sum: isize = self.slots.iter().map(|s| s.0.load(order)).sum();
        usize::try_from(sum).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_have_their_own_numbers() {
        let here = this_thread();
        assert_eq!(here, this_thread());
        let there = std::thread::spawn(this_thread).join().unwrap();
        assert_ne!(here, there);
        assert!(here > 0 && there > 0);
    }

    #[test]
    fn a_count_added_on_one_thread_and_taken_on_another_sums_right() {
        let count = ThreadCount::default();
        count.add(2, Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| count.add(-1, Ordering::Relaxed));
        });
        assert_eq!(count.get(Ordering::Relaxed), 1);
        count.add(-1, Ordering::Relaxed);
        assert_eq!(count.get(Ordering::Relaxed), 0);
    }
}
