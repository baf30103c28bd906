//! Pre-initialisation with wasmtime-wizer: the guest's `init.initialize` runs once in an
//! instrumented instance, then wizer reads that instance's globals and memories back
//! and rewrites the component with them as its initial state. Instances of the result
//! start where init left off, so none of them pays for the init work again.
//!
//! Instance state lives in linear memory and globals only: WASI handles the init work
//! opened are not carried over, so init should compute and store, not open files or
//! keep streams.

use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::bindings::InitIndices;
use super::error::PreInitError;
use super::state::InstanceState;
use super::{CallContext, Engine, Limits, LoadError, TICK, classify, forward_output};

impl Engine {
    /// Runs the init work of the component `bytes` and returns the bytes of the
    /// pre-initialised component. The init work runs under the startup timeout and the
    /// default memory cap, without secrets, volumes or a GPU.
    pub(super) async fn pre_initialise(
        &self,
        bytes: &[u8],
        app: &str,
    ) -> Result<Vec<u8>, LoadError> {
        let failed = |step, source| LoadError::from(PreInitError::Snapshot { step, source });
        let mut wizer = Wizer::new();
        // Dropping the export made an invalid component in our measurements (FACTS.md);
        // instances of the snapshot simply never call it.
        wizer.keep_init_func(true);
        let (context, instrumented) = wizer
            .instrument_component(bytes)
            .map_err(|e| failed("cannot instrument the component", e))?;
        let component = self.compile(&self.runtime, instrumented).await?;
        let pre = self
            .runtime
            .linker
            .instantiate_pre(&component)
            .map_err(LoadError::MissingImport)?;
        let init = InitIndices::new(&pre).map_err(|e| failed("no init export", e))?;
        let limits = Limits {
            timeout: self.config.startup_timeout,
            memory_mib: self.config.default_memory_mib,
        };
        let gpu = self.no_gpu("init work cannot use the GPU");
        let mut store = self
            .new_store(limits, &CallContext::default(), gpu)
            .map_err(PreInitError::Call)?;
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            init.load(&mut store, &instance)?
                .call_initialize(&mut store)
                .await?;
            Ok::<_, wasmtime::Error>(instance)
        };
        let outcome = tokio::time::timeout(limits.timeout + TICK * 10, run).await;
        // Classified before the output is forwarded: a panic's message is read from stderr.
        let instance = match outcome {
            Ok(Ok(instance)) => Ok(instance),
            Ok(Err(e)) => Err(PreInitError::Call(classify(e, store.data(), limits))),
            Err(_) => Err(PreInitError::Timeout(limits.timeout)),
        };
        forward_output(app, "init", store.data());
        let instance = instance?;
        let mut access = Access {
            store: &mut store,
            instance,
            error: None,
        };
        let snapshot = wizer
            .snapshot_component(&context, &mut access)
            .await
            .map_err(|e| failed("cannot snapshot the initialised instance", e))?;
        match access.error {
            Some(e) => Err(failed("cannot read the initialised state", e)),
            None => Ok(snapshot),
        }
    }
}

/// Wizer's view of the initialised instance: calls to the accessor functions its
/// instrumentation exported. Wizer's trait cannot fail, so the first error is kept and
/// reported once the snapshot is done.
struct Access<'a> {
    store: &'a mut Store<InstanceState>,
    instance: Instance,
    error: Option<wasmtime::Error>,
}

impl Access<'_> {
    async fn call<R>(&mut self, interface: &str, func: &str) -> Option<R>
    where
        R: Lift + Send + Sync + 'static,
    {
        if self.error.is_some() {
            return None;
        }
        let found = async {
            let store = &mut *self.store;
            let (_, iface) = self
                .instance
                .get_export(&mut *store, None, interface)
                .ok_or_else(|| wasmtime::format_err!("no export {interface}"))?;
            let (_, index) = self
                .instance
                .get_export(&mut *store, Some(&iface), func)
                .ok_or_else(|| wasmtime::format_err!("no export {interface}#{func}"))?;
            let typed = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *store, index)?;
            Ok::<_, wasmtime::Error>(typed.call_async(&mut *store, ()).await?.0)
        };
        match found.await {
            Ok(value) => Some(value),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.call::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .map_or(0, f32::to_bits)
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .map_or(0, f64::to_bits)
    }
}
