//! Triton's statistics, model configuration and model repository extensions over gRPC: the
//! messages of `grpc_service.proto` and `model_config.proto` built from what
//! `crate::services::triton` answers. `GRPCInferenceService` (in `super::oip`) calls these.

use std::collections::BTreeMap;

use oxserve_core::stats::Duration64;
use tonic::Status;

use super::Context;
use super::proto::inference::model_repository_parameter::ParameterChoice;
use super::proto::inference::model_version_policy::{Latest, PolicyChoice};
use super::proto::inference::repository_index_response::ModelIndex;
use super::proto::inference::{
    InferBatchStatistics, InferStatistics, ModelConfig, ModelConfigRequest, ModelConfigResponse,
    ModelDynamicBatching, ModelInput, ModelInstanceGroup, ModelOutput, ModelStatistics,
    ModelStatisticsRequest, ModelStatisticsResponse, ModelVersionPolicy, RepositoryIndexRequest,
    RepositoryIndexResponse, RepositoryModelLoadRequest, RepositoryModelUnloadRequest,
    StatisticDuration, model_config,
};
use crate::services::triton;

pub(super) fn statistics(
    context: &Context,
    r: &ModelStatisticsRequest,
) -> Result<ModelStatisticsResponse, Status> {
    let d = |d: Duration64| Some(StatisticDuration { count: d.count, ns: d.ns });
    let stats = triton::statistics(&context.state, &r.name, &r.version)?;
    let model_stats = stats
        .into_iter()
        .map(|v| {
            let s = v.stats;
            ModelStatistics {
                name: v.name,
                version: v.version,
                last_inference: s.last_inference_ms,
                inference_count: s.inference_count,
                execution_count: s.execution_count,
                inference_stats: Some(InferStatistics {
                    success: d(s.success),
                    fail: d(s.fail),
                    queue: d(s.queue),
                    compute_input: d(s.compute_input),
                    compute_infer: d(s.compute_infer),
                    compute_output: d(s.compute_output),
                    cache_hit: d(Duration64::default()),
                    cache_miss: d(Duration64::default()),
                }),
                batch_stats: s
                    .batches
                    .iter()
                    .map(|(size, infer)| InferBatchStatistics {
                        batch_size: *size as u64,
                        compute_input: d(Duration64::default()),
                        compute_infer: d(*infer),
                        compute_output: d(Duration64::default()),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(ModelStatisticsResponse { model_stats })
}

pub(super) fn config(
    context: &Context,
    r: &ModelConfigRequest,
) -> Result<ModelConfigResponse, Status> {
    let v = context.oip_model(&r.name, &r.version)?;
    let c = triton::model_config(&v);
    let config = ModelConfig {
        name: c.name.clone(),
        platform: c.platform.to_owned(),
        backend: c.backend.to_owned(),
        version_policy: Some(ModelVersionPolicy {
            policy_choice: Some(PolicyChoice::Latest(Latest { num_versions: 1 })),
        }),
        max_batch_size: c.max_batch_size,
        input: c
            .inputs
            .iter()
            .map(|t| ModelInput {
                name: t.name.clone(),
                data_type: t.data_type_number,
                dims: t.dims.clone(),
                ..ModelInput::default()
            })
            .collect(),
        output: c
            .outputs
            .iter()
            .map(|t| ModelOutput {
                name: t.name.clone(),
                data_type: t.data_type_number,
                dims: t.dims.clone(),
                ..ModelOutput::default()
            })
            .collect(),
        instance_group: vec![ModelInstanceGroup {
            name: c.name,
            count: c.count,
            gpus: Vec::new(),
            kind: c.kind.1,
        }],
        scheduling_choice: c.dynamic_batching.map(|(preferred, delay)| {
            model_config::SchedulingChoice::DynamicBatching(ModelDynamicBatching {
                preferred_batch_size: vec![preferred],
                max_queue_delay_microseconds: delay,
                preserve_ordering: false,
            })
        }),
        parameters: BTreeMap::new(),
    };
    Ok(ModelConfigResponse { config: Some(config) })
}

/// Only the model store is a repository here.
fn no_named_repository(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        Ok(())
    } else {
        Err(Status::unimplemented(
            "a repository_name cannot be given: the model store is the only repository",
        ))
    }
}

pub(super) fn index(
    context: &Context,
    r: &RepositoryIndexRequest,
) -> Result<RepositoryIndexResponse, Status> {
    no_named_repository(&r.repository_name)?;
    let models = triton::index(&context.state, r.ready)?
        .into_iter()
        .map(|e| ModelIndex {
            name: e.name,
            version: e.version.unwrap_or_default(),
            state: e.state.unwrap_or_default().to_owned(),
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    Ok(RepositoryIndexResponse { models })
}

pub(super) async fn load(context: &Context, r: RepositoryModelLoadRequest) -> Result<(), Status> {
    no_named_repository(&r.repository_name)?;
    let texts = r.parameters.iter().map(|(key, value)| {
        let text = match &value.parameter_choice {
            Some(ParameterChoice::StringParam(text)) => Some(text.as_str()),
            _ => None,
        };
        (key.as_str(), text)
    });
    let config = triton::load_config(&r.model_name, texts)?;
    Ok(triton::load(&context.state, &r.model_name, config).await?)
}

pub(super) async fn unload(
    context: &Context,
    r: RepositoryModelUnloadRequest,
) -> Result<(), Status> {
    no_named_repository(&r.repository_name)?;
    triton::check_unload_parameters(r.parameters.keys().map(String::as_str))?;
    Ok(triton::unload(&context.state, &r.model_name).await?)
}
