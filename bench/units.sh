#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# make bench, second part: the first update of a new thread with the
# systemd launcher next to the direct one, both under real systemd in
# one container run, and the wait a streaming client sees at five
# restarts of the daemon with the updates it lost
# (tests/systemd/scenario-bench-units.sh).  Prints the medians;
# AB_BENCH_RUNS sets the threads per launcher (default 15).
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ] || ! command -v systemd-nspawn >/dev/null; then
    echo "first_update_unit_added_ms, restart_gap_ms, restart_updates_lost: not measured (needs root and systemd-nspawn)"
    exit 0
fi
out=$(AB_BENCH_RUNS=${AB_BENCH_RUNS:-15} abs_top_builddir=${abs_top_builddir:-$PWD} \
    "$here/../tests/systemd/run.sh" bench-units 2>&1)
status=$?
if [ "$status" != 0 ]; then
    printf '%s\n' "$out" >&2
    echo "first_update_unit_added_ms, restart_gap_ms: the unit bench failed" >&2
    exit 1
fi
echo
echo "under real systemd: first update of a new thread, and a turn streamed"
echo "through restarts of the daemon (medians, ms; updates lost, a count):"
printf '%s\n' "$out" | sed -n 's/^# bench: /  /p'
