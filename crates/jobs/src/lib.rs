//! Batch jobs over folders and S3 prefixes, as Amazon Comprehend's PII jobs run them: the input
//! listed once and cut into micro-batches, the batches transformed in parallel, each output
//! published whole, and each batch's done marker written after its outputs. A job killed at any
//! moment and started again with the same arguments skips the finished batches and writes the
//! same bytes an uninterrupted run would; several processes (a Kubernetes Indexed Job's pods)
//! share one job through leases on the batches.
//!
//! A job's records live under its output prefix (see [`plan`]), not in any process: whoever runs
//! the job next, on whichever machine, finds where it stands there.

mod lease;
pub mod location;
pub mod manager;
pub mod plan;
pub mod report;
mod runner;
#[doc(hidden)]
pub mod testing;
pub mod transform;

pub use location::Location;
pub use plan::Manifest;
pub use report::{Counters, Failure, Report};
pub use runner::{Finish, Job, RunOptions, Shard};
pub use transform::{DocumentsPer, Redact, Transform};

/// The folder under the output prefix that holds a job's records.
pub const META: &str = ".oxserve-job";

/// Why a job cannot go on. A bad *document* is not one of these: it is recorded in the report.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{uri}: {reason}")]
    Location { uri: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the output prefix already holds another job (input {input}, batch size {batch_size}, settings {transform}): \
         run it with the same arguments to resume it, or choose another output prefix"
    )]
    OtherJob { input: String, transform: String, batch_size: usize },
    #[error("the job's records under the output prefix are damaged: {0}")]
    Corrupt(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("writing a job record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a job task failed: {0}")]
    Task(String),
}

#[cfg(test)]
mod tests;
