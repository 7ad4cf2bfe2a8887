//! Every gRPC call over a real port-0 server with tonic clients: the Open Inference Protocol service,
//! TorchServe's inference and management services, their error codes, keys, size limits and
//! deadlines.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Options, TestServer, expected, model, open_server};
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_server::ServerConfig;
use oxserve_server::grpc::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxserve_server::grpc::proto::inference::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use oxserve_server::grpc::proto::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest,
    ServerReadyRequest, infer_parameter::ParameterChoice,
};
use oxserve_server::grpc::proto::torchserve::inference::PredictionsRequest;
use oxserve_server::grpc::proto::torchserve::inference::inference_ap_is_service_client::InferenceApIsServiceClient;
use oxserve_server::grpc::proto::torchserve::management::management_ap_is_service_client::ManagementApIsServiceClient;
use oxserve_server::grpc::proto::torchserve::management::{
    DescribeModelRequest, ListModelsRequest, RegisterModelRequest, ScaleWorkerRequest,
    SetDefaultRequest, UnregisterModelRequest,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned()).unwrap().connect().await.unwrap()
}

async fn oip(s: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(channel(&s.grpc_inference).await)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A ModelInfer request for `tiny` with the example row, typed or raw.
fn tiny_request(raw: bool) -> ModelInferRequest {
    let data = crate::common::tiny_row();
    let mut input = InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![1, 64],
        ..Default::default()
    };
    let mut request =
        ModelInferRequest { model_name: "tiny".into(), id: "req-1".into(), ..Default::default() };
    if raw {
        request.raw_input_contents =
            vec![data.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into()];
    } else {
        input.contents = Some(InferTensorContents { fp32_contents: data, ..Default::default() });
    }
    request.inputs = vec![input];
    request
}

