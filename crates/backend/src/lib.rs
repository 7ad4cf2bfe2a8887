//! The seam between oxserve's serving core and its inference engines.
//!
//! This crate owns plain data — [`Tensor`], [`DType`], [`Signature`] — and the three traits every engine
//! implements, split the way tract splits `Runtime → Runnable → State`:
//!
//! - [`Backend`] loads a model file into a [`LoadedModel`];
//! - a [`LoadedModel`] is shared by all workers of a model (`Send + Sync`, held in an `Arc`) and knows
//!   the model's [`Signature`];
//! - each worker thread owns one [`Session`] made by [`LoadedModel::new_session`] on the [`Device`] the
//!   scheduler assigned it, and runs batches on it with `&mut self`, so engines whose run call needs
//!   exclusive access (ONNX Runtime) never share a lock. Devices are chosen per worker, not per model,
//!   so that the workers of one model can be spread over several GPUs as TorchServe does.
//!
//! [`json`] reads and writes tensors as JSON lists, for every protocol that carries them that way.
//!
//! Nothing here knows about HTTP, queues or tokio, so the scheduler can be tested against any engine.

mod device;
mod error;
pub mod json;
mod signature;
mod tensor;

pub use device::{Device, GpuFallback};
pub use error::{BackendError, BoxError};
pub use signature::{Dim, Signature, TensorSpec};
pub use tensor::{DType, Tensor, TensorData, element_count};

use std::path::PathBuf;
use std::sync::Arc;

/// Where a model comes from and how its sessions should run.
#[derive(Debug, Clone, Default)]
pub struct ModelSource {
    /// The serialized model file (an `.onnx`).
    pub path: PathBuf,
    /// Intra-op threads each session may use; `None` lets the engine choose.
    pub intra_threads: Option<usize>,
    /// The device the model is first loaded on (its first worker's). An engine that cannot use it
    /// refuses the model, or falls back to the CPU, as [`Self::gpu_fallback`] says.
    pub device: Device,
    /// What to do when a GPU is asked for but cannot be used.
    pub gpu_fallback: GpuFallback,
    /// On a GPU, let TensorRT build FP16 kernels (engines without TensorRT ignore it).
    pub tensorrt_fp16: bool,
}

/// An inference engine that can load model files.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A short engine name for logs and describe output, e.g. `"tract"`.
    fn name(&self) -> &'static str;

    /// Loads and validates a model.
    ///
    /// # Errors
    /// [`BackendError::Load`] when the file cannot be read or the engine does not support the model.
    fn load(&self, source: &ModelSource) -> Result<Arc<dyn LoadedModel>, BackendError>;
}

/// A model loaded once and shared by every worker that serves it.
pub trait LoadedModel: Send + Sync + std::fmt::Debug {
    /// Input and output names, dtypes and shapes as declared by the model file.
    fn signature(&self) -> &Signature;

    /// Makes the per-worker state that runs inference on `device`, or on the CPU when the device
    /// cannot be used and the model was loaded with [`GpuFallback::Cpu`] ([`Session::device`] then
    /// says so).
    ///
    /// # Errors
    /// When the engine cannot allocate the state (for example a device that is not there and
    /// [`GpuFallback::Error`]).
    fn new_session(&self, device: Device) -> Result<Box<dyn Session>, BackendError>;
}

/// Per-worker inference state; owned by exactly one worker thread.
pub trait Session: Send {
    /// Runs the model on one batch. `inputs` are in [`Signature::inputs`] order and already checked
    /// against the signature; outputs come back in [`Signature::outputs`] order.
    ///
    /// # Errors
    /// [`BackendError::InvalidInput`] for inputs the engine refuses, [`BackendError::Inference`] otherwise.
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError>;

    /// The device this session really runs on, after any fallback; describe reports it per worker.
    fn device(&self) -> Device;
}
