//! Scores the detector on labelled calls and measures its speed on their turns.
//!
//!     cargo run --release -p oxserve-pii --example evaluate -- crates/pii/eval/heldout-calls.jsonl
//!
//! The file is labelled calls one per line (`scripts/pii/generate_calls.py`) or presidio-research's
//! `synth_dataset_v2.json` (crates/pii/eval/presidio-research/). Prints the per-type table (see `oxserve_pii::eval`), then the speed: every turn of the file
//! detected as its calls, on one thread, repeated for at least two seconds, and one 100 KB document. With
//! `PII_EVAL_ERRORS=NAME` (a type, or `NEGATIVE`) it first lists that type's misses and false alarms;
//! with `PII_RULES_ONLY=1` it scores the rules without the learned tagger.

use std::time::{Duration, Instant};

use oxserve_pii::Detector;
use oxserve_pii::eval::{Call, Scores};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: evaluate CALLS.jsonl")?;
    let text = std::fs::read_to_string(&path)?;
    let calls = Call::read_any(&text)?;
    let started = Instant::now();
    // PII_RULES_ONLY=1 leaves the learned tagger out, to measure what it adds.
    let detector = if std::env::var_os("PII_RULES_ONLY").is_some() {
        Detector::rules_only()
    } else {
        Detector::new()
    };
    println!("detector built in {:.1?}", started.elapsed());
    let mut scores = Scores::default();
    for call in &calls {
        scores.add(&detector, call);
    }
    println!("{} calls from {path}\n\n{}", calls.len(), scores.report());
    if let Ok(kind) = std::env::var("PII_EVAL_ERRORS") {
        print_errors(&detector, &calls, &kind);
    }

    let conversations: Vec<Vec<&str>> =
        calls.iter().map(|c| c.turns.iter().map(|t| t.text.as_str()).collect()).collect();
    let turns: usize = conversations.iter().map(Vec::len).sum();
    let chars: usize = conversations.iter().flatten().map(|t| t.chars().count()).sum();
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for conversation in &conversations {
            std::hint::black_box(detector.detect_conversation(conversation));
        }
        rounds += 1;
    }
    let per_turn = started.elapsed() / (rounds * turns) as u32;
    println!(
        "speed: {:.0} turns per second on one thread ({per_turn:.1?} per turn, turns of {:.0} characters on average)",
        1.0 / per_turn.as_secs_f64(),
        chars as f64 / turns as f64
    );
    // One document at the API's limit: every turn joined, cut at 100 KB.
    let mut document = String::new();
    for turn in conversations.iter().flatten() {
        if document.len() + turn.len() + 1 > 100 * 1024 {
            break;
        }
        document.push_str(turn);
        document.push('\n');
    }
    let started = Instant::now();
    let found = detector.detect(&document).len();
    println!("one {} byte document: {found} entities in {:.1?}", document.len(), started.elapsed());
    Ok(())
}

/// Lists the misses and false alarms of one type (or the look-alikes flagged), with their turns.
fn print_errors(detector: &Detector, calls: &[Call], kind: &str) {
    let span =
        |text: &str, b: usize, e: usize| text.chars().skip(b).take(e - b).collect::<String>();
    for call in calls {
        let texts: Vec<&str> = call.turns.iter().map(|t| t.text.as_str()).collect();
        for (turn, found) in call.turns.iter().zip(detector.detect_conversation(&texts)) {
            let hit =
                |b: usize, e: usize| found.iter().any(|f| f.begin_offset < e && b < f.end_offset);
            if kind == "NEGATIVE" {
                for n in turn.negatives.iter().filter(|n| hit(n.begin, n.end)) {
                    let by: Vec<_> = found
                        .iter()
                        .filter(|f| f.begin_offset < n.end && n.begin < f.end_offset)
                        .map(|f| f.kind.as_str())
                        .collect();
                    println!(
                        "{} {:?} flagged {by:?}: {}",
                        n.kind,
                        span(&turn.text, n.begin, n.end),
                        turn.text
                    );
                }
                continue;
            }
            for g in turn.entities.iter().filter(|g| g.kind.as_str() == kind) {
                if !found
                    .iter()
                    .any(|f| f.kind == g.kind && f.begin_offset < g.end && g.begin < f.end_offset)
                {
                    println!("MISS {:?}: {}", span(&turn.text, g.begin, g.end), turn.text);
                }
            }
            for f in found.iter().filter(|f| f.kind.as_str() == kind) {
                if !turn
                    .entities
                    .iter()
                    .any(|g| g.kind == f.kind && f.begin_offset < g.end && g.begin < f.end_offset)
                {
                    println!(
                        "FALSE {:?}: {}",
                        span(&turn.text, f.begin_offset, f.end_offset),
                        turn.text
                    );
                }
            }
        }
    }
}
