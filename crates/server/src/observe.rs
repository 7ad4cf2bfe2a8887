//! Request identity, timing headers, per-request tracing spans, status counters and the access log.
//!
//! Every response carries `x-request-id` (the client's, or a new UUID) and answers that ran a model
//! carry a `Server-Timing` header with the server-side time of each stage, so a load generator can
//! split queue time from compute time without scraping `/metrics`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use oxserve_core::RequestOptions;
use oxserve_core::metrics::RequestTimings;

use crate::AppState;

/// Health checks: open without a key (probes carry none) and answered while draining.
pub(crate) fn is_health_check(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches!(path, "/" | "/ping" | "/v2/health/live" | "/v2/health/ready")
}

/// The header carrying the request id.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The request id the request-id layer put on the request.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The header a client sets to ask for a shorter deadline than the model's response timeout, in
/// milliseconds. A longer one is ignored: the server's limit always holds.
pub(crate) const REQUEST_TIMEOUT_MS: &str = "x-request-timeout-ms";

/// Options for the engine: this request's id, and the client's deadline when it sent one.
pub(crate) fn options(headers: &HeaderMap) -> RequestOptions {
    let timeout = headers
        .get(REQUEST_TIMEOUT_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    RequestOptions { timeout, request_id: request_id(headers) }
}

/// `Server-Timing: queue;dur=0.120, preprocess;dur=0.031, inference;dur=1.204, postprocess;dur=0.018, total;dur=1.410`
/// (milliseconds).
pub(crate) fn server_timing(t: &RequestTimings) -> HeaderValue {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(100);
    let stages = [
        ("queue", t.queue),
        ("preprocess", t.preprocess),
        ("inference", t.inference),
        ("postprocess", t.postprocess),
        ("total", t.total),
    ];
    for (i, (name, d)) in stages.into_iter().enumerate() {
        // Whole microseconds as milliseconds with three decimals, in integers: formatting floats
        // was a visible share of a small request's cost.
        let us = d.as_micros();
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(text, "{sep}{name};dur={}.{:03}", us / 1000, us % 1000);
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("total;dur=0"))
}

/// Counts each answer in `Requests2XX/4XX/5XX` and writes an access log line. While the server
/// drains, requests other than health checks are refused with 503 and `Connection: close`.
pub(crate) async fn record(state: State<AppState>, request: Request, next: Next) -> Response {
    record_answer(state, request, next, true).await
}

/// [`record`] for the gRPC listeners, which are told apart by their router, not by anything the
/// client sends: their services refuse with UNAVAILABLE while draining, in gRPC's own framing.
pub(crate) async fn record_grpc(state: State<AppState>, request: Request, next: Next) -> Response {
    record_answer(state, request, next, false).await
}

async fn record_answer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
    refuse_while_draining: bool,
) -> Response {
    let started = Instant::now();
    let metrics = state.registry.metrics();
    if refuse_while_draining
        && !is_health_check(request.method(), request.uri().path())
        && state.draining.load(std::sync::atomic::Ordering::Acquire)
    {
        let refused = oxserve_core::EngineError::Unavailable("the server is shutting down".into());
        let mut response =
            axum::response::IntoResponse::into_response(crate::error::ApiError::from(refused));
        response
            .headers_mut()
            .insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
        metrics.record_status(response.status().as_u16());
        return response;
    }
    // The access log line is only put together when there is an access log to write it to.
    let access = metrics.log().is_some().then(|| {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        // HTTP/2 requests carry an absolute URI; the log keeps to the path, as HTTP/1.1 sends it.
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let line =
            RequestLine { method: request.method().clone(), target, version: request.version() };
        (Peer(peer), line)
    });
    let response = next.run(request).await;
    let failure = failure(&response);
    let status = failure.as_ref().map_or_else(|| answered_status(&response), |f| f.status.as_u16());
    metrics.record_status(status);
    if let Some(failure) = failure.filter(crate::error::Failure::is_internal) {
        // The one log line of a failed request; the client's answer says only that it failed.
        tracing::error!(status, error = %failure, source = ?failure.error, "request failed with an internal error");
    }
    if let (Some(log), Some((peer, line))) = (metrics.log(), access) {
        log.access(peer, line, status, started.elapsed().as_millis());
    }
    response
}

/// The failure an answer carries, if any: an HTTP error answer's extension, or the source of the
/// `tonic::Status` a failed gRPC call leaves on its response.
fn failure(response: &Response) -> Option<crate::error::Failure> {
    let extensions = response.extensions();
    extensions.get::<crate::error::Failure>().cloned().or_else(|| {
        let status = extensions.get::<tonic::Status>()?;
        std::error::Error::source(status)?.downcast_ref::<crate::error::Failure>().cloned()
    })
}

/// The status an answer without a [`failure`] is counted and logged under: its own, except for a
/// gRPC call that tonic itself failed (a message that does not decode, an unknown method), whose
/// `tonic::Status` is read back to HTTP through the table in error.rs. A gRPC call answers HTTP 200
/// whatever happens; a streaming call is counted as it opens, so an error later in its trailers is
/// not seen here.
fn answered_status(response: &Response) -> u16 {
    response
        .extensions()
        .get::<tonic::Status>()
        .map_or(response.status().as_u16(), |status| crate::error::http_status(status.code()))
}

/// The tracing span of one request: every log line inside it carries the request id.
pub(crate) fn span(request: &Request) -> tracing::Span {
    let id = request_id(request.headers()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %request.method(), uri = %request.uri())
}

/// The client's address as the access log writes it.
struct Peer(Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// `<METHOD> <path> <version>`, formatted by the log's writer thread.
struct RequestLine {
    method: axum::http::Method,
    target: String,
    version: axum::http::Version,
}

impl std::fmt::Display for RequestLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.method, self.target, self.version)
    }
}
