//! Models whose handler runs in worker processes outside the server, such as TorchServe's Python
//! workers: the core queues, batches and admits their requests like any other, but what a request
//! carries is the raw request (headers and body parts, as bytes) and what comes back is an HTTP-like
//! answer the handler wrote (status, headers, content type, body), possibly in several parts.
//!
//! A [`Runtime`] (the `oxserve-python` crate's, say) decides which models it runs and builds, per
//! model version, the [`HostedExecutor`] whose workers are its processes. The core knows nothing of
//! the process or its protocol.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use oxserve_store::archive::Manifest;
use tokio::sync::mpsc;

use crate::config::ModelSettings;
use crate::error::Result;
use crate::executor::Executor;
use crate::metrics::Metrics;

/// One request for a hosted handler, as the client sent it.
#[derive(Debug)]
pub struct HostedRequest {
    /// The request id (the worker tags its answer and its log and metric lines with it).
    pub id: String,
    /// Request headers, and protocol facts the handler may read as headers (TorchServe adds
    /// `url_path`, `explain`, `describe`).
    pub headers: Vec<(String, String)>,
    /// Inputs: `(name, content type or "", bytes)`: one `body` for a plain body, one per form field
    /// for a multipart or form body, one per query parameter.
    pub params: Vec<(String, String, Bytes)>,
    /// Where a streaming handler's intermediate answers go, as they arrive; the last one is the
    /// request's answer. `None`: intermediate answers are not wanted and are dropped.
    pub stream: Option<mpsc::Sender<HostedAnswer>>,
}

/// What a hosted handler answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedAnswer {
    /// HTTP status the handler set (200 unless it said otherwise).
    pub status: u16,
    /// The handler's reason phrase; empty when it set none.
    pub reason: String,
    /// The handler's content type; empty when it set none.
    pub content_type: String,
    /// Headers the handler set.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// The worker one hosted executor keeps between batches (a process and its connection).
pub type HostedWorker = Box<dyn Any + Send>;

/// An executor whose workers are processes, shared by every worker of one model version.
pub type HostedExecutor =
    dyn Executor<Input = HostedRequest, Output = HostedAnswer, Worker = HostedWorker>;

/// A kind of out-of-process worker (TorchServe's Python workers), registered with the engine.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Its name in settings (`runtime: python`) and in describe.
    fn name(&self) -> &'static str;

    /// Whether it runs this model when neither the model's settings nor the register call say
    /// which runtime to use.
    fn claims(&self, model: &HostedModel<'_>) -> bool;

    /// Prepares a model version for its workers (checks what can be checked without starting one)
    /// and returns the executor that starts and drives them.
    ///
    /// # Errors
    /// Why the model cannot run here, as a load error the client sees.
    fn prepare(&self, model: &HostedModel<'_>) -> Result<Arc<HostedExecutor>>;
}

/// What a runtime is told of a model version.
#[derive(Debug, Clone, Copy)]
pub struct HostedModel<'a> {
    /// Registered name.
    pub name: &'a str,
    /// Version string.
    pub version: &'a str,
    /// The unpacked model folder.
    pub dir: &'a Path,
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// Settings in force (batch size, timeouts...).
    pub settings: &'a ModelSettings,
    /// Where the metric lines its workers print go ([`Metrics::worker_line`]: Prometheus and
    /// `model_metrics.log`).
    pub metrics: &'a Metrics,
}
