//! Prometheus metrics at `/metrics` (prometheus-client, text format) and the protocol's model
//! statistics. Counters come from the runtime's live statistics at each scrape (no second
//! count to drift from it); the response-time histogram is observed here, per job served.

use crate::catalog::Catalog;
use crate::error::ProtocolError;
use crate::frontend::State;
use lalarand_runtime::serve::ServeStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

type TaskLabel = Vec<(String, String)>;
type Responses = Family<TaskLabel, Histogram, fn() -> Histogram>;

/// What the front end observes itself.
pub(crate) struct Metrics {
    responses: Responses,
    resources: Vec<String>,
    /// Per task, when its last job ended (ms since the epoch; absent: never). Keyed by name,
    /// so a model loaded while serving gets its entry at its first result.
    last_inference_ms: RwLock<HashMap<String, AtomicU64>>,
}

fn response_histogram() -> Histogram {
    // 10 µs .. 5.2 s, doubling.
    Histogram::new(exponential_buckets(1e-5, 2.0, 20))
}

fn label(task: &str) -> TaskLabel {
    vec![("task".to_string(), task.to_string())]
}

impl Metrics {
    pub fn new(catalog: &Catalog) -> Self {
        let responses: Responses = Family::new_with_constructor(response_histogram);
        for m in &catalog.models {
            // Every task appears from the first scrape, with zero counts.
            let _ = responses.get_or_create(&label(&m.name));
        }
        Self {
            responses,
            resources: catalog.resources.clone(),
            last_inference_ms: RwLock::new(
                catalog.models.iter().map(|m| (m.name.clone(), AtomicU64::new(0))).collect(),
            ),
        }
    }

    /// A job of `task` served with this response time (ns).
    pub fn observe(&self, task: &str, response_ns: u64) {
        self.responses.get_or_create(&label(task)).observe(response_ns as f64 / 1e9);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let known = self.last_inference_ms.read().unwrap_or_else(PoisonError::into_inner);
        match known.get(task) {
            Some(last) => last.store(now, Ordering::Relaxed),
            None => {
                drop(known);
                let mut all = self.last_inference_ms.write().unwrap_or_else(PoisonError::into_inner);
                all.entry(task.to_string()).or_default().store(now, Ordering::Relaxed);
            }
        }
    }

    /// The text exposition of every metric.
    /// When task `task`'s last job ended (ms since the epoch; 0: never).
    pub fn last_inference(&self, task: &str) -> u64 {
        let known = self.last_inference_ms.read().unwrap_or_else(PoisonError::into_inner);
        known.get(task).map_or(0, |v| v.load(Ordering::Relaxed))
    }

    pub fn render(&self, stats: ServeStats, refused: u64) -> String {
        let mut registry = Registry::default();
        registry.register(
            "lalarand_response_seconds",
            "Response time of the jobs served to clients (release to finish)",
            self.responses.clone(),
        );
        registry.register_collector(Box::new(Snapshot { stats, refused, resources: self.resources.clone() }));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        out
    }
}

/// The runtime's statistics at one scrape.
#[derive(Debug)]
struct Snapshot {
    stats: ServeStats,
    refused: u64,
    resources: Vec<String>,
}

fn per_task<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    stats: &ServeStats,
    value: impl Fn(&lalarand_runtime::serve::TaskStats) -> Option<M>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for t in &stats.tasks {
        if let Some(v) = value(t) {
            let labels = [("task", t.name.as_str())];
            v.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let c = |v: u64| Some(ConstCounter::new(v));
        per_task(&mut e, "lalarand_jobs", "Jobs completed", MetricType::Counter, s, |t| c(t.completed))?;
        per_task(&mut e, "lalarand_released", "Jobs released", MetricType::Counter, s, |t| c(t.released))?;
        per_task(&mut e, "lalarand_misses", "Jobs that finished past their deadline", MetricType::Counter, s, |t| {
            c(t.misses)
        })?;
        per_task(
            &mut e,
            "lalarand_rejected",
            "Requests rejected: too early under --early reject, or too many waiting",
            MetricType::Counter,
            s,
            |t| c(t.rejected),
        )?;
        per_task(&mut e, "lalarand_failed", "Jobs failed, aborted or cancelled", MetricType::Counter, s, |t| {
            c(t.failed + t.aborted + t.cancelled)
        })?;
        per_task(&mut e, "lalarand_bound_seconds", "The analysis' response-time bound", MetricType::Gauge, s, |t| {
            t.bound.map(|b| ConstGauge::new(b as f64 / 1e9))
        })?;
        per_task(&mut e, "lalarand_deadline_seconds", "Relative deadline", MetricType::Gauge, s, |t| {
            Some(ConstGauge::new(t.deadline as f64 / 1e9))
        })?;
        let mut m = e.encode_descriptor(
            "lalarand_stall_seconds",
            "Time the machine ran outside the analysis' assumptions, by where it was seen",
            None,
            MetricType::Counter,
        )?;
        let st = s.stalls;
        for (kind, ns) in
            [("stage", st.stage_ns), ("wakeup", st.wakeup_ns), ("release", st.release_ns), ("submit", st.submit_ns)]
        {
            ConstCounter::new(ns as f64 / 1e9).encode(m.encode_family(&[("kind", kind)])?)?;
        }
        let mut m = e.encode_descriptor(
            "lalarand_resource_busy_seconds",
            "Time each resource's worker spent running stages",
            None,
            MetricType::Counter,
        )?;
        for (name, ns) in self.resources.iter().zip(&s.resource_busy) {
            ConstCounter::new(*ns as f64 / 1e9).encode(m.encode_family(&[("resource", name.as_str())])?)?;
        }
        let m = e.encode_descriptor(
            "lalarand_unauthenticated_requests",
            "Requests refused for a missing or wrong bearer token",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.refused).encode(m)?;
        let m = e.encode_descriptor(
            "lalarand_overruns",
            "Stages that ran past their planned time",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.overruns).encode(m)?;
        Ok(())
    }
}

/// The protocol's per-model statistics.
pub(crate) struct ModelStat {
    pub name: String,
    pub success: u64,
    pub success_ns: u64,
    pub fail: u64,
    pub last_inference_ms: u64,
}

/// Statistics of model `name` (every model when empty).
pub(crate) fn model_statistics(state: &State, name: &str, version: &str) -> Result<Vec<ModelStat>, ProtocolError> {
    if !name.is_empty() {
        state.model(name, version)?;
    }
    let stats = state.backend.stats();
    Ok(stats
        .tasks
        .iter()
        .filter(|t| name.is_empty() || t.name == name)
        .map(|t| ModelStat {
            name: t.name.clone(),
            success: t.completed,
            success_ns: (t.response_mean * t.completed as f64) as u64,
            fail: t.failed + t.aborted + t.cancelled + t.rejected,
            last_inference_ms: state.metrics.last_inference(&t.name),
        })
        .collect())
}
