#!/usr/bin/env bash
# Regenerate the vision handler test models and photos under tests/fixtures/handlers/vision/.
#
# The outputs are committed, so tests and CI never run this. It creates (once) a private
# virtualenv at <repo>/.venv-vision with pinned packages, downloads the scikit-image wheel from
# PyPI (no dependencies, only for its CC0 sample photos) and runs make-vision-models.py.
#
#   bash scripts/make-vision-models.sh
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO_ROOT}/.venv-vision"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=(
  "numpy==2.4.6"
  "onnx==1.23.2"
  "scikit-learn==1.9.1"
  "pillow==13.0.0"
)
SKIMAGE="scikit-image==0.26.0"

if [[ ! -x "${VENV}/bin/python" ]]; then
  "${PYTHON}" -m venv "${VENV}"
fi
STAMP="${VENV}/.vision-requirements"
WANT="$(printf '%s\n' "${REQUIREMENTS[@]}" "${SKIMAGE}")"
if [[ ! -f "${STAMP}" ]] || [[ "$(cat "${STAMP}")" != "${WANT}" ]]; then
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "${REQUIREMENTS[@]}"
  rm -rf "${VENV}/wheels"
  "${VENV}/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
    --only-binary=:all: -d "${VENV}/wheels" "${SKIMAGE}"
  printf '%s\n' "${WANT}" > "${STAMP}"
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
cd "${REPO_ROOT}"
exec "${VENV}/bin/python" "${SCRIPT_DIR}/make-vision-models.py" "${VENV}/wheels"
