//! The learned tagger for what rules do poorly: person names that no list holds and no phrase
//! introduces, and addresses in the many shapes the address patterns do not know. A linear-chain
//! CRF (`crfs`, a pure-Rust CRFsuite) over each word's form, shape, census frequencies and
//! neighbours, trained by `scripts/pii/train-tagger.sh` on sentences that
//! `scripts/pii/generate_training.py` makes, and compiled into the crate. Its spans join the
//! rules' candidates with a score below the rules' strong evidence, so where both speak the rules
//! decide, and a name or address found by both is widened to cover what either found.

use std::sync::OnceLock;

use crfs::{Attribute, Model};

use crate::Candidate;
use crate::entity::EntityType;
use crate::names::Names;

mod features;
pub use features::{Token, tokens};

/// The trained model (CRFsuite format). Rebuilt by `scripts/pii/train-tagger.sh`.
static MODEL_BYTES: &[u8] = include_bytes!("../model/tagger.crfsuite");

/// Score of a span the tagger alone found: under the rules' strong evidence, above their guesses.
pub(crate) const SCORE: f32 = 0.8;

/// The labels the model emits, BIO over the two learned types.
pub const LABELS: [&str; 5] = ["O", "B-NAME", "I-NAME", "B-ADDRESS", "I-ADDRESS"];

/// The compiled-in model, opened once for the process (the tagger borrows it for ever).
pub(crate) struct Tagger {
    crf: &'static crfs::Tagger<'static>,
}

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagger").finish_non_exhaustive()
    }
}

impl Tagger {
    pub fn new() -> Self {
        static MODEL: OnceLock<Model<'static>> = OnceLock::new();
        static CRF: OnceLock<crfs::Tagger<'static>> = OnceLock::new();
        let crf = CRF.get_or_init(|| {
            MODEL
                .get_or_init(|| Model::new(MODEL_BYTES).expect("the compiled-in model is valid"))
                .tagger()
                .expect("the compiled-in model has labels")
        });
        Self { crf }
    }

    /// Names and addresses in `text`, as candidates.
    pub fn find(&self, names: &Names, text: &str) -> Vec<Candidate> {
        let mut out = Vec::new();
        let tokens = tokens(text);
        if tokens.is_empty() {
            return out;
        }
        let xseq = features::attributes(names, text, &tokens);
        let Ok(labels) = self.crf.tag(&xseq) else { return out };
        let mut open: Option<Candidate> = None;
        let mut broken = false;
        for (i, (token, label)) in tokens.iter().zip(labels).enumerate() {
            let mut kind = match label.split_once('-') {
                Some((_, "NAME")) => Some(EntityType::Name),
                Some((_, "ADDRESS")) => Some(EntityType::Address),
                _ => None,
            };
            // A name does not run over punctuation, but for an initial's or a title's period.
            let word = &text[token.start..token.end];
            if kind == Some(EntityType::Name) && !word.starts_with(char::is_alphanumeric) {
                let before = i.checked_sub(1).map_or("", |j| &text[tokens[j].start..tokens[j].end]);
                let abbreviation = word == "."
                    && (before.chars().count() == 1
                        || matches!(before, "Mr" | "Mrs" | "Ms" | "Dr"));
                if !abbreviation {
                    kind = None;
                    broken = true;
                }
            }
            let begins = label.starts_with("B-");
            // What continues a name past a break is not part of it.
            if broken && kind.is_some() && !begins {
                kind = None;
            } else if kind.is_some() || label == LABELS[0] {
                broken = false;
            }
            match (&mut open, kind) {
                (Some(span), Some(kind)) if span.kind == kind && !begins => span.end = token.end,
                _ => {
                    out.extend(open.take());
                    open = kind.map(|kind| Candidate {
                        start: token.start,
                        end: token.end,
                        kind,
                        score: SCORE,
                    });
                }
            }
        }
        out.extend(open);
        let lower_case_text = !text.chars().any(char::is_uppercase);
        out.retain(|c| plausible(c, &text[c.start..c.end], lower_case_text));
        out
    }
}

/// Shape checks on a learned span, the tagger's known blind spots: a name has no digits and,
/// unless the whole text is lower-case, a capital; an address has a number and a word, or a
/// street word, and is not money.
fn plausible(c: &Candidate, span: &str, lower_case_text: bool) -> bool {
    match c.kind {
        EntityType::Name => {
            !span.chars().any(|ch| ch.is_numeric())
                && (lower_case_text || span.chars().any(char::is_uppercase))
        }
        EntityType::Address => {
            let words = span.split(|ch: char| !ch.is_alphanumeric()).filter(|w| !w.is_empty());
            let (mut number, mut word, mut street) = (false, false, false);
            for w in words {
                number |= w.chars().any(|ch| ch.is_ascii_digit());
                word |= w.chars().filter(|ch| ch.is_alphabetic()).count() >= 2;
                street |= crate::address::is_street_suffix(w);
            }
            let money = span.contains('$') || span.contains("dollar") || span.contains("cents");
            !money && ((number && word) || street)
        }
        _ => true,
    }
}

/// Where the tagger and the rules found the same name or address, one span covering both, with
/// the rules' score: the rules' evidence with the tagger's extent ("Ms. Szöllösy" found by a
/// title, "Berta Szöllösy" by the tagger). Returns the learned spans no rule found; those that
/// overlap a number, an e-mail or another type the rules decided are dropped, since those are
/// the rules' to decide (a phone line under a postal address stays a phone).
pub(crate) fn widen(rules: &mut [Candidate], learned: Vec<Candidate>) -> Vec<Candidate> {
    let mut alone = Vec::with_capacity(learned.len());
    for l in learned {
        let theirs = rules.iter().any(|r| {
            !matches!(r.kind, EntityType::Name | EntityType::Address)
                && r.start < l.end
                && l.start < r.end
        });
        if theirs {
            continue;
        }
        let mut joined = false;
        for r in rules.iter_mut().filter(|r| r.kind == l.kind && r.start < l.end && l.start < r.end)
        {
            r.start = r.start.min(l.start);
            r.end = r.end.max(l.end);
            joined = true;
        }
        if !joined {
            alone.push(l);
        }
    }
    alone
}

/// A training sequence: each token's attributes and its BIO label from labelled byte spans.
pub fn training_sequence(
    detector: &crate::Detector,
    text: &str,
    spans: &[(usize, usize, EntityType)],
) -> (Vec<Vec<Attribute>>, Vec<&'static str>) {
    let tokens = tokens(text);
    let xseq = features::attributes(&detector.names, text, &tokens);
    let mut previous: Option<usize> = None;
    let labels = tokens
        .iter()
        .map(|token| {
            let inside = spans
                .iter()
                .enumerate()
                .find(|(_, (start, end, _))| *start <= token.start && token.start < *end);
            match inside {
                Some((i, (_, _, kind))) => {
                    let first = previous != Some(i);
                    previous = Some(i);
                    match (kind, first) {
                        (EntityType::Name, true) => LABELS[1],
                        (EntityType::Name, false) => LABELS[2],
                        (EntityType::Address, true) => LABELS[3],
                        (EntityType::Address, false) => LABELS[4],
                        _ => LABELS[0],
                    }
                }
                None => {
                    previous = None;
                    LABELS[0]
                }
            }
        })
        .collect();
    (xseq, labels)
}
