//! Counters every layer records into, rendered in Prometheus text format at `/metrics`.
//! They live here, at the bottom, so the engine, shapes, gateway and functions can all
//! reach them without arrows pointing up.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::thread_metrics::{ThreadCounter, ThreadHistogram};

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// App name (empty for unknown hosts and the API).
    pub app: String,
    /// Function name.
    pub function: String,
    /// Status class: `2xx`, `4xx`, ...
    pub status: String,
}

/// Labels of one function.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// App name.
    pub app: String,
    /// Function name.
    pub function: String,
}

/// Labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Function name.
    pub function: String,
    /// `success`, `failure`, `terminated`.
    pub status: String,
}

/// The host's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// HTTP requests served (kept per thread: recorded on every request).
    pub requests: Family<RequestLabels, ThreadCounter>,
    /// Their latency (kept per thread, likewise).
    pub request_seconds: Family<FunctionLabels, ThreadHistogram>,
    /// Instances created (cold starts of an instance).
    pub instances_created: Counter,
    /// Time to create an instance.
    pub instantiate_seconds: Histogram,
    /// Instances alive now (running or idle warm).
    pub instances_live: Gauge,
    /// Warm instances computing for a call now (handed out, not waiting in a host call),
    /// those being started included: what the pools compare with the host's cores.
    pub instances_computing: Gauge,
    /// Times a guest computing across an epoch tick yielded to the executor (preempted).
    pub guest_yields: Counter,
    /// Instances alive now, per function (busy or idle).
    pub function_instances_live: Family<FunctionLabels, Gauge>,
    /// Warm instances waiting idle, per function.
    pub function_instances_idle: Family<FunctionLabels, Gauge>,
    /// Components compiled with Cranelift.
    pub compiles: Counter,
    /// Compile time.
    pub compile_seconds: Histogram,
    /// Components mapped from the native-code cache.
    pub cache_hits: Counter,
    /// Loads of a component's code on a call (not loaded since the start, or evicted).
    pub code_loads: Counter,
    /// Time such a load took (mapping the cached code, linking).
    pub code_load_seconds: Histogram,
    /// Components whose code was evicted to keep within the budget.
    pub code_evictions: Counter,
    /// Components with their code loaded now (those that can be evicted).
    pub code_loaded: Gauge,
    /// Their estimated resident size in bytes.
    pub code_loaded_bytes: Gauge,
    /// Pre-initialisation snapshots made (init work run and baked in).
    pub snapshots: Counter,
    /// Time to make one: init work, snapshot and compile.
    pub snapshot_seconds: Histogram,
    /// Requests waiting for capacity, per function.
    pub queue_depth: Family<FunctionLabels, Gauge>,
    /// Requests refused because the queue was full or its deadline passed.
    pub rejected: Family<FunctionLabels, Counter>,
    /// Function calls finished.
    pub calls: Family<CallLabels, Counter>,
    /// Calls per guest call of batched functions.
    pub batch_size: Family<FunctionLabels, Histogram>,
    /// GPU submissions that completed.
    pub gpu_submits: Gauge,
    /// GPU time in seconds, summed.
    pub gpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Outgoing `wasi:http` requests of guests, by decision (`allowed`, `denied`).
    pub outbound_requests: Family<OutboundLabels, Counter>,
}

