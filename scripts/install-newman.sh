#!/usr/bin/env bash
# Installs Postman's collection runner, newman, from the npm registry into <repo>/.tools/newman, for
# the test that runs TorchServe's own Postman collections against oxserve
# (crates/cli/tests/it/peers.rs, tests/interop/torchserve_postman.py). Safe to run repeatedly: npm
# runs only when the pinned version is not installed yet. Needs Node.js and npm.
#
#   bash scripts/install-newman.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="6.2.2"
PREFIX="${REPO_ROOT}/.tools/newman"
NEWMAN="${PREFIX}/node_modules/.bin/newman"
if [[ -x "${NEWMAN}" ]] && [[ "$("${NEWMAN}" --version 2>/dev/null)" == "${VERSION}" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to install newman (Debian: apt-get install npm)" >&2; exit 1; }
mkdir -p "${PREFIX}"
npm install --no-audit --no-fund --silent --prefix "${PREFIX}" "newman@${VERSION}"
"${NEWMAN}" --version
