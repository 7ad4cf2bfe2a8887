//! The serving core of oxserve: archives, per-model settings, the model registry, bounded queues,
//! dynamic batching and worker threads.
//!
//! # Request path
//! A request reaches [`ModelVersion::predict`] (handler path) or [`ModelVersion::infer`] (tensors). The
//! handler's preprocessing runs on the blocking pool; the tensors join the model's bounded
//! [`queue`](crate::queue) (a full queue answers [`EngineError::Overloaded`] at once); a worker
//! thread takes a batch when [`batcher::poll_batch`] says one is due, stacks the rows, runs its own
//! engine session and answers each request through its oneshot channel. Nothing here runs inference
//! on the async runtime.
//!
//! The engine itself is behind [`oxserve_backend::Backend`], so this crate never names tract or
//! ONNX Runtime.

pub mod archive;
pub mod batcher;
pub mod codec;
pub mod config;
mod error;
pub mod handler;
pub mod metric_log;
pub mod metrics;
mod model;
mod queue;
mod registry;
pub mod remote;
pub mod system;
mod worker;

pub use error::{EngineError, Result};
pub use model::{
    Admission, Description, JobQueueStatus, ModelVersion, RequestOptions, WorkerDescription,
};
pub use queue::JobOutput;
pub use registry::{RegisterRequest, Registry};
pub use worker::WorkerStatus;
