//! `inference.GRPCInferenceService`: the Open Inference Protocol over gRPC.
//!
//! Tensors come typed (`contents`) or raw (`raw_input_contents`, what tritonclient sends). Answers
//! are always raw (`raw_output_contents`, one entry per output), as Triton answers: clients written
//! against Triton read that field directly, whatever form their request used.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use oxserve_backend::{DType, Tensor, TensorData};
use oxserve_core::{ModelVersion, RequestOptions};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::inference::grpc_inference_service_server::GrpcInferenceService;
use super::proto::inference::infer_parameter::ParameterChoice;
use super::proto::inference::model_infer_response::InferOutputTensor;
use super::proto::inference::model_metadata_response::TensorMetadata;
use super::proto::inference::{
    InferTensorContents, ModelConfigRequest, ModelConfigResponse, ModelInferRequest,
    ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest,
    ModelReadyResponse, ModelStatisticsRequest, ModelStatisticsResponse, ModelStreamInferResponse,
    RepositoryIndexRequest, RepositoryIndexResponse, RepositoryModelLoadRequest,
    RepositoryModelLoadResponse, RepositoryModelUnloadRequest, RepositoryModelUnloadResponse,
    ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse,
    ServerReadyRequest, ServerReadyResponse,
};
use super::{Context, options};
use crate::auth::KeyKind;
use crate::error::{ApiError, grpc_status};
use crate::services::oip::{EXTENSIONS, Inputs, PLATFORM, raw_tensor, requested_outputs, shorten};

/// Answers a stream may hold while the client is slow to read them; the stream stops reading
/// requests until there is room.
const STREAM_BUFFER: usize = 16;

/// Requests of one stream served at once. Each still passes the model's admission, so a stream
/// cannot hold more of the queue than this.
const STREAM_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
pub(crate) struct Oip(pub(crate) Context);

