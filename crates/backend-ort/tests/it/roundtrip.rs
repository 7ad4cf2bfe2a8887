//! ONNX Runtime against tract on the project's models, plus the setup and load failures.
//!
//! These tests need the ONNX Runtime library: run `bash scripts/install-onnxruntime.sh` once (it is
//! then found automatically). Without it they fail, unless `OXSERVE_SKIP_ORT=1` is set, in which case
//! they print a notice and pass.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use half::f16;
use oxserve_backend::{
    Backend, BackendError, DType, Dim, LoadedModel, ModelSource, Tensor, TensorData,
};
use oxserve_backend_ort::{
    Device, GpuFallback, OrtBackend, OrtConfig, OrtSetupError, find_library,
};
use oxserve_backend_tract::TractBackend;

/// Agreement required between ONNX Runtime and tract.
const TOLERANCE: f32 = 1e-4;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn ort() -> Option<OrtBackend> {
    oxserve_backend_ort::testing::backend_or_skip()
}

fn source(path: PathBuf) -> ModelSource {
    ModelSource { path, ..ModelSource::default() }
}

fn run(model: &dyn LoadedModel, inputs: Vec<Tensor>) -> Vec<Tensor> {
    let mut session = model.new_session(Device::Cpu).expect("session");
    session.run(inputs).expect("run")
}

/// Deterministic values in [-1, 1) (a small LCG, so no `rand` dependency).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let top = u32::try_from(state >> 40).expect("24 bits");
            f32::from(u16::try_from(top >> 8).expect("16 bits")) / 32768.0 - 1.0
        })
        .collect()
}

fn f32s(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
    Tensor::new(shape, TensorData::F32(data)).expect("tensor")
}

fn as_f32(t: &Tensor) -> &[f32] {
    match t.data() {
        TensorData::F32(v) => v,
        other => panic!("expected FP32, got {}", other.dtype()),
    }
}

/// Largest absolute difference; panics on shape or dtype mismatch.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    as_f32(a).iter().zip(as_f32(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Loads `path` in both engines, checks the signatures agree, runs `inputs` and returns
/// (ort outputs, tract outputs).
fn both(ort: &OrtBackend, path: PathBuf, inputs: Vec<Tensor>) -> (Vec<Tensor>, Vec<Tensor>) {
    let ort_model = ort.load(&source(path.clone())).expect("ort load");
    let tract_model = TractBackend.load(&source(path)).expect("tract load");
    assert_eq!(ort_model.signature(), tract_model.signature());
    (run(&*ort_model, inputs.clone()), run(&*tract_model, inputs))
}

#[test]
fn tiny_matches_tract_at_batch_1_and_3() {
    let Some(ort) = ort() else { return };
    for batch in [1, 3] {
        let input = f32s(vec![batch, 64], values(batch * 64, 7));
        let (o, t) = both(&ort, repo("examples/models/tiny.onnx"), vec![input]);
        assert_eq!(o[0].shape(), &[batch, 10]);
        let diff = max_diff(&o[0], &t[0]);
        eprintln!("tiny batch {batch}: max |ort - tract| = {diff:e}");
        assert!(diff <= TOLERANCE, "batch {batch}: {diff}");
    }
}

/// The first sample of the digits test split (examples/inputs/digit.json), then random pixel rows.
fn digit_rows() -> Tensor {
    let text = std::fs::read_to_string(repo("examples/inputs/digit.json")).expect("digit.json");
    let mut data: Vec<f32> = text
        .trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace())
        .split(',')
        .map(|v| v.trim().parse().expect("number"))
        .collect();
    assert_eq!(data.len(), 64);
    data.extend(values(4 * 64, 3).iter().map(|v| ((v + 1.0) * 8.0).floor()));
    f32s(vec![5, 64], data)
}

#[test]
fn digits_mlp_labels_equal_and_probabilities_close() {
    let Some(ort) = ort() else { return };
    let (o, t) = both(&ort, repo("examples/models/digits_mlp.onnx"), vec![digit_rows()]);
    assert_eq!(o[0].dtype(), DType::I64);
    assert_eq!(o[0], t[0], "labels");
    let diff = max_diff(&o[1], &t[1]);
    eprintln!("digits_mlp: labels {:?}, max |ort - tract| probability = {diff:e}", o[0].data());
    assert!(diff <= TOLERANCE, "{diff}");
}

