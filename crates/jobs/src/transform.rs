//! What a job does to each document. PII redaction lives here; the CLI adds batch inference over a
//! served model with the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use oxserve_pii::document::{self, Format, Output};
use oxserve_pii::{Detector, Redaction};
use serde_json::{Value, json};

/// A document's result, or why there is none (recorded in the job's report).
pub type Outcome = Result<Vec<u8>, String>;

/// A boxed future of one document's outcome.
pub type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One job's work on each document. Must be deterministic: a batch run again after a crash has to
/// write the same bytes.
pub trait Transform: Send + Sync + 'static {
    /// The settings that make two jobs the same job (written in the manifest, compared on resume).
    fn settings(&self) -> Value;

    /// The output's name for the input named `relative`.
    fn output_name(&self, relative: &str) -> String {
        relative.to_owned()
    }

    /// The most bytes one input file may hold: larger ones fail without being read.
    fn max_bytes(&self) -> u64 {
        MAX_DOCUMENT_BYTES
    }

    /// Transforms one document. CPU work belongs on a blocking thread, not the async runtime.
    fn apply(&self, name: &str, bytes: Bytes) -> Pending;
}

/// Comprehend's `InputDataConfig.InputFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentsPer {
    /// `ONE_DOC_PER_FILE`: each file is one document (`.json` files are Contact Lens transcripts).
    #[default]
    File,
    /// `ONE_DOC_PER_LINE`: each line of each file is one text document.
    Line,
}

/// The most bytes one document may hold in a job.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// The most bytes a file of one-document-per-line may hold.
pub const MAX_LINES_FILE_BYTES: u64 = document::MAX_FILE_BYTES as u64;

/// PII redaction (`ONLY_REDACTION`) or detection (`ONLY_OFFSETS`), as Comprehend's PII jobs.
#[derive(Debug, Clone)]
pub struct Redact {
    pub detector: Arc<Detector>,
    pub redaction: Redaction,
    pub output: Output,
    pub per: DocumentsPer,
}

impl Transform for Redact {
    fn settings(&self) -> Value {
        let r = &self.redaction;
        json!({
            "transform": "pii",
            "mode": match self.output { Output::Redaction => "ONLY_REDACTION", Output::Offsets => "ONLY_OFFSETS" },
            "input_format": match self.per { DocumentsPer::File => "ONE_DOC_PER_FILE", DocumentsPer::Line => "ONE_DOC_PER_LINE" },
            "entity_types": r.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "mask_mode": r.mode,
            "mask_character": r.mask_character.to_string(),
            "min_score": r.min_score,
        })
    }

    /// Redacted copies keep the input's name; offset reports add `.out`, as Comprehend's do.
    fn output_name(&self, relative: &str) -> String {
        match self.output {
            Output::Redaction => relative.to_owned(),
            Output::Offsets => format!("{relative}.out"),
        }
    }

    fn max_bytes(&self) -> u64 {
        match self.per {
            DocumentsPer::File => MAX_DOCUMENT_BYTES,
            DocumentsPer::Line => MAX_LINES_FILE_BYTES,
        }
    }

    fn apply(&self, name: &str, bytes: Bytes) -> Pending {
        let this = self.clone();
        let name = name.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.run(&name, &bytes))
                .await
                .unwrap_or_else(|e| Err(format!("the redaction failed: {e}")))
        })
    }
}

impl Redact {
    fn run(&self, name: &str, bytes: &[u8]) -> Outcome {
        let format = match self.per {
            DocumentsPer::File => Format::of(name),
            DocumentsPer::Line => Format::Lines,
        };
        document::process(&self.detector, name, bytes, format, self.output, &self.redaction)
            .map_err(|e| e.to_string())
    }
}
