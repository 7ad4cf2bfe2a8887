//! Whole documents: a Contact Lens transcript (JSON) or plain text, redacted or reported as
//! offsets, with the limits and errors that keep one bad file from stopping a folder.

use serde_json::{Value, json};

use crate::redact::Redaction;
use crate::{Detector, contact_lens};

/// The most bytes one turn (or one plain-text document) may hold: Comprehend's limit for one
/// synchronous document. Longer text is refused, not cut.
pub const MAX_TEXT_BYTES: usize = 100 * 1024;

/// The most bytes one transcript file may hold.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// What to write for a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// A redacted copy (Comprehend's `ONLY_REDACTION`).
    #[default]
    Redaction,
    /// The entities found, as JSON (Comprehend's `ONLY_OFFSETS`).
    Offsets,
}

/// Why one document could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the document is not UTF-8 text (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("the document is {0} bytes; the most this accepts is {MAX_FILE_BYTES}")]
    FileTooLarge(usize),
    #[error("the text is {0} bytes; the most one document or turn may hold is {MAX_TEXT_BYTES}")]
    TextTooLarge(usize),
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a Contact Lens transcript: {0}")]
    NotTranscript(String),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: Box<Self> },
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Amazon Connect Contact Lens analysis JSON.
    ContactLens,
    /// The whole file is one document.
    Text,
    /// Each line is one text document (Comprehend's `ONE_DOC_PER_LINE`): redacted line by line
    /// with the line ends kept, or one offsets record per line (JSON Lines, with `Line`).
    Lines,
}

impl Format {
    /// By file name: `.json` files are transcripts, everything else text.
    pub fn of(name: &str) -> Self {
        if name.to_ascii_lowercase().ends_with(".json") { Self::ContactLens } else { Self::Text }
    }
}

/// Redacts or reports one document held in `bytes` (named `name` in offset reports, as
/// Comprehend's `File`); returns the bytes to write.
pub fn process(
    detector: &Detector,
    name: &str,
    bytes: &[u8],
    format: Format,
    output: Output,
    redaction: &Redaction,
) -> Result<Vec<u8>, DocumentError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(DocumentError::FileTooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DocumentError::NotUtf8(e.valid_up_to()))?;
    match format {
        Format::ContactLens => {
            let mut transcript: Value = serde_json::from_str(text)?;
            let out = match output {
                Output::Redaction => {
                    contact_lens::redact(detector, &mut transcript, redaction)?;
                    transcript
                }
                Output::Offsets => {
                    let mut report = contact_lens::offsets(detector, &transcript, redaction)?;
                    report["File"] = json!(name);
                    report
                }
            };
            Ok(serde_json::to_vec_pretty(&out)?)
        }
        Format::Text => text_document(detector, name, text, None, output, redaction),
        Format::Lines => {
            let mut out = Vec::with_capacity(text.len());
            for (line, with_end) in text.split_inclusive('\n').enumerate() {
                let body = with_end
                    .strip_suffix('\n')
                    .map_or(with_end, |b| b.strip_suffix('\r').unwrap_or(b));
                let document =
                    text_document(detector, name, body, Some(line), output, redaction)
                        .map_err(|reason| DocumentError::Line { line, reason: Box::new(reason) })?;
                out.extend(document);
                match output {
                    Output::Redaction => out.extend_from_slice(&with_end.as_bytes()[body.len()..]),
                    Output::Offsets => out.push(b'\n'),
                }
            }
            Ok(out)
        }
    }
}

/// One text document: redacted, or its entities as `{Entities, File[, Line]}`.
fn text_document(
    detector: &Detector,
    name: &str,
    text: &str,
    line: Option<usize>,
    output: Output,
    redaction: &Redaction,
) -> Result<Vec<u8>, DocumentError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(DocumentError::TextTooLarge(text.len()));
    }
    let entities = detector.detect(text);
    Ok(match output {
        Output::Redaction => redaction.apply(text, &entities).0.into_bytes(),
        Output::Offsets => {
            let kept: Vec<_> = entities.into_iter().filter(|e| redaction.selects(e)).collect();
            let mut record = json!({ "Entities": kept, "File": name });
            if let Some(line) = line {
                record["Line"] = json!(line);
            }
            serde_json::to_vec(&record)?
        }
    })
}
