#!/usr/bin/env bash
# Installs TorchServe's Python worker into <repo>/.venv-python-worker, for models with Python
# handlers: the `torchserve` package without its dependencies (no Java, no torch), plus what the
# worker imports (PyYAML, psutil, packaging, Pillow). oxserve starts the stock worker through a
# launcher that runs torch-free handlers where torch is missing. Safe to run repeatedly: pip runs
# only when a pinned version is missing. Prints the interpreter to set as `python`.
#
#   bash scripts/install-python-worker.sh
#
# For PyTorch models, make the venv see Debian's CPU build of torch first (Debian 12: packages
# python3-torch and python3-torchvision), then run this with
#   PYTHON=/usr/bin/python3 OXSERVE_WORKER_SYSTEM_SITE=1 bash scripts/install-python-worker.sh
#
# Environment:
#   PYTHON                      interpreter used to create the venv (default: python3)
#   OXSERVE_WORKER_VENV         where to make it (default: <repo>/.venv-python-worker)
#   OXSERVE_WORKER_SYSTEM_SITE  1: the venv also sees the interpreter's own packages (torch)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${OXSERVE_WORKER_VENV:-${REPO_ROOT}/.venv-python-worker}"
PYTHON="${PYTHON:-python3}"
PINS=(torchserve==0.12.0 PyYAML==6.0.3 psutil==7.2.2 packaging==26.0 pillow==13.0.0)

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}" >&2
  if [[ "${OXSERVE_WORKER_SYSTEM_SITE:-0}" == 1 ]]; then
    "${PYTHON}" -m venv --system-site-packages "${VENV}"
  else
    "${PYTHON}" -m venv "${VENV}"
  fi
fi
stamp="${VENV}/.stamp-$(printf '%s_' "${PINS[@]}" | md5sum | cut -c1-12)"
if [[ ! -f "${stamp}" ]] || ! "${VENV}/bin/python" -c 'import ts.model_service_worker' 2>/dev/null; then
  echo "installing TorchServe's worker (${PINS[*]}) into ${VENV}" >&2
  # torchserve's own dependency list pulls nothing the worker needs beyond these.
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q --no-deps "${PINS[0]}"
  # pip's resolver warns that torchserve declares `wheel`, which the worker never imports.
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "${PINS[@]:1}" 2>&1 \
    | grep -v -e "dependency resolver does not currently" -e "torchserve 0.12.0 requires wheel" >&2 || true
  touch "${stamp}"
fi
echo "${VENV}/bin/python"
