//! inferd's Prometheus metrics: one global set, every name prefixed `inferd_`, durations in
//! seconds, explicit buckets.
//!
//! Core records what only core sees (queue and inference time, batch sizes, rejections, queue
//! depth); front ends record whole requests through [`RequestTimer`]; the binary records model
//! state and load time through [`ModelLoaded`] and [`set_model_state`]; [`render`] gives the
//! text exposition for the metrics port.
//!
//! Each kind of event is one struct whose `emit` writes both the log line and the metric, so
//! the two cannot drift apart (vector's `internal_events`). On the hot path the only costs are
//! a label lookup (a hash and a read lock, no allocation once the series exists) and a few
//! atomic adds; per-model handles are looked up once, when a model is attached
//! ([`ModelMetrics`]).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::{ErrorKind, Result};
use crate::loaded::LoadedModel;

/// Request, queue and inference durations, in seconds. inferd answers small models in tens of
/// microseconds, so the buckets start there; the top ones catch deadlines and stalls.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Requests per model call.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Model load times, in seconds.
pub const LOAD_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];

/// The states a model version can be in, as the `state` label of `inferd_model_state`.
pub const MODEL_STATES: &[&str] = &["loading", "ready", "unloading", "failed"];

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    queue_duration: HistogramVec,
    inference_duration: HistogramVec,
    batch_size: HistogramVec,
    inflight: IntGaugeVec,
    queue_depth: IntGaugeVec,
    rejections: IntCounterVec,
    shadow: IntCounterVec,
    model_state: IntGaugeVec,
    model_load: HistogramVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric definition");
            registry
                .register(Box::new(h.clone()))
                .expect("metric registered once");
            h
        };
        let metrics = Metrics {
            requests: counter(
                "inferd_requests_total",
                "Requests answered, by model, version, protocol and status (`ok` or the error_type).",
                &["model", "version", "protocol", "status"],
            ),
            request_duration: histogram(
                "inferd_request_duration_seconds",
                "Time from a request's arrival to its answer, in seconds.",
                &["model", "version", "protocol"],
                DURATION_BUCKETS,
            ),
            queue_duration: histogram(
                "inferd_queue_duration_seconds",
                "Time a request waited for an inference thread or a batch, in seconds.",
                &["model", "version"],
                DURATION_BUCKETS,
            ),
            inference_duration: histogram(
                "inferd_inference_duration_seconds",
                "Time of one model call (one batch), in seconds.",
                &["model", "version"],
                DURATION_BUCKETS,
            ),
            batch_size: histogram(
                "inferd_batch_size",
                "Requests answered by one model call.",
                &["model", "version"],
                BATCH_SIZE_BUCKETS,
            ),
            inflight: gauge("inferd_inflight_requests", "Requests being handled now.", &["protocol"]),
            queue_depth: gauge(
                "inferd_queue_depth",
                "Requests waiting for an inference thread or a batch.",
                &["model"],
            ),
            rejections: counter(
                "inferd_rejections_total",
                "Requests refused or dropped before inference, by reason.",
                &["reason"],
            ),
            shadow: counter(
                "inferd_shadow_requests_total",
                "Requests copied to a shadow version, by outcome: agree, disagree, error, dropped.",
                &["model", "shadow_version", "result"],
            ),
            model_state: gauge(
                "inferd_model_state",
                "1 for the state each model version is in, 0 for the others.",
                &["model", "version", "state"],
            ),
            model_load: histogram(
                "inferd_model_load_seconds",
                "Time to load and warm up a model version, in seconds.",
                &["model", "version"],
                LOAD_BUCKETS,
            ),
            registry,
        };
        // Every reason exists from the start, at 0, so that `rate()` and alerts see the first one.
        for reason in RejectReason::ALL {
            metrics.rejections.with_label_values(&[reason.as_str()]);
        }
        // RSS, CPU seconds, open and maximum fds, from /proc: only Linux has them.
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "inferd",
            );
            if let Err(e) = metrics.registry.register(Box::new(process)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        metrics
    }
}

/// The text exposition of every metric, for `GET /metrics`.
pub fn render() -> String {
    let families = METRICS.registry.gather();
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The registry [`render`] exposes, for crates that own metrics of their own (connections).
pub fn registry() -> &'static Registry {
    &METRICS.registry
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `status` label for a request's outcome: `ok` or the error table's `error_type`.
pub fn status_label(outcome: Option<ErrorKind>) -> &'static str {
    outcome.map_or("ok", ErrorKind::error_type)
}

