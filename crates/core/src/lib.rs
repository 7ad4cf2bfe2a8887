//! The serving core of oxserve: per-model settings, the model registry, bounded queues, dynamic
//! batching, worker threads, the [`handler::Handler`] trait, errors and metrics.
//!
//! Models come from the store (`oxserve-store`: archives and URLs); handlers other than a custom
//! server's own come from `oxserve-handlers`; engines come from the backend crates. This crate
//! names none of them, so it compiles no image, tokenizer or engine code.
//!
//! # Request path
//! A server admits a request with [`ModelVersion::admit`] before reading its body, then spends the
//! [`Ticket`] on [`Ticket::predict`] (handler path) or [`Ticket::infer`] (tensors). The handler's
//! preprocessing runs on the blocking pool, or inline when it has been measured to take
//! microseconds (`placement`); the request joins the model's bounded queue (a full queue answers
//! [`EngineError::Overloaded`] at once); a worker thread takes a batch when
//! [`batcher::poll_batch`] says one is due and hands it to its [`executor::Executor`] (for an
//! in-process engine: stack the rows, run its own session, split the rows), and each request is
//! answered through its oneshot channel. One shortcut: a model measured in microseconds, with
//! batches of one, an empty queue and an idle worker, runs the request on that worker's session
//! from the request's own thread, since handing it over would cost more than running it.
//!
//! The engine itself is behind [`oxserve_backend::Backend`], so this crate never names tract or
//! ONNX Runtime.

pub mod batcher;
pub mod config;
mod error;
pub mod executor;
pub mod handler;
pub mod hosted;
mod model;
mod placement;
mod registry;

pub use error::{EngineError, Result};
pub use executor::Done;
pub use model::{ModelVersion, RequestOptions, Ticket, VersionStatus};
/// Metrics live in their own crate (`oxserve-metrics`); these paths keep the core's names for them.
pub use oxserve_metrics::{self as metrics, log as metric_log, stats, system};
pub use registry::{RegisterRequest, Registry};
