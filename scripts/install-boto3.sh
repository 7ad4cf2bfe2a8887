#!/usr/bin/env bash
# Installs AWS's Python SDK (`boto3`) and moto's S3-compatible server (`moto_server`) into
# <repo>/.venv-aws.
#
# The Comprehend interop test (crates/server/tests/it/comprehend.rs) drives oxserve's Comprehend
# API with boto3's real `comprehend` client (its SigV4 signing, its AWS JSON 1.1 protocol, its error
# parsing), not with an imitation that shares the server's assumptions. The batch-job tests
# (crates/cli/tests/it/job_cli.rs: `oxserve job`, and the server driven by boto3) run jobs over real
# S3 buckets: a `moto_server` on loopback, with its conditional writes. Safe to run repeatedly: pip
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
MOTO_VERSION="5.2.6"
pinned_venv "${REPO_ROOT}/.venv-aws" boto3 "${VERSION}" "boto3==${VERSION}" 'import boto3'
pinned_venv "${REPO_ROOT}/.venv-aws" moto "${MOTO_VERSION}" "moto[server]==${MOTO_VERSION} boto3==${VERSION}" \
  'import moto.server, flask, boto3'