/// Formats a version number as a label without allocating.
struct VersionLabel {
    buf: [u8; 20],
    start: usize,
}

impl VersionLabel {
    fn new(version: Option<u64>) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        if let Some(mut v) = version {
            loop {
                start -= 1;
                buf[start] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
        }
        Self { buf, start }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

/// One request through a front end, from arrival to answer. Counts it in
/// `inferd_inflight_requests` while alive; [`RequestTimer::finish`] records its status and
/// duration. Dropped unfinished (the handler was cancelled: the client went away), it is
/// counted with status `cancelled` and no model.
///
/// ```ignore
/// let timer = metrics::RequestTimer::start("http");
/// let loaded = registry.resolve(name, version);            // Result<Arc<LoadedModel>>
/// let result = match &loaded {
///     Ok(m) => m.infer(&executor, inputs).await,
///     Err(e) => Err(e.clone()),
/// };
/// timer.finish_result(loaded.as_deref().ok(), &result);
/// ```
#[must_use = "a request timer records nothing until finished"]
pub struct RequestTimer {
    protocol: &'static str,
    started: Instant,
    inflight: IntGauge,
    finished: bool,
}

impl RequestTimer {
    pub fn start(protocol: &'static str) -> Self {
        let inflight = METRICS.inflight.with_label_values(&[protocol]);
        inflight.inc();
        Self {
            protocol,
            started: Instant::now(),
            inflight,
            finished: false,
        }
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records the request as answered by `model` at `version` (empty and `None` when it
    /// failed before a model was resolved), with `error` the failure's kind. Pass the names of
    /// the model that answered (from the registry), never names from the request: a client
    /// naming a million unknown models must not make a million series.
    pub fn finish(mut self, model: &str, version: Option<u64>, error: Option<ErrorKind>) {
        self.finished = true;
        RequestFinished {
            model,
            version,
            protocol: self.protocol,
            error,
            elapsed: self.started.elapsed(),
        }
        .emit();
    }

    /// [`RequestTimer::finish`] with the labels taken from the model that answered, if any.
    pub fn finish_model(self, model: Option<&LoadedModel>, error: Option<ErrorKind>) {
        match model {
            Some(m) => self.finish(&m.name, Some(m.version), error),
            None => self.finish("", None, error),
        }
    }

    /// [`RequestTimer::finish_model`] for a `Result`.
    pub fn finish_result<T>(self, model: Option<&LoadedModel>, result: &Result<T>) {
        self.finish_model(model, result.as_ref().err().map(|e| e.kind));
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.inflight.dec();
        if !self.finished {
            METRICS
                .requests
                .with_label_values(&["", "", self.protocol, "cancelled"])
                .inc();
        }
    }
}

/// A request answered by a front end.
struct RequestFinished<'a> {
    model: &'a str,
    version: Option<u64>,
    protocol: &'static str,
    error: Option<ErrorKind>,
    elapsed: Duration,
}

impl RequestFinished<'_> {
    fn emit(self) {
        let version = VersionLabel::new(self.version);
        let version = version.as_str();
        let status = status_label(self.error);
        METRICS
            .requests
            .with_label_values(&[self.model, version, self.protocol, status])
            .inc();
        METRICS
            .request_duration
            .with_label_values(&[self.model, version, self.protocol])
            .observe(self.elapsed.as_secs_f64());
        tracing::debug!(
            model = self.model,
            version,
            protocol = self.protocol,
            status,
            elapsed_us = self.elapsed.as_micros() as u64,
            "request"
        );
    }
}

/// Why a request was turned away before a model saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The inference or batch queue was full (503 + Retry-After).
    QueueFull,
    /// Its deadline passed while it waited (504).
    DeadlineExceeded,
    /// Its caller had gone (client disconnected); the work was skipped.
    ClientGone,
}

impl RejectReason {
    pub const ALL: [RejectReason; 3] = [
        RejectReason::QueueFull,
        RejectReason::DeadlineExceeded,
        RejectReason::ClientGone,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue_full",
            RejectReason::DeadlineExceeded => "deadline_exceeded",
            RejectReason::ClientGone => "client_gone",
        }
    }
}

