#!/usr/bin/env bash
# Installs AWS's Python SDK (`boto3`) into <repo>/.venv-aws.
#
# The Comprehend interop test (crates/server/tests/it/comprehend.rs) drives oxserve's Comprehend
# API with boto3's real `comprehend` client (its SigV4 signing, its AWS JSON 1.1 protocol, its error
# parsing), not with an imitation that shares the server's assumptions. Safe to run repeatedly: pip
# runs only when the pinned version is not installed yet.
#
#   bash scripts/install-boto3.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO_ROOT}/.venv-aws"
PYTHON="${PYTHON:-python3}"
VERSION="1.44.18"

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}" >&2
  "${PYTHON}" -m venv "${VENV}"
fi
current="$("${VENV}/bin/python" -c 'from importlib import metadata; print(metadata.version("boto3"))' 2>/dev/null || true)"
if [[ "${current}" != "${VERSION}" ]] || ! "${VENV}/bin/python" -c 'import boto3' 2>/dev/null; then
  echo "installing boto3==${VERSION} into ${VENV}" >&2
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "boto3==${VERSION}"
fi
"${VENV}/bin/python" -c 'import boto3'
echo "boto3 ${VERSION} ready in ${VENV}" >&2