/// The JSON path's answer for the same row: the reference every other path must equal, bit for bit
/// (JSON writes each f32 in its shortest form that reads back as the same f32).
async fn json_answer(s: &TestServer) -> Vec<f32> {
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                  "data": expected()["tiny"]["input"]}]});
    let (status, body) =
        s.post(format!("{}/v2/models/tiny/infer", s.inference), body.to_string()).await;
    assert_eq!(status, 200, "{body}");
    body["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_health_and_metadata() {
    let s = TestServer::default().await;
    let mut c = oip(&s).await;
    assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    assert!(c.server_ready(ServerReadyRequest {}).await.unwrap().into_inner().ready);
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(c.model_ready(ready("tiny", "")).await.unwrap().into_inner().ready);
    // A model or version not loaded is not ready: an answer, as Triton gives it, not an error.
    assert!(!c.model_ready(ready("nope", "")).await.unwrap().into_inner().ready);
    assert!(!c.model_ready(ready("tiny", "9.9")).await.unwrap().into_inner().ready);

    let meta = c.server_metadata(ServerMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(meta.name, "oxserve");
    assert!(meta.extensions.contains(&"binary_tensor_data".to_owned()), "{meta:?}");
    s.stop().await;

    // The name is a setting (`server_name`), over both transports.
    let server = ServerConfig { server_name: "triton".into(), ..open_server() };
    let s = TestServer::start(Options { server, ..Options::default() }).await;
    let mut c = oip(&s).await;
    let meta = c.server_metadata(ServerMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(meta.name, "triton");
    assert_eq!(s.get(format!("{}/v2", s.inference)).await.1["name"], "triton");

    let m = c
        .model_metadata(ModelMetadataRequest { name: "tiny".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner();
    // The same metadata as REST.
    let (status, rest) = s.get(format!("{}/v2/models/tiny", s.inference)).await;
    assert_eq!(status, 200);
    assert_eq!(m.name, rest["name"]);
    assert_eq!(m.platform, rest["platform"]);
    assert_eq!(json!(m.versions), rest["versions"]);
    assert_eq!(m.inputs.len(), 1);
    assert_eq!(m.inputs[0].name, rest["inputs"][0]["name"]);
    assert_eq!(m.inputs[0].datatype, "FP32");
    assert_eq!(json!(m.inputs[0].shape), rest["inputs"][0]["shape"]);
    assert_eq!(json!(m.outputs[0].shape), rest["outputs"][0]["shape"]);
    let err = c
        .model_metadata(ModelMetadataRequest { name: "nope".into(), version: String::new() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_infer_typed_and_raw_equal_the_json_path() {
    let s = TestServer::default().await;
    let mut c = oip(&s).await;
    let reference = json_answer(&s).await;
    assert_eq!(reference.len(), 10);

    // Typed in, raw out: Triton always answers raw_output_contents, and its clients read only that.
    let typed = c.model_infer(tiny_request(false)).await.unwrap().into_inner();
    assert_eq!((typed.model_name.as_str(), typed.id.as_str()), ("tiny", "req-1"));
    let out = &typed.outputs[0];
    assert_eq!((out.datatype.as_str(), out.shape.as_slice()), ("FP32", &[1, 10][..]));
    assert!(out.contents.is_none());
    assert_eq!(&f32s(&typed.raw_output_contents[0]), &reference);

    // Raw in, raw out.
    let raw = c.model_infer(tiny_request(true)).await.unwrap().into_inner();
    assert!(raw.outputs[0].contents.is_none());
    assert_eq!(&f32s(&raw.raw_output_contents[0]), &reference);

    // Asking for the output by name gives the same; an unknown output is refused.
    let mut named = tiny_request(true);
    named.outputs = vec![InferRequestedOutputTensor {
        name: typed.outputs[0].name.clone(),
        ..Default::default()
    }];
    let answer = c.model_infer(named).await.unwrap().into_inner();
    assert_eq!(&f32s(&answer.raw_output_contents[0]), &reference);
    let mut unknown = tiny_request(true);
    unknown.outputs =
        vec![InferRequestedOutputTensor { name: "nope".into(), ..Default::default() }];
    assert_eq!(c.model_infer(unknown).await.unwrap_err().code(), Code::InvalidArgument);
    let mut twice = tiny_request(true);
    let output =
        InferRequestedOutputTensor { name: typed.outputs[0].name.clone(), ..Default::default() };
    twice.outputs = vec![output.clone(), output];
    assert_eq!(c.model_infer(twice).await.unwrap_err().code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_infer_errors_have_the_http_table_s_codes() {
    let s = TestServer::default().await;
    let mut c = oip(&s).await;
    let code = |r: Result<tonic::Response<ModelInferResponse>, tonic::Status>| {
        let e = r.unwrap_err();
        (e.code(), e.message().to_owned())
    };
    let mut r = tiny_request(false);
    r.model_name = "nope".into();
    assert_eq!(code(c.model_infer(r).await).0, Code::NotFound);

    let mut r = tiny_request(false);
    r.inputs[0].name = "y".into();
    let (c1, m) = code(c.model_infer(r).await);
    assert_eq!(c1, Code::InvalidArgument);
    assert!(m.contains("unknown input"), "{m}");

    let mut r = tiny_request(false);
    r.inputs[0].datatype = "INT64".into();
    assert_eq!(code(c.model_infer(r).await).0, Code::InvalidArgument);

    // Typed contents in the wrong field: zero FP32 elements for a [1, 64] tensor.
    let mut r = tiny_request(false);
    r.inputs[0].contents =
        Some(InferTensorContents { int_contents: vec![1; 64], ..Default::default() });
    assert_eq!(code(c.model_infer(r).await).0, Code::InvalidArgument);

    // Raw bytes that do not fit the shape, and a raw entry count that does not match the inputs.
    let mut r = tiny_request(true);
    r.raw_input_contents[0] = vec![0u8; 7].into();
    let (c1, m) = code(c.model_infer(r).await);
    assert_eq!(c1, Code::InvalidArgument);
    assert!(m.contains("256 bytes"), "{m}");
    let mut r = tiny_request(true);
    r.raw_input_contents.push(vec![0u8; 4].into());
    assert_eq!(code(c.model_infer(r).await).0, Code::InvalidArgument);

    // A missing input, and a timeout parameter that is not an integer.
    let mut r = tiny_request(false);
    r.inputs.clear();
    assert_eq!(code(c.model_infer(r).await).0, Code::InvalidArgument);
    let mut r = tiny_request(false);
    r.parameters = BTreeMap::from([(
        "timeout".to_owned(),
        InferParameter { parameter_choice: Some(ParameterChoice::StringParam("soon".into())) },
    )]);
    assert_eq!(code(c.model_infer(r).await).0, Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_stream_answers_each_request_in_order_and_survives_errors() {
    let s = TestServer::default().await;
    let mut c = oip(&s).await;
    let reference = json_answer(&s).await;
    let mut bad = tiny_request(true);
    bad.id = "bad".into();
    bad.model_name = "nope".into();
    let mut second = tiny_request(false);
    second.id = "req-2".into();
    let requests = vec![tiny_request(true), bad, second];
    let mut answers =
        c.model_stream_infer(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert_eq!(first.error_message, "");
    let first = first.infer_response.unwrap();
    // The stream's requests may run in one batch, whose float sums can differ in the last bits.
    crate::common::assert_close(
        &json!(f32s(&first.raw_output_contents[0])),
        &json!(reference),
        1e-5,
    );
    let failed = answers.message().await.unwrap().unwrap();
    assert!(failed.error_message.contains("not found"), "{failed:?}");
    assert_eq!(failed.infer_response.unwrap().id, "bad");
    let third = answers.message().await.unwrap().unwrap().infer_response.unwrap();
    assert_eq!(third.id, "req-2");
    let contents = f32s(&third.raw_output_contents[0]);
    crate::common::assert_close(&json!(contents), &json!(reference), 1e-5);
    assert!(answers.message().await.unwrap().is_none(), "the stream ends with the requests");
    s.stop().await;
}

/// 150 rows of the slow model take seconds on one worker.
fn slow_request() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "slow".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![150, 1],
            contents: Some(InferTensorContents {
                fp32_contents: vec![1.0; 150],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_honoured() {
    let mut options = Options::default();
    options.engine = EngineConfig {
        default_response_timeout: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    options.models = vec![model("slow", "slow.onnx")];
    let s = TestServer::start(options).await;

    // The client's `grpc-timeout`, sent on a plain HTTP/2 request so that only the server can end
    // the call: the server's answer must be DEADLINE_EXCEEDED (code 4), long before the model would
    // finish. (A tonic client would race the server with its own timer.)
    let message = prost::Message::encode_to_vec(&slow_request());
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2
        .post(format!("{}/inference.GRPCInferenceService/ModelInfer", s.grpc_inference))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["grpc-status"], "4", "{:?}", r.headers());

    // The Open Inference Protocol's `timeout` parameter (microseconds) through a tonic client.
    let mut c = oip(&s).await;
    let mut request = slow_request();
    request.parameters = BTreeMap::from([(
        "timeout".to_owned(),
        InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(100_000)) },
    )]);
    let err = c.model_infer(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limit_are_resource_exhausted() {
    let mut options = Options::default();
    options.server.max_request_size = 200;
    let s = TestServer::start(options).await;
    let mut c = oip(&s).await;
    // 64 floats are 256 bytes: over the limit.
    let err = c.model_infer(tiny_request(true)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let row = serde_json::to_vec(&expected()["tiny"]["input"]).unwrap();
    assert!(row.len() > 200);
    let mut ts = InferenceApIsServiceClient::new(channel(&s.grpc_inference).await);
    let err = ts
        .predictions(PredictionsRequest {
            model_name: "tiny".into(),
            input: BTreeMap::from([("data".to_owned(), row.into())]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // On a stream the oversized message ends the stream with the same code.
    let mut answers = c
        .model_stream_infer(tokio_stream::iter(vec![tiny_request(true)]))
        .await
        .unwrap()
        .into_inner();
    let err = answers.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Small calls still work on the same connection.
    assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_limit_are_resource_exhausted() {
    let mut options = Options::default();
    options.server.max_response_size = 20;
    let s = TestServer::start(options).await;
    let mut c = oip(&s).await;
    let err = c.model_infer(tiny_request(true)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("max_response_size"), "{err:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torchserve_inference_service() {
    let s = TestServer::default().await;
    let mut c = InferenceApIsServiceClient::new(channel(&s.grpc_inference).await);
    let health = c.ping(()).await.unwrap().into_inner().health;
    assert_eq!(serde_json::from_str::<Value>(&health).unwrap()["status"], "Healthy");

    let row = expected()["tiny"]["input"].to_string();
    let (status, http) = s.post(format!("{}/predictions/tiny", s.inference), row.clone()).await;
    assert_eq!(status, 200);
    let request = || PredictionsRequest {
        model_name: "tiny".into(),
        input: BTreeMap::from([("data".to_owned(), row.clone().into_bytes().into())]),
        ..Default::default()
    };
    let answer = c.predictions(request()).await.unwrap().into_inner();
    assert_eq!(serde_json::from_slice::<Value>(&answer.prediction).unwrap(), http);

    let mut stream = c.stream_predictions(request()).await.unwrap().into_inner();
    let only = stream.message().await.unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&only.prediction).unwrap(), http);
    assert!(stream.message().await.unwrap().is_none());

    let mut missing = request();
    missing.model_name = "nope".into();
    assert_eq!(c.predictions(missing).await.unwrap_err().code(), Code::NotFound);
    let mut version = request();
    version.model_version = "9.9".into();
    assert_eq!(c.predictions(version).await.unwrap_err().code(), Code::NotFound);
    let mut empty = request();
    empty.input.clear();
    assert_eq!(c.predictions(empty).await.unwrap_err().code(), Code::InvalidArgument);
    let mut bad = request();
    bad.input = BTreeMap::from([("data".to_owned(), b"not json".to_vec().into())]);
    assert_eq!(c.predictions(bad).await.unwrap_err().code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torchserve_management_service() {
    let s = TestServer::default().await;
    let mut c = ManagementApIsServiceClient::new(channel(&s.grpc_management).await);
    let msg = |r: tonic::Response<
        oxserve_server::grpc::proto::torchserve::management::ManagementResponse,
    >| serde_json::from_str::<Value>(&r.into_inner().msg).unwrap();

    let list = msg(c.list_models(ListModelsRequest::default()).await.unwrap());
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digits", "tiny"]);
    let page =
        msg(c.list_models(ListModelsRequest { limit: 1, next_page_token: 0 }).await.unwrap());
    assert_eq!(page["nextPageToken"], "1");
    // Negative values are "not given", as TorchServe's gRPC reads them: the whole first page.
    let all =
        msg(c.list_models(ListModelsRequest { limit: -1, next_page_token: -3 }).await.unwrap());
    assert_eq!(all["models"].as_array().map(Vec::len), Some(2), "{all}");

    let describe = |name: &str, version: &str| DescribeModelRequest {
        model_name: name.into(),
        model_version: version.into(),
        customized: false,
    };
    let d = msg(c.describe_model(describe("tiny", "")).await.unwrap());
    assert_eq!(d[0]["modelName"], "tiny");
    let (_, http) = s.get(format!("{}/models/tiny", s.management)).await;
    assert_eq!(d[0]["modelVersion"], http[0]["modelVersion"]);
    let version = d[0]["modelVersion"].as_str().unwrap().to_owned();
    assert_eq!(c.describe_model(describe("nope", "")).await.unwrap_err().code(), Code::NotFound);

    // Register a second name for the tiny model, scale it, make a version default, unregister it.
    let register = RegisterModelRequest {
        url: "tiny".into(),
        model_name: "tiny2".into(),
        initial_workers: 1,
        synchronous: true,
        ..Default::default()
    };
    let r = msg(c.register_model(register.clone()).await.unwrap());
    assert!(r["status"].as_str().unwrap().contains("registered with 1 initial workers"), "{r}");
    let again = c.register_model(register).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    let err = c
        .register_model(RegisterModelRequest { url: "missing.mar".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        c.register_model(RegisterModelRequest::default()).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let scale = ScaleWorkerRequest {
        model_name: "tiny2".into(),
        min_worker: 2,
        max_worker: 2,
        synchronous: true,
        ..Default::default()
    };
    let r = msg(c.scale_worker(scale).await.unwrap());
    assert!(r["status"].as_str().unwrap().contains("scaled to 2"), "{r}");
    let d = msg(c.describe_model(describe("tiny2", "all")).await.unwrap());
    assert_eq!(d[0]["minWorkers"], 2);
    let bad = ScaleWorkerRequest {
        model_name: "tiny2".into(),
        min_worker: 3,
        max_worker: 2,
        ..Default::default()
    };
    assert_eq!(c.scale_worker(bad).await.unwrap_err().code(), Code::InvalidArgument);

    let set = |v: &str| SetDefaultRequest { model_name: "tiny2".into(), model_version: v.into() };
    let r = msg(c.set_default(set(&version)).await.unwrap());
    assert!(r["status"].as_str().unwrap().contains("Default version"), "{r}");
    assert_eq!(c.set_default(set("9.9")).await.unwrap_err().code(), Code::NotFound);

    let unregister =
        UnregisterModelRequest { model_name: "tiny2".into(), model_version: String::new() };
    let r = msg(c.unregister_model(unregister.clone()).await.unwrap());
    assert!(r["status"].as_str().unwrap().contains("unregistered"), "{r}");
    assert_eq!(c.unregister_model(unregister).await.unwrap_err().code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_api_switch_holds_over_grpc() {
    let mut options = Options::default();
    options.server.enable_model_api = false;
    let s = TestServer::start(options).await;
    let mut c = ManagementApIsServiceClient::new(channel(&s.grpc_management).await);
    let register =
        RegisterModelRequest { url: "tiny".into(), model_name: "t".into(), ..Default::default() };
    let err = c.register_model(register).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // TorchServe's words, as on HTTP (the log says how to turn the model API on).
    assert!(err.message().contains("Requested method is not allowed"), "{err:?}");
    let unregister =
        UnregisterModelRequest { model_name: "tiny".into(), model_version: String::new() };
    assert_eq!(c.unregister_model(unregister).await.unwrap_err().code(), Code::FailedPrecondition);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_the_grpc_services_as_they_guard_http() {
    let dir = tempfile::tempdir().unwrap();
    let (s, file) = TestServer::with_keys(dir.path()).await;
    let key = |kind: &str| file[kind]["key"].as_str().unwrap().to_owned();
    let with = |token: Option<String>, request: ModelInferRequest| {
        let mut request = tonic::Request::new(request);
        if let Some(t) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        request
    };
    let mut c = oip(&s).await;
    // Health stays open for probes; everything else needs the inference key.
    assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    assert!(c.server_ready(ServerReadyRequest {}).await.unwrap().into_inner().ready);
    let mut ts = InferenceApIsServiceClient::new(channel(&s.grpc_inference).await);
    assert!(ts.ping(()).await.is_ok());

    let err = c.model_infer(with(None, tiny_request(true))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = c.model_infer(with(Some("0".repeat(64)), tiny_request(true))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c.model_infer(with(Some(key("management")), tiny_request(true))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(c.model_infer(with(Some(key("inference")), tiny_request(true))).await.is_ok());
    assert_eq!(
        c.server_metadata(ServerMetadataRequest {}).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut m = ManagementApIsServiceClient::new(channel(&s.grpc_management).await);
    let list = |token: String| {
        let mut r = tonic::Request::new(ListModelsRequest::default());
        r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    assert_eq!(
        m.list_models(list(key("inference"))).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(m.list_models(list(key("management"))).await.is_ok());
    assert_eq!(
        m.list_models(ListModelsRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented() {
    let s = TestServer::default().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2
        .post(format!(
            "{}/inference.GRPCInferenceService/SystemSharedMemoryStatus",
            s.grpc_inference
        ))
        .header("content-type", "application/grpc")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["grpc-status"], "12", "{:?}", r.headers());
    s.stop().await;
}

/// gRPC calls are counted in `Requests2XX/4XX/5XX` and written to the access log as HTTP ones are,
/// their code read back to the HTTP status of the same meaning (NOT_FOUND is 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_counted_and_logged_like_http_ones() {
    let logs = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.metric_log = Some(logs.path().to_path_buf());
    let s = TestServer::start(options).await;
    let mut c = oip(&s).await;
    c.model_infer(tiny_request(false)).await.unwrap();
    c.server_live(ServerLiveRequest {}).await.unwrap();
    let mut r = tiny_request(false);
    r.model_name = "nope".into();
    assert_eq!(c.model_infer(r).await.unwrap_err().code(), Code::NotFound);

    let m = crate::common::scrape(&s).await;
    // A class with no answer yet has no sample at all.
    let count = |class: &str| {
        m.get(&format!("{class}{{Hostname=\"testhost\",Level=\"Host\"}}")).copied().unwrap_or(0.0)
    };
    assert_eq!(count("Requests2XX"), 2.0);
    assert_eq!(count("Requests4XX"), 1.0);
    assert_eq!(count("Requests5XX"), 0.0);

    let infer = "\"POST /inference.GRPCInferenceService/ModelInfer HTTP/2.0\"";
    let want = [format!("{infer} 200"), format!("{infer} 404")];
    let read = || std::fs::read_to_string(logs.path().join("access_log.log")).unwrap_or_default();
    for _ in 0..100 {
        if want.iter().all(|w| read().contains(w.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let access = read();
    for w in &want {
        assert!(access.contains(w.as_str()), "{w} missing:\n{access}");
    }
    s.stop().await;
}

/// Serves `tiny` with `overrides` and sends eight requests on one stream; checks that each is
/// answered without error, in request order, and that the stream then ends.
async fn stream_eight_to_tiny(overrides: ModelOverrides) -> TestServer {
    let mut tiny = model("tiny", "tiny");
    tiny.overrides = overrides;
    let s = TestServer::start(Options { models: vec![tiny], ..Options::default() }).await;
    let mut c = oip(&s).await;
    let requests: Vec<ModelInferRequest> =
        (0..8).map(|i| ModelInferRequest { id: format!("r{i}"), ..tiny_request(true) }).collect();
    let mut answers =
        c.model_stream_infer(tokio_stream::iter(requests)).await.unwrap().into_inner();
    for i in 0..8 {
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!(answer.error_message, "", "request {i}");
        assert_eq!(answer.infer_response.unwrap().id, format!("r{i}"), "answers keep order");
    }
    assert!(answers.message().await.unwrap().is_none());
    s
}

/// A stream's requests are served concurrently, so they fill a batch as concurrent unary calls do:
/// eight requests on one stream to a model with batch size 8 and a 2 s batch delay run as one batch
/// of eight (served one at a time they would be eight batches of one, each waiting out the delay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_s_requests_fill_one_batch() {
    let overrides = ModelOverrides {
        batch_size: Some(8),
        max_batch_delay: Some(2000),
        ..ModelOverrides::default()
    };
    let s = stream_eight_to_tiny(overrides).await;
    // One batch (the histogram's count) of eight requests.
    let m = crate::common::scrape(&s).await;
    assert_eq!(crate::common::get(&m, "oxserve_batch_size{model=\"tiny\",version=\"1.0\"}"), 1.0);
    s.stop().await;
}

/// With `maxConcurrentRequests` 2, a stream's eight requests wait for each other's places instead
/// of refusing each other: all eight are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_within_the_model_s_concurrency_limit() {
    let overrides =
        ModelOverrides { max_concurrent_requests: Some(2), ..ModelOverrides::default() };
    stream_eight_to_tiny(overrides).await.stop().await;
}
