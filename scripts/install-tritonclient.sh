#!/usr/bin/env bash
# Installs NVIDIA's `tritonclient` Python package (HTTP and gRPC clients) into <repo>/.venv-triton.
#
# The interop test (crates/server/tests/it/interop_tritonclient.rs) drives oxserve with the real
# Triton/KServe client rather than a hand-written imitation, so a wire-format mistake cannot hide
# behind a test that shares the server's assumptions. Safe to run repeatedly: pip runs only when the
# pinned version is not installed yet.
#
#   bash scripts/install-tritonclient.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VERSION="2.73.0"
source "${SCRIPT_DIR}/lib/pinned-venv.sh"
# requests: Triton's own L0_http tests (tests/triton-upstream/) post with it.
pinned_venv "${REPO_ROOT}/.venv-triton" tritonclient "${VERSION}" "tritonclient[http,grpc]==${VERSION} requests==2.34.2" 'import tritonclient.http, tritonclient.grpc, numpy, requests'