/// A request refused or dropped before inference.
pub struct Rejected<'a> {
    pub model: &'a str,
    pub reason: RejectReason,
}

impl Rejected<'_> {
    pub fn emit(self) {
        METRICS
            .rejections
            .with_label_values(&[self.reason.as_str()])
            .inc();
        tracing::debug!(
            model = self.model,
            reason = self.reason.as_str(),
            "request rejected"
        );
    }
}

/// A model version's load finished (successfully or not); sets its state and load time.
pub struct ModelLoaded<'a> {
    pub model: &'a str,
    pub version: u64,
    pub elapsed: Duration,
    pub ok: bool,
}

impl ModelLoaded<'_> {
    pub fn emit(self) {
        let version = VersionLabel::new(Some(self.version));
        METRICS
            .model_load
            .with_label_values(&[self.model, version.as_str()])
            .observe(self.elapsed.as_secs_f64());
        set_model_state(
            self.model,
            self.version,
            if self.ok { "ready" } else { "failed" },
        );
        tracing::info!(
            model = self.model,
            version = self.version,
            elapsed_ms = self.elapsed.as_secs_f64() * 1e3,
            ok = self.ok,
            "model load finished"
        );
    }
}

/// Sets `inferd_model_state{model,version,state}` to 1 for `state` (one of [`MODEL_STATES`])
/// and 0 for the others. Called rarely (load, unload), so it may look labels up freely.
pub fn set_model_state(model: &str, version: u64, state: &str) {
    let version = VersionLabel::new(Some(version));
    for s in MODEL_STATES {
        METRICS
            .model_state
            .with_label_values(&[model, version.as_str(), s])
            .set(i64::from(*s == state));
    }
}

/// Removes a model version's state series (after unload), so dashboards do not show it forever.
pub fn forget_model(model: &str, version: u64) {
    let version = VersionLabel::new(Some(version));
    for s in MODEL_STATES {
        let _ = METRICS
            .model_state
            .remove_label_values(&[model, version.as_str(), s]);
    }
}

/// One model version's series, looked up once when the model is attached so that the
/// inference path only does atomic adds.
/// Cloning is one reference count.
#[derive(Clone)]
pub struct ModelMetrics(Arc<ModelSeries>);

struct ModelSeries {
    name: String,
    queue_duration: Histogram,
    inference_duration: Histogram,
    batch_size: Histogram,
    queue_depth: IntGauge,
}

impl ModelMetrics {
    pub fn new(model: &str, version: u64) -> Self {
        let v = VersionLabel::new(Some(version));
        let labels = [model, v.as_str()];
        Self(Arc::new(ModelSeries {
            name: model.into(),
            queue_duration: METRICS.queue_duration.with_label_values(&labels),
            inference_duration: METRICS.inference_duration.with_label_values(&labels),
            batch_size: METRICS.batch_size.with_label_values(&labels),
            queue_depth: METRICS.queue_depth.with_label_values(&[model]),
        }))
    }

    pub fn model(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn queued(&self) -> QueueSlot {
        self.0.queue_depth.inc();
        QueueSlot(self.0.queue_depth.clone())
    }

    pub(crate) fn waited(&self, since: Instant, now: Instant) {
        self.0
            .queue_duration
            .observe(now.saturating_duration_since(since).as_secs_f64());
    }

    /// One model call that answered `requests` requests in `elapsed`.
    pub(crate) fn ran(&self, requests: usize, elapsed: Duration) {
        self.0.inference_duration.observe(elapsed.as_secs_f64());
        self.0.batch_size.observe(requests as f64);
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        Rejected {
            model: &self.0.name,
            reason,
        }
        .emit();
    }
}

/// A place in a queue, counted in `inferd_queue_depth` until dropped: however a queued job
/// ends (run, skipped, refused, dropped with its queue), the gauge comes back down.
pub(crate) struct QueueSlot(IntGauge);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What became of one request copied to a shadow version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowResult {
    /// The shadow's prediction matched the primary's.
    Agree,
    Disagree,
    /// The shadow failed (or answered without a prediction).
    Error,
    /// The shadow queue was full; the copy never ran.
    Dropped,
}

impl ShadowResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowResult::Agree => "agree",
            ShadowResult::Disagree => "disagree",
            ShadowResult::Error => "error",
            ShadowResult::Dropped => "dropped",
        }
    }
}

