# Sourced by the install scripts of Python clients the interop tests drive (install-tritonclient.sh,
# install-boto3.sh). `pinned_venv VENV DIST VERSION REQUIREMENT IMPORTS` makes sure the virtualenv
# VENV holds DIST at VERSION (installing REQUIREMENT, one or more pip requirements separated by spaces, when it does not) and that IMPORTS, a
# Python statement, runs there: a half-finished earlier install is repaired, not trusted, and pip
# runs only when something is missing.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
pinned_venv() {
  local venv="$1" dist="$2" version="$3" requirement="$4" imports="$5"
  if [[ ! -x "${venv}/bin/python" ]]; then
    echo "creating virtualenv ${venv}" >&2
    "${PYTHON:-python3}" -m venv "${venv}"
  fi
  local current
  current="$("${venv}/bin/python" -c "from importlib import metadata; print(metadata.version('${dist}'))" 2>/dev/null || true)"
  if [[ "${current}" != "${version}" ]] || ! "${venv}/bin/python" -c "${imports}" 2>/dev/null; then
    echo "installing ${requirement} into ${venv}" >&2
    # REQUIREMENT may name several packages, separated by spaces (pinned together in one resolve).
    # shellcheck disable=SC2086
    "${venv}/bin/python" -m pip install --disable-pip-version-check -q ${requirement}
  fi
  "${venv}/bin/python" -c "${imports}"
  echo "${dist} ${version} ready in ${venv}" >&2
}
