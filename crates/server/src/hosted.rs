//! Predictions of models whose handler runs in worker processes (TorchServe's Python workers): the
//! HTTP request reaches the handler as TorchServe's frontend would pass it, and the handler's answer
//! (its status, headers, content type and body) goes back as it is, streamed as chunks when the
//! handler sends intermediate answers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use oxserve_core::handler::Payload;
use oxserve_core::hosted::{HostedAnswer, HostedRequest};
use oxserve_core::metrics::RequestTimings;
use oxserve_core::{EngineError, ModelVersion, RequestOptions, Ticket};
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Intermediate answers buffered per streaming request before the worker waits for the client.
const STREAM_BUFFER: usize = 16;

/// `Content-Type` for `content-type`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut start = true;
    for c in name.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = c == '-';
    }
    out
}

/// TorchServe's `url_path`: on `/predictions/{m}/{v}/…` (and `/explanations`) the segments after
/// the version, empty when there are none; other protocols' calls carry none.
fn url_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segments.first(), Some(&("predictions" | "explanations")))
        .then(|| segments.get(3..).map(|rest| rest.join("/")).unwrap_or_default())
}

/// What the handler is asked to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    Predict,
    Explain,
}

/// The request as TorchServe's frontend sends it to a worker: every header plus `url_path` and
/// `explain`; the query's parameters, then the body (one `body` input) or its form fields.
///
/// # Errors
/// A query or form body that does not decode (400).
pub(crate) fn request(
    id: String,
    headers: &HeaderMap,
    uri: &Uri,
    payload: Payload,
    ask: Ask,
) -> Result<HostedRequest, ApiError> {
    // The query's fields, then a form body's fields, as TorchServe's frontend decodes them: a
    // name and a text value, no content type.
    let mut params = form_fields(uri.query().unwrap_or("").as_bytes(), "query")?;
    for part in payload.parts {
        let mime = mime_type(part.content_type.as_deref());
        if mime == "application/x-www-form-urlencoded" {
            params.extend(form_fields(&part.body, "form body")?);
        } else {
            params.push((part.name, mime, part.body));
        }
    }
    // Names as HTTP/1.1 clients write them (`Content-Type`): TorchServe passes the client's
    // spelling on and handlers look headers up by it; HTTP/2 and the parser here lower-case them.
    let mut fields: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (title_case(k.as_str()), v.to_owned())))
        .collect();
    if let Some(rest) = url_path(uri.path()) {
        fields.push(("url_path".to_owned(), rest));
    }
    let explain = if ask == Ask::Explain { "True" } else { "False" };
    fields.push(("explain".to_owned(), explain.to_owned()));
    Ok(HostedRequest { id, headers: fields, params, stream: None })
}

