//! The instances of endpoints that take several inputs at once (WASIp3 `wasi:http`
//! services, typed endpoints with async handlers), like Modal containers with
//! `@concurrent`: each instance is a worker task that owns its store; requests go to the
//! first open instance with a free input, and a new instance starts only when every one is
//! full. Once an endpoint's instances outnumber the serving threads its requests come
//! from, each thread's requests stay on the instances it started (and those started ahead
//! of traffic), and a thread whose instances are full starts another: a request handed to
//! another thread's instance wakes that thread and waits for it (under load, ~12 % more
//! requests a second and a shorter tail). Like the warm pool of the other shapes, they are
//! kept for `min_containers`, topped up to `buffer_containers` idle ones while traffic
//! comes, counted in the idle gauge, and retired after the scale-down window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};

use super::CallError;
use super::metrics::Metrics;

/// The open workers, and the threads requests for them came from.
struct Roster<J> {
    workers: Vec<Arc<Worker<J>>>,
    threads: Vec<std::thread::ThreadId>,
}

/// The workers of every concurrent endpoint of one component; `J` is what a worker is
/// handed per request.
pub(crate) struct Workers<J> {
    list: Mutex<Roster<J>>,
    app: String,
    metrics: Arc<Metrics>,
    /// The idle gauge of each endpoint, resolved once.
    gauges: Mutex<HashMap<String, Gauge>>,
}

/// The dispatcher's side of one instance.
pub(crate) struct Worker<J> {
    pub(crate) endpoint: String,
    pub(crate) jobs: mpsc::UnboundedSender<J>,
    /// Requests given to it and not finished.
    pub(crate) in_flight: AtomicUsize,
    /// No longer takes requests: idle past the window, failed, or single-use.
    pub(crate) closed: AtomicBool,
    /// Wakes the worker when its app is stopped or replaced.
    pub(crate) stop: tokio::sync::Notify,
    /// Why its instance ended, set when it did, for the requests it leaves unanswered.
    pub(crate) ended: watch::Sender<Option<CallError>>,
    /// The thread that registered it, where its caller starts its task: on a serving
    /// thread, the one whose requests reach it without crossing threads.
    home: std::thread::ThreadId,
    /// Started ahead of traffic (`min_containers`, `buffer_containers`), wherever that
    /// was: every thread's requests may use it.
    ahead: bool,
}

