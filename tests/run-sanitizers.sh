#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The tests under AddressSanitizer + UndefinedBehaviorSanitizer, and the
# daemon tests under valgrind memcheck (HACKING.md).
#
#   tests/run-sanitizers.sh ASAN_BUILDDIR [VALGRIND_BUILDDIR]
#
# ASAN_BUILDDIR is configured out of tree with --enable-sanitizers and
# built; every C test program runs there: the unit tests and the daemon
# tests on a private bus, so the daemon under test is the sanitized one
# (the fixture runs $AB_TEST_BUILDDIR/src/agentbrokerd; agentctl and the
# demo agent are sanitized too). The tests under real systemd and the
# shell tests (tests/systemd/*.sh, man pages, translations) are not
# repeated there: they check the installed units and files, which the
# regular build's `make check` already does, and add no memory checking.
#
# VALGRIND_BUILDDIR, a regular build (ASan and valgrind exclude each
# other), runs test-daemon, test-sessions, test-lifecycle and
# test-agent-side with agentbrokerd under
# `valgrind --error-exitcode=1 --leak-check=full` (AB_TEST_DAEMON_WRAPPER,
# see tests/daemon-fixture.c, which fails a test whose daemon log holds a
# sanitizer or valgrind report, whatever the exit status).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
jobs=$(nproc)
asan=${1:?usage: run-sanitizers.sh ASAN_BUILDDIR [VALGRIND_BUILDDIR]}
vg=${2:-}

show_failures() {
    local log
    for log in "$1"/tests/*.log; do
        grep -qE '^(FAIL|ERROR):' "$log" 2>/dev/null && cat "$log"
    done
    return 0
}

# halt_on_error: the first report ends the process, so it cannot be
# missed; detect_leaks: LeakSanitizer at exit. No suppressions: neither
# GLib nor the daemon needs one (GLib's threads that live until exit are
# still reachable, which LeakSanitizer does not report).
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

rm -rf "$asan"
mkdir -p "$asan"
(cd "$asan" && "$top/configure" --enable-werror --enable-sanitizers >/dev/null)
make -C "$asan" -j"$jobs" >/dev/null
# every C test program, whatever tests/Makefile.inc lists today
c_tests=$(make -s -C "$asan" -f Makefile -f - ab-print-tests <<'EOF' | tr ' ' '\n' | grep -E '^tests/test-[^.]+$' | tr '\n' ' '
ab-print-tests:
	@echo $(TESTS)
EOF
)
echo "run-sanitizers: ASan+UBSan: $c_tests"
if ! make -C "$asan" -j"$jobs" check TESTS="$c_tests"; then
    show_failures "$asan"
    exit 1
fi

if [ -n "$vg" ]; then
    # G_SLICE=always-malloc: GLib 2.74's slice allocator would hide leaks
    # from valgrind; gc-friendly: freed memory is cleared, so stale
    # pointers do not keep blocks "reachable". -q: nothing in the daemon's
    # log unless there is an error. --child-silent-after-fork: the daemon
    # forks to start agents; a child whose exec fails (an agent command
    # that does not exist) exits under valgrind holding a copy of the
    # daemon's heap without the daemon's other threads, whose stacks are
    # what keep much of that heap reachable, so its exit report is noise
    # about a process that never ran our code. tests/valgrind.supp
    # explains its one entry.
    export G_SLICE=always-malloc G_DEBUG=gc-friendly
    export AB_TEST_DAEMON_WRAPPER="valgrind -q --error-exitcode=1 \
--leak-check=full --num-callers=30 --child-silent-after-fork=yes \
--suppressions=$top/tests/valgrind.supp"
    # test-hostile is left to ASan: its bounds on the daemon's RSS would
    # measure valgrind's own shadow memory.
    vg_tests="tests/test-daemon tests/test-sessions tests/test-lifecycle \
tests/test-agent-side"
    echo "run-sanitizers: valgrind: $vg_tests"
    if ! make -C "$vg" -j"$jobs" check TESTS="$vg_tests"; then
        show_failures "$vg"
        exit 1
    fi
fi
echo "run-sanitizers: clean"
