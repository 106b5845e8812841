#!/usr/bin/env bash
# The Lambda zip for deploy/aws/medview-lambda.yaml (provided.al2023), built on these machines
# (Debian 12, Swift 6.3) with no container engine and no Swift SDK for another system:
#
#   1. compiles the product with the image's compile step (deploy/image/build.sh: portable CPU
#      target, --static-swift-stdlib, the same scratch folder as scripts/build-image-rootfs.sh, so
#      CI compiles the dependencies once for both), linking in deploy/lambda/al2023-compat.c,
#      which binds the three symbols a Debian 12 link would take at versions newer than AL2023's
#      to the older versions both have;
#   2. checks that the binary will load on Amazon Linux 2023: built for this machine's
#      architecture (the stack's Architecture parameter must say the same), the standard program
#      interpreter, and every shared library it needs is one that AL2023 provides, at symbol
#      versions AL2023's have (glibc 2.34, gcc 11's libstdc++ and libgcc_s, zlib 1.2.11). Debian
#      12 has glibc 2.36: a binary asking for GLIBC_2.35 or 2.36 would load here and fail there
#      ("version `GLIBC_2.35' not found"), so the check reads the version references
#      (objdump -p), not only the library names (ldd);
#   3. lays out the zip: `bootstrap` (mode 755) at the root, the resource bundles the binary names
#      next to it (Bundle.module looks beside the executable: /var/task), and the RDS CA bundle
#      when given; debug sections stripped (Lambda's unzipped limit is 250 MB);
#   4. writes the zip deterministically (sorted entries, fixed times and modes: the same binary
#      gives the same bytes), and prints its size, SHA-256 and architecture.
#
# usage: scripts/package-lambda.sh [--release | --debug] [--product NAME] [--out FILE]
#                                  [--rds-ca-bundle FILE] [--print-config] [--check-binary FILE]
#
#   --release            (default) release build: what you deploy
#   --debug              the same flags in debug: what CI runs (docs/DEPLOY.md "The image in CI"
#                        explains the choice; docs/DEPLOY-LAMBDA.md, "The zip")
#   --product NAME       the SwiftPM product (default bootstrap); `--product medview` packages
#                        the server binary, to try the script before the bootstrap product exists
#   --out FILE           the zip (default .build-lambda/<configuration>/medview-lambda-<arch>.zip)
#   --rds-ca-bundle FILE the RDS/Aurora CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem),
#                        put at ZIP_RDS_CA for the database URL's sslrootcert; without it the zip
#                        cannot verify Aurora's certificate, and the script says so
#   --print-config       print the zip's layout and the AL2023 limits as JSON and exit
#   --check-binary FILE  only check that FILE would load on AL2023 (step 2), for a binary built
#                        elsewhere; exit status 1 and the reasons when it would not
set -euo pipefail
cd "$(dirname "$0")/.."

# Where the RDS CA bundle goes in the zip; the stack's database URL names /var/task/$ZIP_RDS_CA
# (Tests/python/test_lambda_template.py checks both).
ZIP_RDS_CA=etc/rds-global-bundle.pem
# What Amazon Linux 2023 provides (docs.aws.amazon.com/linux/al2023/ug/core-glibc.html: glibc 2.34,
# gcc 11; zlib 1.2.11), as library -> symbol-version prefix -> newest version there.
AL2023_LIBRARIES='{
  "libc.so.6": {"GLIBC_": "2.34"}, "libm.so.6": {"GLIBC_": "2.34"}, "libpthread.so.0": {"GLIBC_": "2.34"},
  "libdl.so.2": {"GLIBC_": "2.34"}, "librt.so.1": {"GLIBC_": "2.34"}, "libutil.so.1": {"GLIBC_": "2.34"},
  "ld-linux-x86-64.so.2": {"GLIBC_": "2.34"}, "ld-linux-aarch64.so.1": {"GLIBC_": "2.34"},
  "libstdc++.so.6": {"GLIBCXX_": "3.4.29", "CXXABI_": "1.3.13"},
  "libgcc_s.so.1": {"GCC_": "11.0.0", "GLIBC_": "2.34"},
  "libz.so.1": {"ZLIB_": "1.2.11"}
}'

