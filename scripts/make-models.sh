#!/usr/bin/env bash
# Regenerate the example / test ONNX models and the torch-model-archiver fixture.
#
# Creates (once) a private virtualenv at <repo>/.venv-models, installs pinned
# Python packages into it, then runs scripts/make-models.py. Safe to run
# repeatedly and from any working directory. See make-models.py for the list
# of generated files.
#
#   bash scripts/make-models.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO_ROOT}/.venv-models"
PYTHON="${PYTHON:-python3}"

# Pinned, full dependency closure (top-level packages first, then their
# transitive dependencies) so regeneration is reproducible. torch is NOT needed.
REQUIREMENTS=(
  "numpy==2.4.6"
  "onnx==1.23.2"
  "scikit-learn==1.9.1"
  "skl2onnx==1.20.0"
  "torch-model-archiver==0.12.0"
  "scipy==1.17.1"
  "protobuf==7.36.2"
  "ml_dtypes==0.6.0"
  "typing_extensions==4.16.0"
  "joblib==1.6.0"
  "threadpoolctl==3.8.0"
  "narwhals==2.29.0"
  "cloudpickle==3.1.3"
  "enum-compat==0.0.3"
)

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}"
  "${PYTHON}" -m venv "${VENV}"
fi

# Only touch pip when the pinned set changed (keeps re-runs fast and offline).
STAMP="${VENV}/.make-models-requirements"
WANT="$(printf '%s\n' "${REQUIREMENTS[@]}")"
if [[ ! -f "${STAMP}" ]] || [[ "$(cat "${STAMP}")" != "${WANT}" ]]; then
  "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "${REQUIREMENTS[@]}"
  printf '%s\n' "${WANT}" > "${STAMP}"
fi

# Single-threaded BLAS: keeps sklearn training bit-for-bit reproducible.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0

cd "${REPO_ROOT}"
# torch-model-archiver is invoked as a CLI from the venv.
PATH="${VENV}/bin:${PATH}" exec "${VENV}/bin/python" "${SCRIPT_DIR}/make-models.py" "$@"
