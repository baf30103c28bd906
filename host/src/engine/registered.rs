//! A registry of weak handles that stays linear in what it holds.

use std::sync::{Arc, Weak};

/// Weak handles of registered pools; those of components since dropped are pruned once
/// the list has doubled since the last pruning. Pruning on every registration made a
/// restart that loads every deployed app quadratic in their number (10,000 apps: ~half
/// of a 2.8 s restart).
pub(super) struct Registered<T: ?Sized> {
    list: Vec<Weak<T>>,
    prune_at: usize,
}

impl<T: ?Sized> Default for Registered<T> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            prune_at: Self::MIN_PRUNE,
        }
    }
}

impl<T: ?Sized> Registered<T> {
    const MIN_PRUNE: usize = 64;

    /// Adds `pool`, first dropping the handles of dropped pools when the list has doubled.
    pub(super) fn push(&mut self, pool: Weak<T>) {
        if self.list.len() >= self.prune_at {
            self.list.retain(|p| p.strong_count() > 0);
            self.prune_at = (self.list.len() * 2).max(Self::MIN_PRUNE);
        }
        self.list.push(pool);
    }

    /// The pools still alive.
    pub(super) fn live(&self) -> impl Iterator<Item = Arc<T>> + '_ {
        self.list.iter().filter_map(Weak::upgrade)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_handles_are_pruned_and_live_ones_kept() {
        let mut registered = Registered::<u32>::default();
        let mut kept = Vec::new();
        for i in 0..10_000 {
            let pool = Arc::new(i);
            registered.push(Arc::downgrade(&pool));
            // One in ten stays alive, as apps that are still deployed do.
            if i % 10 == 0 {
                kept.push(pool);
            }
            assert!(
                registered.list.len() <= 2 * kept.len() + Registered::<u32>::MIN_PRUNE + 1,
                "{} handles for {} live pools",
                registered.list.len(),
                kept.len()
            );
        }
        let mut live: Vec<u32> = registered.live().map(|p| *p).collect();
        live.sort_unstable();
        let expected: Vec<u32> = kept.iter().map(|p| **p).collect();
        assert_eq!(live, expected);
    }
}
