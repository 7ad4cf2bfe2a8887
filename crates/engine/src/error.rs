//! The errors the serving core reports; the server maps each kind to an HTTP (and later gRPC) status
//! in one table.

use std::time::Duration;

use oxserve_backend::BackendError;

use crate::archive::ArchiveError;

/// What can go wrong between a request arriving and its answer leaving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No model of that name is registered.
    #[error("model not found: {0}")]
    ModelNotFound(String),
    /// The model exists but not in that version.
    #[error("model version not found: {name} version {version}")]
    VersionNotFound {
        /// Model name.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// The request body or tensors do not fit the model (malformed JSON, wrong shape or dtype).
    #[error("{0}")]
    InvalidInput(String),
    /// A management call with a bad argument (unknown worker counts, bad URL…).
    #[error("{0}")]
    InvalidArgument(String),
    /// The model's queue is full; the client should retry later.
    #[error("model {model} is overloaded: its queue of {capacity} requests is full")]
    Overloaded {
        /// Model name.
        model: String,
        /// Queue capacity.
        capacity: usize,
    },
    /// The model already serves its `maxConcurrentRequests`; the client should retry later.
    #[error(
        "model {model} is overloaded: it already serves its limit of {limit} concurrent requests"
    )]
    TooManyRequests {
        /// Model name.
        model: String,
        /// The limit.
        limit: usize,
    },
    /// No answer within the response timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The model is being unloaded or the server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Registering a name/version pair that already exists.
    #[error("{0}")]
    Conflict(String),
    /// The model file or archive could not be loaded.
    #[error("failed to load model: {0}")]
    Load(String),
    /// The archive could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The engine failed on a batch.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A broken invariant inside the server (a worker vanished, a panic was caught).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
