//! oxserve's built-in handlers: what turns a request into model inputs and the outputs into an
//! answer for the models people serve most, without writing a handler.
//!
//! - `tensor` (also TorchServe's `base_handler`): JSON nested lists, `{"data": ...}`,
//!   `{"instances": [...]}` or named inputs in, JSON tensors out ([`TensorHandler`]).
//! - `image_classifier`, `object_detector`, `image_segmenter`: image files in, TorchServe's
//!   answers out ([`vision`]).
//! - `text_classifier`, `text_embedding`: text in, through a Hugging Face tokenizer ([`text`]).
//!
//! [`input`] splits a request into items (raw bytes, base64 strings, multipart parts, JSON lists)
//! the way TorchServe's handlers read them; custom handlers use it too. [`builtins`] is the
//! registry a server starts from. This crate is where image decoding and tokenizers are compiled:
//! the serving core and the network server never link them.

use std::sync::Arc;

use oxserve_core::handler::{
    DEFAULT_HANDLER, Handler, HandlerContext, HandlerFactory, HandlerRegistry,
};

pub mod input;
mod tensor;
pub mod text;
pub mod vision;

pub use tensor::TensorHandler;

/// A registry holding every built-in handler: `tensor` (the default), also answering to
/// TorchServe's `base_handler`, whose default behaviour is the same raw-tensor round trip; the
/// vision handlers; the text handlers.
pub fn builtins() -> HandlerRegistry {
    let mut registry = HandlerRegistry::empty();
    let tensor: HandlerFactory = Arc::new(|ctx: &HandlerContext<'_>| {
        Ok(Arc::new(TensorHandler::new(ctx.signature.clone())) as Arc<dyn Handler>)
    });
    registry.register(DEFAULT_HANDLER, Arc::clone(&tensor));
    registry.register("base_handler", tensor);
    registry.register(
        "image_classifier",
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(vision::ImageClassifier::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    registry.register(
        "object_detector",
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(vision::ObjectDetector::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    registry.register(
        "image_segmenter",
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(vision::ImageSegmenter::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    registry.register(
        "text_classifier",
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(text::TextClassifier::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    registry.register(
        "text_embedding",
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(text::TextEmbedding::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    registry
}
