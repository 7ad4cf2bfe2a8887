//! The fast engine: ONNX models on [ONNX Runtime](https://onnxruntime.ai) through the `ort` crate.
//!
//! ONNX Runtime is 1.5–12× faster than tract on the models measured for this project, and it is the
//! way to a GPU. It is a C++ library, though, so it is not linked into the binary: `ort` is built with
//! `load-dynamic` and the shared library is found at run time ([`find_library`]: the config, then
//! `ORT_DYLIB_PATH`, then the `.venv-ort` that `scripts/install-onnxruntime.sh` creates, then the
//! `onnxruntime` Python package). `cargo build` therefore needs nothing but crates.io, and a missing
//! or wrong library is a clear [`OrtSetupError`] when the backend is created, never a panic.
//!
//! `ort`'s `Session::run` takes `&mut self`, so every worker gets its own ONNX Runtime session
//! ([`LoadedModel::new_session`]); nothing is locked while a batch runs. Each session uses
//! `intra_threads` threads (default 1: scale with workers) and full graph optimisation.
//!
//! Devices are chosen per worker ([`LoadedModel::new_session`] takes a [`Device`]), so the workers of
//! one model can be spread over several GPUs. On a GPU the CUDA execution provider is used (TensorRT
//! before it, with FP16 kernels, when [`ModelSource::tensorrt_fp16`] is set). When no GPU provider can
//! be used (a CPU-only ONNX Runtime build, missing CUDA libraries, no GPU) the session runs on the
//! CPU with a logged warning, or the load fails, as [`ModelSource::gpu_fallback`] says;
//! [`Session::device`] and [`OrtModel::provider`] tell where sessions really run.

mod convert;
mod setup;
mod signature;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session as OrtRunSession, SessionInputValue};
use oxserve_backend::{
    Backend, BackendError, LoadedModel, ModelSource, Session, Signature, Tensor,
};

pub use oxserve_backend::{Device, GpuFallback};
pub use setup::{MIN_ONNXRUNTIME, OrtSetupError, find_library};

/// For test suites (this crate's and its dependents'): one policy for tests that need the real
/// library, so a machine without it gets the same instructions everywhere.
#[doc(hidden)]
pub mod testing {
    use super::{OrtBackend, OrtConfig};

    /// The backend on the library found automatically. When it is missing: `None` after a notice
    /// if `OXSERVE_SKIP_ORT=1`, else a panic saying how to install it.
    ///
    /// # Panics
    /// ONNX Runtime is missing and `OXSERVE_SKIP_ORT` is not `1`.
    pub fn backend_or_skip() -> Option<OrtBackend> {
        match OrtBackend::new(OrtConfig::default()) {
            Ok(backend) => Some(backend),
            Err(e) if std::env::var("OXSERVE_SKIP_ORT").as_deref() == Ok("1") => {
                eprintln!("OXSERVE_SKIP_ORT=1: skipping an ONNX Runtime test ({e})");
                None
            }
            Err(e) => panic!(
                "ONNX Runtime is needed for these tests: {e}\n\
                 Run `bash scripts/install-onnxruntime.sh`, or set OXSERVE_SKIP_ORT=1 to skip them."
            ),
        }
    }
}

/// How the ONNX Runtime backend finds its library and builds sessions.
#[derive(Debug, Clone, Default)]
pub struct OrtConfig {
    /// The ONNX Runtime shared library; `None` searches for it (see [`find_library`]).
    pub library: Option<PathBuf>,
    /// Intra-op threads per session when the model does not say ([`ModelSource::intra_threads`]);
    /// `None` means 1, so that throughput scales with workers. `Some(0)` lets ONNX Runtime choose.
    /// Devices, the GPU fallback and TensorRT FP16 are per model: see [`ModelSource`].
    pub intra_threads: Option<usize>,
}

/// The ONNX Runtime engine: the loaded library, its environment and the session settings.
#[derive(Debug, Clone)]
pub struct OrtBackend {
    env: Environment,
    library: PathBuf,
    config: OrtConfig,
}

impl OrtBackend {
    /// Finds and loads ONNX Runtime (once per process) and checks its version.
    ///
    /// # Errors
    /// An [`OrtSetupError`] saying what is wrong and how to fix it: library not found, not a library,
    /// not ONNX Runtime, older than [`MIN_ONNXRUNTIME`], or another library already loaded.
    pub fn new(config: OrtConfig) -> Result<Self, OrtSetupError> {
        let path = find_library(config.library.as_deref())?;
        let (library, env) = setup::environment(&path)?;
        Ok(Self { env, library, config })
    }

    /// The ONNX Runtime library in use (canonical path).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The configuration this backend was made with.
    pub fn config(&self) -> &OrtConfig {
        &self.config
    }

