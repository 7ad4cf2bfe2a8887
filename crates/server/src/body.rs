//! Reading request bodies under the size limit, and turning them into handler payloads.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use oxserve_engine::handler::{Part, Payload};

use crate::error::ApiError;

/// Reads the whole body, refusing with 413 as soon as it passes `limit` bytes: at once when
/// `Content-Length` says so, else while reading a chunked body, so an oversized body is never held
/// whole in memory.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The handler payload of a prediction request: each multipart part, or the raw body as `body`.
pub(crate) async fn payload(headers: &HeaderMap, body: Bytes) -> Result<Payload, ApiError> {
    let ctype = content_type(headers);
    let boundary = ctype.as_deref().and_then(|c| multer::parse_boundary(c).ok());
    let Some(boundary) = boundary else {
        return Ok(Payload {
            parts: vec![Part { name: "body".into(), content_type: ctype, body }],
        });
    };
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    let bad = |e: multer::Error| ApiError::bad_request(format!("malformed multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("data").to_owned();
        let content_type = field.content_type().map(ToString::to_string);
        let body = field.bytes().await.map_err(bad)?;
        parts.push(Part { name, content_type, body });
    }
    if parts.is_empty() {
        return Err(ApiError::bad_request("the multipart body has no parts"));
    }
    Ok(Payload { parts })
}
