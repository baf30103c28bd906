//! State the serving threads write on every request, kept in a slot per thread.
//!
//! Two cores writing one cache line on every request pass it back and forth: each write
//! waits for the line to come over from the other core. What both serving threads change
//! per request (instances handed out, stores active, idle lists, request metrics) is
//! therefore kept in slots, one per thread, each in memory of its own; the rare reader
//! sums them.

use std::sync::OnceLock;
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

/// One value per thread, each made on its thread's first use: in an allocation of that
/// thread's own (the allocator keeps each thread's blocks apart), so two threads never
/// write one cache line, and a structure only one or two threads touch costs a few
/// pointers more than an unsharded one.
#[derive(Debug)]
pub(super) struct Slots<T>(Box<[OnceLock<Box<T>>]>);

impl<T: Default> Default for Slots<T> {
    fn default() -> Self {
        Self((0..SHARDS).map(|_| OnceLock::new()).collect())
    }
}

impl<T: Default> Slots<T> {
    /// This thread's value, made now if it is not yet.
    pub(super) fn mine(&self) -> &T {
        self.0[home()].get_or_init(Box::default)
    }

    /// Slot `i`'s value, if made.
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.0.get(i)?.get().map(|b| &**b)
    }

    /// The values made so far, with their slots.
    pub(super) fn made(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..SHARDS).filter_map(|i| Some((i, self.get(i)?)))
    }
}

/// A count each thread adds to in a slot of its own. A slot may go below zero (an instance
/// handed out on one thread can come back on another); the sum is the count.
#[derive(Debug, Default)]
pub(super) struct ThreadCount(Slots<AtomicIsize>);

impl ThreadCount {
    /// Adds `n` in this thread's slot.
    pub(super) fn add(&self, n: isize, order: Ordering) {
        self.0.mine().fetch_add(n, order);
    }

    /// The count: the sum of the slots (never below zero).
    pub(super) fn get(&self, order: Ordering) -> usize {
        let sum: isize = self.0.made().map(|(_, n)| n.load(order)).sum();
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
