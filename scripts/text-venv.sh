# Sourced by make-text-models.sh and install-minilm.sh: `text_venv PKG...` makes sure the private
# virtualenv <repo>/.venv-text exists and holds the pinned versions of the named packages (and their
# pinned dependencies), touching pip only when something is missing. Sets TEXT_VENV.
TEXT_VENV="${REPO_ROOT}/.venv-text"

text_venv() {
  local -A pins=(
    [numpy]="numpy==2.4.6"
    [onnx]="onnx==1.23.2 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0"
    [scikit-learn]="scikit-learn==1.9.1 scipy==1.17.1 joblib==1.6.0 threadpoolctl==3.8.0"
  )
  if [[ ! -x "${TEXT_VENV}/bin/python" ]]; then
    echo "creating virtualenv ${TEXT_VENV}" >&2
    "${PYTHON:-python3}" -m venv "${TEXT_VENV}"
  fi
  local pkg want=()
  for pkg in "$@"; do
    if [[ "${pkg}" == tokenizers ]]; then
      # Installed without its dependencies: huggingface_hub is only needed to download from a hub.
      if [[ ! -f "${TEXT_VENV}/.stamp-tokenizers-0.23.3" ]]; then
        "${TEXT_VENV}/bin/python" -m pip install --disable-pip-version-check -q --no-deps "tokenizers==0.23.3" >&2
        touch "${TEXT_VENV}/.stamp-tokenizers-0.23.3"
      fi
    else
      # shellcheck disable=SC2206
      want+=(${pins[${pkg}]})
    fi
  done
  local stamp="${TEXT_VENV}/.stamp-$(printf '%s_' "${want[@]}" | md5sum | cut -c1-12)"
  if [[ ${#want[@]} -gt 0 && ! -f "${stamp}" ]]; then
    "${TEXT_VENV}/bin/python" -m pip install --disable-pip-version-check -q "${want[@]}" >&2
    touch "${stamp}"
  fi
}
