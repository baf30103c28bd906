//! Compiled code held only while it is used. A deployed component keeps its manifest,
//! pools and metrics resident; its `InstancePre`, with the native code mapped from the
//! cache, is loaded on first call and dropped again, least recently used first, once the
//! loaded set passes the host's budget (`--max-loaded-components`, `--max-loaded-mib`).
//! A call holds the code it runs on, so an eviction never breaks one in flight; the next
//! call maps the cached `.cwasm` again.

use std::hash::Hash;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use arc_swap::{ArcSwapOption, Guard};

use super::metrics::Metrics;
use super::pool::WarmInstances;
use super::world::{self, Prepared, World};
use super::{CallError, Engine, InstantiateError, LoadError, LoadedComponent};

/// Resident memory a loaded component costs beyond its mapped native code (its
/// `InstancePre`, type information and wasmtime's bookkeeping), measured on the hello
/// guest: 125 KiB anonymous per load.
const OVERHEAD_BYTES: u64 = 128 << 10;

/// How much compiled code stays loaded; `None`: no bound of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeBudget {
    /// Components with their code loaded at once.
    pub max_components: Option<usize>,
    /// Their estimated size (mapped native code plus a fixed overhead each), in bytes.
    pub max_bytes: Option<u64>,
}

/// What loading a component found out that its calls need before its code is loaded,
/// cached beside the code so a restart reads it instead of the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CodeFacts {
    /// It runs on the engine with component-model async.
    pub(crate) concurrent: bool,
    /// The world it targets.
    pub(crate) world: World,
    /// Its typed endpoints are served by an async handler.
    pub(crate) serves_async: bool,
    /// It declares that its instances may serve request after request.
    pub(crate) declares_reuse: bool,
}

