//! The one error type engines return.

use std::path::PathBuf;

/// A boxed error that keeps the engine's own error as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong inside an engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The model file could not be read or is not supported by the engine.
    #[error("failed to load model from {path}: {source}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
    /// An input the engine refuses (shape or dtype it cannot run).
    #[error("input `{name}`: {reason}")]
    InvalidInput {
        /// Input name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The engine failed while running the model.
    #[error("inference failed: {0}")]
    Inference(#[source] BoxError),
    /// The engine's output does not fit the request (for example fewer rows than were sent).
    #[error("unexpected output: {0}")]
    Output(String),
}
