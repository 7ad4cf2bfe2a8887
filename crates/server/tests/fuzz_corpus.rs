//! Replays the committed corpus of the server's fuzz targets (`fuzz/corpus/<target>/*`) through
//! the same bodies the libFuzzer binaries run, on stable Rust.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../../fuzz/src/server_targets.rs"]
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
fn binary_tensor() {
    replay("binary_tensor", targets::binary_tensor);
}

#[test]
fn binary_request() {
    replay("binary_request", targets::binary_request);
}

#[test]
fn multipart() {
    replay("multipart", targets::multipart);
}
