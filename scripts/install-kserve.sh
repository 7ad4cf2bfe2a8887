#!/usr/bin/env bash
# Installs KServe's Python SDK (`kserve`: InferenceRESTClient for REST v1 and v2,
# InferenceGRPCClient for gRPC v2) into <repo>/.venv-kserve, for the test that runs oxserve as
# KServe's serving runtime starts it and calls it with KServe's own clients
# (crates/cli/tests/it/cluster.rs). The SDK is heavy (about 450 MB: it carries KServe's model server
# too); nothing else needs it. Safe to run repeatedly: pip runs only when the pinned version is not
# installed yet.
#
#   bash scripts/install-kserve.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
source "${SCRIPT_DIR}/lib/pinned-venv.sh"
VERSION="0.21.0"
pinned_venv "${REPO_ROOT}/.venv-kserve" kserve "${VERSION}" "kserve==${VERSION} PyYAML==6.0.3" \
  'import kserve, yaml'
