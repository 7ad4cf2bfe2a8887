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
//! With [`Device::Gpu`] the CUDA execution provider (and TensorRT before it with
//! [`OrtConfig::fp16_tensorrt`]) is tried when the model is loaded; when it cannot be used (a CPU-only
//! ONNX Runtime build, missing CUDA libraries, no GPU) a warning is logged and the model runs on the
//! CPU. [`OrtModel::provider`] tells which provider was chosen.

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

pub use setup::{MIN_ONNXRUNTIME, OrtSetupError, find_library};

/// Where sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// A CUDA GPU, falling back to the CPU (with a warning) when it cannot be used.
    Gpu {
        /// The CUDA device ordinal.
        device_id: u32,
    },
}

/// How the ONNX Runtime backend finds its library and builds sessions.
#[derive(Debug, Clone, Default)]
pub struct OrtConfig {
    /// The ONNX Runtime shared library; `None` searches for it (see [`find_library`]).
    pub library: Option<PathBuf>,
    /// Intra-op threads per session when the model does not say ([`ModelSource::intra_threads`]);
    /// `None` means 1, so that throughput scales with workers. `Some(0)` lets ONNX Runtime choose.
    pub intra_threads: Option<usize>,
    /// CPU or GPU.
    pub device: Device,
    /// On a GPU, try TensorRT with FP16 kernels before plain CUDA.
    pub fp16_tensorrt: bool,
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
        "ort"
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
    path: PathBuf,
    intra_threads: usize,
    provider: Provider,
}

impl SessionRecipe {
    fn build(&self) -> Result<OrtRunSession, String> {
        let device =
            |id: u32| i32::try_from(id).map_err(|_| format!("device id {id} is too large"));
        let providers = match self.provider {
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
    /// The session `load` built to read the signature, handed to the first worker so that a large
    /// model is not optimised twice. Locked only in `new_session`, never while running.
    spare: Mutex<Option<OrtRunSession>>,
}

impl OrtModel {
    fn load(backend: &OrtBackend, source: &ModelSource) -> Result<Self, BackendError> {
        let path = source.path.clone();
        let intra_threads = source.intra_threads.or(backend.config.intra_threads).unwrap_or(1);
        let candidates = match backend.config.device {
            Device::Cpu => vec![Provider::Cpu],
            Device::Gpu { device_id } if backend.config.fp16_tensorrt => vec![
                Provider::TensorRt { device_id, fp16: true },
                Provider::Cuda { device_id },
                Provider::Cpu,
            ],
            Device::Gpu { device_id } => vec![Provider::Cuda { device_id }, Provider::Cpu],
        };
        let mut failure = String::new();
        for provider in candidates {
            let recipe = SessionRecipe {
                env: backend.env.clone(),
                path: path.clone(),
                intra_threads,
                provider,
            };
            let session = match provider.compiled_in() {
                Ok(true) => recipe.build(),
                Ok(false) => Err(format!(
                    "this ONNX Runtime build ({}) has no {}; install the GPU build with \
                     `ORT_PYPI_PACKAGE=onnxruntime-gpu bash scripts/install-onnxruntime.sh`",
                    backend.library.display(),
                    provider.name()
                )),
                Err(e) => Err(e),
            };
            match session {
                Ok(session) => {
                    let signature = signature::from_session(&session)
                        .map_err(|reason| BackendError::Load { path, source: reason.into() })?;
                    tracing::info!(
                        model = %recipe.path.display(),
                        provider = provider.name(),
                        intra_threads,
                        "loaded model in ONNX Runtime"
                    );
                    return Ok(Self {
                        signature: Arc::new(signature),
                        recipe,
                        spare: Mutex::new(Some(session)),
                    });
                }
                Err(e) if provider == Provider::Cpu => failure = e,
                Err(e) => tracing::warn!(
                    model = %path.display(),
                    provider = provider.name(),
                    error = %e,
                    "execution provider unusable; falling back"
                ),
            }
        }
        Err(BackendError::Load { path, source: failure.into() })
    }

    /// The execution provider the model's sessions use, as ONNX Runtime names it:
    /// `"CPUExecutionProvider"`, `"CUDAExecutionProvider"` or `"TensorrtExecutionProvider"`.
    pub fn provider(&self) -> &str {
        self.recipe.provider.name()
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

    fn new_session(&self) -> Result<Box<dyn Session>, BackendError> {
        let spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner).take();
        let session = match spare {
            Some(session) => session,
            None => self.recipe.build().map_err(|reason| BackendError::Load {
                path: self.recipe.path.clone(),
                source: reason.into(),
            })?,
        };
        Ok(Box::new(OrtSession { session, signature: Arc::clone(&self.signature) }))
    }
}

/// One worker's ONNX Runtime session.
#[derive(Debug)]
pub struct OrtSession {
    session: OrtRunSession,
    signature: Arc<Signature>,
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
}
