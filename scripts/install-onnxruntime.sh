#!/usr/bin/env bash
# Install the ONNX Runtime shared library that oxserve's `ort` backend loads at run time.
#
# oxserve links nothing from ONNX Runtime at build time (the `ort` crate is built with
# `load-dynamic`), so the library has to come from somewhere at run time. The simplest
# offline-friendly source is the official `onnxruntime` wheel on PyPI, which ships
# `onnxruntime/capi/libonnxruntime.so.<version>`. This script puts that wheel in a private
# virtualenv at <repo>/.venv-ort (where oxserve-backend-ort looks by itself) and prints the
# library path. Safe to run repeatedly and from any working directory; pip only runs when
# the pinned version is not installed yet.
#
#   bash scripts/install-onnxruntime.sh
#   export ORT_DYLIB_PATH=...   # optional: the line printed last
#
# Environment:
#   PYTHON               interpreter used to create the venv (default: python3)
#   ORT_PYPI_PACKAGE     wheel to install (default: onnxruntime; onnxruntime-gpu for CUDA)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO_ROOT}/.venv-ort"
PYTHON="${PYTHON:-python3}"
PACKAGE="${ORT_PYPI_PACKAGE:-onnxruntime}"
# ort 2.0.0-rc.15 needs ONNX Runtime >= 1.31; 1.32.0 is the tested release, 1.31.1 the fallback.
VERSIONS=("1.32.0" "1.31.1")

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "creating virtualenv ${VENV}" >&2
  "${PYTHON}" -m venv "${VENV}"
fi

# The installed version, or nothing when the package is absent.
installed_version() {
  "${VENV}/bin/python" - "${PACKAGE}" <<'PY' 2>/dev/null || true
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PY
}

current="$(installed_version)"
wanted=""
for v in "${VERSIONS[@]}"; do
  if [[ "${current}" == "${v}" ]]; then
    wanted="${v}"
    break
  fi
done

if [[ -z "${wanted}" ]]; then
  for v in "${VERSIONS[@]}"; do
    echo "installing ${PACKAGE}==${v} into ${VENV}" >&2
    if "${VENV}/bin/python" -m pip install --disable-pip-version-check -q "${PACKAGE}==${v}"; then
      wanted="${v}"
      break
    fi
    echo "${PACKAGE}==${v} is not available, trying the next pinned version" >&2
  done
fi

if [[ -z "${wanted}" ]]; then
  echo "error: could not install ${PACKAGE} ${VERSIONS[*]} (is PyPI reachable?)" >&2
  exit 1
fi

# Print the newest matching library file (the wheel ships libonnxruntime.so.<version>).
lib="$(ls -1 "${VENV}"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -n 1 || true)"
if [[ -z "${lib}" ]]; then
  echo "error: ${PACKAGE}==${wanted} is installed but no libonnxruntime.so was found in it" >&2
  exit 1
fi
echo "${PACKAGE} ${wanted} ready; oxserve finds it automatically, or set:" >&2
echo "ORT_DYLIB_PATH=${lib}"
