//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same target
//! bodies the libFuzzer binaries run, on stable Rust, so inputs that once found a bug (and the
//! seeds) keep being checked in CI without `cargo fuzz`.

#[path = "../../../../fuzz/src/targets.rs"]
mod targets;

#[path = "../../../../fuzz/src/replay.rs"]
mod replay;

use replay::replay;

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
