//! gRPC: the Open Inference Protocol's `inference.GRPCInferenceService` and TorchServe's
//! `InferenceAPIsService` on the gRPC inference port (7070), TorchServe's `ManagementAPIsService` on
//! the gRPC management port (7071).
//!
//! The services are tonic services served by the same axum/hyper listener machinery as the HTTP APIs
//! (HTTP/2 without TLS, "h2c"), so they share binding, graceful drain and shutdown. They call the
//! engine exactly as the HTTP handlers do, take the same keys (`authorization: Bearer <key>`
//! metadata) and map errors through the same table ([`crate::error::grpc_code`]).
//!
//! Deadlines: a client's `grpc-timeout` becomes the request's engine deadline, which it may shorten
//! but never lengthen past the model's response timeout; when it passes, the engine drops the job and
//! the answer is DEADLINE_EXCEEDED. Sizes: requests over `max_request_size` and answers over
//! `max_response_size` are RESOURCE_EXHAUSTED.

mod oip;
mod torchserve;
mod triton;

use std::time::Duration;

use axum::http::HeaderValue;
use oxserve_core::RequestOptions;
use tonic::{Request, Status};

use crate::AppState;
use crate::auth::KeyKind;

/// Code generated from `crates/server/proto/` by tonic-prost-build: messages, servers and clients.
///
/// The clients are generic over any tonic channel; with tonic's `channel` feature:
/// `GrpcInferenceServiceClient::new(tonic::transport::Channel::from_shared(url)?.connect().await?)`.
#[allow(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::restriction
)]
pub mod proto {
    /// The Open Inference Protocol (`package inference`).
    pub mod inference {
        tonic::include_proto!("inference");
    }
    /// TorchServe's packages (`org.pytorch.serve.grpc.*`).
    pub mod torchserve {
        /// `org.pytorch.serve.grpc.inference`
        pub mod inference {
            tonic::include_proto!("org.pytorch.serve.grpc.inference");
        }
        /// `org.pytorch.serve.grpc.management`
        pub mod management {
            tonic::include_proto!("org.pytorch.serve.grpc.management");
        }
    }
}

/// Which gRPC services a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Services {
    /// OIP and TorchServe inference.
    Inference,
    /// TorchServe management.
    Management,
}

/// The gRPC router of one listener.
pub(crate) fn router(services: &[Services], state: &AppState) -> axum::Router {
    let context = Context { state: state.clone() };
    let request_limit = state.config.max_request_size;
    let mut routes = tonic::service::Routes::default();
    for services in services {
        match services {
            Services::Inference => {
                routes = routes
                    .add_service(
                        proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer::new(
                            oip::Oip(context.clone()),
                        )
                        .max_decoding_message_size(request_limit)
                        // Answers are checked against max_response_size before they are sent, with
                        // a clear message; tonic's own check would only cut the stream.
                        .max_encoding_message_size(usize::MAX),
                    )
                    .add_service(
                        proto::torchserve::inference::inference_ap_is_service_server::InferenceApIsServiceServer::new(
                            torchserve::Inference(context.clone()),
                        )
                        .max_decoding_message_size(request_limit)
                        .max_encoding_message_size(usize::MAX),
                    );
            }
            Services::Management => {
                routes = routes.add_service(
                    proto::torchserve::management::management_ap_is_service_server::ManagementApIsServiceServer::new(
                        torchserve::Management(context.clone()),
                    )
                    .max_decoding_message_size(request_limit)
                    .max_encoding_message_size(usize::MAX),
                );
            }
        }
    }
    routes
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::map_response(oversized_is_exhausted))
}

/// tonic answers a request message over the size limit with OUT_OF_RANGE; gRPC's convention
/// (grpc-go, grpc-c++, Triton) and this server's error table say RESOURCE_EXHAUSTED, which is what
/// clients retry-or-shrink on. The refusal comes before any message, so its status is in the
/// headers ("trailers-only"), where this rewrites it.
async fn oversized_is_exhausted(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|s| s == "11");
    let too_large = headers.get("grpc-message").and_then(|m| m.to_str().ok()).is_some_and(|m| {
        m.contains("message%20length%20too%20large") || m.contains("message length too large")
    });
    if out_of_range && too_large {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

/// The same rewrite for a stream's message that tonic refused as too large: it reaches the service
/// as an error item rather than as a response header.
fn oversized_status(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange
        && status.message().contains("message length too large")
    {
        return Status::resource_exhausted(status.message().to_owned());
    }
    status
}

/// What every gRPC service can reach.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    state: AppState,
}

impl Context {
    /// Refuses new calls while draining and checks the caller's key, as the HTTP middleware does.
    fn admit<T>(&self, request: &Request<T>, needed: KeyKind) -> Result<(), Status> {
        self.refuse_while_draining()?;
        self.authorize(request, needed)
    }

    fn refuse_while_draining(&self) -> Result<(), Status> {
        if self.state.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Status::unavailable("the server is shutting down"));
        }
        Ok(())
    }

    fn authorize<T>(&self, request: &Request<T>, needed: KeyKind) -> Result<(), Status> {
        let Some(keys) = self.state.keys.as_deref() else { return Ok(()) };
        let value = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        crate::auth::check(keys, needed, crate::auth::bearer(value)).map_err(Status::from)
    }

    /// A model version by the name and version string a gRPC request carries (empty version:
    /// the default one).
    fn model(
        &self,
        name: &str,
        version_string: &str,
    ) -> Result<std::sync::Arc<oxserve_core::ModelVersion>, Status> {
        self.state.registry.get(name, version(version_string)).map_err(crate::error::grpc_status)
    }

    /// [`Self::model`] for an Open Inference Protocol call: not found in Triton's words.
    fn oip_model(
        &self,
        name: &str,
        version_string: &str,
    ) -> Result<std::sync::Arc<oxserve_core::ModelVersion>, Status> {
        crate::services::oip::model(&self.state.registry, name, version(version_string))
            .map_err(Status::from)
    }

    /// Refuses an answer over `max_response_size`.
    fn limit<M: prost::Message>(&self, message: M) -> Result<tonic::Response<M>, Status> {
        let limit = self.state.config.max_response_size;
        let size = message.encoded_len();
        if size > limit {
            return Err(Status::resource_exhausted(format!(
                "the response of {size} bytes is larger than max_response_size ({limit} bytes)"
            )));
        }
        Ok(tonic::Response::new(message))
    }
}

/// The engine options of a call: its `grpc-timeout` and the request id (`x-request-id` metadata, or
/// a fresh one).
fn options<T>(request: &Request<T>) -> RequestOptions {
    let metadata = request.metadata();
    let timeout =
        metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
    let request_id =
        metadata.get(crate::observe::REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestOptions { timeout, request_id }
}

/// Parses gRPC's `grpc-timeout` (`TimeoutValue TimeoutUnit`: up to 8 digits, then H, M, S, m, u or
/// n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The version a request names; empty means the default one.
fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("99u"), Some(Duration::from_micros(99)));
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
