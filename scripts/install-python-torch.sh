#!/usr/bin/env bash
# Installs a CPU PyTorch for the Python-worker tests with real PyTorch models: Debian 12's
# python3-torch (1.13.1) and python3-torchvision (0.14.1) (PyPI's Linux torch is a CUDA build of
# several GB), then a venv on the system Python that sees them, <repo>/.venv-python-torch, with
# TorchServe's worker and captum (which TorchServe's vision handlers import) without their
# dependencies. Safe to run repeatedly: apt and pip run only when something is missing.
# Prints the interpreter to set as `python`.
#
#   bash scripts/install-python-torch.sh
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO_ROOT}/.venv-python-torch"
PACKAGES=(python3-torch python3-torchvision python3-matplotlib python3-venv)
PINS=(torchserve==0.12.0 captum==0.7.0 PyYAML==6.0.3 psutil==7.2.2 packaging==26.0)

if ! /usr/bin/python3 -c 'import torch, torchvision, matplotlib' 2>/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "no apt-get: install a CPU torch and torchvision for /usr/bin/python3 another way" >&2
    exit 1
  fi
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then sudo=(sudo); fi
  echo "installing ${PACKAGES[*]} from Debian" >&2
  "${sudo[@]}" apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >&2
fi
if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}" >&2
  /usr/bin/python3 -m venv --system-site-packages "${VENV}"
fi
stamp="${VENV}/.stamp-$(printf '%s_' "${PINS[@]}" | md5sum | cut -c1-12)"
if [[ ! -f "${stamp}" ]]; then
  # Without dependencies: pip would otherwise replace Debian's numpy 1.24, which torch 1.13 needs,
  # and fetch a CUDA torch for captum.
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q --no-deps "${PINS[@]}" >&2
  touch "${stamp}"
fi
"${VENV}/bin/python" -c 'import torch, torchvision, captum.attr, ts.model_service_worker' 2>/dev/null
echo "${VENV}/bin/python"
