//! TorchServe's gRPC APIs: `InferenceAPIsService` (Ping, Predictions, StreamPredictions) and
//! `ManagementAPIsService`. They behave as their HTTP twins: a prediction's `input` map becomes the
//! handler payload's parts (as a multipart body's would), and management answers carry the JSON text
//! the HTTP API would answer in `msg`.

use oxserve_engine::config::ModelOverrides;
use oxserve_engine::handler::{Part, Payload};
use oxserve_engine::{Description, RegisterRequest};
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
        if self.0.ready() {
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

/// A ManagementResponse carrying `{"status": message}`, as HTTP's management answers.
fn status(message: String) -> Response<ManagementResponse> {
    Response::new(ManagementResponse { msg: json!({"status": message}).to_string() })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Response<ManagementResponse>, Status> {
    let msg = serde_json::to_string_pretty(value)
        .map_err(|e| grpc_status(oxserve_engine::EngineError::Internal(e.to_string())))?;
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

impl Management {
    fn model_api_enabled(&self) -> Result<(), Status> {
        if self.0.state.config.enable_model_api {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
            "the model API is disabled: registering and unregistering models needs the server to \
             start with --enable-model-api (enable_model_api=true)",
        )
        .into())
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
        let registry = &self.0.state.registry;
        let versions = match r.model_version.as_str() {
            "all" => registry.versions(&r.model_name).map_err(grpc_status)?,
            v => vec![self.0.model(&r.model_name, v)?],
        };
        to_json(&versions.iter().map(|v| v.describe()).collect::<Vec<Description>>())
    }

    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let limit = count("limit", r.limit)?.unwrap_or(100);
        let start = count("next_page_token", r.next_page_token)?.unwrap_or(0);
        to_json(&crate::management::model_page(&self.0.state.registry, start, limit))
    }

    async fn register_model(
        &self,
        request: Request<RegisterModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        self.model_api_enabled()?;
        let r = request.into_inner();
        if r.url.is_empty() {
            return Err(ApiError::bad_request("url is required").into());
        }
        let request = RegisterRequest {
            url: r.url,
            model_name: version(&r.model_name).map(str::to_owned),
            overrides: ModelOverrides {
                batch_size: count("batch_size", r.batch_size)?,
                max_batch_delay: count("max_batch_delay", r.max_batch_delay)?.map(|n| n as u64),
                response_timeout: count("response_timeout", r.response_timeout)?.map(|n| n as u64),
                ..ModelOverrides::default()
            },
            initial_workers: count("initial_workers", r.initial_workers)?,
            synchronous: r.synchronous,
            loaded_at_startup: false,
            ..RegisterRequest::default()
        };
        let v = self.0.state.registry.register(request).await.map_err(grpc_status)?;
        if r.synchronous {
            Ok(status(format!(
                "Model \"{}\" Version: {} registered with {} initial workers",
                v.name(),
                v.version(),
                v.settings().min_workers
            )))
        } else {
            Ok(status("Processing worker updates...".into()))
        }
    }

    /// As TorchServe's gRPC: min_worker 0 (not given) means 1, max_worker 0 means min_worker.
    async fn scale_worker(
        &self,
        request: Request<ScaleWorkerRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        let v = self.0.model(&r.model_name, &r.model_version)?;
        let min = count("min_worker", r.min_worker)?.unwrap_or(1);
        let max = count("max_worker", r.max_worker)?.unwrap_or(min);
        if max < min {
            return Err(ApiError::bad_request("max_worker cannot be less than min_worker").into());
        }
        v.scale(min, max);
        if !r.synchronous {
            return Ok(status("Processing worker updates...".into()));
        }
        if !v.wait_ready(min, std::time::Duration::from_secs(120)).await {
            return Err(Status::internal(format!(
                "workers of model {} did not become ready; see the server log",
                r.model_name
            )));
        }
        Ok(status(format!("Workers scaled to {min} for model: {}", r.model_name)))
    }

    async fn set_default(
        &self,
        request: Request<SetDefaultRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        let r = request.into_inner();
        self.0.state.registry.set_default(&r.model_name, &r.model_version).map_err(grpc_status)?;
        Ok(status(format!(
            "Default version successfully updated for model \"{}\" to \"{}\"",
            r.model_name, r.model_version
        )))
    }

    async fn unregister_model(
        &self,
        request: Request<UnregisterModelRequest>,
    ) -> Result<Response<ManagementResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        self.model_api_enabled()?;
        let r = request.into_inner();
        let removed = self
            .0
            .state
            .registry
            .unregister(&r.model_name, version(&r.model_version))
            .await
            .map_err(grpc_status)?;
        Ok(status(if r.model_version.is_empty() {
            format!("Model \"{}\" unregistered", removed.name())
        } else {
            format!("Model \"{}\" version {} unregistered", removed.name(), removed.version())
        }))
    }
}
