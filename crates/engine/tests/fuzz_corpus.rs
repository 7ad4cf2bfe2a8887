//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same target
//! bodies the libFuzzer binaries run, on stable Rust, so inputs that once found a bug (and the
//! seeds) keep being checked in CI without `cargo fuzz`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: {} panicked", path.display());
        files += 1;
    }
    assert!(files > 0, "no corpus files in {}", dir.display());
}

#[test]
fn json_tensor() {
    replay("json_tensor", targets::json_tensor);
}

#[test]
fn manifest() {
    replay("manifest", targets::manifest);
}

#[test]
fn archive() {
    replay("archive", targets::archive);
}

#[test]
fn url_allowlist() {
    replay("url_allowlist", targets::url_allowlist);
}

#[test]
fn image_decode() {
    replay("image_decode", targets::image_decode);
}

#[test]
fn request_items() {
    replay("request_items", targets::request_items);
}