/// Labels of an outgoing request's decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboundLabels {
    /// `allowed` or `denied`.
    pub decision: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The counters the outbound capability records its decisions into.
    pub fn outbound_counters(&self) -> crate::capabilities::outbound::OutboundCounters {
        let counter = |decision: &str| {
            self.outbound_requests
                .get_or_create(&OutboundLabels {
                    decision: decision.into(),
                })
                .clone()
        };
        crate::capabilities::outbound::OutboundCounters {
            allowed: counter("allowed"),
            denied: counter("denied"),
        }
    }

    /// All metrics, registered.
    pub fn new() -> Self {
        let latency = || ThreadHistogram::new(exponential_buckets(0.0001, 2.0, 20));
        let m = Self {
            registry: Mutex::new(Registry::with_prefix("wasmhost")),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            instances_created: Counter::default(),
            instantiate_seconds: Histogram::new(exponential_buckets(0.000_005, 2.0, 16)),
            instances_live: Gauge::default(),
            instances_computing: Gauge::default(),
            guest_yields: Counter::default(),
            function_instances_live: Family::default(),
            function_instances_idle: Family::default(),
            compiles: Counter::default(),
            compile_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            cache_hits: Counter::default(),
            code_loads: Counter::default(),
            code_load_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 14)),
            code_evictions: Counter::default(),
            code_loaded: Gauge::default(),
            code_loaded_bytes: Gauge::default(),
            snapshots: Counter::default(),
            snapshot_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            queue_depth: Family::default(),
            rejected: Family::default(),
            calls: Family::default(),
            batch_size: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 11))
            }),
            gpu_submits: Gauge::default(),
            gpu_seconds: Gauge::default(),
            outbound_requests: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            m.register_request_metrics(&mut r);
            m.register_instance_metrics(&mut r);
            m.register_code_metrics(&mut r);
            m.register_call_metrics(&mut r);
        }
        m
    }

    /// Registers the HTTP request series, inbound and outbound.
    fn register_request_metrics(&self, r: &mut Registry) {
        r.register("requests", "HTTP requests served", self.requests.clone());
        r.register(
            "outbound_requests",
            "Outgoing HTTP requests of guests, allowed or denied by their allow-list",
            self.outbound_requests.clone(),
        );
        r.register(
            "request_seconds",
            "HTTP request latency",
            self.request_seconds.clone(),
        );
    }

    /// Registers the instance series: creation, liveness, computing, yields.
    fn register_instance_metrics(&self, r: &mut Registry) {
        r.register(
            "instances_created",
            "Instances created (instance cold starts)",
            self.instances_created.clone(),
        );
        r.register(
            "instantiate_seconds",
            "Time to create an instance",
            self.instantiate_seconds.clone(),
        );
        r.register(
            "instances_live",
            "Instances alive now",
            self.instances_live.clone(),
        );
        r.register(
            "instances_computing",
            "Warm instances computing for a call now (not waiting in a host call), or being started for one",
            self.instances_computing.clone(),
        );
        r.register(
            "guest_yields",
            "Times a guest still computing at an epoch tick (every millisecond) yielded to the executor so other requests could run",
            self.guest_yields.clone(),
        );
        r.register(
            "function_instances_live",
            "Instances alive now per function (busy or idle)",
            self.function_instances_live.clone(),
        );
        r.register(
            "function_instances_idle",
            "Warm instances waiting idle per function",
            self.function_instances_idle.clone(),
        );
    }

    /// Registers the compiled-code series: compiles, cache, loads, evictions, snapshots.
    fn register_code_metrics(&self, r: &mut Registry) {
        r.register(
            "compiles",
            "Cranelift compilations (components, pre-initialisation passes and snapshots)",
            self.compiles.clone(),
        );
        r.register(
            "compile_seconds",
            "Compile time of a component",
            self.compile_seconds.clone(),
        );
        r.register(
            "cache_hits",
            "Components loaded from the native-code cache",
            self.cache_hits.clone(),
        );
        r.register(
            "code_loads",
            "Loads of a component's code on a call (first call since the start, or evicted)",
            self.code_loads.clone(),
        );
        r.register(
            "code_load_seconds",
            "Time to load a component's code on a call",
            self.code_load_seconds.clone(),
        );
        r.register(
            "code_evictions",
            "Components whose code was evicted to stay within the loaded-code budget",
            self.code_evictions.clone(),
        );
        r.register(
            "code_loaded",
            "Components with their code loaded",
            self.code_loaded.clone(),
        );
        r.register(
            "code_loaded_bytes",
            "Estimated resident size of the loaded code",
            self.code_loaded_bytes.clone(),
        );
        r.register(
            "snapshots",
            "Pre-initialisation snapshots made",
            self.snapshots.clone(),
        );
        r.register(
            "snapshot_seconds",
            "Time to run init work, snapshot and compile the result",
            self.snapshot_seconds.clone(),
        );
    }

    /// Registers the capacity, call, batch and GPU series.
    fn register_call_metrics(&self, r: &mut Registry) {
        r.register(
            "queue_depth",
            "Requests waiting for capacity",
            self.queue_depth.clone(),
        );
        r.register(
            "rejected",
            "Requests refused at capacity",
            self.rejected.clone(),
        );
        r.register("calls", "Function calls finished", self.calls.clone());
        r.register(
            "batch_size",
            "Calls per guest call of a batched function",
            self.batch_size.clone(),
        );
        r.register(
            "gpu_submits",
            "GPU submissions completed",
            self.gpu_submits.clone(),
        );
        r.register(
            "gpu_seconds",
            "GPU time summed over calls",
            self.gpu_seconds.clone(),
        );
    }

    /// Records one request.
    pub fn request(&self, app: &str, function: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                app: app.to_owned(),
                function: function.to_owned(),
                status: format!("{}xx", status / 100),
            })
            .inc();
        self.request_seconds
            .get_or_create(&FunctionLabels {
                app: app.to_owned(),
                function: function.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The request series of `function` of `app`, each resolved on its first use rather
    /// than looked up (labels built, family locked) on every request.
    pub fn endpoint_requests(&self, app: &str, function: &str) -> EndpointRequests {
        EndpointRequests {
            app: app.to_owned(),
            function: function.to_owned(),
            by_class: Default::default(),
            latency: Default::default(),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

impl Metrics {
    /// Counts an instance of `function` of `app` as live for as long as the guard exists.
    pub(crate) fn function_instance(&self, app: &str, function: &str) -> LiveInstance {
        let labels = FunctionLabels {
            app: app.to_owned(),
            function: function.to_owned(),
        };
        LiveInstance::new(&self.function_instances_live.get_or_create(&labels))
    }

    /// The gauge of how many warm instances of `function` of `app` wait idle.
    pub(crate) fn idle_gauge(&self, app: &str, function: &str) -> Gauge {
        let labels = FunctionLabels {
            app: app.to_owned(),
            function: function.to_owned(),
        };
        self.function_instances_idle.get_or_create(&labels).clone()
    }
}

/// One endpoint's request counters (by status class) and latency histogram.
pub struct EndpointRequests {
    app: String,
    function: String,
    /// By status / 100 (a status code has three digits).
    by_class: [std::sync::OnceLock<ThreadCounter>; 10],
    latency: std::sync::OnceLock<ThreadHistogram>,
}

impl EndpointRequests {
    /// Records one request into `metrics` (the registry these series belong to).
    pub fn record(&self, metrics: &Metrics, status: u16, took: Duration) {
        let class = usize::from(status / 100).min(9);
        self.by_class[class]
            .get_or_init(|| {
                metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        app: self.app.clone(),
                        function: self.function.clone(),
                        status: format!("{}xx", status / 100),
                    })
                    .clone()
            })
            .inc();
        self.latency
            .get_or_init(|| {
                metrics
                    .request_seconds
                    .get_or_create(&FunctionLabels {
                        app: self.app.clone(),
                        function: self.function.clone(),
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }
}

/// Counts an instance as live for as long as it exists.
pub(crate) struct LiveInstance(Gauge);

impl LiveInstance {
    pub(crate) fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.0.dec();
    }
}
