//! The one place errors become HTTP statuses and bodies, and gRPC status codes.
//!
//! [`answer_for`] is the table: each engine error's HTTP status, gRPC code and TorchServe exception
//! name side by side, so one error means the same thing on every API. Errors the server phrases
//! itself (a bad header, a missing key) are given an HTTP status, and [`grpc_code`] gives its code.
//! TorchServe's paths answer `{"code", "type", "message"}`; Open Inference Protocol paths answer
//! `{"error"}`. The client gets a short message without internals; the error itself, with its
//! sources, travels with the answer as a [`Failure`] (a response extension over HTTP, the status's
//! source over gRPC) to the request's recording (`observe`), which counts it and logs it once.

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxserve_core::EngineError;
use oxserve_store::archive::ArchiveError;
use serde_json::json;
use tonic::Code;

/// What a client is told of a failure of the server's own; the details go to the log.
const INTERNAL: &str = "internal error while serving the request; the server log has the details";

/// The content type of AWS JSON 1.1 requests and answers.
pub(crate) const AWS_JSON: &str = "application/x-amz-json-1.1";

/// Which body shape an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `{"code": 404, "type": "ModelNotFoundException", "message": "…"}`
    TorchServe,
    /// `{"error": "…"}`
    V2,
    /// AWS JSON 1.1: `{"__type": "InvalidRequestException", "message": "…"}` (the Comprehend API).
    Aws,
}

/// An error on its way to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// The same failure's gRPC code.
    pub(crate) grpc: Code,
    /// TorchServe's exception name for the `type` field.
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) style: Style,
    /// Seconds a client should wait before retrying (overload).
    pub(crate) retry_after: Option<u32>,
    /// The error behind it, sources kept, for the log.
    pub(crate) source: Option<Source>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            grpc: grpc_code(status),
            kind,
            message: message.into(),
            style: Style::TorchServe,
            retry_after: None,
            source: None,
        }
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

    /// A failure of the server's own (a task that died, a file it cannot write): 500 with a short
    /// message; `error` goes to the log.
    pub(crate) fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        let mut api =
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", INTERNAL);
        api.source = Some(Arc::new(error));
        api
    }

    /// Writes this error in the Open Inference Protocol's shape.
    pub(crate) fn v2(mut self) -> Self {
        self.style = Style::V2;
        self
    }

    /// Writes this error as an AWS service does (`kind` is then the AWS exception name).
    pub(crate) fn aws(mut self) -> Self {
        self.style = Style::Aws;
        self
    }

    /// What the request's recording gets: the status, and the error behind it.
    fn failure(&self) -> Failure {
        Failure { status: self.status, error: self.source.clone() }
    }
}

/// An error kept for the log, with its own sources.
pub(crate) type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failed answer as the request's recording sees it: the HTTP status it is counted under, and the
/// error behind it (with its sources) when there is one. Over gRPC it is the answer's
/// `tonic::Status` source.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) error: Option<Source>,
}

