#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# make bench under real systemd: the first update of a new thread when
# its agent starts as a transient unit (launcher: systemd) next to the
# same with the direct launcher, measured in one run; then what a client
# streaming a turn sees of five restarts of the daemon (the longest wait
# for an update, and updates lost).  Medians, and what the unit adds, go
# out as "# bench: NAME VALUE" lines; make check runs one round
# (AB_BENCH_RUNS=1, one restart) and judges no timing.
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

# --- restart_gap_ms, restart_updates_lost ------------------------------------
# One turn streams numbered chunks (100 a second) to agentctl prompt while
# the daemon restarts; every chunk is stamped as the client prints it.
# restart_gap_ms: from the last chunk received before a restart to the
# first after it, the median over the restarts (five; one under make
# check). restart_updates_lost: chunks missing or repeated in what the
# prompting client printed.
restarts=5
[ "$runs" -gt 1 ] || restarts=1
chunks=$((100 * (4 + 3 * restarts)))
restart_thread=bench:restart

# stamp: "SEQ REALTIME" for each chunk number agentctl prints (the demo
# agent's "pace" chunks are "SEQ t=STAMP ", nothing else).
stamp() {
    local word
    while IFS= read -r -d ' ' word; do
        word=${word//$'\n'/}
        if [[ $word =~ ^[0-9]+$ ]]; then echo "$word $EPOCHREALTIME"; fi
    done
    return 0
}
arrived() { wc -l </tmp/bench-arrivals 2>/dev/null || echo 0; }
prompt_running() { [ ! -f /tmp/bench-restart.rc ]; }

# measure_restarts: the turn, and $restarts restarts while it streams;
# each restart's begin and end in /tmp/bench-restarts.
measure_restarts() {
    local i before seen
    rm -f /tmp/bench-arrivals /tmp/bench-restarts /tmp/bench-restart.rc
    ctl prompt "$restart_thread" hello >/dev/null 2>&1 || return 1
    unit_prop "$(ctl show -p Unit --value "$restart_thread")" MainPID >/tmp/bench-restart.pid
    (
        timeout 120 "$AB_BINDIR/agentctl" --system prompt "$restart_thread" \
            "pace 100 $chunks 1" 2>/tmp/bench-restart.err | stamp >/tmp/bench-arrivals
        echo "${PIPESTATUS[0]}" >/tmp/bench-restart.rc
    ) >/dev/null 2>&1 &
    wait_until 30 bash -c "[ \$(wc -l </tmp/bench-arrivals) -ge 100 ]" || return 1
    for i in $(seq 1 "$restarts"); do
        prompt_running || return 1
        before=$(bus_prop StartedAt)
        echo "$EPOCHREALTIME" >>/tmp/bench-restarts
        systemctl restart "$ab_unit" || return 1
        echo "$EPOCHREALTIME" >>/tmp/bench-restarts
        wait_until 30 bash -c ". /ab-tests/lib.sh; [ \"\$(bus_prop StartedAt)\" != '$before' ]" || return 1
        # The stream goes on before the next restart.
        seen=$(arrived)
        wait_until 30 bash -c "[ \$(wc -l </tmp/bench-arrivals) -gt $((seen + 100)) ]" || return 1
    done
    wait_until 120 test -f /tmp/bench-restart.rc
}

check "launcher: systemd: $restarts restart(s) while a turn streams $chunks chunks" measure_restarts
check_eq "the prompt exits 0 after the restarts" 0 "$(cat /tmp/bench-restart.rc 2>/dev/null)"
diag "$(head -c 300 /tmp/bench-restart.err 2>/dev/null)"
check_eq "the agent kept its process through the restarts" "$(cat /tmp/bench-restart.pid)" \
    "$(unit_prop "$(ctl show -p Unit --value "$restart_thread")" MainPID)"
# Missing chunks plus repeated ones.
lost=$(cut -d' ' -f1 /tmp/bench-arrivals | awk -v n="$chunks" '
    $1 >= 1 && $1 <= n && !seen[$1]++ { unique++ }
    END { print (n - unique) + (NR - unique) }')
check "every chunk arrived once, in order" \
    bash -c "cut -d' ' -f1 /tmp/bench-arrivals | cmp - <(seq 1 $chunks)"
# Each restart's gap: the longest wait between two chunks received
# around its window (from the first chunk received at or before the
# restart's end, to the next one received at or after its begin).
paste -d' ' - - </tmp/bench-restarts >/tmp/bench-restart-windows
awk 'NR == FNR { b[NR] = $1; e[NR] = $2; n = NR; next }
    { t[++m] = $2 }
    END {
        for (r = 1; r <= n; r++) {
            gap = -1
            for (i = 1; i < m; i++)
                if (t[i] <= e[r] && t[i + 1] >= b[r] && t[i + 1] - t[i] > gap)
                    gap = t[i + 1] - t[i]
            if (gap >= 0) printf "%.1f\n", gap * 1000
        }
    }' /tmp/bench-restart-windows /tmp/bench-arrivals >/tmp/bench-gaps
diag "restart gaps (ms): $(tr '\n' ' ' </tmp/bench-gaps)"
check_eq "one gap per restart" "$restarts" "$(wc -l </tmp/bench-gaps)"

direct=$(median </tmp/bench-direct)
unit=$(median </tmp/bench-systemd)
echo "# bench: first_update_direct_ms $(awk -v v="$direct" 'BEGIN { printf "%.1f", v / 1000 }')"
echo "# bench: first_update_unit_ms $(awk -v v="$unit" 'BEGIN { printf "%.1f", v / 1000 }')"
echo "# bench: first_update_unit_added_ms $(awk -v a="$unit" -v b="$direct" 'BEGIN { printf "%.1f", (a - b) / 1000 }')"
echo "# bench: first_update_runs $runs"
echo "# bench: restart_gap_ms $(median </tmp/bench-gaps)"
echo "# bench: restart_updates_lost $lost"
echo "# bench: restart_runs $restarts"
finish
