#!/usr/bin/env bash
# Many patients at once behind a model that takes seconds to answer (issue 16): the shared fake
# OpenAI-compatible upstream paced with --delay-ms (100 deltas, so 20 ms a delta is a 2 s answer),
# the thin FastAPI + httpx proxy in front of it, and `medview serve --model openai:…` in front of
# the same upstream; CLIENTS patients each send one message at the same time, over SSE.
#
#   Benchmarks/slow-model.sh MEDVIEW_BIN [CLIENTS] [DELAY_MS]
#
# Prints the time to first content (proxy) and first chunk (MedView) and the whole answer's time:
# with a pool that opens a connection per request, every first chunk comes about one model delay
# after sending, and every answer in about the model's own time. Run Benchmarks/compare.sh first
# (it installs the load generators and the Python environment under $PEERS_SCRATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: Benchmarks/slow-model.sh MEDVIEW_BIN [CLIENTS] [DELAY_MS]}
CLIENTS=${2:-30}
DELAY=${3:-20}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
S=${PEERS_SCRATCH:-/tmp/peers-scratch}
[ -x "$S/bin/mvload" ] && [ -x "$S/venv/bin/uvicorn" ] || { echo "run Benchmarks/compare.sh once first (it installs the peers' tools)" >&2; exit 2; }
W=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
export MEDVIEW_RATE_LIMIT_PER_MINUTE=100000000 MEDVIEW_RATE_LIMIT_BURST=100000000
"$S/venv/bin/python" "$PEERS/fake_upstream.py" --port 18921 --delay-ms "$DELAY" >"$W/up.log" 2>&1 & pids+=($!)
(cd "$PEERS" && UPSTREAM=http://127.0.0.1:18921 exec "$S/venv/bin/uvicorn" fastapi_proxy:app --host 127.0.0.1 --port 18923 \
   --loop uvloop --http httptools --no-access-log --workers 1 >"$W/fa.log" 2>&1) & pids+=($!)
"$BIN" serve --host 127.0.0.1 --port 18925 --data-dir "$W/data" --model 'openai:http://127.0.0.1:18921/v1#fake-gpt' >"$W/mv.log" 2>&1 & pids+=($!)
for _ in $(seq 1 150); do
  curl -fsS http://127.0.0.1:18925/healthz >/dev/null 2>&1 && curl -s -o /dev/null http://127.0.0.1:18923/ 2>/dev/null && break; sleep 0.2
done
for u in $(seq 1 "$CLIENTS"); do "$BIN" token --user "slow$u" --data-dir "$W/data" 2>/dev/null | tail -1; done > "$W/tokens"
echo "== $CLIENTS patients at once, a model answering 100 deltas $DELAY ms apart ($((DELAY * 100)) ms an answer)"
"$S/bin/sseload" -url http://127.0.0.1:18923/v1/chat/completions -c "$CLIENTS" -n "$CLIENTS" -label fastapi -max-time 120s > "$W/fastapi.out"
head -3 "$W/fastapi.out"
"$S/bin/mvload" -url http://127.0.0.1:18925 -tokens "$W/tokens" -fresh 1 -c "$CLIENTS" -n "$CLIENTS" -label medview -max-time 120s