configuration=release
product=bootstrap
out=""
rds_ca=""
print_config=0
check_binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) configuration=release ;;
    --debug) configuration=debug ;;
    --product) product="$2"; shift ;;
    --out) out="$2"; shift ;;
    --rds-ca-bundle) rds_ca="$2"; shift ;;
    --print-config) print_config=1 ;;
    --check-binary) check_binary="$2"; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

case "$(uname -m)" in
  x86_64) arch=x86_64 ;;
  aarch64) arch=arm64 ;;
  *) echo "package-lambda.sh: Lambda runs x86_64 or arm64, not $(uname -m)" >&2; exit 1 ;;
esac

check_loads_on_al2023() { # FILE
  echo "== will $1 load on Amazon Linux 2023 (provided.al2023)?"
  python3 - "$1" "$arch" "$AL2023_LIBRARIES" <<'PY'
import json, re, subprocess, sys
binary, arch, table = sys.argv[1:]
allowed = json.loads(table)

def run(*command):
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout

def version(text):
    return tuple(int(p) for p in text.split("."))

problems = []
header = run("objdump", "-f", binary)
machine = {"x86_64": "i386:x86-64", "arm64": "aarch64"}[arch]
if f"architecture: {machine}" not in header:
    problems.append(f"not an {arch} binary: {header.strip().splitlines()[-2:]}")
interpreter = re.search(r"Requesting program interpreter: (\S+)\]", run("readelf", "-l", binary))
expected = {"x86_64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}[arch]
if not interpreter or interpreter.group(1) != expected:
    problems.append(f"program interpreter {interpreter and interpreter.group(1)}, not {expected}")

private = run("objdump", "-p", binary)
needed = re.findall(r"^\s+NEEDED\s+(\S+)$", private, re.M)
references, current = {}, None
for line in private.split("Version References:", 1)[-1].splitlines():
    m = re.match(r"\s+required from (\S+):$", line)
    if m:
        current = m.group(1)
        continue
    m = re.match(r"\s+0x[0-9a-f]+ 0x[0-9a-f]+ \d+ (\S+)$", line)
    if m and current:
        references.setdefault(current, set()).add(m.group(1))

for library in needed:
    if library not in allowed:
        problems.append(f"{library}: not part of Amazon Linux 2023's base (provided.al2023 may not have it); "
                        "link it statically or drop what needs it")
        continue
    for name in sorted(references.get(library, ())):
        for prefix, newest in allowed[library].items():
            if name.startswith(prefix) and re.fullmatch(r"[\d.]+", name[len(prefix):]):
                if version(name[len(prefix):]) > version(newest):
                    problems.append(f"{library}: needs {name}, AL2023 has {prefix}{newest}")

for line in run("ldd", binary).splitlines():
    if "not found" in line:
        problems.append(f"unresolved here: {line.strip()}")
swift = [l for l in needed if re.match(r"lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime)", l)]
if swift:
    problems.append(f"the Swift runtime is not linked in statically: {swift}")

if problems:
    sys.exit("package-lambda.sh: the binary would not load on provided.al2023:\n  " + "\n  ".join(problems))
newest = {}
for library, names in references.items():
    for name in names:
        prefix = re.match(r"[A-Z_]+", name).group(0)
        tail = name[len(prefix):]
        if re.fullmatch(r"[\d.]+", tail) and version(tail) > version(newest.get(prefix, "0")):
            newest[prefix] = tail
print(f"   {arch}, interpreter {expected}, needs {', '.join(needed)}")
print("   newest symbol versions: " + ", ".join(f"{p}{v}" for p, v in sorted(newest.items())) + " (all within AL2023)")
PY
}

if [ "$print_config" = 1 ]; then
  python3 - "$arch" "$ZIP_RDS_CA" "$AL2023_LIBRARIES" <<'PY'
import json, sys
arch, rds, libraries = sys.argv[1:]
print(json.dumps({"architecture": arch, "entrypoint": "bootstrap", "rdsCaBundle": rds,
                  "al2023Libraries": json.loads(libraries)}, indent=2))
PY
  exit 0
fi
if [ -n "$check_binary" ]; then
  check_loads_on_al2023 "$check_binary"
  exit 0
fi

out="${out:-.build-lambda/$configuration/medview-lambda-$arch.zip}"
scratch=".build-image-$configuration"
started=$(date +%s)

echo "== Lambda zip ($configuration, product $product, $arch): deploy/image/build.sh in $scratch"
# The symbol versions a Debian 12 link picks that AL2023 lacks, bound to older ones
# (deploy/lambda/al2023-compat.c says which and why).
mkdir -p "$scratch"
compat="$scratch/al2023-compat.o"
# A C compiler: the system's, or the clang the Swift toolchain ships.
compiler="${CC:-$(command -v cc || command -v clang || true)}"
[ -n "$compiler" ] || { echo "package-lambda.sh: no C compiler (cc or clang) for deploy/lambda/al2023-compat.c" >&2; exit 1; }
"$compiler" -O2 -fPIC -fno-builtin -c deploy/lambda/al2023-compat.c -o "$compat"
# --as-needed: the image's link names libcurl for FoundationNetworking (URLSession, which the server
# binary's benchmark client uses); a product that does not use it must not load it, since Lambda's
# base has no libcurl for certain.
bin="$(deploy/image/build.sh "$configuration" "$scratch" "$product" \
  -Xlinker --as-needed -Xlinker "$(cd "$scratch" && pwd)/al2023-compat.o")"
[ -x "$bin/$product" ] || { echo "package-lambda.sh: $bin/$product was not built" >&2; exit 1; }
echo "   built in $(( $(date +%s) - started )) s: $bin/$product"

stage="$(mktemp -d /tmp/medview-lambda-zip.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin/$product" "$stage/bootstrap"
strip --strip-debug "$stage/bootstrap"

check_loads_on_al2023 "$stage/bootstrap"

# The resource bundles the binary looks up (their names are compiled into Bundle.module).
for bundle in $(grep -ao 'MedView_[A-Za-z]*\.resources' "$bin/$product" | sort -u); do
  [ -d "$bin/$bundle" ] || { echo "package-lambda.sh: missing resource bundle $bin/$bundle" >&2; exit 1; }
  cp -R "$bin/$bundle" "$stage/$bundle"
done
if [ -n "$rds_ca" ]; then
  install -D -m 0644 "$rds_ca" "$stage/$ZIP_RDS_CA"
else
  echo "   (no --rds-ca-bundle: $ZIP_RDS_CA left out; the stack's database URL needs it to verify Aurora)"
fi

echo "== zip (deterministic): $out"
mkdir -p "$(dirname "$out")"
python3 - "$stage" "$out" <<'PY'
import hashlib, os, stat, sys, zipfile
stage, out = sys.argv[1:]
entries = []
for root, dirs, files in os.walk(stage):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(root, name)
        entries.append((os.path.relpath(path, stage), path))
entries.sort()
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    for relative, path in entries:
        info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
        executable = os.stat(path).st_mode & stat.S_IXUSR
        info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        info.create_system = 3  # Unix, so Lambda honours the modes
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as source:
            archive.writestr(info, source.read(), compresslevel=9)
os.replace(tmp, out)
unzipped = sum(os.path.getsize(p) for _, p in entries)
if unzipped > 250 * 1024 * 1024:
    sys.exit(f"package-lambda.sh: {unzipped} bytes unzipped, above Lambda's 250 MB")
digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
print(f"   {len(entries)} files, {unzipped / 1e6:.1f} MB unzipped, {os.path.getsize(out) / 1e6:.1f} MB zipped")
print(f"   sha256 {digest}")
PY
echo "== Lambda zip ($configuration, $arch) ok in $(( $(date +%s) - started )) s: $out"
echo "   deploy with Architecture=$arch and CodeKey naming this build (docs/DEPLOY-LAMBDA.md)"
