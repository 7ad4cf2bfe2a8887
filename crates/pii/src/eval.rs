//! Scoring the detector against labelled calls: precision, recall, F1 and F2 per type (a span
//! counts when it overlaps one of the same type, and separately when it matches exactly), the
//! share of PII characters a redaction would leave visible, and how often look-alikes that are not
//! PII (order numbers, names that are words, company names) get flagged.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Detector, EntityType};

pub mod presidio_research;

/// One labelled call, as `scripts/pii/generate_calls.py` writes them (one per line).
#[derive(Debug, Deserialize)]
pub struct Call {
    pub id: String,
    pub turns: Vec<LabelledTurn>,
}

#[derive(Debug, Deserialize)]
pub struct LabelledTurn {
    /// `AGENT` or `CUSTOMER`.
    #[serde(default)]
    pub role: String,
    pub text: String,
    #[serde(default)]
    pub entities: Vec<Span>,
    #[serde(default)]
    pub negatives: Vec<Negative>,
    /// Spans (code points) where a prediction counts neither as found nor as a false alarm.
    #[serde(default)]
    pub unscored: Vec<(usize, usize)>,
}

/// A labelled span (code points, end exclusive).
#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    #[serde(rename = "type")]
    pub kind: EntityType,
    pub begin: usize,
    pub end: usize,
}

/// A span that is not PII and looks like it.
#[derive(Debug, Clone, Deserialize)]
pub struct Negative {
    pub kind: String,
    pub begin: usize,
    pub end: usize,
}

impl Call {
    /// The call as an Amazon Connect Contact Lens analysis file (the shape batch jobs and the
    /// throughput benchmarks read), each turn four seconds long.
    pub fn contact_lens(&self) -> serde_json::Value {
        let turns: Vec<_> = self
            .turns
            .iter()
            .enumerate()
            .map(|(i, turn)| {
                serde_json::json!({
                    "Id": format!("{}-{i}", self.id),
                    "ParticipantId": turn.role,
                    "Content": turn.text,
                    "BeginOffsetMillis": i * 4000,
                    "EndOffsetMillis": i * 4000 + 3800,
                    "Sentiment": "NEUTRAL",
                })
            })
            .collect();
        serde_json::json!({
            "Version": "1.1.0",
            "Channel": "VOICE",
            "ContentMetadata": { "Output": "Raw" },
            "CustomerMetadata": { "ContactId": self.id },
            "JobStatus": "COMPLETED",
            "LanguageCode": "en-US",
            "Participants": [
                { "ParticipantId": "AGENT", "ParticipantRole": "AGENT" },
                { "ParticipantId": "CUSTOMER", "ParticipantRole": "CUSTOMER" },
            ],
            "Transcript": turns,
        })
    }

    /// Reads calls written one per line by `scripts/pii/generate_calls.py`.
    pub fn read_lines(text: &str) -> Result<Vec<Self>, serde_json::Error> {
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect()
    }

