//! Handlers turn a request into model inputs and the model's outputs into an answer, the role
//! TorchServe's Python handlers play (`preprocess` → `inference` → `postprocess`).
//!
//! A handler works on one request at a time; the worker batches the tensors of many requests, so a
//! handler gets batching without writing it. Handlers are found by the name an archive's manifest
//! gives (`image_classifier`, `my_handler.py`, `ts.torch_handler.base_handler`…) in a
//! [`HandlerRegistry`], which a custom server binary can extend with its own. The built-in handlers
//! (tensor, vision, text) live in the `oxserve-handlers` crate, so the core compiles no image or
//! tokenizer code.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use oxserve_backend::{Signature, Tensor};

use crate::error::{EngineError, Result};
use oxserve_store::archive::Manifest;

/// One named input of a request: the raw body, or one part of a multipart form.
#[derive(Debug, Clone)]
pub struct Part {
    /// Form field name; `body` for a raw body.
    pub name: String,
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
    /// The bytes as received.
    pub body: Bytes,
}

/// Everything a client sent in one prediction request.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    /// Parts in the order received.
    pub parts: Vec<Part>,
}

impl Payload {
    /// The part holding the request's data: the one named `data` or `body` (TorchServe's convention),
    /// else the first.
    pub fn main_part(&self) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.name == "data" || p.name == "body")
            .or_else(|| self.parts.first())
    }
}

/// Model inputs made from one request, plus whatever the handler needs to shape the answer.
pub struct Prepared {
    /// Inputs in signature order, each with this request's rows first.
    pub inputs: Vec<Tensor>,
    /// Handler-private state handed back to [`Handler::postprocess`].
    pub context: Box<dyn Any + Send>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

/// Takes back the context a handler's `preprocess` left in [`Prepared::context`], as its own type.
///
/// # Errors
/// [`EngineError::Internal`] naming `handler` when the context is of another type (a bug: contexts
/// only travel from a handler's preprocess to the same handler's postprocess).
pub fn own_context<T: Any>(context: Box<dyn Any + Send>, handler: &str) -> Result<Box<T>> {
    context
        .downcast::<T>()
        .map_err(|_| EngineError::Internal(format!("{handler} got another handler's context")))
}

/// The answer to one prediction request.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Response body.
    pub body: Bytes,
    /// Its media type.
    pub content_type: String,
}

/// Request → tensors → answer, for one model.
pub trait Handler: Send + Sync + fmt::Debug {
    /// Turns one request into model inputs.
    ///
    /// # Errors
    /// [`EngineError::InvalidInput`] for input the model cannot take; it becomes a 400.
    fn preprocess(&self, payload: &Payload) -> Result<Prepared>;

    /// Turns this request's outputs (signature order, its rows only) into the answer.
    ///
    /// # Errors
    /// When the outputs cannot be rendered.
    fn postprocess(&self, outputs: Vec<Tensor>, context: Box<dyn Any + Send>)
    -> Result<Prediction>;
}

/// What a handler is given when its model loads.
#[derive(Debug, Clone, Copy)]
pub struct HandlerContext<'a> {
    /// Registered model name.
    pub model_name: &'a str,
    /// Folder holding the archive's files (`index_to_name.json`, tokenizer files…).
    pub model_dir: &'a Path,
    /// The archive manifest.
    pub manifest: &'a Manifest,
    /// The model's inputs and outputs.
    pub signature: &'a Signature,
    /// `model-config.yaml` keys the serving core does not use itself.
    pub config: &'a serde_json::Map<String, serde_json::Value>,
}

/// Builds a handler for a model.
pub type HandlerFactory =
    Arc<dyn Fn(&HandlerContext<'_>) -> std::result::Result<Arc<dyn Handler>, String> + Send + Sync>;

/// Handler names to factories.
#[derive(Clone)]
pub struct HandlerRegistry {
    factories: BTreeMap<String, HandlerFactory>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

/// The handler used when an archive names none.
pub const DEFAULT_HANDLER: &str = "tensor";

impl HandlerRegistry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self { factories: BTreeMap::new() }
    }

    /// Adds or replaces a handler.
    pub fn register(&mut self, name: &str, factory: HandlerFactory) {
        self.factories.insert(name.to_owned(), factory);
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Builds the handler an archive names (`None` or empty: [`DEFAULT_HANDLER`]).
    ///
    /// # Errors
    /// [`EngineError::Load`] for an unknown name or a handler that fails to initialise.
    pub fn create(&self, name: Option<&str>, ctx: &HandlerContext<'_>) -> Result<Arc<dyn Handler>> {
        let key = normalize(name.unwrap_or_default());
        let factory = self.factories.get(key).ok_or_else(|| {
            EngineError::Load(format!(
                "handler `{}` is not available in this server; handlers available are: {}",
                name.unwrap_or_default(),
                self.names().join(", ")
            ))
        })?;
        factory(ctx)
            .map_err(|e| EngineError::Load(format!("handler `{key}` failed to initialise: {e}")))
    }
}

/// Reduces the spellings TorchServe accepts to a bare handler name: `my_handler.py` → `my_handler`,
/// `ts.torch_handler.image_classifier` → `image_classifier`, `module:entry` → `module`.
fn normalize(name: &str) -> &str {
    let name = name.trim();
    let name = name.split(':').next().unwrap_or(name);
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.strip_suffix(".py").unwrap_or(name);
    let name = name.rsplit('.').next().unwrap_or(name);
    if name.is_empty() { DEFAULT_HANDLER } else { name }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn handler_names_normalize_like_torchserve() {
        assert_eq!(normalize(""), "tensor");
        assert_eq!(normalize("image_classifier"), "image_classifier");
        assert_eq!(normalize("ts.torch_handler.image_classifier"), "image_classifier");
        assert_eq!(normalize("my_handler.py"), "my_handler");
        assert_eq!(normalize("handlers/my_handler.py:handle"), "my_handler");
        assert_eq!(normalize("base_handler"), "base_handler");
    }
}
