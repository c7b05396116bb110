#!/usr/bin/env bash
# Install everything Termshift needs (Python packages, Debian's Chromium and
# redis-server when missing) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium (browser tests need it)..."
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# Distributed mode's tests start a real Redis (on a loopback port, without persistence).
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "Installing Debian's redis-server (distributed mode's tests need it)..."
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Installing Node.js and npm (JavaScript filters run in Node with jsdom)..."
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
# The JavaScript filters runner's npm packages (jsdom, acorn), pinned by its package-lock.json.
if [ ! -d termshift/jsfilters/node_modules/jsdom ] || [ ! -d termshift/jsfilters/node_modules/acorn ]; then
  npm ci --omit=dev --no-audit --no-fund --prefix termshift/jsfilters >/dev/null
fi

python3 -m ruff check .
python3 -m pytest -q -p no:cacheprovider "$@"
