#!/usr/bin/env bash
# Installs the Debian packages whose photos scripts/photo_eval/*.toml name (the labels are the one
# list of them), so that scripts/bench_photos.py finds every photo.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python; [ -x "$python" ] || python=python3
packages=$(for labels in scripts/photo_eval/photos.toml scripts/photo_eval/tuning.toml; do
  "$python" scripts/bench_photos.py --labels "$labels" --debian-packages; done | tr ' ' '\n' | sort -u)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages
