//! Prometheus metrics (`GET /metrics`, OpenMetrics text): what a node does,
//! for the dashboards and alerts operators already run. Counters and
//! histograms are updated where things happen; gauges of current state
//! (running generations, database connections) are read at scrape time.
//!
//! HTTP requests are labelled by their route template
//! (`/api/chat-threads/{uuid}/`), never by the raw path, so the number of
//! series stays bounded whatever clients send.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    detector: &'static str,
    severity: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of a node, registered once at start.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    generations_running: Gauge,
    generation_duration: Histogram,
    llm_tokens: Family<KindLabels, Counter>,
    llm_errors: Family<ReasonLabels, Counter>,
    guard_verdicts: Family<VerdictLabels, Counter>,
    guard_scan_duration: Histogram,
    db_connections: Family<StateLabels, Gauge>,
    lease_takeovers: Counter,
    transcript_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("palisade");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response head, by route template (a stream's head comes before its answer)",
            Unit::Seconds,
            http_duration.clone(),
        );
        let generations_running = Gauge::default();
        registry.register(
            "generations_running",
            "Answers being generated on this node",
            generations_running.clone(),
        );
        let generation_duration = latency_histogram();
        registry.register_with_unit(
            "generation_duration",
            "Time from the start of a generation to its final line",
            Unit::Seconds,
            generation_duration.clone(),
        );
        let llm_tokens = Family::<KindLabels, Counter>::default();
        registry.register(
            "llm_tokens",
            "Tokens the model read (input) and wrote (output), as reported or estimated",
            llm_tokens.clone(),
        );
        let llm_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "llm_errors",
            "Model calls that failed, by reason",
            llm_errors.clone(),
        );
        let guard_verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "guard_verdicts",
            "Input guard verdicts on user messages, by detector, severity and action",
            guard_verdicts.clone(),
        );
        let guard_scan_duration = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        registry.register_with_unit(
            "guard_scan_duration",
            "Time one input guard scan takes",
            Unit::Seconds,
            guard_scan_duration.clone(),
        );
        let db_connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections of this node's pool, by state (idle, in_use)",
            db_connections.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Answers found interrupted (their node died or lost the thread) and recovered",
            lease_takeovers.clone(),
        );
        let transcript_bytes = Gauge::default();
        registry.register_with_unit(
            "stream_transcript",
            "Answer lines held in memory for their readers on this node (bounded per answer once it is stored, whatever its readers' speed)",
            Unit::Bytes,
            transcript_bytes.clone(),
        );
        Metrics {
            transcript_bytes,
            registry,
            http_requests,
            http_duration,
            generations_running,
            generation_duration,
            llm_tokens,
            llm_errors,
            guard_verdicts,
            guard_scan_duration,
            db_connections,
            lease_takeovers,
        }
    }
}

impl Metrics {
    pub fn generation_finished(&self, took: Duration) {
        self.generation_duration.observe(took.as_secs_f64());
    }

    pub fn tokens(&self, input: u64, output: u64) {
        self.llm_tokens
            .get_or_create(&KindLabels { kind: "input" })
            .inc_by(input);
        self.llm_tokens
            .get_or_create(&KindLabels { kind: "output" })
            .inc_by(output);
    }

    pub fn llm_error(&self, reason: &'static str) {
        self.llm_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// One verdict: counted once per detector that found something, or as
    /// `none` when neither did.
    pub fn verdict(&self, verdict: &palisade_guard::Verdict, took: Duration) {
        self.guard_scan_duration.observe(took.as_secs_f64());
        let severity = verdict.severity.as_str();
        let action = verdict.action.as_str();
        let mut detectors = Vec::with_capacity(2);
        if !verdict.injection_categories().is_empty() {
            detectors.push("injection");
        }
        if !verdict.pii_categories().is_empty() {
            detectors.push("pii");
        }
        if detectors.is_empty() {
            detectors.push("none");
        }
        for detector in detectors {
            self.guard_verdicts
                .get_or_create(&VerdictLabels {
                    detector,
                    severity,
                    action,
                })
                .inc();
        }
    }

    pub fn takeovers(&self, count: u64) {
        self.lease_takeovers.inc_by(count);
    }

    /// The scrape: current state read now, then everything encoded.
    fn encode(&self, state: &AppState) -> Result<String, std::fmt::Error> {
        self.generations_running
            .set(i64::try_from(state.generations.len()).unwrap_or(i64::MAX));
        let pool = state.store.pool_connections();
        let in_use = pool.open.saturating_sub(pool.idle);
        self.db_connections
            .get_or_create(&StateLabels { state: "idle" })
            .set(i64::from(pool.idle));
        self.db_connections
            .get_or_create(&StateLabels { state: "in_use" })
            .set(i64::from(in_use));
        self.transcript_bytes
            .set(i64::try_from(crate::stream::follow::held_bytes()).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts and times every request by its route template. Runs inside the
/// router (`Router::layer`), where the matched route is known.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`: open, or — with `PALISADE_METRICS_TOKEN` — only for
/// `Authorization: Bearer <token>`.
pub async fn scrape(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.metrics_token {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::Unauthenticated("Invalid token."));
        }
    }
    let text = state
        .metrics
        .encode(&state)
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok((
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