#[test]
fn multi_io_int64_and_f32_inputs_match_tract() {
    let Some(ort) = ort() else { return };
    let x = Tensor::new(vec![2, 4], TensorData::I64(vec![1, 2, 3, 4, -5, 6, -7, 8])).expect("x");
    let y = f32s(vec![2, 4], values(8, 11));
    let (o, t) = both(&ort, repo("tests/fixtures/models/multi_io.onnx"), vec![x, y.clone()]);
    let diff = max_diff(&o[0], &t[0]);
    eprintln!("multi_io: max |ort - tract| = {diff:e}");
    assert!(diff <= TOLERANCE);
    assert_eq!(o[1], t[1]);
    assert_eq!(o[1].data(), &TensorData::I64(vec![2, 4, 6, 8, -10, 12, -14, 16]));
    assert!((as_f32(&o[0])[0] - (1.0 + as_f32(&y)[0])).abs() < 1e-6);
}

#[test]
fn fixed_batch_matches_tract() {
    let Some(ort) = ort() else { return };
    let model = ort.load(&source(repo("tests/fixtures/models/fixed_batch.onnx"))).expect("load");
    assert_eq!(model.signature().inputs[0].shape, vec![Dim::Fixed(1), Dim::Fixed(4)]);
    let (o, t) = both(
        &ort,
        repo("tests/fixtures/models/fixed_batch.onnx"),
        vec![f32s(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])],
    );
    assert_eq!(as_f32(&o[0]), &[3.0, 6.0, 9.0, 12.0]);
    assert!(max_diff(&o[0], &t[0]) <= TOLERANCE);
}

#[test]
fn fp16_model_runs_with_f16_tensors() {
    let Some(ort) = ort() else { return };
    let model = ort.load(&source(repo("tests/fixtures/models/fp16_add.onnx"))).expect("load");
    let spec = &model.signature().inputs[0];
    assert_eq!((spec.dtype, spec.shape.clone()), (DType::F16, vec![Dim::Dynamic, Dim::Fixed(4)]));
    assert_eq!(model.signature().outputs[0].dtype, DType::F16);
    let x: Vec<f16> = values(8, 5).into_iter().map(f16::from_f32).collect();
    let want: Vec<f16> = x.iter().map(|v| *v + *v).collect();
    let out = run(&*model, vec![Tensor::new(vec![2, 4], TensorData::F16(x)).expect("x")]);
    assert_eq!(out[0].shape(), &[2, 4]);
    assert_eq!(out[0].data(), &TensorData::F16(want));
}

#[test]
fn every_dtype_round_trips_through_identity() {
    let Some(ort) = ort() else { return };
    let model = ort.load(&source(fixture("identity_all.onnx"))).expect("load");
    let inputs: Vec<Tensor> = [
        TensorData::Bool(vec![true, false, false, true]),
        TensorData::U8(vec![0, 1, 254, 255]),
        TensorData::U16(vec![0, 1, 65_534, 65_535]),
        TensorData::U32(vec![0, 1, u32::MAX - 1, u32::MAX]),
        TensorData::U64(vec![0, 1, u64::MAX - 1, u64::MAX]),
        TensorData::I8(vec![i8::MIN, -1, 0, i8::MAX]),
        TensorData::I16(vec![i16::MIN, -1, 0, i16::MAX]),
        TensorData::I32(vec![i32::MIN, -1, 0, i32::MAX]),
        TensorData::I64(vec![i64::MIN, -1, 0, i64::MAX]),
        TensorData::F16(vec![f16::MIN, f16::from_f32(-0.5), f16::ZERO, f16::MAX]),
        TensorData::F32(vec![f32::MIN, -0.5, 1e-30, f32::MAX]),
        TensorData::F64(vec![f64::MIN, -0.5, 1e-300, f64::MAX]),
        TensorData::Bytes(vec![b"".to_vec(), b"abc".to_vec(), "h\u{e9}".into(), b"x y".to_vec()]),
    ]
    .into_iter()
    .map(|d| Tensor::new(vec![2, 2], d).expect("tensor"))
    .collect();
    let dtypes: Vec<DType> = model.signature().inputs.iter().map(|s| s.dtype).collect();
    assert_eq!(dtypes, inputs.iter().map(Tensor::dtype).collect::<Vec<_>>());
    assert_eq!(dtypes.len(), DType::ALL.len());
    assert_eq!(run(&*model, inputs.clone()), inputs);
}

