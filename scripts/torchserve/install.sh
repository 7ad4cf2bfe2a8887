#!/usr/bin/env bash
# Optional: installs TorchServe, torch-model-archiver, torch (CPU) and onnxruntime from PyPI into
# .venv-torchserve, and archives the example models with scripts/torchserve/onnx_handler.py into
# .torchserve/model-store. TorchServe also needs a Java 17+ runtime (Debian:
# apt-get install openjdk-17-jre-headless). Idempotent; never run by the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-torchserve
if [ ! -x "$VENV/bin/torchserve" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet torchserve torch-model-archiver torch onnxruntime numpy pyyaml
fi
command -v java >/dev/null || echo "warning: no java on PATH; TorchServe needs Java 17 or later" >&2
STORE=.torchserve/model-store
mkdir -p "$STORE"
for model in tiny digits; do
    case $model in
        tiny) file=examples/models/tiny.onnx ;;
        digits) file=examples/models/digits_mlp.onnx ;;
    esac
    "$VENV/bin/torch-model-archiver" --model-name "$model" --version 1.0 --serialized-file "$file" \
        --handler scripts/torchserve/onnx_handler.py --export-path "$STORE" --force
done
echo "TorchServe in $VENV; archives in $STORE: $(ls "$STORE" | tr '\n' ' ')"