    /// Loads a model and returns the concrete type, which also tells the execution provider in use.
    ///
    /// # Errors
    /// [`BackendError::Load`] when ONNX Runtime cannot load the model or its signature cannot be served.
    pub fn load_model(&self, source: &ModelSource) -> Result<OrtModel, BackendError> {
        OrtModel::load(self, source)
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn load(&self, source: &ModelSource) -> Result<Arc<dyn LoadedModel>, BackendError> {
        Ok(Arc::new(self.load_model(source)?))
    }
}

/// An execution provider a session can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Cpu,
    Cuda { device_id: u32 },
    TensorRt { device_id: u32, fp16: bool },
}

impl Provider {
    /// ONNX Runtime's name for it.
    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "CPUExecutionProvider",
            Self::Cuda { .. } => ep::CUDA::NAME,
            Self::TensorRt { .. } => ep::TensorRT::NAME,
        }
    }

    /// The device sessions built with it run on.
    fn device(self) -> Device {
        match self {
            Self::Cpu => Device::Cpu,
            Self::Cuda { device_id } | Self::TensorRt { device_id, .. } => Device::Gpu(device_id),
        }
    }

    /// Whether this ONNX Runtime build contains the provider at all (the CPU-only PyPI wheel has no
    /// CUDA); `Err` carries ONNX Runtime's message.
    fn compiled_in(self) -> Result<bool, String> {
        let available = match self {
            Self::Cpu => Ok(true),
            Self::Cuda { .. } => ep::CUDA::is_available(),
            Self::TensorRt { .. } => ep::TensorRT::is_available(),
        };
        available.map_err(|e| e.to_string())
    }
}

/// What a session is built from; shared by the model and every session made from it.
#[derive(Debug, Clone)]
struct SessionRecipe {
    env: Environment,
    /// The ONNX Runtime library, named in messages about missing providers.
    library: PathBuf,
    path: PathBuf,
    intra_threads: usize,
    gpu_fallback: GpuFallback,
    tensorrt_fp16: bool,
}

impl SessionRecipe {
    /// Providers to try for `device`, best first: on a GPU, TensorRT (when FP16 is asked for) then
    /// CUDA, then the CPU only when falling back is allowed.
    fn candidates(&self, device: Device) -> Vec<Provider> {
        match device {
            Device::Cpu => vec![Provider::Cpu],
            Device::Gpu(device_id) => {
                let mut list = Vec::with_capacity(3);
                if self.tensorrt_fp16 {
                    list.push(Provider::TensorRt { device_id, fp16: true });
                }
                list.push(Provider::Cuda { device_id });
                if self.gpu_fallback == GpuFallback::Cpu {
                    list.push(Provider::Cpu);
                }
                list
            }
        }
    }

    /// Builds a session on `device`, falling back as configured; returns it with the provider used.
    fn open(&self, device: Device) -> Result<(OrtRunSession, Provider), BackendError> {
        let mut failures: Vec<String> = Vec::new();
        for provider in self.candidates(device) {
            let built = match provider.compiled_in() {
                Ok(true) => self.build(provider),
                Ok(false) => Err(format!(
                    "this ONNX Runtime build ({}) has no {}; install the GPU build with \
                     `ORT_PYPI_PACKAGE=onnxruntime-gpu bash scripts/install-onnxruntime.sh`",
                    self.library.display(),
                    provider.name()
                )),
                Err(e) => Err(e),
            };
            match built {
                Ok(session) => {
                    if provider == Provider::Cpu && device.is_gpu() {
                        tracing::warn!(
                            model = %self.path.display(),
                            asked = %device,
                            reasons = %failures.join("; "),
                            "GPU unusable; falling back to the CPU (set gpu_fallback=error to refuse instead)"
                        );
                    }
                    return Ok((session, provider));
                }
                Err(e) => {
                    if provider != Provider::Cpu {
                        tracing::debug!(model = %self.path.display(), provider = provider.name(), error = %e, "execution provider unusable");
                    }
                    failures.push(format!("{}: {e}", provider.name()));
                }
            }
        }
        let reason = if device.is_gpu() && self.gpu_fallback == GpuFallback::Error {
            format!(
                "{device} was asked for but cannot be used, and gpu_fallback=error forbids running \
                 on the CPU instead ({})",
                failures.join("; ")
            )
        } else {
            failures.join("; ")
        };
        Err(BackendError::Load { path: self.path.clone(), source: reason.into() })
    }

