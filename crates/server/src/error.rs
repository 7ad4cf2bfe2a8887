//! The one place engine errors become HTTP statuses and bodies, and gRPC status codes.
//!
//! TorchServe's paths answer `{"code", "type", "message"}`; Open Inference Protocol paths answer
//! `{"error"}`. Both use the same status table, and gRPC answers derive their code from that same
//! HTTP status ([`grpc_code`]), so one engine error means the same thing on every API. Internal
//! failures are logged here, once, with their detail; the client gets a short message without
//! internals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxserve_core::EngineError;
use oxserve_store::archive::ArchiveError;
use serde_json::json;

/// Which body shape an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `{"code": 404, "type": "ModelNotFoundException", "message": "…"}`
    TorchServe,
    /// `{"error": "…"}`
    V2,
}

/// An error on its way to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// TorchServe's exception name for the `type` field.
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) style: Style,
    /// Seconds a client should wait before retrying (overload).
    pub(crate) retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), style: Style::TorchServe, retry_after: None }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "the request body is larger than the limit of {limit} bytes (max_request_size)"
            ),
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Requested resource is not found, please refer to API document.",
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
            "Requested method is not allowed, please refer to API document.",
        )
    }

    /// Writes this error in the Open Inference Protocol's shape.
    pub(crate) fn v2(mut self) -> Self {
        self.style = Style::V2;
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        use StatusCode as S;
        let (status, kind) = match &err {
            EngineError::ModelNotFound(_) => (S::NOT_FOUND, "ModelNotFoundException"),
            EngineError::VersionNotFound { .. } => (S::NOT_FOUND, "ModelVersionNotFoundException"),
            EngineError::InvalidInput(_) | EngineError::InvalidArgument(_) => {
                (S::BAD_REQUEST, "BadRequestException")
            }
            EngineError::Overloaded { .. } | EngineError::TooManyRequests { .. } => {
                (S::SERVICE_UNAVAILABLE, "ServiceUnavailableException")
            }
            EngineError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "ServiceUnavailableException"),
            EngineError::Timeout(_) => (S::GATEWAY_TIMEOUT, "RequestTimeoutException"),
            EngineError::Conflict(_) => (S::CONFLICT, "ConflictStatusException"),
            EngineError::Load(_) => (S::BAD_REQUEST, "ModelLoadException"),
            EngineError::Archive(ArchiveError::NotFound(_)) => {
                (S::NOT_FOUND, "ModelNotFoundException")
            }
            EngineError::Archive(_) => (S::BAD_REQUEST, "InvalidModelException"),
            _ => (S::INTERNAL_SERVER_ERROR, "InternalServerException"),
        };
        let message = if status.is_server_error()
            && status != S::SERVICE_UNAVAILABLE
            && status != S::GATEWAY_TIMEOUT
        {
            tracing::error!(error = %err, "request failed with an internal error");
            "internal error while serving the request; the server log has the details".to_owned()
        } else {
            err.to_string()
        };
        let retry_after =
            matches!(err, EngineError::Overloaded { .. } | EngineError::TooManyRequests { .. })
                .then_some(1);
        Self { status, kind, message, style: Style::TorchServe, retry_after }
    }
}

/// The gRPC code of an HTTP status, for the statuses this server answers with.
///
/// 413 is RESOURCE_EXHAUSTED (gRPC's code for a message over the size limit); 405, which here
/// only means "the model API is turned off", is FAILED_PRECONDITION (the server is not set up for
/// the call); 409 (name and version already registered) is ALREADY_EXISTS.
pub(crate) fn grpc_code(status: StatusCode) -> tonic::Code {
    use tonic::Code;
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 => Code::FailedPrecondition,
        409 => Code::AlreadyExists,
        413 => Code::ResourceExhausted,
        429 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        501 => Code::Unimplemented,
        _ => Code::Internal,
    }
}

/// The HTTP status a gRPC code is counted and logged under (`Requests2XX/4XX/5XX`, the access
/// log): the inverse of [`grpc_code`] for the codes this server sends, the usual reading for the
/// others (a call the client cancelled is its own 499, as in nginx).
pub(crate) fn http_status(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::FailedPrecondition => 405,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 413,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        Self::new(grpc_code(err.status), err.message)
    }
}

/// An engine error as a gRPC status, through the same table as HTTP.
pub(crate) fn grpc_status(err: EngineError) -> tonic::Status {
    ApiError::from(err).into()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            Style::TorchServe => {
                json!({"code": self.status.as_u16(), "type": self.kind, "message": self.message})
            }
            Style::V2 => json!({"error": self.message}),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(e: EngineError) -> StatusCode {
        ApiError::from(e).status
    }

    #[test]
    fn status_table() {
        assert_eq!(status(EngineError::ModelNotFound("m".into())), StatusCode::NOT_FOUND);
        assert_eq!(
            status(EngineError::VersionNotFound { name: "m".into(), version: "2".into() }),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status(EngineError::InvalidInput("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(EngineError::Overloaded { model: "m".into(), capacity: 1 }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(EngineError::Timeout(Duration::from_secs(1))),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(status(EngineError::Conflict("c".into())), StatusCode::CONFLICT);
        assert_eq!(status(EngineError::Internal("boom".into())), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn grpc_codes_read_back_to_the_statuses_they_came_from() {
        for status in [200, 400, 401, 403, 404, 405, 409, 413, 500, 501, 503, 504] {
            let code = grpc_code(StatusCode::from_u16(status).expect("a valid status"));
            assert_eq!(http_status(code), status, "{code:?}");
        }
        // 429 and 503 are both overload, sent as UNAVAILABLE, read back as 503.
        assert_eq!(http_status(grpc_code(StatusCode::TOO_MANY_REQUESTS)), 503);
        assert_eq!(http_status(tonic::Code::Cancelled) / 100, 4);
        assert_eq!(http_status(tonic::Code::Unknown) / 100, 5);
    }

    #[test]
    fn grpc_codes_follow_the_same_table() {
        use tonic::Code;
        let code = |e: EngineError| grpc_status(e).code();
        assert_eq!(code(EngineError::ModelNotFound("m".into())), Code::NotFound);
        assert_eq!(code(EngineError::InvalidInput("x".into())), Code::InvalidArgument);
        assert_eq!(
            code(EngineError::Overloaded { model: "m".into(), capacity: 1 }),
            Code::Unavailable
        );
        assert_eq!(
            code(EngineError::TooManyRequests { model: "m".into(), limit: 1 }),
            Code::Unavailable
        );
        assert_eq!(code(EngineError::Unavailable("x".into())), Code::Unavailable);
        assert_eq!(code(EngineError::Timeout(Duration::from_secs(1))), Code::DeadlineExceeded);
        assert_eq!(code(EngineError::Conflict("c".into())), Code::AlreadyExists);
        assert_eq!(code(EngineError::Internal("boom".into())), Code::Internal);
        assert_eq!(tonic::Status::from(ApiError::too_large(1)).code(), Code::ResourceExhausted);
        let internal = grpc_status(EngineError::Internal("secret path /x".into()));
        assert!(!internal.message().contains("secret"));
    }

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let e = ApiError::from(EngineError::Internal("secret path /x".into()));
        assert!(!e.message.contains("secret"));
    }

    #[test]
    fn overload_says_when_to_retry() {
        let e = ApiError::from(EngineError::Overloaded { model: "m".into(), capacity: 1 });
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
