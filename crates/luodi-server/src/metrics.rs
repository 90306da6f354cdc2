//! `GET /metrics`: requests, latencies, generated tokens and tokens/s, queue depth and jobs,
//! in the OpenMetrics text format Prometheus scrapes. Labels are routes (`/v1/kbs/{kb}/search`),
//! never knowledge-base names or request content.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub completion_tokens: Counter,
    pub prompt_tokens: Counter,
    pub tokens_per_second: Gauge<f64, AtomicU64>,
    pub time_to_first_token: Histogram,
    pub queue_depth: Gauge,
    pub generating: Gauge,
    pub jobs_running: Gauge,
    pub rejected: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("luodi")),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            completion_tokens: Counter::default(),
            prompt_tokens: Counter::default(),
            tokens_per_second: Gauge::default(),
            time_to_first_token: latency_histogram(),
            queue_depth: Gauge::default(),
            generating: Gauge::default(),
            jobs_running: Gauge::default(),
            rejected: Counter::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "http_requests",
                "HTTP requests by route and status",
                m.requests.clone(),
            );
            r.register(
                "http_request_duration_seconds",
                "Time to the response head, by route",
                m.latency.clone(),
            );
            r.register(
                "completion_tokens",
                "Tokens generated",
                m.completion_tokens.clone(),
            );
            r.register(
                "prompt_tokens",
                "Prompt tokens read",
                m.prompt_tokens.clone(),
            );
            r.register(
                "generation_tokens_per_second",
                "Tokens per second of the last generation",
                m.tokens_per_second.clone(),
            );
            r.register(
                "time_to_first_token_seconds",
                "From a chat request to its first token",
                m.time_to_first_token.clone(),
            );
            r.register(
                "generation_queue_depth",
                "Chat requests waiting for the model",
                m.queue_depth.clone(),
            );
            r.register(
                "generation_running",
                "Chat requests being answered",
                m.generating.clone(),
            );
            r.register(
                "ingest_jobs_running",
                "Ingest jobs running",
                m.jobs_running.clone(),
            );
            r.register(
                "generation_rejected",
                "Chat requests refused with 429 (queue full)",
                m.rejected.clone(),
            );
        }
        m
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