/// One request copied to a shadow version reached an outcome.
pub struct ShadowOutcome<'a> {
    pub model: &'a str,
    pub shadow_version: u64,
    pub result: ShadowResult,
}

impl ShadowOutcome<'_> {
    pub fn emit(self) {
        let version = VersionLabel::new(Some(self.shadow_version));
        METRICS
            .shadow
            .with_label_values(&[self.model, version.as_str(), self.result.as_str()])
            .inc();
        // Per request, so debug: a shadow failing on every request must not flood the log.
        tracing::debug!(
            model = self.model,
            shadow_version = self.shadow_version,
            result = self.result.as_str(),
            "shadow request"
        );
    }
}

/// The shadow counter's current value, for tests.
#[cfg(test)]
pub(crate) fn shadow_count(model: &str, shadow_version: u64, result: ShadowResult) -> u64 {
    let version = VersionLabel::new(Some(shadow_version));
    METRICS
        .shadow
        .with_label_values(&[model, version.as_str(), result.as_str()])
        .get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ModelMetadata};
    use crate::tensor::NamedTensor;

    struct Null(ModelMetadata);
    impl Model for Null {
        fn metadata(&self) -> &ModelMetadata {
            &self.0
        }
        fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
            Ok(vec![])
        }
    }

    fn null_model() -> Arc<dyn Model> {
        Arc::new(Null(ModelMetadata {
            platform: "test".into(),
            inputs: vec![],
            outputs: vec![],
            prediction_output: 0,
            probabilities_output: None,
        }))
    }

    #[test]
    fn version_labels_format_without_allocating() {
        assert_eq!(VersionLabel::new(None).as_str(), "");
        assert_eq!(VersionLabel::new(Some(0)).as_str(), "0");
        assert_eq!(VersionLabel::new(Some(42)).as_str(), "42");
        assert_eq!(
            VersionLabel::new(Some(u64::MAX)).as_str(),
            u64::MAX.to_string()
        );
    }

    #[test]
    fn requests_are_counted_by_status_and_in_flight_returns_to_zero() {
        let model = LoadedModel::new("metrics-test", 7, null_model());
        let timer = RequestTimer::start("test-proto");
        assert_eq!(METRICS.inflight.with_label_values(&["test-proto"]).get(), 1);
        timer.finish_model(Some(&model), None);
        RequestTimer::start("test-proto").finish(
            "metrics-test",
            Some(7),
            Some(ErrorKind::BadRequest),
        );
        RequestTimer::start("test-proto")
            .finish_result::<()>(None, &Err(crate::Error::not_found("x")));
        drop(RequestTimer::start("test-proto"));
        assert_eq!(METRICS.inflight.with_label_values(&["test-proto"]).get(), 0);
        let text = render();
        for needle in [
            r#"inferd_requests_total{model="metrics-test",protocol="test-proto",status="ok",version="7"} 1"#,
            r#"inferd_requests_total{model="metrics-test",protocol="test-proto",status="bad_request",version="7"} 1"#,
            r#"inferd_requests_total{model="",protocol="test-proto",status="cancelled",version=""} 1"#,
            r#"inferd_requests_total{model="",protocol="test-proto",status="model_not_found",version=""} 1"#,
            r#"inferd_request_duration_seconds_bucket{model="metrics-test",protocol="test-proto",version="7",le="0.000025"}"#,
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn model_state_is_one_hot_and_process_metrics_are_exposed() {
        ModelLoaded {
            model: "state-test",
            version: 3,
            elapsed: Duration::from_millis(5),
            ok: true,
        }
        .emit();
        let text = render();
        assert!(
            text.contains(r#"inferd_model_state{model="state-test",state="ready",version="3"} 1"#)
        );
        assert!(text
            .contains(r#"inferd_model_state{model="state-test",state="loading",version="3"} 0"#));
        assert!(
            text.contains(r#"inferd_model_load_seconds_count{model="state-test",version="3"} 1"#)
        );
        if cfg!(target_os = "linux") {
            assert!(
                text.contains("inferd_process_resident_memory_bytes"),
                "{text}"
            );
            assert!(text.contains("inferd_process_open_fds"));
            assert!(text.contains("inferd_process_cpu_seconds_total"));
        }
        forget_model("state-test", 3);
        assert!(!render().contains(r#"model="state-test",state"#));
    }
}
