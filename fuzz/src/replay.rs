//! Replays a target's committed corpus (`fuzz/corpus/<target>/*`) on stable Rust; included by the
//! engine's and the server's `fuzz_corpus` tests.

use std::path::Path;

/// Runs `run` on every file of `fuzz/corpus/<target>`, failing on a panic or an empty corpus.
pub fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files = 0;
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: {} panicked", path.display());
        files += 1;
    }
    assert!(files > 0, "no corpus files in {}", dir.display());
}