#[tonic::async_trait]
impl GrpcInferenceService for Oip {
    async fn server_live(
        &self,
        _request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: crate::services::server_ready(&self.0.state),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        let r = request.into_inner();
        // A model that is not loaded is not ready, and that is an answer, not an error: Triton's
        // clients ask after unloading one and fail on an error status.
        let ready = match self.0.state.registry.get(&r.name, super::version(&r.version)) {
            Ok(v) => v.not_serving_reason().is_none(),
            Err(
                oxserve_core::EngineError::ModelNotFound(_)
                | oxserve_core::EngineError::VersionNotFound { .. },
            ) => false,
            Err(e) => return Err(grpc_status(e)),
        };
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        Ok(Response::new(ServerMetadataResponse {
            name: self.0.state.config.server_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        let r = request.into_inner();
        let registry = &self.0.state.registry;
        let v = self.0.oip_model(&r.name, &r.version)?;
        let versions = registry
            .versions(&r.name)
            .map_err(grpc_status)?
            .iter()
            .map(|v| v.version().to_owned())
            .collect();
        let meta = |spec: &oxserve_backend::TensorSpec| TensorMetadata {
            name: spec.name.clone(),
            datatype: spec.dtype.oip_name().to_owned(),
            shape: spec.shape.iter().map(|d| d.as_i64()).collect(),
        };
        let signature = v.signature();
        Ok(Response::new(ModelMetadataResponse {
            name: v.name().to_owned(),
            versions,
            platform: PLATFORM.to_owned(),
            inputs: signature.inputs.iter().map(meta).collect(),
            outputs: signature.outputs.iter().map(meta).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        let options = options(&request);
        let answer = infer(&self.0, &options, request.into_inner()).await?;
        self.0.limit(answer)
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        Ok(Response::new(super::triton::config(&self.0, request.get_ref())?))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        Ok(Response::new(super::triton::statistics(&self.0, request.get_ref())?))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        Ok(Response::new(super::triton::index(&self.0, request.get_ref())?))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        super::triton::load(&self.0, request.into_inner()).await?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        self.0.admit(&request, KeyKind::Management)?;
        super::triton::unload(&self.0, request.into_inner()).await?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    type ModelStreamInferStream = ReceiverStream<Result<ModelStreamInferResponse, Status>>;

    /// Serves up to [`STREAM_IN_FLIGHT`] of the stream's requests at once, so a streaming client
    /// fills batches as concurrent unary clients do, and answers them in the order they were sent.
    /// A request that fails answers with `error_message` and the stream goes on. A `grpc-timeout`
    /// bounds the whole stream.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        self.0.admit(&request, KeyKind::Inference)?;
        let options = options(&request);
        let deadline = options.timeout.map(|t| std::time::Instant::now() + t);
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let context = self.0.clone();
        let mut slots = StreamSlots::default();
        let mut answers = request
            .into_inner()
            .map(move |next| {
                let (context, mut options) = (context.clone(), options.clone());
                if let Some(deadline) = deadline {
                    options.timeout =
                        Some(deadline.saturating_duration_since(std::time::Instant::now()));
                }
                let slot = next.as_ref().ok().and_then(|r| slots.of(&context, r));
                async move {
                    // Waits for one of this stream's places for the model, if it has a limit.
                    let _place = match slot {
                        Some(slot) => slot.acquire_owned().await.ok(),
                        None => None,
                    };
                    match next {
                        Ok(next) => Ok(stream_answer(&context, &options, next).await),
                        Err(status) => Err(super::oversized_status(status)),
                    }
                }
            })
            .buffered(STREAM_IN_FLIGHT);
        tokio::spawn(async move {
            loop {
                // When the client goes, the requests still in flight are dropped, which takes
                // them out of the model's queue as a closed HTTP connection does.
                let answer = tokio::select! {
                    answer = answers.next() => answer,
                    () = tx.closed() => break,
                };
                let Some(answer) = answer else { break };
                let last = answer.is_err();
                if tx.send(answer).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Per stream and model: how many of the stream's requests may run at once. At most the model's
/// own concurrency limit, so that with a small `maxConcurrentRequests` a stream's requests wait for
/// each other instead of refusing each other; other clients still compete as usual.
#[derive(Debug, Default)]
struct StreamSlots(HashMap<(String, String), Arc<Semaphore>>);

impl StreamSlots {
    /// The places for the model `request` names; `None` when it names no model (its answer is
    /// that error).
    fn of(&mut self, context: &Context, request: &ModelInferRequest) -> Option<Arc<Semaphore>> {
        let v = context.oip_model(&request.model_name, &request.model_version).ok()?;
        let key = (v.name().to_owned(), v.version().to_owned());
        let places = v.concurrency_limit().clamp(1, STREAM_IN_FLIGHT);
        Some(Arc::clone(self.0.entry(key).or_insert_with(|| Arc::new(Semaphore::new(places)))))
    }
}

/// One request of a stream: its answer, or its error as `error_message` next to the request's
/// name, version and id, so the client can tell which request failed.
async fn stream_answer(
    context: &Context,
    options: &RequestOptions,
    request: ModelInferRequest,
) -> ModelStreamInferResponse {
    let echo = ModelInferResponse {
        model_name: request.model_name.clone(),
        model_version: request.model_version.clone(),
        id: request.id.clone(),
        ..ModelInferResponse::default()
    };
    let answer = match context.refuse_while_draining() {
        Ok(()) => infer(context, options, request)
            .await
            .and_then(|a| context.limit(a).map(Response::into_inner)),
        Err(status) => Err(status),
    };
    match answer {
        Ok(answer) => {
            ModelStreamInferResponse { error_message: String::new(), infer_response: Some(answer) }
        }
        Err(status) => ModelStreamInferResponse {
            error_message: status.message().to_owned(),
            infer_response: Some(echo),
        },
    }
}

/// Runs one ModelInfer request through the engine.
async fn infer(
    context: &Context,
    options: &RequestOptions,
    request: ModelInferRequest,
) -> Result<ModelInferResponse, Status> {
    let ModelInferRequest {
        model_name,
        model_version,
        id,
        parameters,
        inputs,
        outputs,
        raw_input_contents,
    } = request;
    let v = context.oip_model(&model_name, &model_version)?;
    let raw = !raw_input_contents.is_empty();
    // Typed contents beside raw ones are refused first, in Triton's words (its clients check them).
    let typed = |input: &&super::proto::inference::model_infer_request::InferInputTensor| {
        input.contents.as_ref().is_some_and(|c| *c != InferTensorContents::default())
    };
    if let Some(input) = inputs.iter().find(typed).filter(|_| raw) {
        return Err(bad(format!(
            "contents field must not be specified when using raw_input_contents for '{}' for \
             model '{}'",
            input.name,
            v.name()
        )));
    }
    if raw && raw_input_contents.len() != inputs.len() {
        return Err(bad(format!(
            "raw_input_contents has {} entries but there are {} inputs: give one per input, in order",
            raw_input_contents.len(),
            inputs.len()
        )));
    }
    let mut slots = Inputs::new(&v);
    for (k, input) in inputs.into_iter().enumerate() {
        let (i, dtype, shape) = slots.check(&input.name, &input.datatype, &input.shape)?;
        let tensor = if raw {
            raw_tensor(&input.name, dtype, shape, &raw_input_contents[k])?
        } else {
            typed_tensor(&input.name, dtype, shape, input.contents.unwrap_or_default())?
        };
        slots.put(i, &input.name, tensor)?;
    }
    let tensors = slots.finish()?;
    let wanted = if outputs.is_empty() {
        None
    } else {
        Some(requested_outputs(&v, outputs.iter().map(|o| (o.name.as_str(), ())))?)
    };
    let mut options = options.clone();
    if let Some(timeout) = parameters.get("timeout") {
        let micros = match timeout.parameter_choice {
            Some(ParameterChoice::Int64Param(n)) => u64::try_from(n).ok(),
            Some(ParameterChoice::Uint64Param(n)) => Some(n),
            _ => None,
        }
        .ok_or_else(|| bad("parameter timeout must be a non-negative integer (microseconds)"))?;
        shorten(&mut options, micros);
    }
    let output = v.infer(tensors, &options).await.map_err(grpc_status)?;
    Ok(answer(&v, id, &output.output, wanted.as_ref()))
}

fn bad(message: impl Into<String>) -> Status {
    ApiError::bad_request(message).into()
}

/// The answer's outputs, their bytes in `raw_output_contents`.
fn answer(
    v: &ModelVersion,
    id: String,
    tensors: &[Tensor],
    wanted: Option<&std::collections::HashMap<&str, ()>>,
) -> ModelInferResponse {
    let chosen: Vec<(&str, &Tensor)> = v
        .signature()
        .outputs
        .iter()
        .zip(tensors)
        .filter(|(spec, _)| wanted.is_none_or(|w| w.contains_key(spec.name.as_str())))
        .map(|(spec, t)| (spec.name.as_str(), t))
        .collect();
    let raw_output_contents =
        chosen.iter().map(|(_, t)| crate::tensor_bytes::encode(t.data()).into()).collect();
    let outputs = chosen
        .iter()
        .map(|(name, t)| InferOutputTensor {
            name: (*name).to_owned(),
            datatype: t.dtype().oip_name().to_owned(),
            shape: t.shape().iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect(),
            parameters: std::collections::BTreeMap::new(),
            contents: None,
        })
        .collect();
    ModelInferResponse {
        model_name: v.name().to_owned(),
        model_version: v.version().to_owned(),
        id,
        parameters: std::collections::BTreeMap::new(),
        outputs,
        raw_output_contents,
    }
}

/// A tensor from typed contents. Narrow integer types travel widened and are range-checked here.
fn typed_tensor(
    name: &str,
    dtype: DType,
    shape: Vec<usize>,
    c: InferTensorContents,
) -> Result<Tensor, ApiError> {
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>>(
        values: Vec<S>,
        dtype: DType,
    ) -> Result<Vec<T>, String> {
        values
            .into_iter()
            .map(|x| T::try_from(x).map_err(|_| format!("{x} does not fit {dtype}")))
            .collect()
    }
    let data = match dtype {
        DType::Bool => Ok(TensorData::Bool(c.bool_contents)),
        DType::I8 => narrow(c.int_contents, dtype).map(TensorData::I8),
        DType::I16 => narrow(c.int_contents, dtype).map(TensorData::I16),
        DType::I32 => Ok(TensorData::I32(c.int_contents)),
        DType::I64 => Ok(TensorData::I64(c.int64_contents)),
        DType::U8 => narrow(c.uint_contents, dtype).map(TensorData::U8),
        DType::U16 => narrow(c.uint_contents, dtype).map(TensorData::U16),
        DType::U32 => Ok(TensorData::U32(c.uint_contents)),
        DType::U64 => Ok(TensorData::U64(c.uint64_contents)),
        DType::F32 => Ok(TensorData::F32(c.fp32_contents)),
        DType::F64 => Ok(TensorData::F64(c.fp64_contents)),
        DType::Bytes => {
            Ok(TensorData::Bytes(c.bytes_contents.into_iter().map(|b| b.to_vec()).collect()))
        }
        DType::F16 => Err("FP16 has no typed contents field: send it in raw_input_contents".into()),
    };
    let data = data.map_err(|e| ApiError::bad_request(format!("input `{name}`: {e}")))?;
    Tensor::new(shape, data).map_err(|e| {
        ApiError::bad_request(format!(
            "input `{name}`: {e} (typed contents go in the field of the datatype, e.g. fp32_contents for FP32)"
        ))
    })
}
