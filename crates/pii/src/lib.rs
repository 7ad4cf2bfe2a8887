//! PII detection and redaction for call transcripts and documents, with Amazon Comprehend's entity
//! types, offsets and redaction modes.
//!
//! A call is detected as a whole: each turn is searched on its own, with the turns before it as
//! context (the agent's "last four digits of your Social Security number?" makes the customer's
//! `1111` an SSN), and names given once are remembered for the rest of the call. Recognisers:
//! digit runs written or spoken, classified by format, checksum and cue ([`numbers`]); shaped types
//! such as e-mails, keys and dates ([`patterns`]); addresses ([`address`]); person names from the
//! census lists and the phrases around them ([`names`]). Overlaps go to the surest, then longest.

mod address;
pub mod contact_lens;
mod cues;
pub mod document;
mod entity;
pub mod eval;
mod names;
mod numbers;
mod patterns;
pub mod redact;
pub mod tagger;
mod text;
mod validate;

use std::collections::HashSet;

pub use entity::{Entity, EntityType, UnknownEntityType};
pub use redact::{MaskMode, Redaction};
pub use text::byte_offset;

use cues::{CueContext, CueFinder};

/// A span found by one recogniser, in bytes, before overlaps are settled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub start: usize,
    pub end: usize,
    pub kind: EntityType,
    pub score: f32,
}

/// Names kept for the rest of the call need this much confidence where first found.
const REMEMBER_SCORE: f32 = 0.85;

/// The detector: patterns, cue phrases and name lists, built once and shared (it is `Sync`).
#[derive(Debug)]
pub struct Detector {
    cues: CueFinder,
    patterns: patterns::Patterns,
    addresses: address::Addresses,
    names: names::Names,
    tagger: Option<tagger::Tagger>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// Compiles the patterns, loads the name lists and opens the learned tagger (a few
    /// milliseconds).
    pub fn new() -> Self {
        Self { tagger: Some(tagger::Tagger::new()), ..Self::rules_only() }
    }

    /// The rules without the learned tagger: what the tagger adds is measured against this.
    pub fn rules_only() -> Self {
        Self {
            cues: CueFinder::new(),
            patterns: patterns::Patterns::new(),
            addresses: address::Addresses::new(),
            names: names::Names::new(),
            tagger: None,
        }
    }

    /// PII in one document (no neighbouring turns).
    pub fn detect(&self, text: &str) -> Vec<Entity> {
        self.detect_conversation(&[text]).pop().unwrap_or_default()
    }

    /// PII in each turn of a conversation, in order; offsets are per turn.
    pub fn detect_conversation<S: AsRef<str>>(&self, turns: &[S]) -> Vec<Vec<Entity>> {
        let cues: Vec<_> = turns.iter().map(|turn| self.cues.find(turn.as_ref())).collect();
        let mut found = Vec::with_capacity(turns.len());
        let mut memory = HashSet::new();
        // A turn with no cue of its own whose number was read by the cue before it passes that cue
        // on: "Card number?" / "4111 1111" / "Go on." / "1111 1111".
        let mut carried: Vec<Vec<(usize, cues::Cue)>> = Vec::with_capacity(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            let text = turn.as_ref();
            // The nearest of the two turns before with a cue of its own, or one passed on. An order
            // number mentioned there makes this turn's number an order number only when asked for
            // ("What's the order number?"), not when it was merely said.
            let nearest = (1..=2)
                .filter_map(|back| i.checked_sub(back))
                .find(|&j| !cues[j].is_empty() || !carried[j].is_empty());
            let before: Vec<(usize, cues::Cue)> = match nearest {
                Some(j) if cues[j].is_empty() => carried[j].clone(),
                Some(j) => {
                    let asked = turns[j].as_ref().contains('?');
                    cues[j]
                        .iter()
                        .copied()
                        .filter(|(_, cue)| asked || *cue != cues::Cue::NotPii)
                        .collect()
                }
                None => Vec::new(),
            };
            let context = CueContext { own: &cues[i], before: &before };
            let passed_on = match context.asked() {
                Some(cue) if cues[i].is_empty() && text.bytes().any(|b| b.is_ascii_digit()) => {
                    vec![(0, cue)]
                }
                _ => Vec::new(),
            };
            let words = text::words(text);
            let mut candidates = Vec::new();
            numbers::find(text, context, &mut candidates);
            self.patterns.find(text, context, &mut candidates);
            self.addresses.find(text, &mut candidates);
            self.names.find(text, &words, context, &mut candidates);
            if let Some(tagger) = &self.tagger {
                let mut learned = tagger.find(&self.names, text);
                learned.retain(|c| {
                    c.kind != EntityType::Name || !self.names.rejects(text, &words, c.start, c.end)
                });
                let alone = tagger::widen(&mut candidates, learned);
                candidates.extend(alone);
            }
            let kept = settle(candidates);
            for c in kept.iter().filter(|c| c.kind == EntityType::Name && c.score >= REMEMBER_SCORE)
            {
                memory.extend(
                    text[c.start..c.end]
                        .split(' ')
                        .filter(|w| text::is_capitalized(w))
                        .map(str::to_owned),
                );
            }
            found.push((kept, words));
            carried.push(passed_on);
        }
        found
            .into_iter()
            .zip(turns)
            .map(|((mut kept, words), turn)| {
                let text = turn.as_ref();
                if !memory.is_empty() {
                    let mut again = Vec::new();
                    self.names.remembered(text, &words, &memory, &mut again);
                    again.retain(|c| !kept.iter().any(|k| overlaps(k, c)));
                    kept.extend(again);
                    kept.sort_by_key(|c| c.start);
                }
                to_entities(text, &kept)
            })
            .collect()
    }
}

fn overlaps(a: &Candidate, b: &Candidate) -> bool {
    a.start < b.end && b.start < a.end
}

/// Keeps the surest, then longest, of overlapping candidates; returns them in text order.
pub(crate) fn settle(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for c in candidates {
        if c.end > c.start && !kept.iter().any(|k| overlaps(k, &c)) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| c.start);
    kept
}

fn to_entities(text: &str, kept: &[Candidate]) -> Vec<Entity> {
    let mut offsets = text::CharOffsets::new(text);
    kept.iter()
        .map(|c| {
            let begin_offset = offsets.at(c.start);
            Entity { score: c.score, kind: c.kind, begin_offset, end_offset: offsets.at(c.end) }
        })
        .collect()
}

#[cfg(test)]
mod tests;
