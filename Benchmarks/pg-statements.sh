#!/usr/bin/env bash
# Where PostgreSQL's time goes per answer (issue 16): one build of `medview serve` on a throwaway
# PostgreSQL cluster with `pg_stat_statements`, behind the shared fake OpenAI-compatible upstream,
# driven by `mvload`. After a warm-up the statistics are reset, the measured run goes, and the
# script prints, per answer:
#   - every statement the server ran, top-level ones (T) and those run inside a function (n: the
#     statements of `medview_begin_turn`, and the foreign-key checks PostgreSQL runs for inserts):
#     calls, execution milliseconds, milliseconds a call, rows a call;
#   - transactions committed, write-ahead log written, and the CPU of the `postgres` processes and
#     of medview (from /proc).
#
#   Benchmarks/pg-statements.sh BIN [CLIENTS] [MESSAGES] [FRESH]
#
# CLIENTS defaults to 1, MESSAGES to 1000, FRESH to 10 (each worker starts a new conversation every
# FRESH messages, as compare.sh). Execution times are wall time inside the server: at many clients
# on a shared machine they include waiting for a core, so compare statements with each other, and
# use 1 client for their own cost. The cluster is made, started and deleted by
# scripts/throwaway-postgres.sh. Run Benchmarks/compare.sh once first: it installs the load
# generator and the Python environment under $PEERS_SCRATCH.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: Benchmarks/pg-statements.sh BIN [CLIENTS] [MESSAGES] [FRESH]}
CLIENTS=${2:-1}
MESSAGES=${3:-1000}
FRESH=${4:-10}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
S=${PEERS_SCRATCH:-/tmp/peers-scratch}
[ -x "$S/bin/mvload" ] && [ -x "$S/venv/bin/python" ] || { echo "run Benchmarks/compare.sh once first (it installs the peers' tools)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN is not an executable medview" >&2; exit 2; }

# shellcheck source=../scripts/throwaway-postgres.sh
source scripts/throwaway-postgres.sh
W=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  throwaway_postgres_stop >/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
throwaway_postgres_start >/dev/null
U=$MEDVIEW_TEST_DATABASE_URL
q() { psql "$U" -X -q "$@"; }

# pg_stat_statements must be loaded at start; statements inside functions are counted too.
q -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" -c "ALTER SYSTEM SET track_functions = 'all'"
eval "$MEDVIEW_TEST_DATABASE_RESTART" >/dev/null
q -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
# In a schema of its own, so that the server's tables stay in `public` alone.
q -c "CREATE SCHEMA pgss" -c "CREATE EXTENSION pg_stat_statements SCHEMA pgss"

ulimit -n 20000 2>/dev/null || true
export MEDVIEW_RATE_LIMIT_PER_MINUTE=100000000 MEDVIEW_RATE_LIMIT_BURST=100000000 MEDVIEW_DATABASE_URL=$U
"$S/venv/bin/python" "$PEERS/fake_upstream.py" --port 18931 >"$W/up.log" 2>&1 & pids+=($!)
"$BIN" serve --host 127.0.0.1 --port 18935 --data-dir "$W/data" --model 'openai:http://127.0.0.1:18931/v1#fake-gpt' >"$W/mv.log" 2>&1 &
mv=$!; pids+=("$mv")
for _ in $(seq 1 150); do curl -fsS http://127.0.0.1:18935/healthz >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS http://127.0.0.1:18935/healthz >/dev/null || { echo "medview did not start:" >&2; tail -5 "$W/mv.log" >&2; exit 1; }
for u in $(seq 1 "$CLIENTS"); do "$BIN" token --user "pgss$u" --data-dir "$W/data" 2>/dev/null | tail -1; done > "$W/tokens"
# Warm-up (connections, prepared statements, plans), not measured.
"$S/bin/mvload" -url http://127.0.0.1:18935 -tokens "$W/tokens" -fresh "$FRESH" -c "$CLIENTS" -n $((CLIENTS * 20)) -max-time 60s >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() { for p in $(pgrep -x postgres || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{n += $1} END {print n + 0}'; }
HZ=$(getconf CLK_TCK)
q -c "SELECT pgss.pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" >/dev/null
read -r c0 w0 < <(psql "$U" -X -At -F ' ' -c "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database WHERE datname = current_database()")
t0=$(ticks "$mv"); p0=$(pg_ticks)
"$S/bin/mvload" -url http://127.0.0.1:18935 -tokens "$W/tokens" -fresh "$FRESH" -c "$CLIENTS" -n "$MESSAGES" -max-time 300s | head -2
t1=$(ticks "$mv"); p1=$(pg_ticks)
sleep 1 # the statistics collector's last report
read -r c1 w1 < <(psql "$U" -X -At -F ' ' -c "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database WHERE datname = current_database()")

echo "== per answer ($MESSAGES answers, $CLIENTS client(s), a new conversation every $FRESH messages)"
awk -v n="$MESSAGES" -v c="$((c1 - c0))" -v w="$((w1 - w0))" -v pg="$((p1 - p0))" -v mvt="$((t1 - t0))" -v hz="$HZ" 'BEGIN {
  printf "commits %.2f  WAL %.2f KiB  postgres CPU %.3f ms  medview CPU %.3f ms\n", c / n, w / n / 1024, pg * 1000 / hz / n, mvt * 1000 / hz / n }'
echo "== statements (T: sent by medview, n: run inside a function or by a foreign-key check), by execution time"
psql "$U" -X -P pager=off -c "
  SELECT CASE WHEN toplevel THEN 'T' ELSE 'n' END AS \" \",
         round(calls::numeric / $MESSAGES, 2) AS \"calls/answer\",
         round((total_exec_time / $MESSAGES)::numeric, 4) AS \"ms/answer\",
         round((total_exec_time / calls)::numeric, 4) AS \"ms/call\",
         round(rows::numeric / calls, 1) AS \"rows/call\",
         left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS statement
  FROM pgss.pg_stat_statements
  WHERE query NOT LIKE '%pg_stat%' AND query NOT LIKE '%pg_current_wal_lsn%'
  ORDER BY total_exec_time DESC LIMIT 30"
