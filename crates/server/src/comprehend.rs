//! Amazon Comprehend's PII API on the inference port, so that boto3's `comprehend` client (or any
//! AWS SDK) pointed at the server with `endpoint_url=` works unchanged: AWS JSON 1.1, `POST /` with
//! `X-Amz-Target: Comprehend_20171127.DetectPiiEntities` or `.ContainsPiiEntities`, and the PII
//! job operations (`comprehend_jobs`).
//!
//! Keys: a request signed with AWS Signature Version 4 is accepted when signed with the inference
//! key as the secret access key (any access key id), checked here with the body; `Authorization:
//! Bearer <inference key>` works too, checked by the middleware as on every inference path. Errors are Comprehend's: `{"__type": "InvalidRequestException", "message": ...}`.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxserve_pii::{Detector, Entity, EntityType};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::KeyKind;
use crate::body::read_limited;
use crate::error::{AWS_JSON, ApiError};
use crate::sigv4;

/// Comprehend's limit on one document of the synchronous API, in UTF-8 bytes.
const MAX_TEXT_BYTES: usize = 100 * 1024;

const TARGET_PREFIX: &str = "Comprehend_20171127.";

/// Whether the request is signed with SigV4 (its key is checked here, with the body).
pub(crate) fn is_signed(request: &Request) -> bool {
    request.uri().path() == "/"
        && request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().starts_with(sigv4::SCHEME.as_bytes()))
}

/// The body of both operations.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DetectRequest {
    text: Option<String>,
    language_code: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message).aws()
}

/// `POST /`: one Comprehend operation.
pub(crate) async fn call(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or("");
    let is_job = crate::comprehend_jobs::OPERATIONS.contains(&operation);
    if !is_job && !matches!(operation, "DetectPiiEntities" | "ContainsPiiEntities") {
        let message = if target.is_empty() {
            "POST / needs an X-Amz-Target header naming a Comprehend operation, e.g. Comprehend_20171127.DetectPiiEntities".to_owned()
        } else {
            format!(
                "{target} is not an operation this server supports (DetectPiiEntities, ContainsPiiEntities, {})",
                crate::comprehend_jobs::OPERATIONS.join(", ")
            )
        };
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "UnknownOperationException", message).aws()
        );
    }
    let bytes = read_limited(&parts.headers, body, &state.config).await.map_err(ApiError::aws)?;
    if let Some(keys) = state.keys.as_deref()
        && let Some(authorization) =
            parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && authorization.starts_with(sigv4::SCHEME)
    {
        let secret = keys.secret(KeyKind::Inference).unwrap_or_default();
        let signed = sigv4::Signed {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            authority: parts.uri.authority().map(|a| a.as_str()),
            headers: &parts.headers,
            body: &bytes,
        };
        sigv4::verify(&signed, authorization, &secret, chrono::Utc::now()).map_err(|e| {
            let kind = match e {
                sigv4::SignatureError::Malformed(_) | sigv4::SignatureError::MissingHeader(_) => {
                    "IncompleteSignatureException"
                }
                sigv4::SignatureError::Expired => "InvalidSignatureException",
                sigv4::SignatureError::Mismatch => "InvalidSignatureException",
            };
            ApiError::new(StatusCode::FORBIDDEN, kind, e.to_string()).aws()
        })?;
    }
    if is_job {
        let answer = crate::comprehend_jobs::call(state.jobs.as_ref(), operation, &bytes)?;
        return Ok(aws_json(answer, &parts.headers));
    }
    let request: DetectRequest = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!("the body is not a JSON object with Text and LanguageCode: {e}"))
    })?;
    let text = request.text.ok_or_else(|| invalid("Text is required"))?;
    let language = request.language_code.ok_or_else(|| invalid("LanguageCode is required"))?;
    if language != "en" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedLanguageException",
            format!("PII detection supports LanguageCode en; got {language:?}"),
        )
        .aws());
    }
    if text.is_empty() {
        return Err(invalid("Text must hold at least one character"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "TextSizeLimitExceededException",
            format!(
                "Text is {} bytes; the most one document may hold is {MAX_TEXT_BYTES}",
                text.len()
            ),
        )
        .aws());
    }
    let detector = state.pii.clone();
    let entities =
        tokio::task::spawn_blocking(move || detector.get_or_init(Detector::new).detect(&text))
            .await
            .map_err(|e| ApiError::internal(e).aws())?;
    let answer = if operation == "DetectPiiEntities" {
        json!({ "Entities": entities })
    } else {
        json!({ "Labels": labels(&entities) })
    };
    Ok(aws_json(answer, &parts.headers))
}

/// A 200 answer in AWS JSON 1.1, tagged with the request id as AWS tags it.
fn aws_json(answer: serde_json::Value, headers: &axum::http::HeaderMap) -> Response {
    let mut response = (StatusCode::OK, axum::Json(answer)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(AWS_JSON));
    if let Some(id) = headers.get(crate::observe::REQUEST_ID) {
        response.headers_mut().insert("x-amzn-requestid", id.clone());
    }
    response
}

/// `ContainsPiiEntities`' labels: each type found, with its highest score.
fn labels(entities: &[Entity]) -> Vec<serde_json::Value> {
    let mut best: BTreeMap<EntityType, f32> = BTreeMap::new();
    for e in entities {
        let score = best.entry(e.kind).or_insert(0.0);
        *score = score.max(e.score);
    }
    best.into_iter().map(|(kind, score)| json!({ "Name": kind, "Score": score })).collect()
}
