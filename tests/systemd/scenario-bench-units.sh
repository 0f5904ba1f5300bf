#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# make bench under real systemd: the first update of a new thread when
# its agent starts as a transient unit (launcher: systemd) next to the
# same with the direct launcher, measured in one run.  Medians, and what
# the unit adds, go out as "# bench: NAME VALUE" lines; make check runs
# one round (AB_BENCH_RUNS=1) and judges no timing.
set -uo pipefail
. /ab-tests/lib.sh

runs=${AB_BENCH_RUNS:-15}
[ -n "$runs" ] || runs=15
mkdir -p /etc/polkit-1/rules.d
cp "$AB_PREFIX/share/polkit-1/rules.d/50-agentbroker.rules" /etc/polkit-1/rules.d/

ctl() { timeout 60 "$AB_BINDIR/agentctl" --system "$@"; }

# first_update_us THREAD: microseconds from the call until agentctl
# prints the first update of a new thread's first turn.
first_update_us() {
    local t0
    t0=$(date +%s%N)
    ctl prompt "$1" "stream 1" 2>/dev/null | {
        IFS= read -r _ && echo $((($(date +%s%N) - t0) / 1000))
        cat >/dev/null
    }
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# measure LAUNCHER: one first update per new thread, $runs times.
measure() {
    local launcher=$1 i value
    cat >"$ab_config" <<YAML
launcher: $launcher
default_agent: demo
agents:
  demo:
    command: [$AB_BINDIR/agentbroker-demo-agent]
YAML
    systemctl restart "$ab_unit" || return 1
    wait_until 30 unit_running "$ab_unit" || return 1
    [ "$(bus_prop Launcher)" = "\"$launcher\"" ] || return 1
    # One thread first: the daemon's own first use is not what is measured.
    ctl prompt "bench:warm-$launcher" "stream 1" >/dev/null 2>&1 || return 1
    for i in $(seq 1 "$runs"); do
        value=$(first_update_us "bench:$launcher-$i")
        [ -n "$value" ] || return 1
        echo "$value" >>"/tmp/bench-$launcher"
    done
}

rm -f /tmp/bench-direct /tmp/bench-systemd
for launcher in direct systemd; do
    check "launcher: $launcher: $runs first updates of new threads" measure "$launcher"
done
check_eq "one value per thread, both launchers" "$runs $runs" \
    "$(wc -l </tmp/bench-direct 2>/dev/null || echo 0) $(wc -l </tmp/bench-systemd 2>/dev/null || echo 0)"
check "with launcher: systemd each thread's agent is a unit of its own" bash -c \
    "[ \$(systemctl list-units --no-legend 'agentbroker-session-bench:systemd*' | wc -l) -ge $runs ]"

direct=$(median </tmp/bench-direct)
unit=$(median </tmp/bench-systemd)
echo "# bench: first_update_direct_ms $(awk -v v="$direct" 'BEGIN { printf "%.1f", v / 1000 }')"
echo "# bench: first_update_unit_ms $(awk -v v="$unit" 'BEGIN { printf "%.1f", v / 1000 }')"
echo "# bench: first_update_unit_added_ms $(awk -v a="$unit" -v b="$direct" 'BEGIN { printf "%.1f", (a - b) / 1000 }')"
echo "# bench: first_update_runs $runs"
finish