/// A handler's answers to one request.
pub(crate) enum Answers {
    /// One answer, when it came.
    Whole(HostedAnswer, RequestTimings),
    /// The first of several (a streaming handler): the status and headers are its; the rest follow
    /// as the handler sends them, the last one ending the stream (or an error, when the worker failed
    /// half-way).
    Streamed(HostedAnswer, BoxStream<'static, Result<HostedAnswer, EngineError>>),
}

/// Runs the request through the model's queue and workers. Intermediate answers are not held
/// back: as soon as the first arrives, [`Answers::Streamed`] is returned and the rest follow.
///
/// # Errors
/// As [`Ticket::forward`], when the request failed before anything was answered.
pub(crate) async fn run(
    ticket: Ticket,
    mut request: HostedRequest,
) -> Result<Answers, EngineError> {
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    request.stream = Some(tx);
    let mut done = Box::pin(ticket.forward(request));
    tokio::select! {
        biased;
        Some(first) = rx.recv() => {
            let rest = stream::unfold((rx, Some(done)), |(mut rx, done)| async move {
                if let Some(next) = rx.recv().await {
                    return Some((Ok(next), (rx, done)));
                }
                // The worker is done with the request: its last answer ends the stream.
                let last = done?.await.map(|(answer, _)| answer);
                Some((last, (rx, None)))
            });
            Ok(Answers::Streamed(first, rest.boxed()))
        }
        result = &mut done => {
            let (answer, timings) = result?;
            Ok(Answers::Whole(answer, timings))
        }
    }
}

/// The HTTP answer: the handler's own, or, when it streams, a chunked body whose chunks leave as the
/// handler sends them.
pub(crate) async fn answer(ticket: Ticket, request: HostedRequest) -> Result<Response, ApiError> {
    match run(ticket, request).await? {
        Answers::Whole(answer, timings) => {
            let mut response = response(&answer, Body::from(answer.body.clone()));
            response.headers_mut().insert("server-timing", crate::observe::server_timing(&timings));
            Ok(response)
        }
        Answers::Streamed(first, rest) => {
            let head = response(&first, Body::empty());
            let chunks = stream::once(async move { Ok(first.body) }).chain(rest.map(|answer| {
                answer.map(|a| a.body).map_err(|e| std::io::Error::other(e.to_string()))
            }));
            let (parts, _) = head.into_parts();
            Ok(Response::from_parts(parts, Body::from_stream(chunks)))
        }
    }
}

/// The handler's own metadata (`describe_handle`): a request carrying `describe: True` and no
/// inputs, as TorchServe's frontend sends it. JSON when the handler answered JSON, else its text.
///
/// # Errors
/// As [`run`]; a status outside 2xx from the handler is its error.
pub(crate) async fn describe(version: &Arc<ModelVersion>) -> Result<serde_json::Value, ApiError> {
    let ticket = version.admit(RequestOptions::default())?;
    let request = HostedRequest {
        id: "describe".to_owned(),
        headers: vec![("describe".to_owned(), "True".to_owned())],
        params: Vec::new(),
        stream: None,
    };
    let answer = match run(ticket, request).await? {
        Answers::Whole(answer, _) => answer,
        Answers::Streamed(first, _) => first,
    };
    if !(200..300).contains(&answer.status) {
        return Err(EngineError::Handler {
            status: answer.status,
            message: String::from_utf8_lossy(&answer.body).into_owned(),
        }
        .into());
    }
    Ok(serde_json::from_slice(&answer.body).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&answer.body).into_owned())
    }))
}

/// The handler's status, content type and headers around `body`. Headers that are not valid HTTP
/// are left out rather than failing the answer.
fn response(answer: &HostedAnswer, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !answer.content_type.is_empty()
        && let Ok(v) = HeaderValue::from_str(&answer.content_type)
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value))
        {
            headers.insert(n, v);
        }
    }
    response
}

/// `application/x-www-form-urlencoded` fields as worker inputs.
fn form_fields(encoded: &[u8], what: &str) -> Result<Vec<(String, String, Bytes)>, ApiError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded)
        .map_err(|e| ApiError::bad_request(format!("malformed {what}: {e}")))?;
    Ok(fields.into_iter().map(|(k, v)| (k, String::new(), Bytes::from(v))).collect())
}

/// A content type without its parameters (`application/json; charset=utf-8` is
/// `application/json`): the worker decodes JSON and text only when the type is exactly that.
fn mime_type(content_type: Option<&str>) -> String {
    content_type
        .map_or_else(String::new, |c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_url_path_are_torchserve_s() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(title_case("x-request-id"), "X-Request-Id");
        assert_eq!(title_case("host"), "Host");
        assert_eq!(url_path("/predictions/m").as_deref(), Some(""));
        assert_eq!(url_path("/predictions/m/1.0").as_deref(), Some(""));
        assert_eq!(url_path("/predictions/m/1.0/v1/models").as_deref(), Some("v1/models"));
        assert_eq!(url_path("/explanations/m").as_deref(), Some(""));
        assert_eq!(url_path("/v1/models/m:predict"), None);
        assert_eq!(url_path("/v2/models/m/infer"), None);
    }
}
