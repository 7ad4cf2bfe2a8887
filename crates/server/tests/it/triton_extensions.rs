//! Triton's statistics, model configuration and model repository extensions, over REST and gRPC
//! on a real server: counts that follow the requests sent, configurations derived from the real
//! models, and loads and unloads over the real model store.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use oxserve_server::grpc::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxserve_server::grpc::proto::inference::model_repository_parameter::ParameterChoice;
use oxserve_server::grpc::proto::inference::{
    ModelConfigRequest, ModelReadyRequest, ModelRepositoryParameter, ModelStatisticsRequest,
    RepositoryIndexRequest, RepositoryModelLoadRequest, RepositoryModelUnloadRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::{Options, TestServer};

fn tiny_body() -> String {
    json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.5; 64]}]})
        .to_string()
}

#[tokio::test]
async fn statistics_count_what_was_served() {
    let s = TestServer::default().await;
    for _ in 0..3 {
        let (status, _) =
            s.post(format!("{}/v2/models/tiny/infer", s.inference), tiny_body()).await;
        assert_eq!(status, 200);
    }
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let (status, _) =
        s.post(format!("{}/v2/models/tiny/infer", s.inference), bad.to_string()).await;
    assert_eq!(status, 400);

    let (status, body) = s.get(format!("{}/v2/models/tiny/stats", s.inference)).await;
    assert_eq!(status, 200, "{body}");
    let stats = &body["model_stats"][0];
    assert_eq!(stats["name"], "tiny");
    assert!(stats["version"].is_string(), "{stats}");
    let inference = &stats["inference_stats"];
    assert_eq!(inference["success"]["count"], 3, "{stats}");
    assert!(inference["success"]["ns"].as_u64().unwrap() > 0);
    assert_eq!(inference["queue"]["count"], 3);
    assert_eq!(inference["compute_infer"]["count"], 3);
    assert_eq!(stats["inference_count"], 3);
    // Three requests one after another: three engine runs of one.
    assert_eq!(stats["execution_count"], 3);
    assert_eq!(stats["batch_stats"][0]["batch_size"], 1);
    assert_eq!(stats["batch_stats"][0]["compute_infer"]["count"], 3);
    assert!(stats["last_inference"].as_u64().unwrap() > 1_700_000_000_000);
    // The request the model refused counts as failed.
    assert_eq!(inference["fail"]["count"], 1, "{stats}");

    let (status, all) = s.get(format!("{}/v2/models/stats", s.inference)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digits", "tiny"]);
    let version = stats["version"].as_str().unwrap();
    let (status, one) =
        s.get(format!("{}/v2/models/tiny/versions/{version}/stats", s.inference)).await;
    assert_eq!((status, &one["model_stats"][0]["inference_count"]), (200, &json!(3)));
    let (status, body) = s.get(format!("{}/v2/models/nope/stats", s.inference)).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");

    // The same totals over gRPC.
    let mut client = oip(&s).await;
    let request = ModelStatisticsRequest { name: "tiny".into(), version: String::new() };
    let grpc = client.model_statistics(request).await.unwrap().into_inner();
    let stats = &grpc.model_stats[0];
    assert_eq!(stats.inference_count, 3);
    assert_eq!(stats.inference_stats.as_ref().unwrap().success.as_ref().unwrap().count, 3);
    let unknown = ModelStatisticsRequest { name: "nope".into(), version: String::new() };
    let err = client.model_statistics(unknown).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn configurations_come_from_the_model_and_its_settings() {
    let s = TestServer::default().await;
    let (status, config) = s.get(format!("{}/v2/models/tiny/config", s.inference)).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["name"], "tiny");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    // tiny takes [-1, 64]: it batches, so the batch dimension is left out of dims.
    assert!(config["max_batch_size"].as_i64().unwrap() >= 1, "{config}");
    assert_eq!(
        config["input"][0],
        json!({
            "name": "input", "data_type": "TYPE_FP32", "dims": [64], "is_shape_tensor": false,
            "format": "FORMAT_NONE", "allow_ragged_batch": false, "optional": false,
        })
    );
    assert_eq!(config["output"][0]["dims"], json!([10]));
    assert_eq!(config["instance_group"][0]["kind"], "KIND_CPU");
    let (status, _) = s.get(format!("{}/v2/models/nope/config", s.inference)).await;
    assert_eq!(status, 404);

    let mut client = oip(&s).await;
    let request = ModelConfigRequest { name: "tiny".into(), version: String::new() };
    let config = client.model_config(request).await.unwrap().into_inner().config.unwrap();
    assert_eq!(config.name, "tiny");
    assert_eq!((config.input[0].data_type, config.input[0].dims.clone()), (11, vec![64]));
    s.stop().await;
}

#[tokio::test]
async fn the_repository_is_the_model_store_loaded_and_unloaded_on_request() {
    let s = TestServer::default().await;
    let url = |path: &str| format!("{}/v2/repository{path}", s.inference);
    let (status, index) = s.post(url("/index"), "").await;
    assert_eq!(status, 200, "{index}");
    let entries: HashMap<&str, &Value> =
        index.as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e)).collect();
    assert_eq!(entries["tiny"]["state"], "READY");
    // In the store, never loaded: a name only.
    assert_eq!(*entries["multi_io"], json!({"name": "multi_io"}));
    let (_, ready_only) = s.post(url("/index"), r#"{"ready": true}"#).await;
    assert!(ready_only.as_array().unwrap().iter().all(|e| e["state"] == "READY"));
    let (status, body) = s.post(url("/index"), r#"{"ready": [[true]]}"#).await;
    assert_eq!(status, 400, "{body}");

    // Load with a partial configuration, as tritonclient sends it (numbers as strings too).
    let load = json!({"parameters": {"config": r#"{"max_batch_size": "4"}"#}});
    let r =
        s.client.post(url("/models/fixed_batch/load")).body(load.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty(), "Triton answers a load with an empty body");
    let (status, _) = s.get(format!("{}/v2/models/fixed_batch/ready", s.inference)).await;
    assert_eq!(status, 200);
    let (_, config) = s.get(format!("{}/v2/models/multi_io/config", s.inference)).await;
    assert!(config["error"].is_string(), "not loaded: {config}");
    // Loading again reloads it.
    let (status, _) = s.post(url("/models/fixed_batch/load"), "").await;
    assert_eq!(status, 200);

    let unload = json!({"parameters": {"unload_dependents": false}});
    let (status, _) = s.post(url("/models/fixed_batch/unload"), unload.to_string()).await;
    assert_eq!(status, 200);
    let (status, _) = s.get(format!("{}/v2/models/fixed_batch/ready", s.inference)).await;
    assert_ne!(status, 200);
    // Unloading what is not loaded is no error, as in Triton.
    let (status, _) = s.post(url("/models/fixed_batch/unload"), "").await;
    assert_eq!(status, 200);

    for (model, body, status) in [
        ("wrong_model_name", json!({}), 404),
        ("fixed_batch", json!({"parameters": {"config": r#""max_batch_size": 16"#}}), 400),
        ("fixed_batch", json!({"parameters": {"file:1/model.onnx": "AAAA"}}), 400),
    ] {
        let (got, answer) = s.post(url(&format!("/models/{model}/load")), body.to_string()).await;
        assert_eq!(got, status, "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.starts_with(&format!("failed to load '{model}'")), "{message}");
    }
    s.stop().await;
}

#[tokio::test]
async fn repository_calls_over_grpc_and_the_model_api_switch() {
    let s = TestServer::default().await;
    let mut client = oip(&s).await;
    let index = client.repository_index(RepositoryIndexRequest::default()).await.unwrap();
    assert!(index.into_inner().models.iter().any(|m| m.name == "multi_io" && m.state.is_empty()));
    let config = ModelRepositoryParameter {
        parameter_choice: Some(ParameterChoice::StringParam(r#"{"max_batch_size": 2}"#.into())),
    };
    let load = RepositoryModelLoadRequest {
        model_name: "fixed_batch".into(),
        parameters: [("config".to_owned(), config)].into(),
        ..Default::default()
    };
    client.repository_model_load(load).await.unwrap();
    let ready = |name: &str| ModelReadyRequest { name: name.into(), version: String::new() };
    assert!(client.model_ready(ready("fixed_batch")).await.unwrap().into_inner().ready);
    let unload =
        RepositoryModelUnloadRequest { model_name: "fixed_batch".into(), ..Default::default() };
    client.repository_model_unload(unload).await.unwrap();
    // Not loaded is an answer (false), not an error: Triton's clients ask after an unload.
    assert!(!client.model_ready(ready("fixed_batch")).await.unwrap().into_inner().ready);
    let named = RepositoryIndexRequest { repository_name: "other".into(), ready: false };
    let err = client.repository_index(named).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    s.stop().await;

    // With the model API off, loads and unloads are refused as register is.
    let mut options = Options::default();
    options.server.enable_model_api = false;
    let s = TestServer::start(options).await;
    let (status, body) =
        s.post(format!("{}/v2/repository/models/tiny/unload", s.inference), "").await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].as_str().unwrap().contains("enable-model-api"), "{body}");
    let load =
        RepositoryModelLoadRequest { model_name: "fixed_batch".into(), ..Default::default() };
    let err = oip(&s).await.repository_model_load(load).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    s.stop().await;
}

async fn oip(s: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    let channel = Channel::from_shared(s.grpc_inference.clone()).unwrap().connect().await.unwrap();
    GrpcInferenceServiceClient::new(channel)
}
