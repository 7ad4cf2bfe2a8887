#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite (unit, property and
# integration tests over real sockets with real ONNX models shipped in examples/ and tests/fixtures/).
# Needs only a Rust toolchain; the first run builds dependencies (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
