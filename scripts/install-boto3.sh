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
VERSION="1.44.18"
source "${SCRIPT_DIR}/lib/pinned-venv.sh"
pinned_venv "${REPO_ROOT}/.venv-aws" boto3 "${VERSION}" "boto3==${VERSION}" 'import boto3'
