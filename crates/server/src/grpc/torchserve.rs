//! TorchServe's gRPC APIs: `InferenceAPIsService` (Ping, Predictions, StreamPredictions) and
//! `ManagementAPIsService`. They behave as their HTTP twins: a prediction's `input` map becomes the
//! handler payload's parts (as a multipart body's would), and management answers carry the JSON text
//! the HTTP API would answer in `msg`.

use axum::http::StatusCode;
use futures_util::stream::{self, BoxStream, StreamExt};
use oxserve_core::handler::{Part, Payload};
use oxserve_core::hosted::{HostedAnswer, HostedRequest};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::proto::torchserve::inference::inference_ap_is_service_server::InferenceApIsService;
use super::proto::torchserve::inference::{
    PredictionResponse, PredictionsRequest, TorchServeHealthResponse,
};
use super::proto::torchserve::management::management_ap_is_service_server::ManagementApIsService;
use super::proto::torchserve::management::{
    DescribeModelRequest, ListModelsRequest, ManagementResponse, RegisterModelRequest,
    ScaleWorkerRequest, SetDefaultRequest, UnregisterModelRequest,
};
use super::{Context, options, version};
use crate::auth::KeyKind;
use crate::error::{ApiError, grpc_code, grpc_status};
use crate::hosted::{self, Answers};
use crate::services::management::{self as service, Answer};

#[derive(Debug, Clone)]
pub(crate) struct Inference(pub(crate) Context);

/// A prediction's answer: one message, or, from a streaming handler on Python workers, messages
/// as the handler sends them.
enum Predicted {
    One(PredictionResponse),
    Many(BoxStream<'static, Result<PredictionResponse, Status>>),
}

impl Inference {
    async fn predict(&self, request: Request<PredictionsRequest>) -> Result<Predicted, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        let options = options(&request);
        let r = request.into_inner();
        let v = self.0.model(&r.model_name, &r.model_version)?;
        if r.input.is_empty() {
            return Err(ApiError::bad_request(
                "input is empty: send the data as input[\"data\"] (or any named parts)",
            )
            .into());
        }
        let sequence_id = r.sequence_id;
        if v.is_hosted() {
            // As TorchServe's frontend sends a gRPC prediction: each input a parameter, no type.
            let request = HostedRequest {
                id: options.request_id.clone().unwrap_or_default(),
                headers: vec![("explain".to_owned(), "False".to_owned())],
                params: r
                    .input
                    .into_iter()
                    .map(|(name, body)| (name, String::new(), body))
                    .collect(),
                stream: None,
            };
            let ticket = v.admit(options).map_err(grpc_status)?;
            let message = move |answer: HostedAnswer| message(answer, sequence_id.clone());
            return Ok(match hosted::run(ticket, request).await.map_err(grpc_status)? {
                Answers::Whole(answer, _) => Predicted::One(message(answer)?),
                Answers::Streamed(first, rest) => Predicted::Many(
                    stream::once(async move { Ok(first) })
                        .chain(rest)
                        .map(move |answer| message(answer.map_err(grpc_status)?))
                        .boxed(),
                ),
            });
        }
        let parts = r
            .input
            .into_iter()
            .map(|(name, body)| Part { name, content_type: None, body })
            .collect();
        let (prediction, _timings) =
            v.predict(Payload { parts }, &options).await.map_err(grpc_status)?;
        Ok(Predicted::One(PredictionResponse { prediction: prediction.body, sequence_id }))
    }
}

/// A hosted handler's answer as a message; a status it set outside 2xx is the call's error, with
/// the gRPC code nearest to it and its body as the message.
fn message(
    answer: HostedAnswer,
    sequence_id: Option<String>,
) -> Result<PredictionResponse, Status> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        Ok(PredictionResponse { prediction: answer.body, sequence_id })
    } else {
        Err(Status::new(grpc_code(status), String::from_utf8_lossy(&answer.body).into_owned()))
    }
}

/// TorchServe's ping answer: the JSON text its HTTP `/ping` answers.
fn health(healthy: bool) -> String {
    json!({"status": if healthy { "Healthy" } else { "Unhealthy" }}).to_string()
}

#[tonic::async_trait]
impl InferenceApIsService for Inference {
    /// Open without a key, like HTTP `/ping`: probes carry none. Unhealthy is INTERNAL, as HTTP's
    /// 500.
    async fn ping(
        &self,
        _request: Request<()>,
    ) -> Result<Response<TorchServeHealthResponse>, Status> {
        if crate::services::server_ready(&self.0.state) {
            Ok(Response::new(TorchServeHealthResponse { health: health(true) }))
        } else {
            Err(Status::internal(health(false)))
        }
    }

