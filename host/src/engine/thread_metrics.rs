//! Prometheus metrics the serving threads record into on every request (the request
//! counters and latency histograms), kept per thread and summed when `/metrics` is read.
//!
//! prometheus-client's histogram takes a lock and writes its sums for every observation,
//! and its counter adds to one atomic: lines both serving threads wrote on every request.
//! Here each thread records into a slot of its own, made the first time that thread
//! records (most series are only ever touched by one or two threads).

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::shards::Slots;

/// A counter each thread adds to in a slot of its own.
#[derive(Clone, Debug)]
pub struct ThreadCounter(Arc<Slots<std::sync::atomic::AtomicU64>>);

impl Default for ThreadCounter {
    fn default() -> Self {
        Self(Arc::new(Slots::default()))
    }
}

impl ThreadCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.0
            .mine()
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0
            .made()
            .map(|(_, n)| n.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for ThreadCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ThreadCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One thread's observations.
#[derive(Debug, Default)]
struct Tally {
    sum: f64,
    count: u64,
    /// Observations per bucket (not cumulative), as many as the bounds.
    buckets: Vec<u64>,
}

/// A histogram with fixed bucket bounds each thread observes into a slot of its own.
#[derive(Clone, Debug)]
pub struct ThreadHistogram {
    /// Upper bounds, the last +Inf, as in prometheus-client's own.
    bounds: Arc<[f64]>,
    slots: Arc<Slots<Mutex<Tally>>>,
}

impl ThreadHistogram {
    /// A histogram with these upper bounds (and +Inf).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        Self {
            bounds: bounds.into_iter().chain([f64::INFINITY]).collect(),
            slots: Arc::new(Slots::default()),
        }
    }

    /// Records `v`.
    pub fn observe(&self, v: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|upper| *upper >= v)
            .unwrap_or(self.bounds.len() - 1);
        let mut tally = self.slots.mine().lock().unwrap_or_else(|p| p.into_inner());
        if tally.buckets.is_empty() {
            tally.buckets = vec![0; self.bounds.len()];
        }
        tally.sum += v;
        tally.count += 1;
        tally.buckets[bucket] += 1;
    }

    /// All threads' observations: the sum, the count and each bucket's count.
    fn total(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = self.bounds.iter().map(|b| (*b, 0)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for (_, slot) in self.slots.made() {
            let tally = slot.lock().unwrap_or_else(|p| p.into_inner());
            sum += tally.sum;
            count += tally.count;
            for (total, n) in buckets.iter_mut().zip(&tally.buckets) {
                total.1 += n;
            }
        }
        (sum, count, buckets)
    }
}

impl TypedMetric for ThreadHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ThreadHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.total();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn threads_record_apart_and_encode_as_prometheus_clients_own_metrics() {
        let bounds = [0.001, 0.01, 0.1];
        let (ours, theirs) = (ThreadHistogram::new(bounds), Histogram::new(bounds));
        let (count, their_count) = (ThreadCounter::default(), Counter::<u64>::default());
        // Powers of two: their sum is exact in any order.
        let values = [0.0009765625, 0.001953125, 0.0625, 0.5, 0.0078125];
        std::thread::scope(|s| {
            for chunk in values.chunks(2) {
                let (ours, count) = (&ours, &count);
                s.spawn(move || {
                    for v in chunk {
                        ours.observe(*v);
                        count.inc();
                    }
                });
            }
        });
        for v in values {
            theirs.observe(v);
            their_count.inc();
        }
        assert_eq!(count.get(), 5);
        let mut a = Registry::default();
        a.register("latency", "l", ours);
        a.register("requests", "r", count);
        let mut b = Registry::default();
        b.register("latency", "l", theirs);
        b.register("requests", "r", their_count);
        assert_eq!(text(&a), text(&b));
    }
}
