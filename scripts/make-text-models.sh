#!/usr/bin/env bash
# Regenerate the small text models under tests/fixtures/handlers/text/ (committed; CI does not run
# this). Creates (once) a private virtualenv at <repo>/.venv-text with pinned packages, then runs
# scripts/make-text-models.py. Safe to run repeatedly and from any working directory.
#
#   bash scripts/make-text-models.sh
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
source "${SCRIPT_DIR}/text-venv.sh"
text_venv numpy onnx scikit-learn tokenizers

# Single-threaded BLAS and tokenizer training and a fixed hash seed keep training bit-for-bit reproducible.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1
cd "${REPO_ROOT}"
exec "${TEXT_VENV}/bin/python" "${SCRIPT_DIR}/make-text-models.py" "$@"