#[test]
fn wrong_dtype_or_count_is_invalid_input() {
    let Some(ort) = ort() else { return };
    let model = ort.load(&source(repo("examples/models/tiny.onnx"))).expect("load");
    let mut session = model.new_session(Device::Cpu).expect("session");
    let ints = Tensor::new(vec![1, 64], TensorData::I64(vec![0; 64])).expect("t");
    let err = session.run(vec![ints]).expect_err("i64 into an f32 input");
    assert!(matches!(&err, BackendError::InvalidInput { name, .. } if name == "input"), "{err}");
    let err = session.run(vec![]).expect_err("no inputs");
    assert!(matches!(err, BackendError::InvalidInput { .. }), "{err}");
    // The session is still usable afterwards.
    assert_eq!(session.run(vec![f32s(vec![2, 64], values(128, 1))]).expect("run")[0].rows(), 2);
}

#[test]
fn workers_run_their_own_sessions_concurrently() {
    let Some(ort) = ort() else { return };
    let model: Arc<dyn LoadedModel> =
        ort.load(&source(repo("examples/models/tiny.onnx"))).expect("load");
    let input = f32s(vec![3, 64], values(192, 9));
    let expected = run(&*model, vec![input.clone()]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (model, input) = (Arc::clone(&model), input.clone());
            std::thread::spawn(move || {
                let mut session = model.new_session(Device::Cpu).expect("session");
                (0..20).map(|_| session.run(vec![input.clone()]).expect("run")).last()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("worker").expect("ran"), expected);
    }
}

#[test]
fn model_source_threads_override_the_config() {
    let Some(ort) = ort() else { return };
    let ort = OrtBackend::new(OrtConfig { intra_threads: Some(3), ..ort.config().clone() })
        .expect("same library again");
    let path = repo("examples/models/tiny.onnx");
    assert_eq!(ort.load_model(&source(path.clone())).expect("load").intra_threads(), 3);
    let two = ModelSource { path, intra_threads: Some(2), ..ModelSource::default() };
    let model = ort.load_model(&two).expect("load");
    assert_eq!(model.intra_threads(), 2);
    assert_eq!(run(&model, vec![f32s(vec![1, 64], values(64, 2))])[0].shape(), &[1, 10]);
}

/// Log lines written while `f` runs on this thread.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture(Arc::default());
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    (out, text)
}

/// Where ONNX Runtime really ran `device`: the CPU on this project's machines (the PyPI wheel is
/// CPU-only), a GPU provider with `onnxruntime-gpu` on a CUDA machine.
fn gpu_usable(ort: &OrtBackend, path: &Path) -> bool {
    let gpu = ModelSource {
        path: path.to_path_buf(),
        device: Device::Gpu(0),
        gpu_fallback: GpuFallback::Error,
        ..ModelSource::default()
    };
    ort.load_model(&gpu).is_ok()
}

#[test]
fn gpu_request_without_a_usable_gpu_falls_back_to_cpu() {
    let Some(ort) = ort() else { return };
    let path = repo("examples/models/tiny.onnx");
    if gpu_usable(&ort, &path) {
        eprintln!("a GPU is usable here: the fallback cannot be observed; skipping");
        return;
    }
    let input = f32s(vec![2, 64], values(128, 4));
    let want = run(&ort.load_model(&source(path.clone())).expect("cpu"), vec![input.clone()]);
    for tensorrt_fp16 in [false, true] {
        let gpu = ModelSource {
            path: path.clone(),
            device: Device::Gpu(0),
            tensorrt_fp16,
            ..ModelSource::default()
        };
        let (model, logs) = logs_of(|| ort.load_model(&gpu));
        let model = model.expect("falls back instead of failing");
        eprintln!("GPU asked (tensorrt_fp16={tensorrt_fp16}): {}\n{logs}", model.provider());
        assert_eq!(model.provider(), "CPUExecutionProvider");
        assert!(logs.contains("WARN") && logs.contains("falling back to the CPU"), "{logs}");
        assert!(logs.contains("gpu:0") && logs.contains("CUDAExecutionProvider"), "{logs}");
        if tensorrt_fp16 {
            assert!(logs.contains("TensorrtExecutionProvider"), "TensorRT tried first: {logs}");
        }
        // Each worker's session says where it really runs: the spare from the load for GPU 0, a
        // new session for GPU 1, both on the CPU, each fallback logged.
        for device in [Device::Gpu(0), Device::Gpu(1), Device::Cpu] {
            let (session, logs) = logs_of(|| model.new_session(device));
            let mut session = session.expect("session");
            assert_eq!(session.device(), Device::Cpu, "{device}");
            if device == Device::Gpu(1) {
                assert!(logs.contains("gpu:1") && logs.contains("falling back"), "{logs}");
            }
            let got = session.run(vec![input.clone()]).expect("run");
            assert!(max_diff(&got[0], &want[0]) <= 0.0);
        }
    }
}

