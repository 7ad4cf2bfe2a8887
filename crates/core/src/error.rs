//! The errors the serving core reports; the server maps each kind to an HTTP (and later gRPC) status
//! in one table.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oxserve_backend::BackendError;

use oxserve_store::archive::ArchiveError;
use oxserve_store::remote::RemoteError;

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
    /// The engine failed on a batch; shared by every request of the batch, with its sources.
    #[error(transparent)]
    Backend(Arc<BackendError>),
    /// A handler running in a worker process failed the request (TorchServe's worker codes: 507
    /// out of memory, 503 prediction failed, 500 worker died, or the handler's own code).
    #[error("{message}")]
    Handler {
        /// The HTTP status the handler or its worker gave.
        status: u16,
        /// What it said.
        message: String,
    },
    /// A broken invariant inside the server (a worker vanished, a panic was caught).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// How a request that failed with this error ended, for `oxserve_requests_total{outcome}`.
    pub fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            Self::Overloaded { .. } | Self::TooManyRequests { .. } | Self::Unavailable(_) => {
                Outcome::Overloaded
            }
            Self::Timeout(_) => Outcome::Timeout,
            Self::Internal(_) | Self::Backend(_) => Outcome::Error,
            _ => Outcome::ClientError,
        }
    }

    /// The same error with paths under `dirs` written relative to them. Answers leave the server,
    /// so a client learns which file of its model failed, not where the model store or the
    /// unpacking folder lives (security-tests G24: no absolute paths in error bodies). `dirs` are
    /// tried longest first.
    #[must_use]
    pub fn relative_to(self, dirs: &[&Path]) -> Self {
        let dirs = longest_first(dirs);
        let text = |s: String| relative_text(s, &dirs);
        match self {
            Self::ModelNotFound(s) => Self::ModelNotFound(text(s)),
            Self::InvalidInput(s) => Self::InvalidInput(text(s)),
            Self::InvalidArgument(s) => Self::InvalidArgument(text(s)),
            Self::Unavailable(s) => Self::Unavailable(text(s)),
            Self::Conflict(s) => Self::Conflict(text(s)),
            Self::Load(s) => Self::Load(text(s)),
            Self::Internal(s) => Self::Internal(text(s)),
            Self::Archive(e) => Self::Archive(e.relative_to(&dirs)),
            other => other,
        }
    }
}

impl From<BackendError> for EngineError {
    fn from(e: BackendError) -> Self {
        Self::Backend(Arc::new(e))
    }
}

impl From<RemoteError> for EngineError {
    /// A refused URL or failed download is the caller's bad argument (400); a name the store
    /// already holds is a conflict (409).
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Exists(s) => Self::Conflict(s),
            other => Self::InvalidArgument(other.to_string()),
        }
    }
}

/// [`EngineError::relative_to`] for a message kept as text (a worker's start-up error).
pub(crate) fn relative_message(text: String, dirs: &[&Path]) -> String {
    relative_text(text, &longest_first(dirs))
}

fn longest_first<'a>(dirs: &[&'a Path]) -> Vec<&'a Path> {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    dirs
}

/// `text` with every `dir/` that starts a path removed. Only whole folders count: `dir/` must
/// not be the tail of a longer path (`/tmp/` inside `/var/tmp/x` stays), so it must start the text
/// or follow a character that cannot be part of a path name here (space, quote, bracket, `=`, `:`).
fn relative_text(text: String, dirs: &[&Path]) -> String {
    let mut text = text;
    for dir in dirs {
        let dir = dir.to_string_lossy();
        let dir = dir.trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            continue;
        }
        let prefix = format!("{dir}/");
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&prefix) {
            let before = rest[..at].chars().next_back().or_else(|| out.chars().next_back());
            let starts_path = before.is_none_or(|c| !is_path_char(c));
            out.push_str(&rest[..at]);
            if !starts_path {
                out.push_str(&prefix);
            }
            rest = &rest[at + prefix.len()..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// Whether `c` can be part of a path as it appears in a message: anything but white space and the
/// punctuation that surrounds paths in messages.
fn is_path_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '`' | '\'' | '"' | '(' | '[' | '=' | ':' | ','))
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    #[test]
    fn paths_become_relative_to_the_longest_folder_holding_them() {
        let (store, model) = (Path::new("/srv/store"), Path::new("/srv/store/m"));
        let e = EngineError::Load("cannot read /srv/store/m/config.yaml".into());
        assert_eq!(
            e.relative_to(&[store, model]).to_string(),
            "failed to load model: cannot read config.yaml"
        );
        // Only whole folder names: a sibling folder that shares the prefix is left alone.
        let e = EngineError::Load("see /srv/store2/x".into());
        assert_eq!(e.relative_to(&[store]).to_string(), "failed to load model: see /srv/store2/x");
        let e = EngineError::Archive(ArchiveError::NoModelFile(PathBuf::from("/srv/store/m")));
        let text = e.relative_to(&[store]).to_string();
        assert!(text.ends_with("at the root of `m`"), "{text}");
        // Nor the tail of a longer path, nor a folder named like the store inside another path.
        let staging = Path::new("/tmp");
        let e = EngineError::Load("in /var/tmp/x and `/tmp/y`, models/z".into());
        assert_eq!(
            e.relative_to(&[staging, Path::new("models")]).to_string(),
            "failed to load model: in /var/tmp/x and `y`, z"
        );
        let e = EngineError::Load("see foo/models/x".into());
        assert_eq!(
            e.relative_to(&[Path::new("models")]).to_string(),
            "failed to load model: see foo/models/x"
        );
        // A worker's start-up error, kept as text, is rewritten the same way.
        assert_eq!(
            relative_message(
                "failed to load model from /tmp/.unpack-1/m/model.onnx".into(),
                &[Path::new("/tmp"), Path::new("/tmp/.unpack-1/m")]
            ),
            "failed to load model from model.onnx"
        );
        let e = EngineError::Archive(ArchiveError::NotFound(PathBuf::from("/srv/store")));
        assert_eq!(e.relative_to(&[store]).to_string(), "`.` does not exist");
    }
}
