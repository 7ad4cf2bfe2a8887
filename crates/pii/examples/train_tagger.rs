//! Trains the detector's name and address tagger (a linear-chain CRF) on labelled sentences.
//!
//!     cargo run --release -p oxserve-pii --example train_tagger -- TRAIN.jsonl crates/pii/model/tagger.crfsuite
//!
//! `scripts/pii/train-tagger.sh` makes the training file (`generate_training.py`) and runs this.
//! L-BFGS with L1 and L2 penalties: L1 keeps the model small (features that do not help get a
//! zero weight and are not written).

use std::path::Path;

use oxserve_pii::eval::Call;
use oxserve_pii::{Detector, EntityType, byte_offset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: train_tagger TRAIN.jsonl MODEL.crfsuite".into());
    };
    let calls = Call::read_lines(&std::fs::read_to_string(&input)?)?;
    let detector = Detector::rules_only();
    let mut trainer =
        crfs::train::Trainer::lbfgs().with_c1(0.05)?.with_c2(0.01)?.with_max_iterations(100)?;
    // A feature seen once (one street's name, one surname) teaches nothing general.
    trainer.set_feature_minfreq(2.0)?;
    let mut sequences = 0;
    for turn in calls.iter().flat_map(|c| &c.turns) {
        let spans: Vec<(usize, usize, EntityType)> = turn
            .entities
            .iter()
            .filter(|e| matches!(e.kind, EntityType::Name | EntityType::Address))
            .map(|e| (byte_offset(&turn.text, e.begin), byte_offset(&turn.text, e.end), e.kind))
            .collect();
        let (xseq, yseq) = oxserve_pii::tagger::training_sequence(&detector, &turn.text, &spans);
        if !xseq.is_empty() {
            trainer.append(&xseq, &yseq)?;
            sequences += 1;
        }
    }
    eprintln!("training on {sequences} sequences from {input}");
    trainer.train(Path::new(&output))?;
    eprintln!("wrote {output} ({} bytes)", std::fs::metadata(&output)?.len());
    Ok(())
}
