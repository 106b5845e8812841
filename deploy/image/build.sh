#!/usr/bin/env bash
# The image's compile step, shared by the Dockerfile (build stage) and scripts/build-image-rootfs.sh,
# so the two cannot drift: both run exactly this.
#
#   deploy/image/build.sh CONFIGURATION [SCRATCH_PATH [PRODUCT [SWIFT BUILD ARGUMENTS...]]]
#
# CONFIGURATION is release (the Dockerfile, the real image) or debug (CI's cheaper variant,
# docs/DEPLOY.md "The image in CI"). PRODUCT is medview (the image) or bootstrap (the Lambda zip,
# scripts/package-lambda.sh): the same flags, so the two share one scratch folder's compiled
# dependencies. Further arguments go to the build before the image's link flags (the Lambda zip
# adds --as-needed and a link input).
# Prints the bin directory (and nothing else) on standard output; build output goes to stderr.
set -euo pipefail
configuration="${1:?usage: build.sh release|debug [scratch-path]}"
scratch="${2:-.build}"
product="${3:-medview}"
extra=("${@:4}")
case "$configuration" in release|debug) ;; *) echo "build.sh: configuration must be release or debug" >&2; exit 2 ;; esac

# Portable CPU target: no -target-cpu haswell/skylake-avx512 for the inference target
# (Package.swift), so the binary runs on any x86-64 Fargate host (and on arm64 as built there).
export MEDVIEW_PORTABLE=1
# The image's build flags (Tests/python/test_image_build.py holds both users to them):
#   --product PRODUCT          one executable; no tests, no benchmarks of their own
#   --static-swift-stdlib      the Swift runtime and Foundation linked in: the runtime stage
#                              needs only Debian's C libraries (deploy/image/runtime-packages.txt)
#   -Xlinker -lcurl            the static FoundationNetworking calls libcurl, which the toolchain's
#                              static-stdlib link arguments do not name (deploy/image/build-packages.txt)
swift build -c "$configuration" --scratch-path "$scratch" --product "$product" --static-swift-stdlib "${extra[@]}" -Xlinker -lcurl >&2
swift build -c "$configuration" --scratch-path "$scratch" --show-bin-path
