#!/bin/sh
# make bench's program end to end (issue 8), as a smoke test: a quick run
# of its parts that take seconds (latency, first update, drain) exits 0,
# and its JSON holds a number for every figure of those parts, baselines
# and floors included, and none for the parts left out. No timing is
# judged here: only that each figure was measured.  Prints TAP.
set -u
builddir=${AB_TEST_BUILDDIR:?AB_TEST_BUILDDIR is not set}
bench=$builddir/bench/agentbroker-bench
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
check() { if eval "$1"; then ok "$2"; else not_ok "$2"; fi; }

if AB_BENCH_BUILDDIR=$builddir "$bench" --quick --json \
    --only latency,first,drain >"$dir/out" 2>"$dir/err"; then
    ok "agentbroker-bench --quick --only latency,first,drain exits 0"
else
    not_ok "agentbroker-bench --quick --only latency,first,drain exits 0"
    sed 's/^/# /' "$dir/err"
fi
tail -n 1 "$dir/out" >"$dir/json"

# A figure of the summary: "key":<number>.
for key in latency_p50_added_us latency_p99_added_us first_update_added_ms \
    drain_return_ms; do
    check "grep -Eq '\"$key\":-?[0-9]' '$dir/json'" "summary $key is a number"
done
# Left out by --only: null.
for key in relay_rate_1 rss_per_session_kib list_1000_ms start_10000_added_ms; do
    check "grep -q '\"$key\":null' '$dir/json'" "summary $key is null"
done
# The raw runs behind them: "key":[<number>,…] with no null among them.
for key in relay_latency_p50_us relay_latency_p99_us dbus_latency_p50_us \
    relay_latency_light_p50_us dbus_latency_light_p50_us \
    relay_cpu_daemon relay_cpu_agents relay_cpu_all dbus_cpu_emitter \
    floor_latency_p50_us floor_latency_light_p50_us floor_cpu_relay \
    floor_cpu_agents dbus_loaded_latency_p50_us loaded_cpu_agents \
    loaded_cpu_reader pipe_latency_p50_us first_update_ms \
    direct_first_update_ms drain_return_ms; do
    check "grep -Eq '\"$key\":\\[-?[0-9]' '$dir/json' &&
        ! grep -Eq '\"$key\":\\[[^]]*null' '$dir/json'" \
        "raw $key holds numbers only"
done
# The table names the figures the JSON holds.
check "grep -q '^latency p50, 100x100/s' '$dir/out'" "the table has its rows"

echo "1..$n"
exit $failed
