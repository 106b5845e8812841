#!/usr/bin/env bash
# Runs every test: the Swift suites, then the Python real-client suite against the same build.
# Builds once (debug) and reuses the build for both.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Python test packages"
python3 -m pip install -q --disable-pip-version-check -r Tests/python/requirements.txt

echo "== building (debug, with tests)"
swift build --build-tests

echo "== Swift tests"
swift test --skip-build

echo "== Python real-client tests against .build/debug/medview"
MEDVIEW_BIN="$(swift build --show-bin-path)/medview" python3 -m pytest -q Tests/python
