//! In-process latency of ONNX Runtime against the embedded tract engine, same models and inputs.
//!
//! What it catches: a regression in either engine's hot path (tensor conversion, session reuse, the
//! per-shape plan cache) and tells users what switching engines buys. Models: the example models
//! and, when present, a real CNN (`OXSERVE_BENCH_CNN`, default `../shared/models/efficientnet_lite0.onnx`).
//!
//! Run with `cargo bench -p oxserve-backend-ort --bench engines` (needs scripts/install-onnxruntime.sh).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxserve_backend::{Backend, Device, Dim, ModelSource, Session, Tensor, TensorData};
use oxserve_backend_ort::{OrtBackend, OrtConfig};
use oxserve_backend_tract::TractBackend;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// A deterministic batch for the model's single f32 input.
fn input(backend: &dyn Backend, path: &Path, batch: usize) -> Vec<Tensor> {
    let model = backend
        .load(&ModelSource {
            path: path.to_path_buf(),
            intra_threads: Some(1),
            ..ModelSource::default()
        })
        .unwrap();
    let spec = &model.signature().inputs[0];
    let mut shape: Vec<usize> =
        spec.shape.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
    shape[0] = batch;
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
    vec![Tensor::new(shape, TensorData::F32(data)).unwrap()]
}

/// Median time of one `run` over `iterations` after a warm-up.
fn median(session: &mut dyn Session, inputs: &[Tensor], iterations: usize) -> Duration {
    for _ in 0..3 {
        session.run(inputs.to_vec()).unwrap();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(session.run(inputs.to_vec()).unwrap());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let ort =
        OrtBackend::new(OrtConfig::default()).expect("run scripts/install-onnxruntime.sh first");
    let cnn = std::env::var("OXSERVE_BENCH_CNN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo("../shared/models/efficientnet_lite0.onnx"));
    let mut models = vec![
        ("tiny MLP", repo("examples/models/tiny.onnx"), 2000),
        ("digits MLP", repo("examples/models/digits_mlp.onnx"), 2000),
    ];
    if cnn.exists() {
        models.push(("EfficientNet-Lite0 224²", cnn, 10));
    }
    println!("| model | batch | tract ms | ONNX Runtime ms | tract / ORT |");
    println!("|---|---|---|---|---|");
    for (name, path, iterations) in models {
        for batch in [1, 8] {
            let inputs = input(&TractBackend, &path, batch);
            let source = ModelSource {
                path: path.clone(),
                intra_threads: Some(1),
                ..ModelSource::default()
            };
            let mut tract = TractBackend.load(&source).unwrap().new_session(Device::Cpu).unwrap();
            let mut onnx = ort.load(&source).unwrap().new_session(Device::Cpu).unwrap();
            let t = median(tract.as_mut(), &inputs, iterations);
            let o = median(onnx.as_mut(), &inputs, iterations);
            println!(
                "| {name} | {batch} | {:.3} | {:.3} | {:.1}× |",
                t.as_secs_f64() * 1e3,
                o.as_secs_f64() * 1e3,
                t.as_secs_f64() / o.as_secs_f64()
            );
        }
    }
}