impl<J> Worker<J> {
    /// Why the instance ended, once the worker said (a moment after its answers drop).
    pub(crate) async fn failure(&self) -> CallError {
        let mut ended = self.ended.subscribe();
        let reason = tokio::time::timeout(Duration::from_secs(1), ended.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.clone()));
        reason.unwrap_or_else(|| CallError::Trap(super::error::Trap::Ended))
    }

    fn open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn idle(&self) -> bool {
        self.open() && self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// A request's hold on one input of its instance, released when dropped (for a
/// `wasi:http` service, once its response body is sent).
pub(crate) struct Input<J> {
    worker: Arc<Worker<J>>,
}

impl<J> Input<J> {
    /// The instance this input belongs to.
    pub(crate) fn worker(&self) -> &Arc<Worker<J>> {
        &self.worker
    }
}

impl<J> Drop for Input<J> {
    fn drop(&mut self) {
        self.worker.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new worker for the caller to start: its handle and its job queue's receiving end.
pub(crate) type Fresh<J> = (Arc<Worker<J>>, mpsc::UnboundedReceiver<J>);

impl<J> Workers<J> {
    /// No workers yet, for a component of `app`.
    pub(crate) fn new(app: &str, metrics: &Arc<Metrics>) -> Self {
        Self {
            list: Mutex::new(Roster {
                workers: Vec::new(),
                threads: Vec::new(),
            }),
            app: app.to_owned(),
            metrics: metrics.clone(),
            gauges: Mutex::default(),
        }
    }

    fn list(&self) -> MutexGuard<'_, Roster<J>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `endpoint`'s idle gauge, once: it is set when the metrics are read
    /// ([`Workers::refresh_gauges`]), not on every reservation and release, which both
    /// serving threads make.
    fn gauge(&self, endpoint: &str) {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if !gauges.contains_key(endpoint) {
            let gauge = self.metrics.idle_gauge(&self.app, endpoint);
            gauges.insert(endpoint.to_owned(), gauge);
        }
    }

    /// Sets each endpoint's idle gauge to its open workers with nothing in flight.
    pub(crate) fn refresh_gauges(&self) {
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        for (endpoint, gauge) in gauges.iter() {
            gauge.set(self.idle_count(endpoint) as i64);
        }
    }

    /// Open workers of `endpoint` with nothing in flight.
    pub(crate) fn idle_count(&self, endpoint: &str) -> usize {
        self.list()
            .workers
            .iter()
            .filter(|w| w.endpoint == endpoint && w.idle())
            .count()
    }

    /// Takes an input of an open worker of `endpoint` with room, else registers a new
    /// worker holding this first input (returned for the caller to start).
    pub(crate) fn reserve(
        &self,
        endpoint: &str,
        max_inputs: usize,
        single_use: bool,
    ) -> (Input<J>, Option<mpsc::UnboundedReceiver<J>>) {
        let (worker, fresh) = {
            let mut list = self.list();
            // A busy open worker with room first, so idle ones stay idle and can be retired
            // when traffic drops; of those, one on this thread (a request handed to another
            // thread's worker wakes that thread and waits for it), then the busiest. Once
            // the endpoint's instances outnumber the threads its requests come from,
            // traffic outgrew filling one instance before the next: each thread's requests
            // then stay on its own instances (and those started ahead of traffic), and a
            // thread whose instances are full starts another.
            let here = std::thread::current().id();
            if !list.threads.contains(&here) {
                list.threads.push(here);
            }
            let spread = !outgrown(&list, endpoint);
            let open = (!single_use)
                .then(|| {
                    list.workers
                        .iter()
                        .filter(|w| {
                            w.endpoint == endpoint
                                && w.open()
                                && (spread || w.home == here || w.ahead)
                                && w.in_flight.load(Ordering::Acquire) < max_inputs
                        })
                        .max_by_key(|w| {
                            let in_flight = w.in_flight.load(Ordering::Acquire);
                            (in_flight > 0, w.home == here, in_flight)
                        })
                        .cloned()
                })
                .flatten();
            match open {
                Some(worker) => {
                    worker.in_flight.fetch_add(1, Ordering::AcqRel);
                    (worker, None)
                }
                None => {
                    let (worker, jobs) = new_worker(endpoint, 1, single_use, false);
                    list.workers.push(worker.clone());
                    (worker, Some(jobs))
                }
            }
        };
        if fresh.is_some() {
            self.gauge(endpoint);
        }
        (Input { worker }, fresh)
    }

    /// Registers a new idle worker of `endpoint` (for `min_containers` and
    /// `buffer_containers`), returned for the caller to start.
    pub(crate) fn spawn_idle(&self, endpoint: &str) -> Fresh<J> {
        let (worker, jobs) = new_worker(endpoint, 0, false, true);
        self.list().workers.push(worker.clone());
        self.gauge(endpoint);
        (worker, jobs)
    }

    /// Registers new idle workers of `endpoint` until `wanted` are idle, returned for the
    /// caller to start.
    pub(crate) fn top_up(&self, endpoint: &str, wanted: usize) -> Vec<Fresh<J>> {
        let idle = self.idle_count(endpoint);
        (idle..wanted).map(|_| self.spawn_idle(endpoint)).collect()
    }

    /// Closes `worker` if nothing is in flight on it and more than `keep` other open
    /// workers of its endpoint remain (`min_containers`); reservations take the same
    /// lock, so none can slip in afterwards. Returns whether it was closed.
    pub(crate) fn close_if_idle(&self, worker: &Arc<Worker<J>>, keep: usize) -> bool {
        let mut list = self.list();
        if worker.in_flight.load(Ordering::Acquire) != 0 {
            return false;
        }
        let others = list
            .workers
            .iter()
            .filter(|w| w.endpoint == worker.endpoint && w.open() && !Arc::ptr_eq(w, worker))
            .count();
        if others < keep {
            return false;
        }
        worker.closed.store(true, Ordering::Release);
        list.workers.retain(|w| !Arc::ptr_eq(w, worker));
        true
    }

    /// Stops sending requests to `worker`.
    pub(crate) fn close(&self, worker: &Arc<Worker<J>>) {
        worker.closed.store(true, Ordering::Release);
        self.list().workers.retain(|w| !Arc::ptr_eq(w, worker));
    }

    /// Closes every worker: each ends once the requests in it are done.
    pub(crate) fn close_all(&self) {
        let closed: Vec<Arc<Worker<J>>> = self.list().workers.drain(..).collect();
        for worker in &closed {
            worker.closed.store(true, Ordering::Release);
            worker.stop.notify_one();
        }
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        for gauge in gauges.values() {
            gauge.set(0);
        }
    }

    /// Asks the idle worker that has been open the longest to end (the pooling allocator
    /// is full); returns whether one was asked.
    pub(crate) fn evict_one(&self) -> Option<Arc<Worker<J>>> {
        let worker = {
            let mut list = self.list();
            let index = list.workers.iter().position(|w| w.idle())?;
            let worker = list.workers.remove(index);
            worker.closed.store(true, Ordering::Release);
            worker
        };
        worker.stop.notify_one();
        Some(worker)
    }
}

/// The workers of one component, seen from the registry of every pool: its idle
/// instances can be asked to end to make room in the pooling allocator, and its idle
/// gauges set for the metrics about to be read.
pub(crate) trait WorkerPool: Send + Sync {
    /// Asks one idle instance to end; the receiver says when it has.
    fn evict(&self) -> Option<watch::Receiver<Option<CallError>>>;
    /// Sets each endpoint's idle gauge.
    fn refresh_gauges(&self);
}

impl<J: Send> WorkerPool for Workers<J> {
    fn evict(&self) -> Option<watch::Receiver<Option<CallError>>> {
        self.evict_one().map(|w| w.ended.subscribe())
    }

    fn refresh_gauges(&self) {
        Workers::refresh_gauges(self);
    }
}

/// Whether `endpoint`'s instances started for requests outnumber the threads its
/// component's requests came from: traffic outgrew one instance a thread.
fn outgrown<J>(roster: &Roster<J>, endpoint: &str) -> bool {
    let started = roster
        .workers
        .iter()
        .filter(|w| w.endpoint == endpoint && w.open() && !w.ahead)
        .count();
    started > roster.threads.len()
}

fn new_worker<J>(endpoint: &str, in_flight: usize, single_use: bool, ahead: bool) -> Fresh<J> {
    let (jobs, receiver) = mpsc::unbounded_channel();
    let worker = Arc::new(Worker {
        endpoint: endpoint.to_owned(),
        jobs,
        in_flight: AtomicUsize::new(in_flight),
        closed: AtomicBool::new(single_use),
        stop: tokio::sync::Notify::new(),
        ended: watch::Sender::new(None),
        home: std::thread::current().id(),
        ahead,
    });
    (worker, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers() -> Arc<Workers<()>> {
        Arc::new(Workers::new("app", &Arc::new(Metrics::new())))
    }

    #[test]
    fn idle_gauges_are_set_when_the_metrics_are_read() {
        let metrics = Arc::new(Metrics::new());
        let workers = Arc::new(Workers::<()>::new("app", &metrics));
        let gauge = metrics.idle_gauge("app", "f");
        let (a, _) = workers.reserve("f", 1, false);
        let (b, _) = workers.reserve("f", 1, false);
        drop(a);
        workers.refresh_gauges();
        assert_eq!(gauge.get(), 1);
        drop(b);
        workers.refresh_gauges();
        assert_eq!(gauge.get(), 2);
        workers.close_all();
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn inputs_fill_one_worker_before_another_starts() {
        let workers = workers();
        let (a, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some());
        let (b, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_none() && Arc::ptr_eq(a.worker(), b.worker()));
        let (c, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some() && !Arc::ptr_eq(a.worker(), c.worker()));
        drop((a, b));
        assert_eq!(workers.idle_count("f"), 1);
        // A single-use reservation always gets a fresh, closed worker.
        let (d, fresh) = workers.reserve("f", 2, true);
        assert!(fresh.is_some() && !d.worker().open());
    }

    #[test]
    fn a_busy_worker_of_this_thread_is_preferred_to_a_busier_one_elsewhere() {
        let workers = workers();
        let elsewhere = workers.clone();
        let (away, away_2) = std::thread::spawn(move || {
            let (a, _) = elsewhere.reserve("f", 4, false);
            let (b, _) = elsewhere.reserve("f", 4, false);
            (a, b)
        })
        .join()
        .unwrap();
        assert!(Arc::ptr_eq(away.worker(), away_2.worker()));
        // Every worker is full: a new one starts here.
        let (_full, _) = workers.reserve("f", 4, false);
        let (_full_2, _) = workers.reserve("f", 4, false);
        let (here, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some() && !Arc::ptr_eq(here.worker(), away.worker()));
        // Both have room (the other thread's is the busier): this thread's is taken.
        let (next, fresh) = workers.reserve("f", 8, false);
        assert!(fresh.is_none() && Arc::ptr_eq(next.worker(), here.worker()));
        // An idle worker here is passed over for a busy one elsewhere.
        drop((here, next));
        let (busy, _) = workers.reserve("f", 8, false);
        assert!(Arc::ptr_eq(busy.worker(), away.worker()));
    }

    #[test]
    fn once_instances_outnumber_threads_each_threads_requests_stay_on_its_own() {
        let workers = workers();
        let elsewhere = workers.clone();
        let away = std::thread::spawn(move || elsewhere.reserve("f", 2, false).0)
            .join()
            .unwrap();
        // No more instances than threads: a request fills the other thread's first.
        let (a, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_none() && Arc::ptr_eq(a.worker(), away.worker()));
        let (b, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some());
        let (c, _) = workers.reserve("f", 2, false);
        assert!(Arc::ptr_eq(b.worker(), c.worker()));
        let (d, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some(), "every one is full");
        // Three instances for two threads now: the other thread's free input is left to
        // its own requests.
        drop(a);
        let (e, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_none() && Arc::ptr_eq(e.worker(), d.worker()));
        let (f, fresh) = workers.reserve("f", 2, false);
        assert!(fresh.is_some() && !Arc::ptr_eq(f.worker(), away.worker()));
    }

    #[test]
    fn instances_started_ahead_of_traffic_serve_every_thread() {
        let workers = workers();
        let elsewhere = workers.clone();
        std::thread::spawn(move || {
            for _ in 0..2 {
                drop(elsewhere.spawn_idle("f"));
            }
        })
        .join()
        .unwrap();
        // One input an instance: the two started ahead take the first two requests...
        let (first, fresh) = workers.reserve("f", 1, false);
        assert!(fresh.is_none() && first.worker().ahead);
        let (second, fresh) = workers.reserve("f", 1, false);
        assert!(fresh.is_none() && second.worker().ahead);
        // ...this thread then starts two of its own...
        let own: Vec<_> = (0..2).map(|_| workers.reserve("f", 1, false)).collect();
        assert!(own.iter().all(|(_, fresh)| fresh.is_some()));
        assert!(outgrown(&workers.list(), "f"));
        // ...and still takes one started ahead when it has room.
        drop(first);
        let (again, fresh) = workers.reserve("f", 1, false);
        assert!(fresh.is_none() && again.worker().ahead);
    }

    #[test]
    fn min_containers_keep_idle_workers_open() {
        let workers = workers();
        let (first, _) = workers.spawn_idle("f");
        let (second, _) = workers.spawn_idle("f");
        assert_eq!(workers.idle_count("f"), 2);
        assert!(workers.close_if_idle(&first, 1), "one other stays");
        assert!(!workers.close_if_idle(&second, 1), "the last one is kept");
        assert!(
            workers
                .evict_one()
                .is_some_and(|w| Arc::ptr_eq(&w, &second))
        );
        assert_eq!(workers.idle_count("f"), 0);
    }
}
