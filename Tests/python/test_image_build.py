"""The Dockerfile and scripts/build-image-rootfs.sh build the same image.

These machines have no container engine, so CI proves the image with the script; this test keeps
the script honest about being the Dockerfile: the same compile step and layout step (shared
files under deploy/image/, run by both), the same build flags, the same runtime configuration
(user, environment, entrypoint, command, port, volumes, the database CA's path), the same runtime
packages, and the resource bundles that Package.swift declares.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
SCRIPT = REPO / "scripts" / "build-image-rootfs.sh"
BUILD_STEP = (REPO / "deploy" / "image" / "build.sh").read_text(encoding="utf-8")
STAGE_STEP = (REPO / "deploy" / "image" / "stage.sh").read_text(encoding="utf-8")


def script_config() -> dict:
    result = subprocess.run(["bash", str(SCRIPT), "--print-config"], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        current = ""
    return lines


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that ships)."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def build_stage_runs() -> str:
    instructions = dockerfile_instructions()
    start = next(i for i, (w, a) in enumerate(instructions) if w == "FROM" and a.endswith("AS build"))
    end = next(i for i, (w, _) in enumerate(instructions) if w == "FROM" and i > start)
    return " ".join(a for w, a in instructions[start:end] if w == "RUN")


def test_both_run_the_shared_build_and_stage_steps():
    runs = build_stage_runs()
    assert re.search(r"deploy/image/build\.sh release\b", runs), "the Dockerfile builds with the shared step, release"
    assert re.search(r'deploy/image/stage\.sh "\$bin" /staging', runs)
    script = SCRIPT.read_text(encoding="utf-8")
    assert re.search(r'deploy/image/build\.sh "\$configuration" "\$scratch"', script)
    assert re.search(r'deploy/image/stage\.sh "\$bin" "\$rootfs"', script)
    assert "swift build" not in script, "the script compiles only through deploy/image/build.sh"
    assert "swift build" not in runs.replace("deploy/image/build.sh", ""), "the Dockerfile compiles only through deploy/image/build.sh"


def test_the_build_flags_portable_static_one_product():
    (build,) = [l for l in BUILD_STEP.splitlines() if l.startswith("swift build") and "--show-bin-path" not in l]
    flags = shlex.split(build.split(">&2")[0])
    assert flags[:2] == ["swift", "build"]
    assert "--static-swift-stdlib" in flags
    assert flags[flags.index("-Xlinker") + 1] == "-lcurl"
    assert flags[flags.index("--product") + 1] == '$product'
    assert re.search(r'^product="\$\{3:-medview\}"$', BUILD_STEP, re.M), "the image's product unless told otherwise"
    assert not re.search(r"deploy/image/build\.sh \S+ \S+ \S", build_stage_runs()), "the Dockerfile builds the default product"
    assert flags[flags.index("-c") + 1] == '$configuration'
    assert re.search(r"^export MEDVIEW_PORTABLE=1$", BUILD_STEP, re.M)
    package = (REPO / "Package.swift").read_text(encoding="utf-8")
    assert 'environment["MEDVIEW_PORTABLE"] == nil' in package, "Package.swift still honours MEDVIEW_PORTABLE"


def test_ci_runs_the_debug_variant_of_the_same_script():
    test_sh = (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert re.search(r"bash scripts/build-image-rootfs\.sh --debug", test_sh)


def test_the_runtime_configuration_is_the_same():
    config = script_config()
    stage = runtime_stage()
    words = {}
    for word, args in stage:
        words.setdefault(word, []).append(args)
    assert words["FROM"][0].startswith("debian:bookworm-slim")
    assert words["USER"] == [config["user"]]
    assert json.loads(words["ENTRYPOINT"][0]) == config["entrypoint"]
    assert json.loads(words["CMD"][0]) == config["cmd"]
    assert [int(p) for p in words["EXPOSE"]] == config["expose"]
    assert words["WORKDIR"] == [config["workdir"]]
    assert json.loads(words["VOLUME"][0]) == config["volumes"]
    env = dict(item.split("=", 1) for args in words["ENV"] for item in shlex.split(args))
    assert env == config["env"]
    (rds,) = [a for a in words["COPY"] if a.startswith("--from=rds-ca")]
    assert rds.split()[-1] == config["rdsCaBundle"]
    uid, gid = config["user"].split(":")
    (user_setup,) = [a for a in words["RUN"] if "useradd" in a]
    assert f"--uid {uid}" in user_setup and f"--gid {gid}" in user_setup
    assert any(f"chown {uid}:{gid} {config['env']['MEDVIEW_DATA_DIR']}" in a for a in words["RUN"])


def test_the_image_carries_no_model_file_unless_asked():
    assert re.search(r"^ARG INCLUDE_LOCAL_MODEL=0$", DOCKERFILE, re.M)
    assert re.search(r'if \[ "\$\{INCLUDE_LOCAL_MODEL:-0\}" = 1 \]', STAGE_STEP)
    assert "model fetch" in STAGE_STEP


def test_build_packages_come_from_the_shared_list():
    instructions = dockerfile_instructions()
    assert ("COPY", "deploy/image/build-packages.txt /tmp/build-packages.txt") in instructions
    assert "xargs apt-get install" in build_stage_runs()
    assert "deploy/image/build-packages.txt" in SCRIPT.read_text(encoding="utf-8")


def test_runtime_packages_come_from_the_shared_list():
    stage = runtime_stage()
    assert ("COPY", "deploy/image/runtime-packages.txt /tmp/runtime-packages.txt") in stage
    assert any("xargs apt-get install" in a for w, a in stage if w == "RUN")
    packages = [l for l in (REPO / "deploy/image/runtime-packages.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert "ca-certificates" in packages, "TLS to Bedrock, KMS, Cognito and Aurora needs the system roots"


def test_stage_copies_every_resource_bundle_the_product_needs():
    package = (REPO / "Package.swift").read_text(encoding="utf-8")
    targets = re.findall(r'\.target\(\s*name: "(\w+)"(.*?)\n        \),', package, re.S)
    with_resources = {name for name, body in targets if "resources:" in body}
    bundles = set(re.findall(r"MedView_(\w+)\.resources", STAGE_STEP))
    assert with_resources == bundles, f"Package.swift resources {with_resources} vs stage.sh {bundles}"


def test_the_image_builds_with_the_toolchain_ci_tests():
    (version,) = re.findall(r"^ARG SWIFT_VERSION=(\S+)$", DOCKERFILE, re.M)
    assert re.search(r"^FROM swift:\$\{SWIFT_VERSION\}-bookworm AS build$", DOCKERFILE, re.M), \
        "Debian 12 build stage: its glibc is the runtime stage's"
    swift = shutil.which("swift")
    if swift:
        out = subprocess.run([swift, "--version"], capture_output=True, text=True, timeout=60).stdout
        assert f"Swift version {version} " in out or f"swift-{version}-RELEASE" in out, out


def test_docker_context_leaves_builds_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".build" in ignored and ".build-*" in ignored
