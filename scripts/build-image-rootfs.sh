#!/usr/bin/env bash
# The container image's build, without a container engine: runs the Dockerfile's steps
# (deploy/image/build.sh, deploy/image/stage.sh — the very files its build stage runs), lays out
# the image's filesystem in a directory, then proves it:
#
#   1. the Swift runtime is linked in (no libswift*/libFoundation* in ldd), and every library the
#      binary loads belongs to a package the runtime stage installs (deploy/image/runtime-packages.txt,
#      with their dependencies) or to libc6;
#   2. the assembled binary runs as the image's non-root user (uid 10001) with `serve` on loopback,
#      with the build folder hidden (so resource bundles come from the image layout, not from the
#      absolute build path compiled into the binary): /healthz and /readyz answer, the page is
#      served, one answer streams end to end over SSE, files in the data directory are 0600, and
#      SIGTERM ends it cleanly.
#
# usage: scripts/build-image-rootfs.sh [--debug | --release] [--out DIR] [--rds-ca-bundle FILE]
#                                      [--include-local-model] [--print-config]
#
#   --release            (default) the Dockerfile's build: release, 10-16 min from clean on 2 cores
#   --debug              the same flags in debug, in its own scratch folder: what CI runs
#                        (docs/DEPLOY.md, "The image in CI")
#   --out DIR            where the image's filesystem goes (default .build-image/<configuration>)
#   --rds-ca-bundle FILE the RDS/Aurora CA bundle the Dockerfile ADDs from the network (these
#                        machines cannot fetch it); without it the file is left out, and said so
#   --include-local-model  as the build arg INCLUDE_LOCAL_MODEL=1
#   --print-config       print the image configuration (user, env, entrypoint...) as JSON and exit
set -euo pipefail
cd "$(dirname "$0")/.."

# The runtime stage's configuration. Tests/python/test_image_build.py checks that the Dockerfile
# says the same (USER, ENV, ENTRYPOINT, CMD, EXPOSE, the RDS bundle's path).
IMAGE_UID=10001
IMAGE_GID=10001
IMAGE_ENV=(MEDVIEW_DATA_DIR=/var/lib/medview MEDVIEW_PORT=8080)
IMAGE_ENTRYPOINT=/opt/medview/bin/medview
IMAGE_CMD=serve
IMAGE_EXPOSE=8080
IMAGE_WORKDIR=/var/lib/medview
IMAGE_RDS_CA=/opt/medview/etc/rds-global-bundle.pem
IMAGE_VOLUMES=(/var/lib/medview /tmp)

configuration=release
out=""
rds_ca=""
include_model=0
print_config=0
while [ $# -gt 0 ]; do
  case "$1" in
    --release) configuration=release ;;
    --debug) configuration=debug ;;
    --out) out="$2"; shift ;;
    --rds-ca-bundle) rds_ca="$2"; shift ;;
    --include-local-model) include_model=1 ;;
    --print-config) print_config=1 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

config_json() {
  python3 - "$IMAGE_UID" "$IMAGE_GID" "$IMAGE_ENTRYPOINT" "$IMAGE_CMD" "$IMAGE_EXPOSE" "$IMAGE_WORKDIR" "$IMAGE_RDS_CA" "${IMAGE_VOLUMES[*]}" "${IMAGE_ENV[@]}" <<'PY'
import json, sys
uid, gid, entry, cmd, expose, workdir, rds, volumes, *env = sys.argv[1:]
print(json.dumps({"user": f"{uid}:{gid}", "entrypoint": [entry], "cmd": [cmd], "expose": [int(expose)],
                  "workdir": workdir, "rdsCaBundle": rds, "volumes": volumes.split(),
                  "env": dict(e.split("=", 1) for e in env)}, indent=2))
PY
}
if [ "$print_config" = 1 ]; then config_json; exit 0; fi

out="${out:-.build-image/$configuration}"
scratch=".build-image-$configuration"
rootfs="$out/rootfs"
started=$(date +%s)

