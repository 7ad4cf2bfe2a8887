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
VENV="${REPO_ROOT}/.venv-triton"
PYTHON="${PYTHON:-python3}"
VERSION="2.73.0"

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}" >&2
  "${PYTHON}" -m venv "${VENV}"
fi

current="$("${VENV}/bin/python" -c 'from importlib import metadata; print(metadata.version("tritonclient"))' 2>/dev/null || true)"
# Both client flavours must import: a half-finished earlier install is repaired, not trusted.
if [[ "${current}" != "${VERSION}" ]] \
  || ! "${VENV}/bin/python" -c 'import tritonclient.http, tritonclient.grpc, numpy' 2>/dev/null; then
  echo "installing tritonclient[http,grpc]==${VERSION} into ${VENV}" >&2
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "tritonclient[http,grpc]==${VERSION}"
fi
"${VENV}/bin/python" -c 'import tritonclient.http, tritonclient.grpc, numpy'
echo "tritonclient ${VERSION} ready in ${VENV}" >&2
