//! TorchServe's gRPC APIs: `InferenceAPIsService` (Ping, Predictions, StreamPredictions) and
//! `ManagementAPIsService`. They behave as their HTTP twins: a prediction's `input` map becomes the
//! handler payload's parts (as a multipart body's would), and management answers carry the JSON text
//! the HTTP API would answer in `msg`.

use oxserve_core::handler::{Part, Payload};
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
use crate::error::{ApiError, grpc_status};
use crate::services::management::{self as service, Answer};

#[derive(Debug, Clone)]
pub(crate) struct Inference(pub(crate) Context);

impl Inference {
    async fn predict(
        &self,
        request: Request<PredictionsRequest>,
    ) -> Result<PredictionResponse, Status> {
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
        let parts = r
            .input
            .into_iter()
            .map(|(name, body)| Part { name, content_type: None, body })
            .collect();
        let (prediction, _timings) =
            v.predict(Payload { parts }, &options).await.map_err(grpc_status)?;
        Ok(PredictionResponse { prediction: prediction.body, sequence_id: r.sequence_id })
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

    async fn predictions(
        &self,
        request: Request<PredictionsRequest>,
    ) -> Result<Response<PredictionResponse>, Status> {
        let answer = self.predict(request).await?;
        self.0.limit(answer)
    }

    type StreamPredictionsStream = tokio_stream::Once<Result<PredictionResponse, Status>>;

    /// oxserve's handlers answer in one piece, so the stream holds one message (or the error).
    async fn stream_predictions(
        &self,
        request: Request<PredictionsRequest>,
    ) -> Result<Response<Self::StreamPredictionsStream>, Status> {
        let answer = self.predict(request).await?;
        let answer = self.0.limit(answer)?.into_inner();
        Ok(Response::new(tokio_stream::once(Ok(answer))))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Management(pub(crate) Context);

/// A management answer as TorchServe's gRPC sends it: the JSON text the HTTP API would answer, in
/// `msg`.
fn reply(answer: Result<Answer, ApiError>) -> Result<Response<ManagementResponse>, Status> {
    let msg = match answer? {
        Answer::Status(_, message) => json!({"status": message}).to_string(),
        Answer::Document(value) => serde_json::to_string_pretty(&value)
            .map_err(|e| grpc_status(oxserve_core::EngineError::Internal(e.to_string())))?,
    };
    Ok(Response::new(ManagementResponse { msg }))
}

/// A count field: 0 (proto3's "not given") is `None`, a negative one an error.
fn count(field: &str, value: i32) -> Result<Option<usize>, Status> {
    match usize::try_from(value) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(ApiError::bad_request(format!("{field} cannot be negative")).into()),
    }
}

#[tonic::async_trait]
impl ManagementApIsService for Management {
    async fn describe_model(
        &self,
        request: Request<DescribeModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        reply(service::describe(&self.0.state, &r.model_name, version(&r.model_version)))
    }

    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let limit = count("limit", r.limit)?.unwrap_or(100);
        let start = count("next_page_token", r.next_page_token)?.unwrap_or(0);
        reply(Ok(service::list(&self.0.state.registry, start, limit)))
    }

    async fn register_model(
        &self,
        request: Request<RegisterModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let args = service::Register {
            url: Some(r.url),
            model_name: Some(r.model_name),
            batch_size: count("batch_size", r.batch_size)?,
            max_batch_delay: count("max_batch_delay", r.max_batch_delay)?.map(|n| n as u64),
            response_timeout: count("response_timeout", r.response_timeout)?.map(|n| n as u64),
            initial_workers: count("initial_workers", r.initial_workers)?,
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
        let (min, max) = (count("min_worker", r.min_worker)?, count("max_worker", r.max_worker)?);
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
