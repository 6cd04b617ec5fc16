//! Logging and metrics set-up.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG`, when set, wins over the config filter.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    // A second init (tests start several servers in one process) keeps the first subscriber.
    drop(result);
}

/// Per-stage latency buckets in seconds: the interesting range is tens of microseconds to a
/// few hundred milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide Prometheus recorder. Installed once; later calls share the same handle.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, in which case ours still
            // renders (empty) rather than taking the process down.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("switchboard_calls_active", "Calls currently in progress");
    describe_counter!("switchboard_calls_total", "Calls accepted since start");
    describe_counter!("switchboard_frames_in_total", "Audio frames received from callers");
    describe_counter!("switchboard_frames_out_total", "Audio frames sent to callers");
    describe_histogram!(
        "switchboard_stage_latency_seconds",
        Unit::Seconds,
        "Time spent per pipeline stage (label `stage`)"
    );
    describe_counter!("switchboard_provider_errors_total", "Speech provider errors (label `provider`)");
    describe_counter!("switchboard_persistence_written_total", "Writes persisted");
    describe_counter!("switchboard_persistence_dropped_total", "Writes dropped because the queue was full");
    describe_counter!("switchboard_persistence_failures_total", "Failed batch writes (retried)");
    describe_gauge!("switchboard_persistence_backlog", "Writes waiting for the database");
    // Register the headline series at zero so a scrape shows them before the first call.
    metrics::gauge!("switchboard_calls_active").set(0.0);
    metrics::counter!("switchboard_calls_total").absolute(0);
    metrics::counter!("switchboard_frames_in_total").absolute(0);
    metrics::counter!("switchboard_frames_out_total").absolute(0);
}
