//! One ImageNet-sized tensor ([1,3,224,224] FP32, 602 KB) over the Open Inference Protocol three
//! ways: JSON REST, binary REST (the binary tensor extension) and gRPC (raw contents), at 1 and 16
//! concurrent clients.
//!
//! What it shows: what carrying a large tensor costs per protocol. The model
//! (`tests/fixtures/models/image_mean.onnx`, a per-channel mean) is trivial so that transport and
//! (de)serialisation dominate. Request bodies are encoded once up front, so the figures are the
//! server's cost plus the loopback transfer, not the client's encoding; tritonclient users also pay
//! the client side, which is larger still for JSON. Each mode's answer is checked against the
//! others before timing. The ratios between modes in one run are the figures to read: absolute
//! numbers move with the machine.
//!
//! Run with `cargo bench -p oxserve-server --bench protocols` (add `-- --quick` for a short run).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::{RegisterRequest, Registry};
use oxserve_server::grpc::proto::inference::ModelInferRequest;
use oxserve_server::grpc::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxserve_server::grpc::proto::inference::model_infer_request::InferInputTensor;
use oxserve_server::{Server, ServerConfig};
use serde_json::{Value, json};
use tonic::transport::Channel;

const SHAPE: [usize; 4] = [1, 3, 224, 224];

fn image() -> Vec<f32> {
    let n: usize = SHAPE.iter().product();
    (0..n).map(|i| ((i as f32) * 0.0137).sin()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Binary,
    Grpc,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON REST",
            Self::Binary => "binary REST",
            Self::Grpc => "gRPC (raw)",
        }
    }
}

/// A ready request of one mode; `send` answers the three channel means.
#[derive(Clone)]
enum Prepared {
    Http { client: reqwest::Client, url: String, body: Bytes, header_length: Option<usize> },
    Grpc { client: GrpcInferenceServiceClient<Channel>, request: Arc<ModelInferRequest> },
}

impl Prepared {
    async fn send(&mut self) -> Vec<f32> {
        match self {
            Self::Http { client, url, body, header_length } => {
                let mut r = client.post(url.as_str()).body(body.clone());
                if let Some(n) = header_length {
                    r = r.header("inference-header-content-length", *n);
                }
                let r = r.send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                answer["outputs"][0]["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            }
            Self::Grpc { client, request } => {
                let answer = client.model_infer((**request).clone()).await.unwrap().into_inner();
                answer.raw_output_contents[0]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            }
        }
    }
}

async fn prepare(mode: Mode, http: SocketAddr, grpc: &Channel) -> Prepared {
    let data = image();
    let shape: Vec<usize> = SHAPE.to_vec();
    let url = format!("http://{http}/v2/models/image_mean/infer");
    // One client per mode: reqwest keeps a pool of keep-alive HTTP/1.1 connections, one per
    // concurrent request; the gRPC channel multiplexes every request over one HTTP/2 connection,
    // as tritonclient's does.
    let client = reqwest::Client::new();
    match mode {
        Mode::Json => {
            let body = json!({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                                          "data": data}]});
            Prepared::Http {
                client,
                url,
                body: serde_json::to_vec(&body).unwrap().into(),
                header_length: None,
            }
        }
        Mode::Binary => {
            let header = json!({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                                            "parameters": {"binary_data_size": data.len() * 4}}]});
            let mut body = serde_json::to_vec(&header).unwrap();
            let header_length = body.len();
            body.extend(data.iter().flat_map(|x| x.to_le_bytes()));
            Prepared::Http { client, url, body: body.into(), header_length: Some(header_length) }
        }
        Mode::Grpc => {
            let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            let request = ModelInferRequest {
                model_name: "image_mean".into(),
                inputs: vec![InferInputTensor {
                    name: "image".into(),
                    datatype: "FP32".into(),
                    shape: SHAPE.iter().map(|&d| d as i64).collect(),
                    ..Default::default()
                }],
                raw_input_contents: vec![raw.into()],
                ..Default::default()
            };
            Prepared::Grpc {
                client: GrpcInferenceServiceClient::new(grpc.clone())
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20),
                request: Arc::new(request),
            }
        }
    }
}

async fn run(scale: usize) {
    let dir = tempfile::tempdir().unwrap();
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/image_mean.onnx");
    std::fs::copy(model, dir.path().join("image_mean.onnx")).unwrap();
    let engine = EngineConfig {
        model_store: dir.path().to_path_buf(),
        job_queue_size: 1000,
        ..EngineConfig::default()
    };
    let registry =
        Arc::new(Registry::new(engine, Arc::new(TractBackend), oxserve_handlers::builtins()));
    let overrides =
        ModelOverrides { min_workers: Some(2), batch_size: Some(1), ..ModelOverrides::default() };
    let request = RegisterRequest {
        url: "image_mean.onnx".into(),
        model_name: Some("image_mean".into()),
        overrides,
        synchronous: true,
        ..Default::default()
    };
    registry.register(request).await.unwrap();
    let config = ServerConfig {
        max_request_size: 64 << 20,
        max_response_size: 64 << 20,
        auth: None,
        ..ServerConfig::on_free_ports()
    };
    let server = Server::bind(config, Arc::clone(&registry)).await.unwrap();
    let http = server.inference_addr();
    let grpc = Channel::from_shared(format!("http://{}", server.grpc_inference_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let modes = [Mode::Json, Mode::Binary, Mode::Grpc];
    let mut prepared = Vec::new();
    let mut answers = Vec::new();
    for mode in modes {
        let mut p = prepare(mode, http, &grpc).await;
        // Warm up connections and plans, and keep one answer to compare.
        for _ in 0..10 {
            p.send().await;
        }
        answers.push(p.send().await);
        prepared.push(p);
    }
    assert!(answers.iter().all(|a| a == &answers[0] && a.len() == 3), "{answers:?}");

    println!("| protocol | clients | req/s | p50 ms | p99 ms | req/s vs JSON REST |");
    println!("|---|---|---|---|---|---|");
    for clients in [1, 16] {
        let mut json_rate = 0.0;
        for (mode, p) in modes.iter().zip(&prepared) {
            let total = if clients == 1 { 40 * scale } else { 160 * scale };
            let p = p.clone();
            let send = move || {
                let mut p = p.clone();
                async move {
                    std::hint::black_box(p.send().await);
                }
            };
            let m = common::closed_loop(clients, total, send).await;
            if *mode == Mode::Json {
                json_rate = m.throughput;
            }
            println!(
                "| {} | {clients} | {:.1} | {:.2} | {:.2} | {:.2} |",
                mode.name(),
                m.throughput,
                m.p50.as_secs_f64() * 1e3,
                m.p99.as_secs_f64() * 1e3,
                m.throughput / json_rate
            );
        }
    }
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || registry.shutdown()).await.unwrap();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(scale));
}
