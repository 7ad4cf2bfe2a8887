//! What a batch and a job did: counts, bytes, and each failed document with its reason. Reports
//! hold no times or hosts, so a resumed job's report is byte for byte an uninterrupted one's.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A document that could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Failure {
    /// Its name relative to the input prefix.
    pub file: String,
    pub reason: String,
}

/// One batch's outcome: its done marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub documents: u64,
    pub succeeded: u64,
    pub failed: Vec<Failure>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Report {
    pub(crate) fn add(&mut self, other: Self) {
        self.documents += other.documents;
        self.succeeded += other.succeeded;
        self.failed.extend(other.failed);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// Live counts for progress bars and metrics, shared with whoever watches the job.
#[derive(Debug, Default)]
pub struct Counters {
    /// Documents in the plan.
    pub planned: AtomicU64,
    /// Documents whose batch was already done when this run started.
    pub skipped: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Counters {
    /// Documents finished, by this run or an earlier one.
    pub fn finished(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
            + self.succeeded.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}
