#!/usr/bin/env bash
# Rebuilds the PII detector's learned name and address tagger, crates/pii/model/tagger.crfsuite
# (committed; the crate compiles it in). Installs Faker (pinned) into <repo>/.venv-pii-train, writes
# the training sentences with scripts/pii/generate_training.py (its own templates and seed; never
# the evaluation sets) and trains a linear-chain CRF on them with the crate's own feature code
# (crates/pii/examples/train_tagger.rs). Deterministic for the same seed and Faker version. Takes
# about 10 minutes on one core, most of it L-BFGS.
#
#   bash scripts/pii/train-tagger.sh [SEED] [GROUPS]
#
# Then score it: cargo run --release -p oxserve-pii --example evaluate -- crates/pii/eval/heldout-calls.jsonl
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
SEED="${1:-1207}"
GROUPS_="${2:-9000}"
FAKER_VERSION="40.63.0"
source "${REPO_ROOT}/scripts/lib/pinned-venv.sh"
pinned_venv "${REPO_ROOT}/.venv-pii-train" Faker "${FAKER_VERSION}" "Faker==${FAKER_VERSION}" 'import faker'

mkdir -p "${REPO_ROOT}/target"
TRAIN="${REPO_ROOT}/target/pii-train.jsonl"
"${REPO_ROOT}/.venv-pii-train/bin/python" "${SCRIPT_DIR}/generate_training.py" \
  --seed "${SEED}" --groups "${GROUPS_}" --out "${TRAIN}"
cd "${REPO_ROOT}"
cargo run --release -p oxserve-pii --example train_tagger -- "${TRAIN}" crates/pii/model/tagger.crfsuite
