//! Replays the committed corpus of the server's fuzz targets (`fuzz/corpus/<target>/*`) through
//! the same bodies the libFuzzer binaries run, on stable Rust.

#[path = "../../../../fuzz/src/server_targets.rs"]
mod targets;

#[path = "../../../../fuzz/src/replay.rs"]
mod replay;

use replay::replay;

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