#[test]
fn gpu_request_with_fallback_error_is_a_clear_load_error() {
    let Some(ort) = ort() else { return };
    let path = repo("examples/models/tiny.onnx");
    if gpu_usable(&ort, &path) {
        eprintln!("a GPU is usable here: nothing to refuse; skipping");
        return;
    }
    let gpu = ModelSource {
        path: path.clone(),
        device: Device::Gpu(0),
        gpu_fallback: GpuFallback::Error,
        ..ModelSource::default()
    };
    let err = ort.load_model(&gpu).expect_err("no usable GPU");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(&err, BackendError::Load { path: p, .. } if *p == path), "{err:?}");
    assert!(text.contains("gpu:0") && text.contains("gpu_fallback=error"), "{text}");
    assert!(text.contains("CUDAExecutionProvider"), "{text}");
    // A CPU model loaded with the same policy can still not make GPU sessions.
    let model = ort
        .load_model(&ModelSource { gpu_fallback: GpuFallback::Error, ..source(path) })
        .expect("cpu");
    let err = model.new_session(Device::Gpu(2)).err().expect("no GPU 2");
    assert!(err.to_string().contains("gpu:2"), "{err}");
    assert_eq!(model.new_session(Device::Cpu).expect("cpu").device(), Device::Cpu);
}

#[test]
fn missing_library_path_is_a_clear_error() {
    let path = PathBuf::from("/nonexistent/libonnxruntime.so.1.32.0");
    let err = find_library(Some(&path)).expect_err("missing");
    assert!(matches!(err, OrtSetupError::Missing { .. }), "{err:?}");
    let err = OrtBackend::new(OrtConfig { library: Some(path), ..OrtConfig::default() })
        .expect_err("missing");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("/nonexistent/libonnxruntime.so.1.32.0"), "{text}");
    assert!(text.contains("install-onnxruntime.sh") && text.contains("ORT_DYLIB_PATH"), "{text}");
}

#[test]
fn text_file_named_like_the_library_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, "this is not a shared library\n").expect("write");
    let err = OrtBackend::new(OrtConfig { library: Some(fake), ..OrtConfig::default() })
        .expect_err("not a library");
    assert!(matches!(err, OrtSetupError::NotALibrary { .. }), "{err:?}");
    eprintln!("{err}");
    assert!(err.to_string().contains("install-onnxruntime.sh"), "{err}");
    let err = OrtBackend::new(OrtConfig {
        library: Some(dir.path().to_path_buf()),
        ..OrtConfig::default()
    })
    .expect_err("a folder");
    assert!(matches!(err, OrtSetupError::NotALibrary { .. }), "{err:?}");
}

#[test]
fn a_second_library_in_one_process_is_refused() {
    let Some(ort) = ort() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::copy(ort.library(), &copy).expect("copy");
    let err = OrtBackend::new(OrtConfig { library: Some(copy), ..OrtConfig::default() })
        .expect_err("already loaded");
    assert!(matches!(err, OrtSetupError::AlreadyLoaded { .. }), "{err:?}");
    eprintln!("{err}");
    // The same file again is fine.
    let again = OrtConfig { library: Some(ort.library().to_path_buf()), ..OrtConfig::default() };
    assert_eq!(OrtBackend::new(again).expect("same library").library(), ort.library());
}

#[test]
fn garbage_model_is_a_load_error() {
    let Some(ort) = ort() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07garbage, not a protobuf model \xff\xfe").expect("write");
    let err = ort.load(&source(garbage.clone())).expect_err("garbage");
    assert!(matches!(&err, BackendError::Load { path, .. } if *path == garbage), "{err}");
    eprintln!("{err}");
    let err = ort.load(&source(dir.path().join("absent.onnx"))).expect_err("absent");
    assert!(matches!(err, BackendError::Load { .. }), "{err}");
}