echo "== image build ($configuration, scratch path $scratch): deploy/image/build.sh"
# The build stage's packages (deploy/image/build-packages.txt), installed when missing.
missing=()
for package in $(grep -v '^#' deploy/image/build-packages.txt); do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bin="$(deploy/image/build.sh "$configuration" "$scratch")"
echo "   built in $(( $(date +%s) - started )) s: $bin/medview"

echo "== image layout in $rootfs: deploy/image/stage.sh (as the Dockerfile's build stage)"
rm -rf "$rootfs"
mkdir -p "$rootfs"
INCLUDE_LOCAL_MODEL="$include_model" deploy/image/stage.sh "$bin" "$rootfs"
# What the runtime stage adds on top of the staged files:
if [ -n "$rds_ca" ]; then
  install -m 0644 "$rds_ca" "$rootfs$IMAGE_RDS_CA"
else
  echo "   (no --rds-ca-bundle: $IMAGE_RDS_CA left out; the Dockerfile ADDs it from the network)"
fi
chmod 0700 "$rootfs/var/lib/medview"
chown "$IMAGE_UID:$IMAGE_GID" "$rootfs/var/lib/medview" 2>/dev/null || true
config_json > "$out/config.json"
du -sh "$rootfs" | sed 's/^/   size: /'

echo "== the binary's libraries: Swift runtime linked in, the rest from the runtime packages"
python3 - "$rootfs/opt/medview/bin/medview" deploy/image/runtime-packages.txt <<'PY'
import re, subprocess, sys
binary, listing = sys.argv[1:]
wanted = [l.strip() for l in open(listing) if l.strip() and not l.startswith("#")]
ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
libs = []
for line in ldd.splitlines():
    line = line.strip()
    if "not found" in line:
        sys.exit(f"unresolved library: {line}")
    m = re.match(r"(\S+) => (\S+)", line) or re.match(r"(/\S+) \(", line)
    if m:
        libs.append((m.group(1), m.group(m.lastindex)))
swift = [n for n, _ in libs if re.match(r"lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime)", n.split("/")[-1])]
if swift:
    sys.exit(f"the Swift runtime is not linked in statically: {swift}")

def depends(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", pkg], capture_output=True, text=True).stdout
    names = set()
    for part in out.split(","):
        alt = part.strip().split("|")[0].strip()
        if alt:
            names.add(alt.split()[0].split(":")[0])
    return names

allowed, todo = set(), set(wanted) | {"libc6"}
while todo:
    pkg = todo.pop()
    if pkg not in allowed:
        allowed.add(pkg)
        todo |= depends(pkg) - allowed
owners = {}
for name, path in libs:
    real = subprocess.run(["realpath", path], capture_output=True, text=True).stdout.strip()
    res = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if res.returncode != 0:
        res = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{path} belongs to no Debian package")
    owner = res.stdout.split(":")[0].split(",")[0].strip()
    owners.setdefault(owner, []).append(name)
outside = {o: n for o, n in owners.items() if o not in allowed}
if outside:
    sys.exit(f"libraries from packages the runtime stage does not install: {outside}")
print(f"   {len(libs)} libraries from {len(owners)} packages, all in the runtime stage: {', '.join(sorted(owners))}")
PY

echo "== running the image's binary as uid $IMAGE_UID: serve on loopback, /healthz, one answer, SIGTERM"
run="$(mktemp -d /tmp/medview-image-run.XXXXXX)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
chmod 0755 "$run"
cp -a "$rootfs/." "$run/"
data="$run/var/lib/medview"
chown -R "$IMAGE_UID:$IMAGE_GID" "$data"
as_image_user() {
  # The image's environment only (env -i), its user and no supplementary groups, its workdir.
  local envs=() e
  for e in "${IMAGE_ENV[@]}"; do
    case "$e" in MEDVIEW_DATA_DIR=*) envs+=("MEDVIEW_DATA_DIR=$data") ;; *) envs+=("$e") ;; esac
  done
  (cd "$data" && setpriv --reuid="$IMAGE_UID" --regid="$IMAGE_GID" --clear-groups \
     env -i PATH=/usr/bin:/bin HOME="$data" "${envs[@]}" "$@")
}
# Hide the scratch folder (the binary also knows its resource bundles' absolute build path) in a
# private mount namespace, so the bundles must come from the image layout.
hide=(env)
if unshare --mount --fork true 2>/dev/null; then
  hide=(unshare --mount --fork sh -c "mount -t tmpfs none '$(cd "$scratch" && pwd)' && exec \"\$@\"" sh)