    fn build(&self, provider: Provider) -> Result<OrtRunSession, String> {
        let device =
            |id: u32| i32::try_from(id).map_err(|_| format!("device id {id} is too large"));
        let providers = match provider {
            Provider::Cpu => Vec::new(),
            Provider::Cuda { device_id } => {
                vec![ep::CUDA::default().with_device_id(device(device_id)?).build()]
            }
            // TensorRT takes the subgraphs it supports; CUDA runs the rest on the same GPU.
            Provider::TensorRt { device_id, fp16 } => vec![
                ep::TensorRT::default().with_device_id(device(device_id)?).with_fp16(fp16).build(),
                ep::CUDA::default().with_device_id(device(device_id)?).build(),
            ],
        };
        // By default `ort` only logs a provider that fails to register; fail instead, so the caller
        // knows the session would silently run on the CPU.
        let providers: Vec<_> = providers.into_iter().map(|p| p.error_on_failure()).collect();
        let text = |e: ort::Error<_>| e.to_string();
        let mut builder = OrtRunSession::builder(&self.env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(text)?
            .with_intra_threads(self.intra_threads)
            .map_err(text)?;
        if !providers.is_empty() {
            builder = builder.with_execution_providers(providers).map_err(text)?;
        }
        builder.commit_from_file(&self.path).map_err(|e| e.to_string())
    }
}

/// A model loaded in ONNX Runtime, shared by all its workers.
#[derive(Debug)]
pub struct OrtModel {
    signature: Arc<Signature>,
    recipe: SessionRecipe,
    /// The provider the load-time session uses.
    provider: Provider,
    /// The session `load` built to read the signature, with the device it was asked for, handed to
    /// the first worker asking for that device so that a large model is not optimised twice. Locked
    /// only in `new_session`, never while running.
    spare: Mutex<Option<(Device, OrtRunSession, Provider)>>,
}

impl OrtModel {
    fn load(backend: &OrtBackend, source: &ModelSource) -> Result<Self, BackendError> {
        let recipe = SessionRecipe {
            env: backend.env.clone(),
            library: backend.library.clone(),
            path: source.path.clone(),
            intra_threads: source.intra_threads.or(backend.config.intra_threads).unwrap_or(1),
            gpu_fallback: source.gpu_fallback,
            tensorrt_fp16: source.tensorrt_fp16,
        };
        let (session, provider) = recipe.open(source.device)?;
        let signature = signature::from_session(&session).map_err(|reason| BackendError::Load {
            path: source.path.clone(),
            source: reason.into(),
        })?;
        tracing::info!(
            model = %recipe.path.display(),
            asked = %source.device,
            provider = provider.name(),
            intra_threads = recipe.intra_threads,
            "loaded model in ONNX Runtime"
        );
        Ok(Self {
            signature: Arc::new(signature),
            recipe,
            provider,
            spare: Mutex::new(Some((source.device, session, provider))),
        })
    }

    /// The execution provider the model was loaded with, as ONNX Runtime names it:
    /// `"CPUExecutionProvider"`, `"CUDAExecutionProvider"` or `"TensorrtExecutionProvider"`.
    /// Each worker's session may differ (another GPU, or a fallback): see [`Session::device`].
    pub fn provider(&self) -> &str {
        self.provider.name()
    }

    /// Intra-op threads per session.
    pub fn intra_threads(&self) -> usize {
        self.recipe.intra_threads
    }
}

impl LoadedModel for OrtModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn new_session(&self, device: Device) -> Result<Box<dyn Session>, BackendError> {
        let spare = {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            if spare.as_ref().is_some_and(|(asked, _, _)| *asked == device) {
                spare.take()
            } else {
                None
            }
        };
        let (session, provider) = match spare {
            Some((_, session, provider)) => (session, provider),
            None => self.recipe.open(device)?,
        };
        Ok(Box::new(OrtSession {
            session,
            signature: Arc::clone(&self.signature),
            device: provider.device(),
        }))
    }
}

/// One worker's ONNX Runtime session.
#[derive(Debug)]
pub struct OrtSession {
    session: OrtRunSession,
    signature: Arc<Signature>,
    /// Where it runs, after any fallback.
    device: Device,
}

impl Session for OrtSession {
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let specs = &self.signature.inputs;
        if inputs.len() != specs.len() {
            let name = specs.get(inputs.len()).map_or("(extra input)", |s| s.name.as_str());
            return Err(BackendError::InvalidInput {
                name: name.to_owned(),
                reason: format!("the model takes {} inputs, got {}", specs.len(), inputs.len()),
            });
        }
        let values = inputs
            .into_iter()
            .zip(specs)
            .map(|(t, spec)| convert::to_ort(t, spec))
            .collect::<Result<Vec<SessionInputValue<'static>>, _>>()?;
        let outputs = self
            .session
            .run(values.as_slice())
            .map_err(|e| BackendError::Inference(Box::new(e)))?;
        let declared = &self.signature.outputs;
        if outputs.len() != declared.len() {
            return Err(BackendError::Output(format!(
                "the model returned {} outputs but declares {}",
                outputs.len(),
                declared.len()
            )));
        }
        declared.iter().enumerate().map(|(i, spec)| convert::from_ort(&outputs[i], spec)).collect()
    }

    fn device(&self) -> Device {
        self.device
    }
}
