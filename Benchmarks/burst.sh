#!/usr/bin/env bash
# A burst (issue 16): N patients send a message at the same instant to `medview serve --model
# openai:…` in front of the shared fake upstream, over SSE, with the whole path on. Every patient
# must get a first chunk or a typed, retryable `overloaded` (503) within a bounded time, and the
# process must stay inside its memory. Runs twice: with the default admission limit
# (--max-running-answers 2000) and with a limit below the burst (ADMIT, default 100), so that the
# refusal path is measured too.
#
#   Benchmarks/burst.sh [MEDVIEW_BIN] [N] [ADMIT]
#
# Needs what Benchmarks/compare.sh installs (Go load generators, the peers' Python environment);
# run compare.sh once first. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
S=${PEERS_SCRATCH:-/tmp/peers-scratch}
BIN=${1:-.build/release/medview}
N=${2:-500}
ADMIT=${3:-100}
[ -x "$S/bin/mvload" ] && [ -x "$S/venv/bin/python" ] || { echo "run Benchmarks/compare.sh once first (it installs the load generators)" >&2; exit 2; }
ulimit -n 20000 2>/dev/null || true
export MEDVIEW_RATE_LIMIT_PER_MINUTE=100000000 MEDVIEW_RATE_LIMIT_BURST=100000000

run() {
  local admit=$1 W pids=() MV
  W=$(mktemp -d)
  "$S/venv/bin/python" "$PEERS/fake_upstream.py" --port 18921 >"$W/up.log" 2>&1 & pids+=($!)
  "$BIN" serve --host 127.0.0.1 --port 18925 --data-dir "$W/data" --model 'openai:http://127.0.0.1:18921/v1#fake-gpt' \
    --max-running-answers "$admit" --max-unauthenticated-connections 4000 >"$W/mv.log" 2>&1 & MV=$!; pids+=($MV)
  trap 'kill ${pids[*]} 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' RETURN
  for _ in $(seq 1 150); do curl -fsS http://127.0.0.1:18925/healthz >/dev/null 2>&1 && break; sleep 0.2; done
  # One patient per message: the per-user limits (4 answers at once) are not what is measured.
  for u in $(seq 1 "$N"); do
    curl -fsS -X POST -H 'content-type: application/json' -d "{\"user\":\"burst$u\"}" http://127.0.0.1:18925/v1/dev/token
    echo
  done | sed -E 's/.*"token":"([^"]+)".*/\1/' > "$W/tokens"
  echo "-- max-running-answers $admit: $N patients at once (each first opens a conversation and sends one warm-up message, also at once)"
  echo "   idle RSS $(awk '/VmRSS/{print $2}' /proc/$MV/status) KiB"
  "$S/bin/mvload" -url http://127.0.0.1:18925 -tokens "$W/tokens" -fresh 0 -c "$N" -n "$N" -label "   burst" -max-time 60s || true
  echo "   RSS after $(awk '/VmRSS/{print $2}' /proc/$MV/status) KiB, peak $(awk '/VmHWM/{print $2}' /proc/$MV/status) KiB"
  echo "   refusals sent, by code (warm-up included): $(curl -s http://127.0.0.1:18925/metrics | grep -E '^medview_stream_errors_total' | sed -E 's/.*code="([^"]+)".*\} ([0-9.]+)/\1=\2/' | tr '\n' ' ')"
}

run 2000
run "$ADMIT"