/// Keys in least-recently-used order with a weight each, kept within a [`CodeBudget`].
/// Every operation is O(1) but the evictions `admit` returns.
pub(crate) struct Lru<K: Hash + Eq, V> {
    order: lru::LruCache<K, (u64, V)>,
    bytes: u64,
    budget: CodeBudget,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub(crate) fn new(budget: CodeBudget) -> Self {
        Self {
            order: lru::LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// Marks `key` as just used.
    pub(crate) fn touch(&mut self, key: &K) {
        self.order.promote(key);
    }

    /// Adds (or re-weighs) `key` as the most recently used, and takes out the least
    /// recently used others until the budget holds again; the newcomer always stays.
    pub(crate) fn admit(&mut self, key: K, weight: u64, value: V) -> Vec<(K, V)> {
        if let Some((old, _)) = self.order.put(key, (weight, value)) {
            self.bytes -= old;
        }
        self.bytes += weight;
        let mut evicted = Vec::new();
        while self.over() && self.order.len() > 1 {
            let Some((victim, (w, v))) = self.order.pop_lru() else {
                break;
            };
            self.bytes -= w;
            evicted.push((victim, v));
        }
        evicted
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some((w, _)) = self.order.pop(key) {
            self.bytes -= w;
        }
    }

    fn over(&self) -> bool {
        self.budget
            .max_components
            .is_some_and(|n| self.order.len() > n)
            || self.budget.max_bytes.is_some_and(|b| self.bytes > b)
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// No slot has this id: [`Resident::mru`] before any is known.
const NO_SLOT: u64 = u64::MAX;

/// The components whose code is loaded, host-wide.
pub(crate) struct Resident {
    lru: Mutex<Lru<u64, Weak<CodeSlot>>>,
    /// The slot the LRU order has as most recently used ([`NO_SLOT`]: unknown), written
    /// with the lock held: a call to that slot need not take the host-wide lock again.
    mru: AtomicU64,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Resident {
    pub(crate) fn new(budget: CodeBudget, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            lru: Mutex::new(Lru::new(budget)),
            mru: AtomicU64::new(NO_SLOT),
            next_id: AtomicU64::new(0),
            metrics,
        })
    }

    fn lru(&self) -> MutexGuard<'_, Lru<u64, Weak<CodeSlot>>> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `slot` as just used. Under load most calls go to the slot used last, which
    /// then costs one atomic read instead of the lock both serving threads would contend.
    fn touch(&self, slot: &CodeSlot) {
        if self.mru.load(Ordering::Relaxed) == slot.id {
            return;
        }
        let mut lru = self.lru();
        lru.touch(&slot.id);
        self.mru.store(slot.id, Ordering::Relaxed);
    }

    /// An empty slot for a component's code.
    pub(crate) fn slot(
        self: &Arc<Self>,
        source: CodeSource,
        warm: &Arc<WarmInstances>,
    ) -> Arc<CodeSlot> {
        Arc::new(CodeSlot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            resident: Arc::downgrade(self),
            source,
            file: Mutex::new(None),
            loaded: ArcSwapOption::empty(),
            loading: tokio::sync::Mutex::new(()),
            warm: Arc::downgrade(warm),
        })
    }

    /// Puts `code` in `slot` and counts it.
    pub(crate) fn fill(&self, slot: &Arc<CodeSlot>, code: Prepared) -> Arc<Prepared> {
        let code = Arc::new(code);
        slot.loaded.store(Some(code.clone()));
        self.admit(slot);
        code
    }

    /// Counts `slot`'s code as just used and evicts the least recently used others past
    /// the budget. A slot without a file to compile from again keeps its code uncounted.
    fn admit(&self, slot: &Arc<CodeSlot>) {
        let Some(weight) = slot.current().map(|code| weight_of(&code)) else {
            return;
        };
        if slot.file().is_none() {
            return;
        }
        let (evicted, loaded, bytes) = {
            let mut lru = self.lru();
            let evicted = lru.admit(slot.id, weight, Arc::downgrade(slot));
            self.mru.store(slot.id, Ordering::Relaxed);
            (evicted, lru.len(), lru.bytes())
        };
        self.metrics.code_evictions.inc_by(evicted.len() as u64);
        self.metrics.code_loaded.set(loaded as i64);
        self.metrics.code_loaded_bytes.set(bytes as i64);
        for (_, victim) in evicted {
            if let Some(victim) = victim.upgrade() {
                victim.unload();
            }
        }
    }
}

/// How a component's code is loaded again after an eviction.
pub(crate) struct CodeSource {
    /// Whether it runs on the engine with component-model async.
    pub(crate) concurrent: bool,
    /// Its cache key: the digest, or `<digest>-init` for a pre-initialisation snapshot.
    pub(crate) key: String,
    /// Whether the key names a snapshot (made again from the file if it went missing).
    pub(crate) snapshot: bool,
}

/// A component's code, held for one call: a read of its slot that takes no reference
/// count (counting would write a line both serving threads share on every call), or
/// the code just loaded.
pub(crate) struct Code(Guard<Option<Arc<Prepared>>>);

impl Code {
    fn of(read: Guard<Option<Arc<Prepared>>>) -> Option<Self> {
        read.is_some().then_some(Self(read))
    }

    fn loaded(code: Arc<Prepared>) -> Self {
        Self(Guard::from_inner(Some(code)))
    }

    /// The code as a counted reference, for a call that may last (a WebSocket, a long
    /// function): a thread has few slots for uncounted reads, and reads past them count.
    pub(crate) fn into_arc(self) -> Arc<Prepared> {
        Arc::clone(&self)
    }
}

impl Deref for Code {
    type Target = Arc<Prepared>;

    fn deref(&self) -> &Arc<Prepared> {
        match &*self.0 {
            Some(code) => code,
            None => unreachable!("a `Code` is only made of a slot holding code"),
        }
    }
}

/// One component's code: loaded, or not (yet, or again).
pub(crate) struct CodeSlot {
    id: u64,
    resident: Weak<Resident>,
    source: CodeSource,
    /// The component file, compiled again should its cache entry be gone; only a
    /// component with one is ever evicted.
    file: Mutex<Option<PathBuf>>,
    /// Read on every call by both serving threads; swapped only when the code is loaded
    /// or evicted, so a read shares no lock.
    loaded: ArcSwapOption<Prepared>,
    /// Held while the code loads, so concurrent first calls load it once.
    loading: tokio::sync::Mutex<()>,
    /// Its idle warm instances go with the code.
    warm: Weak<WarmInstances>,
}

impl CodeSlot {
    fn file(&self) -> Option<PathBuf> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn current(&self) -> Option<Code> {
        Code::of(self.loaded.load())
    }

    /// Drops the code (calls in flight keep theirs) and the idle instances made from it.
    fn unload(&self) {
        let code = self.loaded.swap(None);
        let idle = self.warm.upgrade().map(|w| w.take_idle());
        drop((code, idle));
    }
}

impl Drop for CodeSlot {
    fn drop(&mut self) {
        if let Some(resident) = self.resident.upgrade() {
            let mut lru = resident.lru();
            lru.remove(&self.id);
            resident.mru.store(NO_SLOT, Ordering::Relaxed);
            resident.metrics.code_loaded.set(lru.len() as i64);
            resident.metrics.code_loaded_bytes.set(lru.bytes() as i64);
        }
    }
}

/// What a loaded component is estimated to keep resident.
fn weight_of(code: &Prepared) -> u64 {
    let image = code.component().image_range();
    (image.end as u64).saturating_sub(image.start as u64) + OVERHEAD_BYTES
}

impl LoadedComponent {
    /// Names the file the component can be compiled from again (its copy in the data
    /// directory), which makes its code evictable.
    pub fn keep_source(&self, file: PathBuf) {
        *self.code.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        if let Some(resident) = self.code.resident.upgrade() {
            resident.admit(&self.code);
        }
    }

    /// Whether its code is loaded now.
    pub fn code_loaded(&self) -> bool {
        self.code.current().is_some()
    }

    /// Whether `code` is the code loaded now.
    pub(super) fn code_is(&self, code: &Arc<Prepared>) -> bool {
        self.code
            .loaded
            .load()
            .as_ref()
            .is_some_and(|loaded| Arc::ptr_eq(loaded, code))
    }
}

impl Engine {
    /// `component`'s code, loaded now if it is not (from the cache: a mapping of its
    /// `.cwasm`), marked as just used.
    pub(super) async fn code(&self, component: &LoadedComponent) -> Result<Code, CallError> {
        let slot = &component.code;
        if let Some(code) = slot.current() {
            self.resident.touch(slot);
            return Ok(code);
        }
        let _loading = slot.loading.lock().await;
        if let Some(code) = slot.current() {
            return Ok(code);
        }
        let started = Instant::now();
        // Boxed: loading is rare, and inline its state would size every call's future.
        let prepared = Box::pin(self.reload(&component.manifest.app, slot))
            .await
            .map_err(|e| CallError::Instantiate(InstantiateError::Load(Arc::new(e))))?;
        let code = self.resident.fill(slot, prepared);
        self.metrics.code_loads.inc();
        self.metrics
            .code_load_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(Code::loaded(code))
    }

    /// Maps the slot's code from the cache, or compiles it from its file (snapshotting
    /// again where it was a snapshot) if the cache entry is gone.
    async fn reload(&self, app: &str, slot: &CodeSlot) -> Result<Prepared, LoadError> {
        let source = &slot.source;
        let runtime = match source.concurrent {
            true => self.concurrent_runtime()?,
            false => &self.runtime,
        };
        let (engine, cache, key) = (
            runtime.engine.clone(),
            runtime.cache.clone(),
            source.key.clone(),
        );
        let hit = tokio::task::spawn_blocking(move || cache.lookup(&engine, &key)).await?;
        let component = match hit {
            Some(component) => {
                self.metrics.cache_hits.inc();
                component
            }
            None => {
                let Some(file) = slot.file() else {
                    return Err(LoadError::Invalid(wasmtime::Error::msg(
                        "its compiled code is no longer cached, and its file is gone",
                    )));
                };
                let bytes = tokio::fs::read(&file)
                    .await
                    .map_err(LoadError::reading(&file))?;
                let component = match source.snapshot {
                    true => self.snapshot(&bytes, app).await?,
                    false => self.compile(runtime, bytes).await?,
                };
                let (cache, key, saved) =
                    (runtime.cache.clone(), source.key.clone(), component.clone());
                let _ = tokio::task::spawn_blocking(move || cache.save(&key, &saved)).await;
                component
            }
        };
        world::prepare(&runtime.engine, &runtime.linker, &component)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(evicted: Vec<(u32, ())>) -> Vec<u32> {
        evicted.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn evicts_the_least_recently_used_past_the_count() {
        let mut lru = Lru::new(CodeBudget {
            max_components: Some(2),
            max_bytes: None,
        });
        assert!(lru.admit(1, 10, ()).is_empty());
        assert!(lru.admit(2, 10, ()).is_empty());
        lru.touch(&1);
        assert_eq!(keys(lru.admit(3, 10, ())), vec![2]);
        assert_eq!(keys(lru.admit(4, 10, ())), vec![1]);
        assert_eq!((lru.len(), lru.bytes()), (2, 20));
    }

    #[test]
    fn evicts_until_the_bytes_fit_but_keeps_the_newcomer() {
        let mut lru = Lru::new(CodeBudget {
            max_components: None,
            max_bytes: Some(100),
        });
        for k in 1..=4 {
            assert!(lru.admit(k, 25, ()).is_empty());
        }
        assert_eq!(keys(lru.admit(5, 60, ())), vec![1, 2, 3]);
        assert_eq!((lru.len(), lru.bytes()), (2, 85));
        // Alone over the budget, it still stays: the call that loaded it needs it.
        assert_eq!(keys(lru.admit(6, 500, ())), vec![4, 5]);
        assert_eq!((lru.len(), lru.bytes()), (1, 500));
    }

    #[test]
    fn readmitting_reweighs_and_removing_frees() {
        let mut lru = Lru::new(CodeBudget {
            max_components: Some(3),
            max_bytes: Some(100),
        });
        lru.admit(1, 40, ());
        lru.admit(2, 40, ());
        assert!(lru.admit(1, 50, ()).is_empty());
        assert_eq!(lru.bytes(), 90);
        lru.remove(&2);
        lru.remove(&7);
        assert_eq!((lru.len(), lru.bytes()), (1, 50));
        assert!(lru.admit(3, 50, ()).is_empty());
    }

    #[test]
    fn unbounded_keeps_everything() {
        let mut lru = Lru::new(CodeBudget::default());
        for k in 0..1000 {
            assert!(lru.admit(k, 1 << 20, ()).is_empty());
        }
        assert_eq!(lru.len(), 1000);
    }
}