else
  echo "   (unshare not permitted here: the build folder stays visible to the binary)"
fi
log="$run/serve.log"
"${hide[@]}" setpriv --reuid="$IMAGE_UID" --regid="$IMAGE_GID" --clear-groups \
  env -i PATH=/usr/bin:/bin HOME="$data" MEDVIEW_DATA_DIR="$data" \
  "$run$IMAGE_ENTRYPOINT" "$IMAGE_CMD" --port 0 --model scripted >"$log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's|.*MedView Companion listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; echo "medview serve exited before listening" >&2; exit 1; }
  sleep 0.2
done
[ -n "$port" ] || { cat "$log" >&2; echo "medview serve did not listen within 60 s" >&2; exit 1; }
base="http://127.0.0.1:$port"
medview_pid="$(pgrep -f -n "^$run$IMAGE_ENTRYPOINT $IMAGE_CMD" || true)"
uid="$(awk '/^Uid:/ {print $2}' "/proc/${medview_pid:-$server_pid}/status")"
[ "$uid" = "$IMAGE_UID" ] || { echo "the server runs as uid $uid, not $IMAGE_UID" >&2; exit 1; }
check() { # check NAME EXPECTED-SUBSTRING curl-args...
  local name="$1" want="$2"; shift 2
  local body
  body="$(curl -fsS --max-time 30 "$@")" || { echo "$name failed" >&2; cat "$log" >&2; exit 1; }
  case "$body" in *"$want"*) echo "   $name: ok" ;; *) echo "$name: expected '$want' in: ${body:0:300}" >&2; exit 1 ;; esac
}
check "GET /healthz" '"status":"ok"' "$base/healthz"
check "GET /readyz" '"status":"ready"' "$base/readyz"
check "GET / (the page, from the image's resource bundle)" '<html' "$base/"
token="$(as_image_user "$run$IMAGE_ENTRYPOINT" token --user image-smoke)"
conversation="$(curl -fsS -X POST -H "Authorization: Bearer $token" "$base/v1/conversations" \
  | python3 -c 'import sys, json; print(json.load(sys.stdin)["id"])')"
check "one answer over SSE (scripted model)" 'event: stream.end' -N -X POST \
  -H "Authorization: Bearer $token" -H "Accept: text/event-stream" -H "Content-Type: application/json" \
  -d '{"id": "image-smoke-1", "text": "How can I sleep better? [[say:Keep a regular bedtime.]]"}' \
  "$base/v1/conversations/$conversation/messages"
loose="$(find "$data" -type f -perm /077 -print)"
[ -z "$loose" ] || { echo "data files readable by others: $loose" >&2; exit 1; }
echo "   data directory: $(find "$data" -type f | wc -l) files, none readable by group or others"
kill -TERM "${medview_pid:-$server_pid}"
status=0
for _ in $(seq 1 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
wait "$server_pid" || status=$?
server_pid=""
[ "$status" = 0 ] || { cat "$log" >&2; echo "medview serve exited with $status after SIGTERM" >&2; exit 1; }
echo "   SIGTERM: clean exit"
echo "== image ($configuration) ok in $(( $(date +%s) - started )) s: $rootfs ($out/config.json)"
