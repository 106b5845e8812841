#!/usr/bin/env bash
# Two builds of `medview serve` against each other (issue 16), in alternated pairs on one machine:
# A, B, A, B, … each on a fresh data directory behind the shared fake OpenAI-compatible upstream,
# driven by the same `mvload` load. On a shared 2-core machine one run of a build moves by 10–20 %
# from the next, so a change is judged by how many pairs it wins and by the medians, not by one run.
#
#   Benchmarks/pairs.sh BIN_A BIN_B [PAIRS] [CLIENTS] [MESSAGES]
#
# PAIRS defaults to 3, CLIENTS to 1, MESSAGES to 1000 (each worker starts a new conversation every
# 10 messages, as compare.sh's first table). TEXT, if set, is every message's text (the default is
# mvload's own, which names no medicine and no emergency). With MEDVIEW_DATABASE_URL set, both builds use that
# PostgreSQL database (emptied before each run: its `public` schema is dropped and made again, so
# point it at a throwaway database, as scripts/throwaway-postgres.sh gives). Per run it prints
# streams/s, first chunk p50 and p99 as `mvload` sees them, and from the server's own process
# (/proc): CPU milliseconds and context switches per answer (with PostgreSQL, also the CPU of
# every `postgres` process on the machine and the write-ahead log it wrote, per answer); then, per figure, each build's
# median and how many pairs B won. Run Benchmarks/compare.sh once first: it installs the load
# generator and the Python environment under $PEERS_SCRATCH.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: Benchmarks/pairs.sh BIN_A BIN_B [PAIRS] [CLIENTS] [MESSAGES]}
B=${2:?usage: Benchmarks/pairs.sh BIN_A BIN_B [PAIRS] [CLIENTS] [MESSAGES]}
PAIRS=${3:-3}
CLIENTS=${4:-1}
MESSAGES=${5:-1000}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
S=${PEERS_SCRATCH:-/tmp/peers-scratch}
[ -x "$S/bin/mvload" ] && [ -x "$S/venv/bin/python" ] || { echo "run Benchmarks/compare.sh once first (it installs the peers' tools)" >&2; exit 2; }
W=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true
export MEDVIEW_RATE_LIMIT_PER_MINUTE=100000000 MEDVIEW_RATE_LIMIT_BURST=100000000
"$S/venv/bin/python" "$PEERS/fake_upstream.py" --port 18931 >"$W/up.log" 2>&1 & pids+=($!)

# CPU ticks (utime + stime) of a process so far, and the context switches (voluntary and
# involuntary) of its threads alive now.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU ticks of every `postgres` process alive now (the database server on this machine).
pg_ticks() { for p in $(pgrep -x postgres || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{n += $1} END {print n + 0}'; }
# PostgreSQL's write-ahead log position in bytes (0 without PostgreSQL).
wal_bytes() {
  if [ -n "${MEDVIEW_DATABASE_URL:-}" ]; then psql "$MEDVIEW_DATABASE_URL" -At -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"; else echo 0; fi
}
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
HZ=$(getconf CLK_TCK)

# run LABEL BIN: one measured run; appends "label rps p50 p99 cpu_ms switches" to $W/runs.
run() {
  local label=$1 bin=$2 data="$W/data-$RANDOM$RANDOM" mv
  if [ -n "${MEDVIEW_DATABASE_URL:-}" ]; then
    psql "$MEDVIEW_DATABASE_URL" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA public CASCADE" -c "CREATE SCHEMA public" >/dev/null
  fi
  "$bin" serve --host 127.0.0.1 --port 18935 --data-dir "$data" --model 'openai:http://127.0.0.1:18931/v1#fake-gpt' >"$W/mv.log" 2>&1 &
  mv=$!
  for _ in $(seq 1 150); do curl -fsS http://127.0.0.1:18935/healthz >/dev/null 2>&1 && break; sleep 0.2; done
  for u in $(seq 1 "$CLIENTS"); do "$bin" token --user "pair$u" --data-dir "$data" 2>/dev/null | tail -1; done > "$W/tokens"
  # A short warm-up (connections, compiled statements, the safety data), not measured.
  "$S/bin/mvload" -url http://127.0.0.1:18935 -tokens "$W/tokens" -fresh 10 -c "$CLIENTS" -n $((CLIENTS * 20)) ${TEXT:+-text "$TEXT"} -max-time 60s >/dev/null
  local t0 s0 t1 s1 p0 p1 w0 w1
  w0=$(wal_bytes); t0=$(ticks "$mv"); s0=$(switches "$mv"); p0=$(pg_ticks)
  "$S/bin/mvload" -url http://127.0.0.1:18935 -tokens "$W/tokens" -fresh 10 -c "$CLIENTS" -n "$MESSAGES" ${TEXT:+-text "$TEXT"} -json -max-time 120s > "$W/out.json"
  t1=$(ticks "$mv"); s1=$(switches "$mv"); p1=$(pg_ticks); w1=$(wal_bytes)
  kill "$mv" 2>/dev/null || true; wait "$mv" 2>/dev/null || true
  rm -rf "$data"
  python3 - "$W/out.json" "$label" "$((t1 - t0))" "$HZ" "$((s1 - s0))" "$MESSAGES" "$((p1 - p0))" "$((w1 - w0))" >> "$W/runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); label = sys.argv[2]
ticks, hz, switches, n, pg, wal = (int(x) for x in sys.argv[3:9])
bad = r["non_200"] + r["errors"] + r["wrong_stream"]
if bad:
    print(f"{label} FAILED: {bad} of {r['issued']} requests failed ({r['first_error']})", file=sys.stderr)
f = r["first_content_ms"]
print(label, round(r["rps"], 1), round(f["P50"], 3), round(f["P99"], 3), round(ticks * 1000 / hz / n, 3), round(switches / n, 1), round(pg * 1000 / hz / n, 3), round(wal / n / 1024, 2))
PY
  tail -1 "$W/runs" | awk -v pg="${MEDVIEW_DATABASE_URL:+1}" '{printf "%-2s %8s streams/s  first chunk p50 %6s ms  p99 %7s ms  CPU %6s ms/answer  %5s context switches/answer", $1, $2, $3, $4, $5, $6; if (pg) printf "  postgres CPU %6s ms/answer  WAL %6s KiB/answer", $7, $8; printf "\n"}'
}

echo "== A: $A"
echo "== B: $B"
echo "== $PAIRS pairs, $CLIENTS client(s), $MESSAGES messages a run${MEDVIEW_DATABASE_URL:+, PostgreSQL}"
: > "$W/runs"
for _ in $(seq 1 "$PAIRS"); do
  run A "$A"
  run B "$B"
done
python3 - "$W/runs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
a = [list(map(float, r[1:])) for r in rows if r[0] == "A"]
b = [list(map(float, r[1:])) for r in rows if r[0] == "B"]
names = [("streams/s", True), ("first chunk p50 ms", False), ("first chunk p99 ms", False), ("CPU ms/answer", False), ("context switches/answer", False), ("postgres CPU ms/answer", False), ("postgres WAL KiB/answer", False)]
print("== medians (A -> B), and the pairs B won")
for i, (name, higher) in enumerate(names):
    if name.startswith("postgres") and not any(r[i] for r in a + b):  # SQLite runs
        continue
    wins = sum(1 for x, y in zip(a, b) if (y[i] > x[i] if higher else y[i] < x[i]))
    print(f"{name:26s} {statistics.median(r[i] for r in a):9.3f} -> {statistics.median(r[i] for r in b):9.3f}   B better in {wins} of {len(b)}")
PY
