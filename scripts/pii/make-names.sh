#!/usr/bin/env bash
# Regenerate the name lists of the PII detector, crates/pii/data/first_names.txt and
# crates/pii/data/last_names.txt (committed; see scripts/pii/make-names.py for their format).
#
# Why: the detector tells person names from other capitalised words by looking them up in the
# 1990 US Census first- and last-name frequency lists (public domain), and it must know which
# names are also ordinary words (Will, Grace, Rose, Brown, Baker) so that it asks for more context
# before calling them names. The census lists come from the PyPI package `names==0.3.0`, whose
# sdist is fetched once with `pip download --no-deps` into .models/cache/ (ignored by git) and read
# without installing it; the words come from Debian's wamerican (/usr/share/dict/american-english),
# installed with apt-get when missing and running as root.
#
# Safe to run repeatedly and from any working directory; the output depends only on the pinned
# sdist (checked by sha256) and the wamerican version (the committed files were made with
# WAMERICAN_VERSION below; another version may flip a few `w` flags, and a warning says so).
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
PACKAGE="names==0.3.0"
SDIST_NAME="names-0.3.0.tar.gz"
SDIST_SHA256="726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671"
WAMERICAN_VERSION="2020.12.07-2"
WORDS="/usr/share/dict/american-english"
CACHE="${REPO_ROOT}/.models/cache"
OUT="${REPO_ROOT}/crates/pii/data"

if [[ ! -f "${WORDS}" ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing wamerican for ${WORDS}" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q wamerican >&2; then
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q wamerican >&2
    fi
  else
    echo "make-names: ${WORDS} is missing; install Debian's wamerican package (apt-get install wamerican) as root and rerun" >&2
    exit 1
  fi
fi
have="$(dpkg-query -W -f '${Version}' wamerican 2>/dev/null || echo unknown)"
if [[ "${have}" != "${WAMERICAN_VERSION}" ]]; then
  echo "make-names: warning: wamerican ${have}, the committed lists were made with ${WAMERICAN_VERSION}; some word flags may differ" >&2
fi

source "${REPO_ROOT}/scripts/fixtures/venv.sh"
fixtures_venv

mkdir -p "${CACHE}"
sdist="${CACHE}/${SDIST_NAME}"
if [[ ! -f "${sdist}" ]] || ! echo "${SDIST_SHA256}  ${sdist}" | sha256sum --check --status; then
  echo "downloading ${PACKAGE} into ${CACHE}" >&2
  rm -f "${sdist}"
  "${FIXTURES_VENV}/bin/python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    -d "${CACHE}" "${PACKAGE}" >&2
  if ! echo "${SDIST_SHA256}  ${sdist}" | sha256sum --check --status; then
    echo "make-names: ${sdist} does not have the expected sha256 ${SDIST_SHA256}" >&2
    exit 1
  fi
fi

"${FIXTURES_VENV}/bin/python" "${SCRIPT_DIR}/make-names.py" "${sdist}" "${WORDS}" "${OUT}"
ls -l "${OUT}/first_names.txt" "${OUT}/last_names.txt" >&2
