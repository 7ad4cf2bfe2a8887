//! Amazon Connect Contact Lens transcripts: every turn's `Content` and every detected issue,
//! outcome and action item `Text` redacted, their `CharacterOffsets` moved to match, the metadata
//! marked Redacted, and every other field left as it was.

use serde_json::{Map, Value, json};

use crate::Detector;
use crate::document::{DocumentError, MAX_TEXT_BYTES};
use crate::redact::{MaskMode, Redaction, map_offset};

/// The per-turn lists whose `Text` quotes the turn's `Content`.
const QUOTING: [&str; 3] = ["IssuesDetected", "OutcomesDetected", "ActionItemsDetected"];

/// The turns' texts, checked.
fn contents(transcript: &Value) -> Result<Vec<&str>, DocumentError> {
    let turns = transcript
        .get("Transcript")
        .ok_or_else(|| DocumentError::NotTranscript("no `Transcript` field".to_owned()))?
        .as_array()
        .ok_or_else(|| DocumentError::NotTranscript("`Transcript` is not a list".to_owned()))?;
    turns
        .iter()
        .enumerate()
        .map(|(i, turn)| {
            let content = turn.get("Content").and_then(Value::as_str).ok_or_else(|| {
                DocumentError::NotTranscript(format!("turn {i} has no `Content` text"))
            })?;
            if content.len() > MAX_TEXT_BYTES {
                return Err(DocumentError::TextTooLarge(content.len()));
            }
            Ok(content)
        })
        .collect()
}

/// Redacts `transcript` in place.
pub fn redact(
    detector: &Detector,
    transcript: &mut Value,
    redaction: &Redaction,
) -> Result<(), DocumentError> {
    let texts: Vec<String> = contents(transcript)?.into_iter().map(str::to_owned).collect();
    let found = detector.detect_conversation(&texts);
    let turns = transcript
        .get_mut("Transcript")
        .and_then(Value::as_array_mut)
        .expect("checked by contents()");
    for ((turn, text), entities) in turns.iter_mut().zip(&texts).zip(&found) {
        let (content, replaced) = redaction.apply(text, entities);
        let new_chars: Vec<char> = content.chars().collect();
        let Some(turn) = turn.as_object_mut() else { continue };
        for key in QUOTING {
            let Some(items) = turn.get_mut(key).and_then(Value::as_array_mut) else { continue };
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                requote(detector, redaction, item, text, &new_chars, &replaced);
            }
        }
        turn.insert("Content".to_owned(), Value::String(content));
    }
    mark_redacted(transcript, redaction);
    Ok(())
}

/// Moves one quoted item's offsets onto the redacted content and copies its text from there.
fn requote(
    detector: &Detector,
    redaction: &Redaction,
    item: &mut Map<String, Value>,
    original: &str,
    redacted: &[char],
    replaced: &[crate::redact::Replaced],
) {
    let offsets = item.get("CharacterOffsets").and_then(|o| {
        Some((o.get("BeginOffsetChar")?.as_u64()?, o.get("EndOffsetChar")?.as_u64()?))
    });
    let original_len = original.chars().count() as u64;
    match offsets {
        Some((begin, end)) if begin <= end && end <= original_len => {
            let new_begin = map_offset(begin as usize, replaced, false);
            let new_end = map_offset(end as usize, replaced, true).min(redacted.len());
            item.insert(
                "CharacterOffsets".to_owned(),
                json!({ "BeginOffsetChar": new_begin, "EndOffsetChar": new_end }),
            );
            item.insert(
                "Text".to_owned(),
                Value::String(redacted[new_begin..new_end].iter().collect()),
            );
        }
        // Offsets missing or outside the turn: redact the quoted text on its own.
        _ => {
            if let Some(text) = item.get("Text").and_then(Value::as_str) {
                let redacted = redaction.apply(text, &detector.detect(text)).0;
                item.insert("Text".to_owned(), Value::String(redacted));
            }
        }
    }
}

fn mark_redacted(transcript: &mut Value, redaction: &Redaction) {
    let Some(top) = transcript.as_object_mut() else { return };
    let metadata = top.entry("ContentMetadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let requested: Vec<&str> = redaction.types.iter().map(|t| t.as_str()).collect();
    let mode = match redaction.mode {
        MaskMode::ReplaceWithPiiEntityType => "ENTITY_TYPE",
        MaskMode::Mask => "MASK",
    };
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.insert("Output".to_owned(), json!("Redacted"));
        metadata.insert("RedactionTypes".to_owned(), json!(["PII"]));
        metadata.insert(
            "RedactionTypesMetadata".to_owned(),
            json!({ "PII": { "RedactionEntitiesRequested": requested, "RedactionMaskMode": mode } }),
        );
    }
}

/// The entities of each turn, by turn `Id` (Comprehend's `ONLY_OFFSETS`, per turn).
pub fn offsets(
    detector: &Detector,
    transcript: &Value,
    redaction: &Redaction,
) -> Result<Value, DocumentError> {
    let texts = contents(transcript)?;
    let found = detector.detect_conversation(&texts);
    let turns = transcript["Transcript"].as_array().expect("checked by contents()");
    let turns: Vec<Value> = turns
        .iter()
        .zip(found)
        .map(|(turn, entities)| {
            let kept: Vec<_> = entities.into_iter().filter(|e| redaction.selects(e)).collect();
            json!({ "Id": turn.get("Id").cloned().unwrap_or(Value::Null), "Entities": kept })
        })
        .collect();
    Ok(json!({ "Transcript": turns }))
}
