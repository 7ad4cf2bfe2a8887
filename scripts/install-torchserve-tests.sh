#!/usr/bin/env bash
# Installs what TorchServe 0.12's own pytest suites need to run against oxserve
# (tests/torchserve-upstream/pytest, run by tests/interop/torchserve_pytest.py) into
# <repo>/.venv-torchserve-tests: pytest, their imports (requests, orjson) and the torchserve
# package, whose `ts.launcher` starts and stops the server with the `torchserve` command (oxserve's
# TorchServe command line in these tests). Safe to run repeatedly: pip runs only when something
# pinned is missing.
#
#   bash scripts/install-torchserve-tests.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VERSION="9.2.0"
source "${SCRIPT_DIR}/lib/pinned-venv.sh"
pinned_venv "${REPO_ROOT}/.venv-torchserve-tests" pytest "${VERSION}" \
  "pytest==${VERSION} orjson==3.13.0 requests==2.34.2 torchserve==0.12.0" \
  'import pytest, orjson, requests, ts.launcher'
