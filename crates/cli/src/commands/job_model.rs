//! Batch inference for `oxserve job --model`: every input file is one `/predictions` request to a
//! model loaded as `oxserve serve` loads it (built-in handlers in-process, Python handlers on
//! TorchServe's workers), and the handler's answer is the output.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use oxserve_core::config::EngineConfig;
use oxserve_core::handler::{Part, Payload};
use oxserve_core::hosted::HostedRequest;
use oxserve_core::metrics::Metrics;
use oxserve_core::{EngineError, ModelVersion, RegisterRequest, Registry, RequestOptions};
use oxserve_jobs::Transform;
use oxserve_jobs::transform::{Outcome, Pending};
use oxserve_python::PythonSettings;
use serde_json::{Value, json};

/// A loaded model, as a job transform.
#[derive(Debug, Clone)]
pub(crate) struct Predict {
    registry: Arc<Registry>,
    version: Arc<ModelVersion>,
    /// The archive's file name and size: a different archive is a different job.
    source: Value,
}

impl Predict {
    /// Loads the model at `path` (an archive, an `.onnx` file or a model folder) and waits for its
    /// workers.
    pub(crate) async fn load(path: &Path) -> anyhow::Result<Self> {
        let path = path.canonicalize().with_context(|| format!("--model {}", path.display()))?;
        let store = path.parent().context("--model has no folder")?.to_owned();
        let config = EngineConfig { model_store: store, ..EngineConfig::default() };
        let metrics = Arc::new(Metrics::new(oxserve_core::system::hostname(), None));
        let registry = super::serve::registry(config, None, PythonSettings::default(), metrics)?;
        let url = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let request =
            RegisterRequest { url: url.clone(), synchronous: true, ..RegisterRequest::default() };
        let version = registry
            .register_path(path.clone(), request)
            .await
            .with_context(|| format!("loading {}", path.display()))?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let source = json!({ "model": version.name(), "version": version.version(), "file": url, "bytes": size });
        Ok(Self { registry, version, source })
    }

    /// Stops the model's workers.
    pub(crate) async fn shutdown(self) {
        let registry = self.registry;
        if let Err(e) = tokio::task::spawn_blocking(move || registry.shutdown()).await {
            tracing::warn!(%e, "stopping the model's workers");
        }
    }
}

/// The media type a file's name suggests, as a client would send it.
fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "json" => "application/json",
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

impl Transform for Predict {
    fn settings(&self) -> Value {
        json!({ "transform": "model", "source": self.source })
    }

    fn output_name(&self, relative: &str) -> String {
        format!("{relative}.out")
    }

    fn apply(&self, name: &str, bytes: Bytes) -> Pending {
        let version = Arc::clone(&self.version);
        let name = name.to_owned();
        Box::pin(async move { predict(&version, &name, bytes).await })
    }
}

/// One request; a full queue is waited out (a job has no client to refuse), any other error is
/// the document's.
async fn predict(version: &Arc<ModelVersion>, name: &str, bytes: Bytes) -> Outcome {
    let mime = content_type(name);
    let mut wait = Duration::from_millis(1);
    loop {
        let options = RequestOptions { timeout: None, request_id: Some(name.to_owned()) };
        let ticket = match version.admit(options) {
            Ok(ticket) => ticket,
            Err(EngineError::TooManyRequests { .. } | EngineError::Overloaded { .. }) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if version.is_hosted() {
            let request = HostedRequest {
                id: name.to_owned(),
                headers: vec![
                    ("Content-Type".to_owned(), mime.to_owned()),
                    ("url_path".to_owned(), String::new()),
                    ("explain".to_owned(), "False".to_owned()),
                ],
                params: vec![("body".to_owned(), mime.to_owned(), bytes)],
                stream: None,
            };
            let (answer, _) = ticket.forward(request).await.map_err(|e| e.to_string())?;
            if answer.status != 200 {
                let body = String::from_utf8_lossy(&answer.body);
                return Err(format!(
                    "the handler answered {} {}: {body}",
                    answer.status, answer.reason
                ));
            }
            return Ok(answer.body.to_vec());
        }
        let part =
            Part { name: "body".to_owned(), content_type: Some(mime.to_owned()), body: bytes };
        let (prediction, _) =
            ticket.predict(Payload { parts: vec![part] }).await.map_err(|e| e.to_string())?;
        return Ok(prediction.body.to_vec());
    }
}