    /// Reads labelled calls: presidio-research's dataset (a JSON list) or calls one per line.
    pub fn read_any(text: &str) -> Result<Vec<Self>, serde_json::Error> {
        if text.trim_start().starts_with('[') {
            presidio_research::read(text)
        } else {
            Self::read_lines(text)
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    gold: usize,
    predicted: usize,
    /// Gold spans overlapped by a prediction of their type.
    found: usize,
    /// Predictions overlapping a gold span of their type.
    correct: usize,
    exact: usize,
}

/// The types the headline figure is taken over.
pub const HEADLINE: [EntityType; 6] = [
    EntityType::Name,
    EntityType::Phone,
    EntityType::Ssn,
    EntityType::Email,
    EntityType::CreditDebitNumber,
    EntityType::Address,
];

/// Scores accumulated over calls.
#[derive(Debug, Default)]
pub struct Scores {
    by_type: BTreeMap<EntityType, Counts>,
    pii_chars: usize,
    visible_chars: usize,
    negatives: BTreeMap<String, (usize, usize)>,
    turns: usize,
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

impl Scores {
    /// Detects PII in `call` and scores it against its labels.
    pub fn add(&mut self, detector: &Detector, call: &Call) {
        let texts: Vec<&str> = call.turns.iter().map(|t| t.text.as_str()).collect();
        for (turn, found) in call.turns.iter().zip(detector.detect_conversation(&texts)) {
            self.turns += 1;
            let predicted: Vec<(EntityType, (usize, usize))> =
                found.iter().map(|e| (e.kind, (e.begin_offset, e.end_offset))).collect();
            for gold in &turn.entities {
                let span = (gold.begin, gold.end);
                let counts = self.by_type.entry(gold.kind).or_default();
                counts.gold += 1;
                if predicted.iter().any(|(k, p)| *k == gold.kind && overlaps(*p, span)) {
                    counts.found += 1;
                }
                if predicted.iter().any(|(k, p)| *k == gold.kind && *p == span) {
                    counts.exact += 1;
                }
                self.pii_chars += gold.end - gold.begin;
                self.visible_chars += (gold.begin..gold.end)
                    .filter(|&c| !predicted.iter().any(|(_, p)| p.0 <= c && c < p.1))
                    .count();
            }
            for (kind, span) in &predicted {
                let gold = turn.entities.iter().any(|g| overlaps((g.begin, g.end), *span));
                if !gold && turn.unscored.iter().any(|u| overlaps(*u, *span)) {
                    continue;
                }
                let counts = self.by_type.entry(*kind).or_default();
                counts.predicted += 1;
                if turn
                    .entities
                    .iter()
                    .any(|g| g.kind == *kind && overlaps((g.begin, g.end), *span))
                {
                    counts.correct += 1;
                }
            }
            for negative in &turn.negatives {
                let entry = self.negatives.entry(negative.kind.clone()).or_default();
                entry.0 += 1;
                if predicted.iter().any(|(_, p)| overlaps(*p, (negative.begin, negative.end))) {
                    entry.1 += 1;
                }
            }
        }
    }

    /// Overlap precision, recall and F2 over `types` together.
    pub fn combined(&self, types: &[EntityType]) -> (f64, f64, f64) {
        let mut total = Counts::default();
        for counts in types.iter().filter_map(|t| self.by_type.get(t)) {
            total.gold += counts.gold;
            total.predicted += counts.predicted;
            total.found += counts.found;
            total.correct += counts.correct;
        }
        let p = ratio(total.correct, total.predicted);
        let r = ratio(total.found, total.gold);
        (p, r, f_beta(p, r, 2.0))
    }

    /// The report as Markdown.
    pub fn report(&self) -> String {
        let mut out = String::from(
            "| type | labelled | found | precision | recall | F1 | F2 | exact recall |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (kind, c) in &self.by_type {
            let (p, r) = (ratio(c.correct, c.predicted), ratio(c.found, c.gold));
            out.push_str(&format!(
                "| {kind} | {} | {} | {p:.3} | {r:.3} | {:.3} | {:.3} | {:.3} |\n",
                c.gold,
                c.predicted,
                f_beta(p, r, 1.0),
                f_beta(p, r, 2.0),
                ratio(c.exact, c.gold)
            ));
        }
        let (p, r, f2) = self.combined(&HEADLINE);
        out.push_str(&format!("\n**NAME, PHONE, SSN, EMAIL, CREDIT_DEBIT_NUMBER, ADDRESS together: precision {p:.3}, recall {r:.3}, F2 {f2:.3}**\n\n"));
        let (p, r, f2) = self.combined(&EntityType::ALL);
        out.push_str(&format!(
            "All types together: precision {p:.3}, recall {r:.3}, F2 {f2:.3}; {} turns.\n\n",
            self.turns
        ));
        out.push_str(&format!(
            "PII characters left visible by redacting every type: {:.2}% ({} of {}).\n\n",
            100.0 * ratio(self.visible_chars, self.pii_chars),
            self.visible_chars,
            self.pii_chars
        ));
        out.push_str("| look-alike (not PII) | count | flagged |\n|---|---:|---:|\n");
        for (kind, (count, hit)) in &self.negatives {
            out.push_str(&format!("| {kind} | {count} | {:.1}% |\n", 100.0 * ratio(*hit, *count)));
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn f_beta(p: f64, r: f64, beta: f64) -> f64 {
    let b2 = beta * beta;
    if p + r == 0.0 { 0.0 } else { (1.0 + b2) * p * r / (b2 * p + r) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_a_labelled_call() {
        let call: Call = serde_json::from_str(
            r#"{"id": "t", "turns": [
                {"role": "CUSTOMER", "text": "I'm Maria Lopez, order 555-123-4567.", "entities": [{"type": "NAME", "begin": 4, "end": 15}],
                 "negatives": [{"kind": "ORDER_NUMBER", "begin": 23, "end": 35}]},
                {"role": "AGENT", "text": "Call 206-555-0147.", "entities": [{"type": "PHONE", "begin": 5, "end": 17}, {"type": "SSN", "begin": 0, "end": 4}]}
            ]}"#,
        )
        .expect("call");
        let mut scores = Scores::default();
        scores.add(&Detector::new(), &call);
        let (p, r, _) = scores.combined(&HEADLINE);
        assert!((p - 1.0).abs() < 1e-9, "{}", scores.report());
        assert!((r - 2.0 / 3.0).abs() < 1e-9, "{}", scores.report());
        assert!(scores.report().contains("| ORDER_NUMBER | 1 | 0.0% |"), "{}", scores.report());
        assert_eq!(scores.visible_chars, 4);
    }
}
