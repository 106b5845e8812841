#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the tests, with TLS (a self-signed test CA).
#
# Source this file, then call `throwaway_postgres_start`; it installs PostgreSQL from Debian's
# packages if missing, makes a CA and a server certificate (localhost, 127.0.0.1) with openssl,
# initdb's a cluster into a temporary directory (as the `postgres` OS user when run as root:
# postgres refuses to run as root), starts it on a free 127.0.0.1 port with password
# (scram-sha-256) authentication, creates the database, and exports:
#   MEDVIEW_TEST_DATABASE_URL       postgres://medview:…@127.0.0.1:PORT/medview_test?sslmode=verify-full&sslrootcert=CA
#   MEDVIEW_TEST_DATABASE_CA        the CA that signed the server certificate
#   MEDVIEW_TEST_DATABASE_WRONG_CA  another CA, which must be refused
#   MEDVIEW_TEST_DATABASE_RESTART   a shell command that restarts the server (pg_ctl restart -m fast)
#   MEDVIEW_TEST_DATABASE_DIR       the cluster's data directory (tests scan its raw files)
# `throwaway_postgres_stop` stops the cluster and deletes the directory; the caller sets a trap
# so that this happens even when a test fails. Run directly (`bash scripts/throwaway-postgres.sh
# -- COMMAND…`) it runs COMMAND with the cluster up and always stops it after.

throwaway_postgres_start() {
  local pg_bin
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || ! command -v openssl >/dev/null 2>&1; then
    echo "== installing PostgreSQL and openssl from Debian's packages"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql openssl >/dev/null
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
  THROWAWAY_PG_BIN="$pg_bin"
  THROWAWAY_PG_DIR="$(mktemp -d /tmp/medview-pg.XXXXXX)"
  local dir="$THROWAWAY_PG_DIR"
  local as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as=(runuser -u postgres --)
  fi
  THROWAWAY_PG_AS=("${as[@]}")
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  local password
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

  # The test CA, the server certificate it signs, and an unrelated CA for the refusal test.
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=MedView test CA" \
      -keyout ca.key -out ca.crt -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Unrelated CA" \
      -keyout wrong-ca.key -out wrong-ca.crt -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt 2>/dev/null
    printf '%s\n' "$password" > pwfile
    chmod 600 server.key pwfile
  )
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"

  "${as[@]}" "$pg_bin/initdb" -D "$dir/data" -U medview --pwfile="$dir/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  "${as[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key -c max_connections=200 -c fsync=off" \
    >/dev/null || { cat "$dir/postgres.log"; return 1; }
  "${as[@]}" "$pg_bin/psql" -h "$dir" -p "$port" -U medview -d postgres -q -c "CREATE DATABASE medview_test" >/dev/null

  export MEDVIEW_TEST_DATABASE_CA="$dir/ca.crt"
  export MEDVIEW_TEST_DATABASE_WRONG_CA="$dir/wrong-ca.crt"
  export MEDVIEW_TEST_DATABASE_DIR="$dir/data"
  export MEDVIEW_TEST_DATABASE_URL="postgres://medview:$password@127.0.0.1:$port/medview_test?sslmode=verify-full&sslrootcert=$dir/ca.crt"
  export MEDVIEW_TEST_DATABASE_RESTART="cd /tmp && ${as[*]} $pg_bin/pg_ctl -D $dir/data -l $dir/postgres.log -m fast -w -t 60 restart"
  echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$port (TLS, data in $dir)"
}

throwaway_postgres_stop() {
  [ -n "${THROWAWAY_PG_DIR:-}" ] || return 0
  if [ -f "$THROWAWAY_PG_DIR/data/postmaster.pid" ]; then
    "${THROWAWAY_PG_AS[@]}" "$THROWAWAY_PG_BIN/pg_ctl" -D "$THROWAWAY_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$THROWAWAY_PG_DIR"
  echo "== PostgreSQL stopped and its directory deleted"
  THROWAWAY_PG_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ "${1:-}" = "--" ] && shift
  trap throwaway_postgres_stop EXIT
  throwaway_postgres_start
  if [ "$#" -gt 0 ]; then "$@"; else echo "$MEDVIEW_TEST_DATABASE_URL"; fi
fi
