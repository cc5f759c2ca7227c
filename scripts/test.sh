#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs the whole suite.
#   Debian: chromium and firefox-esr (the browser tests drive both), OpenClipart (the reference data set),
#           exiftool (reads back the keywords Lablr writes with libexiv2: a second implementation).
#   Python: Lablr with its test extras, in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(chromium firefox-esr openclipart-png openclipart-svg fonts-dejavu-core libimage-exiftool-perl
                 wordnet-base)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass." >&2
  exit 1
fi
exit "$status"