impl Failure {
    /// Whether the failure is the server's own fault (a bug, a broken model), worth an error log;
    /// overload, timeouts and the client's mistakes are not.
    pub(crate) fn is_internal(&self) -> bool {
        self.status.is_server_error()
            && self.status != StatusCode::SERVICE_UNAVAILABLE
            && self.status != StatusCode::GATEWAY_TIMEOUT
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{}: {e}", self.status),
            None => write!(f, "{}", self.status),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The table: how each engine error is answered on every API.
///
/// | error | HTTP | gRPC | TorchServe `type` |
/// |---|---|---|---|
/// | model or version not found, archive not in the store | 404 | NOT_FOUND | ModelNotFoundException, ModelVersionNotFoundException |
/// | bad input or argument | 400 | INVALID_ARGUMENT | BadRequestException |
/// | model that does not load, bad archive | 400 | INVALID_ARGUMENT | ModelLoadException, InvalidModelException |
/// | overload (queue full, concurrency cap), unavailable | 503 | UNAVAILABLE | ServiceUnavailableException |
/// | timeout | 504 | DEADLINE_EXCEEDED | RequestTimeoutException |
/// | name and version already registered | 409 | ALREADY_EXISTS | ConflictStatusException |
/// | anything else | 500 | INTERNAL | InternalServerException |
pub(crate) fn answer_for(err: &EngineError) -> (StatusCode, Code, &'static str) {
    use StatusCode as S;
    match err {
        EngineError::ModelNotFound(_) => (S::NOT_FOUND, Code::NotFound, "ModelNotFoundException"),
        EngineError::VersionNotFound { .. } => {
            (S::NOT_FOUND, Code::NotFound, "ModelVersionNotFoundException")
        }
        EngineError::InvalidInput(_) | EngineError::InvalidArgument(_) => {
            (S::BAD_REQUEST, Code::InvalidArgument, "BadRequestException")
        }
        EngineError::Overloaded { .. }
        | EngineError::TooManyRequests { .. }
        | EngineError::Unavailable(_) => {
            (S::SERVICE_UNAVAILABLE, Code::Unavailable, "ServiceUnavailableException")
        }
        EngineError::Timeout(_) => {
            (S::GATEWAY_TIMEOUT, Code::DeadlineExceeded, "RequestTimeoutException")
        }
        EngineError::Conflict(_) => (S::CONFLICT, Code::AlreadyExists, "ConflictStatusException"),
        EngineError::Load(_) => (S::BAD_REQUEST, Code::InvalidArgument, "ModelLoadException"),
        EngineError::Archive(ArchiveError::NotFound(_)) => {
            (S::NOT_FOUND, Code::NotFound, "ModelNotFoundException")
        }
        EngineError::Archive(_) => (S::BAD_REQUEST, Code::InvalidArgument, "InvalidModelException"),
        // A worker process's handler chose the status (TorchServe answers it with this type).
        EngineError::Handler { status, .. } => {
            let status = S::from_u16(*status).unwrap_or(S::INTERNAL_SERVER_ERROR);
            (status, grpc_code(status), "InternalServerException")
        }
        _ => (S::INTERNAL_SERVER_ERROR, Code::Internal, "InternalServerException"),
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let (status, grpc, kind) = answer_for(&err);
        let retry_after =
            matches!(err, EngineError::Overloaded { .. } | EngineError::TooManyRequests { .. })
                .then_some(1);
        let mut api = Self {
            status,
            grpc,
            kind,
            message: err.to_string(),
            style: Style::TorchServe,
            retry_after,
            source: None,
        };
        // The server's own failures are not explained to clients; a handler's words are the
        // model's, so they are (TorchServe shows them too).
        if api.failure().is_internal() && !matches!(err, EngineError::Handler { .. }) {
            api.message = INTERNAL.to_owned();
        }
        api.source = Some(Arc::new(err));
        api
    }
}

/// The gRPC code of an HTTP status, for the statuses this server answers with.
///
/// 413 is RESOURCE_EXHAUSTED (gRPC's code for a message over the size limit), and so is 507 (a
/// worker out of memory); 405, which here
/// only means "the model API is turned off", is FAILED_PRECONDITION (the server is not set up for
/// the call); 409 (name and version already registered) is ALREADY_EXISTS.
pub(crate) fn grpc_code(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 => Code::FailedPrecondition,
        409 => Code::AlreadyExists,
        413 | 507 => Code::ResourceExhausted,
        429 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        501 => Code::Unimplemented,
        _ => Code::Internal,
    }
}

/// The HTTP status a gRPC failure that did not come from an [`ApiError`] (tonic's own: a message
/// that does not decode, an unknown method) is counted and logged under: the inverse of
/// [`grpc_code`] for the codes this server sends, the usual reading for the others (a call the
/// client cancelled is its own 499, as in nginx).
pub(crate) fn http_status(code: Code) -> u16 {
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
        let mut status = Self::new(err.grpc, err.message.clone());
        status.set_source(Arc::new(err.failure()));
        status
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
            Style::Aws => json!({"__type": self.kind, "message": self.message}),
        };
        let failure = self.failure();
        let mut response = (self.status, Json(body)).into_response();
        if self.style == Style::Aws {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(AWS_JSON));
        }
        response.extensions_mut().insert(failure);
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
    fn every_error_s_grpc_code_matches_its_http_status() {
        let errors = [
            EngineError::ModelNotFound("m".into()),
            EngineError::VersionNotFound { name: "m".into(), version: "2".into() },
            EngineError::InvalidInput("x".into()),
            EngineError::InvalidArgument("x".into()),
            EngineError::Overloaded { model: "m".into(), capacity: 1 },
            EngineError::TooManyRequests { model: "m".into(), limit: 1 },
            EngineError::Unavailable("x".into()),
            EngineError::Timeout(Duration::from_secs(1)),
            EngineError::Conflict("c".into()),
            EngineError::Load("l".into()),
            EngineError::Archive(ArchiveError::NotFound("x".into())),
            EngineError::Internal("boom".into()),
        ];
        for e in errors {
            let (http, grpc, _) = answer_for(&e);
            assert_eq!(grpc_code(http), grpc, "{e}");
        }
    }

    #[test]
    fn the_error_travels_to_the_recording_over_both_transports() {
        let response =
            ApiError::from(EngineError::Internal("secret path /x".into())).into_response();
        let failure = response.extensions().get::<Failure>().expect("a failure extension");
        assert!(failure.is_internal());
        assert!(failure.to_string().contains("secret path /x"), "{failure}");
        let status = tonic::Status::from(ApiError::from(EngineError::Timeout(Duration::ZERO)));
        let source = std::error::Error::source(&status).expect("a source");
        let failure = source.downcast_ref::<Failure>().expect("the failure");
        assert_eq!((failure.status, failure.is_internal()), (StatusCode::GATEWAY_TIMEOUT, false));
        assert!(failure.error.is_some());
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