    /// A streaming handler's parts come back joined, as one message.
    async fn predictions(
        &self,
        request: Request<PredictionsRequest>,
    ) -> Result<Response<PredictionResponse>, Status> {
        match self.predict(request).await? {
            Predicted::One(answer) => self.0.limit(answer),
            Predicted::Many(mut parts) => {
                let mut whole = PredictionResponse::default();
                let mut body = Vec::new();
                while let Some(part) = parts.next().await {
                    let part = part?;
                    body.extend_from_slice(&part.prediction);
                    whole.sequence_id = part.sequence_id;
                }
                whole.prediction = body.into();
                self.0.limit(whole)
            }
        }
    }

    type StreamPredictionsStream = BoxStream<'static, Result<PredictionResponse, Status>>;

    /// A streaming handler's parts (Python workers) leave as messages as they come; every other
    /// handler answers in one message (or the error).
    async fn stream_predictions(
        &self,
        request: Request<PredictionsRequest>,
    ) -> Result<Response<Self::StreamPredictionsStream>, Status> {
        match self.predict(request).await? {
            Predicted::One(answer) => {
                let answer = self.0.limit(answer)?.into_inner();
                Ok(Response::new(stream::once(async move { Ok(answer) }).boxed()))
            }
            Predicted::Many(parts) => Ok(Response::new(parts)),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Management(pub(crate) Context);

/// A management answer as TorchServe's gRPC sends it: the JSON text the HTTP API would answer, in
/// `msg`.
fn reply(answer: Result<Answer, ApiError>) -> Result<Response<ManagementResponse>, Status> {
    let msg = match answer? {
        Answer::Status(_, message) => json!({"status": message}).to_string(),
        Answer::Document(value) => {
            serde_json::to_string_pretty(&value).map_err(ApiError::internal)?
        }
    };
    Ok(Response::new(ManagementResponse { msg }))
}

/// A count field: 0 (proto3's "not given") and negative values are `None`, the default, as
/// TorchServe's gRPC reads them.
fn count(value: i32) -> Option<usize> {
    usize::try_from(value).ok().filter(|n| *n > 0)
}

#[tonic::async_trait]
impl ManagementApIsService for Management {
    async fn describe_model(
        &self,
        request: Request<DescribeModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        reply(
            service::describe(
                &self.0.state,
                &r.model_name,
                version(&r.model_version),
                r.customized,
            )
            .await,
        )
    }

    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let limit = count(r.limit).filter(|l| *l <= 100).unwrap_or(100);
        let start = count(r.next_page_token).unwrap_or(0);
        reply(Ok(service::list(&self.0.state.registry, start, limit)))
    }

    async fn register_model(
        &self,
        request: Request<RegisterModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let args = service::Register {
            // proto3 cannot tell an empty url from none: both are "url is required".
            url: Some(r.url).filter(|u| !u.is_empty()),
            model_name: Some(r.model_name),
            batch_size: count(r.batch_size),
            max_batch_delay: count(r.max_batch_delay).map(|n| n as u64),
            response_timeout: count(r.response_timeout).map(|n| n as u64),
            initial_workers: count(r.initial_workers),
            handler: Some(r.handler).filter(|h| !h.is_empty()),
            runtime: Some(r.runtime).filter(|h| !h.is_empty()),
            startup_timeout: None,
            synchronous: r.synchronous,
            sha256: None,
        };
        reply(service::register(&self.0.state, args).await)
    }

    /// As TorchServe's gRPC: min_worker 0 (not given) means 1, max_worker 0 means min_worker.
    async fn scale_worker(
        &self,
        request: Request<ScaleWorkerRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let (min, max) = (count(r.min_worker), count(r.max_worker));
        let model_version = version(&r.model_version);
        reply(
            service::scale(&self.0.state, &r.model_name, model_version, min, max, r.synchronous)
                .await,
        )
    }

    async fn set_default(
        &self,
        request: Request<SetDefaultRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        reply(service::set_default(&self.0.state, &r.model_name, &r.model_version))
    }

    async fn unregister_model(
        &self,
        request: Request<UnregisterModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        reply(service::unregister(&self.0.state, &r.model_name, version(&r.model_version)).await)
    }
}
