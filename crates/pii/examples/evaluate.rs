//! Scores the detector on labelled calls and measures its speed on their turns.
//!
//!     cargo run --release -p oxserve-pii --example evaluate -- crates/pii/eval/heldout-calls.jsonl
//!
//! Prints the per-type table (see `oxserve_pii::eval`), then the speed: every turn of the file
//! detected as its calls, on one thread, repeated for at least two seconds.

use std::time::{Duration, Instant};

use oxserve_pii::Detector;
use oxserve_pii::eval::{Call, Scores};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: evaluate CALLS.jsonl")?;
    let text = std::fs::read_to_string(&path)?;
    let calls: Vec<Call> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let detector = Detector::new();
    println!("detector built in {:.1?}", started.elapsed());
    let mut scores = Scores::default();
    for call in &calls {
        scores.add(&detector, call);
    }
    println!("{} calls from {path}\n\n{}", calls.len(), scores.report());

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
    Ok(())
}
