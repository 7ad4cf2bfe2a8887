#!/usr/bin/env bash
# Builds oxserve (release) and serves the example models in examples/model-store on the embedded
# engine: inference on 127.0.0.1:8080, management on :8081, metrics on :8082. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p oxserve
exec ./target/release/oxserve serve \
  --model-store examples/model-store \
  --models all \
  --ts-config examples/config.properties "$@"
