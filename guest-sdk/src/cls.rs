//! Class endpoints (Modal's `app.cls`): the state of a `#[wasmhost::cls]` type lives in
//! the instance, created by `enter` once, and every method endpoint borrows it.

use std::sync::Mutex;

/// Where a class keeps its one value per instance.
pub struct ClassCell<T> {
    value: Mutex<Option<T>>,
}

impl<T> Default for ClassCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ClassCell<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            value: Mutex::new(None),
        }
    }
}

impl<T: Default> ClassCell<T> {
    /// Runs `f` on the value, creating it first if `enter` has not run (native tests).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(T::default))
    }

    /// Replaces the value with a fresh `T::default()` (what `enter` does first).
    pub fn reset(&self) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(T::default());
    }
}
