#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds agentbroker and runs every test: unit tests, the daemon on a
# private bus, the tests under real systemd, the fuzzers for a short
# while, and make distcheck. As root it first installs the dependencies.
# AGENTBROKER_REQUIRE_ALL_TESTS=1 turns every skip into a failure.
#
# Environment: AB_BUILDDIR (the build directory, default build-check/ in
# the source tree; see below), FUZZ_SECONDS (per fuzzer, default 60).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
jobs=$(nproc)

# make distcheck installs under <builddir>/agentbroker-X.Y.Z/_inst, and its
# `make check` boots that prefix in a container (tests/systemd) where the
# daemon runs as user agentbroker with PrivateTmp=yes.  A prefix under /tmp
# or /var/tmp is invisible to it there, one under /root unreadable (both
# status=203/EXEC), and tests/systemd/run.sh refuses prefixes under /etc,
# /var, /run and the like.  As root with the checkout in such a place (CI
# clones into /tmp), build under /srv instead.
build=${AB_BUILDDIR:-$top/build-check}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
unusable_for_distcheck() {
    case "$1/" in
    /tmp/* | /var/* | /root/* | /etc/* | /run/* | /dev/* | /proc/* | /sys/*) return 0 ;;
    *) return 1 ;;
    esac
}
if [ "$(id -u)" -eq 0 ] && unusable_for_distcheck "$build"; then
    if [ -n "${AB_BUILDDIR:-}" ]; then
        echo "run-all: AB_BUILDDIR=$build: make distcheck's tests under systemd" \
            "cannot run from under /tmp, /var, /root, /etc or /run" >&2
        exit 1
    fi
    build=/srv/agentbroker-ci/$(printf '%s' "$top" | md5sum | cut -c1-12)
fi

phase_start=$SECONDS
run_start=$SECONDS
phase() {
    echo "run-all: $1 took $((SECONDS - phase_start)) s"
    phase_start=$SECONDS
}

if [ "$(id -u)" -eq 0 ]; then "$top/tests/install-deps.sh"; fi
phase "install-deps"
(cd "$top" && NOCONFIGURE=1 ./autogen.sh >/dev/null)
rm -rf "$build"
mkdir -p "$build"
cd "$build"
echo "run-all: building in $build"
"$top/configure" --prefix=/usr/local --enable-werror >/dev/null

make -j"$jobs"
phase "build"
if ! make -j"$jobs" check; then
    cat test-suite.log
    exit 1
fi
phase "check"
# The C tests again under ASan+UBSan, and the daemon tests under valgrind.
"$top/tests/run-sanitizers.sh" "$build-asan" "$build"
phase "sanitizers"
make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
phase "fuzz"
if ! make -j"$jobs" distcheck; then
    for log in agentbroker-*/_build/sub/test-suite.log; do
        [ -f "$log" ] && cat "$log"
    done
    exit 1
fi
phase "distcheck"
echo "run-all: every test passed in $((SECONDS - run_start)) s"
