#!/usr/bin/env bash
# Side by side, in one go on one machine (issue 16): the fake OpenAI-compatible upstream alone,
# a thin FastAPI + httpx proxy in front of it, and `medview serve --model openai:…` (its whole
# path: auth, storage, encryption, durable log, safety, chunking) in front of the same upstream,
# measured by the same closed-loop load generators over SSE.
#
#   Benchmarks/compare.sh [MEDVIEW_BIN] [CLIENT_COUNTS] [STREAMS]
#
# MEDVIEW_BIN defaults to a release build (`swift build -c release --product medview`, built if
# missing); CLIENT_COUNTS defaults to "1 50"; STREAMS to 2000. The peers (upstream, proxy, load
# generators) are the shared ones in $PEERS (default ../shared/peers next to the repository); this
# script installs what they need when it is missing: Go (Debian's golang-go) to build the two load
# generators, and a Python virtual environment with fastapi, uvicorn, httpx, uvloop and httptools,
# under $PEERS_SCRATCH (default /tmp/peers-scratch). Everything listens on 127.0.0.1 only.
#
# The side-by-side runs ROUNDS times (default 3) and ends with each figure's median and every
# round's value (streams/s, first content or first chunk p50, what each adds to the upstream's own
# first content, and MedView's ratio to the proxy).
# After that it runs MedView once more with every worker keeping one
# conversation (FRESH=0), to show how the cost of a message follows the conversation's length;
# then Benchmarks/slow-model.sh with 30 and 200 patients at once (SLOW_CLIENTS) behind a model
# that takes 2 s to answer.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
export PEERS_SCRATCH=${PEERS_SCRATCH:-/tmp/peers-scratch}
BIN=${1:-}
COUNTS=${2:-"1 50"}
STREAMS=${3:-2000}
[ -d "$PEERS" ] || { echo "no peers at $PEERS (set PEERS=…)" >&2; exit 2; }

if [ -z "$BIN" ]; then
  echo "== building medview (release)"
  swift build -c release --product medview >&2
  BIN="$(swift build -c release --show-bin-path)/medview"
fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
command -v go >/dev/null 2>&1 || { echo "== installing Go (golang-go)"; $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null; }
command -v curl >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null; }
mkdir -p "$PEERS_SCRATCH/bin"
for tool in sseload mvload; do
  if [ ! -x "$PEERS_SCRATCH/bin/$tool" ]; then
    echo "== building $tool"
    (cd "$PEERS/$tool" && GO111MODULE=off GOCACHE="$PEERS_SCRATCH/gocache" go build -o "$PEERS_SCRATCH/bin/$tool" main.go)
  fi
done
if [ ! -x "$PEERS_SCRATCH/venv/bin/uvicorn" ]; then
  echo "== Python virtual environment for the upstream and the FastAPI proxy"
  python3 -m venv "$PEERS_SCRATCH/venv"
  "$PEERS_SCRATCH/venv/bin/pip" install -q --disable-pip-version-check fastapi uvicorn httpx uvloop httptools
fi

# One load-generator worker sends far more messages than a patient could: the per-user message
# rate limit (20 a minute) would refuse most of them, so it is lifted for the measurement.
export MEDVIEW_RATE_LIMIT_PER_MINUTE=100000000 MEDVIEW_RATE_LIMIT_BURST=100000000
# The shared side-by-side script leaves its FastAPI proxy running: stop the ones this run started.
proxies_before=$(pgrep -f "uvicorn fastapi_proxy:app" || true)
stop_new_proxies() {
  for pid in $(pgrep -f "uvicorn fastapi_proxy:app" || true); do
    printf '%s\n' "$proxies_before" | grep -qx "$pid" || kill "$pid" 2>/dev/null || true
  done
}
trap stop_new_proxies EXIT
# One round on a shared 2-core machine moves by 10–20 % from the next, for the proxy as for
# MedView: the side-by-side runs ROUNDS times (default 3), each round starting all three afresh,
# and ends with each figure's median and every round's value.
ROUNDS=${ROUNDS:-3}
RUNS=$(mktemp -d)
trap 'stop_new_proxies; rm -rf "$RUNS"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  echo "== side by side, round $round of $ROUNDS: upstream direct, FastAPI proxy, MedView ($BIN); clients: $COUNTS; $STREAMS streams"
  FRESH=10 bash "$PEERS/side-by-side.sh" "$BIN" "$COUNTS" "$STREAMS" | tee "$RUNS/round$round"
done
python3 - "$RUNS" "$ROUNDS" <<'SUMMARY'
import re, statistics, sys
runs, rounds = sys.argv[1], int(sys.argv[2])
# figures[(label, clients)] = list of (streams/s, first content or first chunk p50 ms), one per round
figures = {}
for r in range(1, rounds + 1):
    label = clients = None
    for line in open(f"{runs}/round{r}"):
        head = re.match(r"(\S+) c=(\d+) .*rps=([\d.]+)", line)
        if head:
            label, clients, rps = head.group(1).split("(")[0], int(head.group(2)), float(head.group(3))
            continue
        first = re.match(r"\s+first (content|chunk)\s.*p50\s+([\d.]+)", line)
        if first and label:
            figures.setdefault((label, clients), []).append((rps, float(first.group(2))))
            label = None
def cell(values, fmt):
    return fmt.format(statistics.median(values)) + " (" + " ".join(fmt.format(v) for v in values) + ")"
print(f"== side by side over {rounds} rounds: median (each round)")
for clients in sorted({c for _, c in figures}):
    proxy, medview = figures.get(("fastapi", clients), []), figures.get(("medview", clients), [])
    if not proxy or not medview:
        continue
    ratios = [m[0] / p[0] for p, m in zip(proxy, medview)]
    print(f"clients {clients}: streams/s  proxy {cell([p[0] for p in proxy], '{:.1f}')}  MedView {cell([m[0] for m in medview], '{:.1f}')}  "
          f"ratio {cell(ratios, '{:.2f}')}")
    print(f"clients {clients}: first content (proxy) / first chunk (MedView) p50 ms  proxy {cell([p[1] for p in proxy], '{:.2f}')}  "
          f"MedView {cell([m[1] for m in medview], '{:.2f}')}")
    direct = figures.get(("direct", clients), [])
    if len(direct) == len(proxy) == len(medview):
        # What each adds to the upstream's own first content in the same round (the issue's
        # "server-added time to first chunk").
        print(f"clients {clients}: server-added p50 ms (minus the upstream's own first content)  proxy {cell([p[1] - d[1] for p, d in zip(proxy, direct)], '{:.2f}')}  "
              f"MedView {cell([m[1] - d[1] for m, d in zip(medview, direct)], '{:.2f}')}")
SUMMARY
echo "== MedView, one conversation per worker (the cost of a message as the conversation grows)"
FRESH=0 bash "$PEERS/side-by-side.sh" "$BIN" "1" "$((STREAMS / 2))" | grep -E "medview|loadavg|RSS"
# Many patients at once behind a model that takes 2 s to answer (the fake upstream paced at 20 ms a
# delta): time to first chunk when the model, not this machine's CPU, is the slow part.
for clients in ${SLOW_CLIENTS:-30 200}; do
  bash Benchmarks/slow-model.sh "$BIN" "$clients" 20
done
