#!/bin/bash
# Builds agentbroker and runs every test: unit tests, the daemon on a
# private bus, the tests under real systemd, the fuzzers for a short
# while, and make distcheck. As root it first installs the dependencies.
# AGENTBROKER_REQUIRE_ALL_TESTS=1 turns every skip into a failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${AB_BUILDDIR:-$top/build-check}
jobs=$(nproc)

if [ "$(id -u)" -eq 0 ]; then "$top/tests/install-deps.sh"; fi
(cd "$top" && NOCONFIGURE=1 ./autogen.sh >/dev/null)
rm -rf "$build"
mkdir -p "$build"
cd "$build"
"$top/configure" --prefix=/usr/local --enable-werror >/dev/null

make -j"$jobs"
if ! make -j"$jobs" check; then
    cat test-suite.log
    exit 1
fi
make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
make -j"$jobs" distcheck
echo "run-all: every test passed"
