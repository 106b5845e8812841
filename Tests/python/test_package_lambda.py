"""scripts/package-lambda.sh builds a zip that provided.al2023 can run, and refuses one it cannot.

Without building anything: the script stays in step with the stack (the CA bundle's place in the
zip, the default product, the image's compile step and scratch folder), and its load check refuses
what Amazon Linux 2023 cannot load (a symbol version newer than glibc 2.34, a library outside its
base) and passes what it can, on two small C programs compiled here.

With the zip CI built (`scripts/package-lambda.sh --debug`, as scripts/test.sh runs it, like the
image build that Tests/python/test_image_build.py keeps in step): it is a valid zip with an
executable `bootstrap` at its root, written deterministically. Outside CI, when the zip is not
there, that test is skipped; in CI it must be there once the `bootstrap` product exists.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from cfn_template import REPO, Template

SCRIPT = REPO / "scripts" / "package-lambda.sh"
ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
ZIP = Path(os.environ.get("MEDVIEW_LAMBDA_ZIP", REPO / ".build-lambda" / "debug" / f"medview-lambda-{ARCH}.zip"))


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def script_config() -> dict:
    result = script("--print-config")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_zip_carries_the_ca_bundle_where_the_stack_looks():
    stack = Template(REPO / "deploy" / "aws" / "medview-lambda.yaml")
    assert stack.mapping("Settings", "Functions", "RdsCaBundle") == "/var/task/" + script_config()["rdsCaBundle"]


def test_the_al2023_limits_are_glibc_234_and_gcc_11():
    libraries = script_config()["al2023Libraries"]
    assert libraries["libc.so.6"] == {"GLIBC_": "2.34"}
    assert libraries["libstdc++.so.6"]["GLIBCXX_"] == "3.4.29"
    assert "libcurl.so.4" not in libraries, "not in every Lambda base image"


def test_bootstrap_by_default_built_by_the_images_compile_step_in_its_scratch_folder():
    text = SCRIPT.read_text(encoding="utf-8")
    assert re.search(r"^product=bootstrap$", text, re.M)
    assert re.search(r'deploy/image/build\.sh "\$configuration" "\$scratch" "\$product"', text)
    image = (REPO / "scripts" / "build-image-rootfs.sh").read_text(encoding="utf-8")
    scratch = 'scratch=".build-image-$configuration"'
    assert scratch in text and scratch in image, "one scratch folder: CI compiles the dependencies once"
    assert "swift build" not in text, "the script compiles only through deploy/image/build.sh"


def test_ci_packages_the_debug_zip():
    test_sh = (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert re.search(r"bash scripts/package-lambda\.sh --debug", test_sh)


def compiled(tmp_path: Path, name: str, source: str) -> Path:
    compiler = shutil.which("cc") or shutil.which("clang")
    if not compiler:
        pytest.skip("no C compiler")
    (tmp_path / f"{name}.c").write_text(source)
    subprocess.run([compiler, "-O1", "-o", str(tmp_path / name), str(tmp_path / f"{name}.c")], check=True, timeout=60)
    return tmp_path / name


def test_the_load_check_passes_a_binary_al2023_can_load(tmp_path):
    binary = compiled(tmp_path, "plain", '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    result = script("--check-binary", str(binary))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "within AL2023" in result.stdout


def test_the_load_check_refuses_a_symbol_version_newer_than_al2023s_glibc(tmp_path):
    if tuple(int(p) for p in platform.libc_ver()[1].split(".")) < (2, 36):
        pytest.skip("this machine's glibc has no arc4random")
    # arc4random arrived in glibc 2.36 (Debian 12); AL2023 has 2.34.
    binary = compiled(tmp_path, "newer", '#include <stdio.h>\n#include <stdlib.h>\n'
                      'int main(void) { printf("%u\\n", arc4random()); return 0; }\n')
    result = script("--check-binary", str(binary))
    assert result.returncode != 0
    assert "libc.so.6: needs GLIBC_2.36, AL2023 has GLIBC_2.34" in result.stderr


def test_the_load_check_refuses_a_library_outside_al2023s_base():
    curl = shutil.which("curl")
    if not curl or "libcurl.so.4" not in subprocess.run(["objdump", "-p", curl], capture_output=True, text=True).stdout:
        pytest.skip("no dynamically linked curl here")
    result = script("--check-binary", curl)
    assert result.returncode != 0 and "libcurl.so.4: not part of Amazon Linux 2023's base" in result.stderr


def bootstrap_product_declared() -> bool:
    return bool(re.search(r'\.executable\(name: "bootstrap"', (REPO / "Package.swift").read_text(encoding="utf-8")))


def test_the_zip_has_an_executable_bootstrap_at_its_root():
    if not ZIP.exists():
        if os.environ.get("CI") == "true" and bootstrap_product_declared():
            pytest.fail(f"{ZIP} missing: scripts/test.sh runs scripts/package-lambda.sh --debug before the Python tests")
        pytest.skip(f"{ZIP} not built (scripts/package-lambda.sh --debug)")
    with zipfile.ZipFile(ZIP) as archive:
        assert archive.testzip() is None, "a damaged entry"
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names), "entries in a fixed order"
        (boot,) = [i for i in infos if i.filename == "bootstrap"]
        assert boot.create_system == 3, "Unix modes, which Lambda honours"
        mode = boot.external_attr >> 16
        assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos), "fixed times: the same binary, the same zip"
        assert all(stat.S_IMODE(i.external_attr >> 16) in (0o644, 0o755) for i in infos)
        head = archive.open(boot).read(20)
        assert head[:4] == b"\x7fELF"
        machine = int.from_bytes(head[18:20], "little")
        assert machine == {"x86_64": 62, "arm64": 183}[ARCH], "built for this machine's architecture"


HYPOT = '#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n' \
        'int main(int argc, char **argv) { printf("%g\\n", hypot(argc > 1 ? atof(argv[1]) : 3.0, 4.0)); return 0; }\n'


def test_the_compat_object_binds_hypot_to_a_version_al2023_has(tmp_path):
    if tuple(int(p) for p in platform.libc_ver()[1].split(".")) < (2, 35):
        pytest.skip("this machine's glibc links hypot at a version AL2023 has anyway")
    compiler = shutil.which("cc") or shutil.which("clang")
    if not compiler:
        pytest.skip("no C compiler")
    source = tmp_path / "hypot.c"
    source.write_text(HYPOT)
    plain, fixed, compat = tmp_path / "plain", tmp_path / "fixed", tmp_path / "compat.o"
    subprocess.run([compiler, "-O1", "-fno-builtin", "-o", str(plain), str(source), "-lm"], check=True, timeout=60)
    # As scripts/package-lambda.sh compiles it, linked the way the bootstrap is: -lstdc++ is in the
    # Swift runtime's link arguments, and the Swift link exports every symbol (-rdynamic), which
    # is what made an exported wrapper call itself.
    subprocess.run([compiler, "-O2", "-fPIC", "-fno-builtin", "-c", str(REPO / "deploy" / "lambda" / "al2023-compat.c"),
                    "-o", str(compat)], check=True, timeout=60)
    subprocess.run([compiler, "-O1", "-fno-builtin", "-rdynamic", "-o", str(fixed), str(source), str(compat), "-lm", "-lstdc++"],
                   check=True, timeout=60)
    refused = script("--check-binary", str(plain))
    assert refused.returncode != 0 and "libm.so.6: needs GLIBC_2.35" in refused.stderr, refused.stderr
    passed = script("--check-binary", str(fixed))
    assert passed.returncode == 0, passed.stderr
    assert subprocess.run([str(fixed), "3"], capture_output=True, text=True, timeout=10).stdout.strip() == "5"
    text = SCRIPT.read_text(encoding="utf-8")
    assert "deploy/lambda/al2023-compat.c" in text and "-Xlinker --as-needed" in text
