//! Keeps the allocator's page for a per-request allocation's size in use between requests.
//!
//! mimalloc frees a page of blocks as soon as its last block is freed, unless it is the
//! only page of its size and few slow-path allocations happened since. A serving thread
//! that allocates one block of a size per request (a boxed call's state, a few KiB) and
//! frees it before the next therefore took a fresh page from the arena and gave it back
//! for about every other request (the wasi:http proxy's 4 KiB call state: 0.47 fresh pages
//! a request, ~5 % of its CPU). One block of that size held on the thread for good keeps
//! the page in use, and the request's block comes from its free list.

use std::cell::RefCell;

thread_local! {
    /// The blocks held on this thread, one per size.
    static HELD: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Holds, on this thread, one block of each size asked for (once per size).
pub(crate) fn keep_warm(size: usize) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.iter().all(|block| block.len() != size) {
            held.push(vec![0u8; size].into_boxed_slice());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_here() -> Vec<usize> {
        HELD.with(|held| held.borrow().iter().map(|b| b.len()).collect())
    }

    #[test]
    fn one_block_is_held_per_size_and_thread() {
        keep_warm(4096);
        keep_warm(4096);
        keep_warm(100);
        assert_eq!(held_here(), [4096, 100]);
        let there = std::thread::spawn(|| {
            keep_warm(4096);
            held_here()
        });
        assert_eq!(there.join().unwrap(), [4096]);
        assert_eq!(held_here(), [4096, 100]);
    }
}
