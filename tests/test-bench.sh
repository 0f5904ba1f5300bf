#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# make bench's program end to end: a --smoke run (one short run
# of each part) exits 0 and its JSON holds a number for every key the issue
# names and for every raw figure, baselines and floors included; with
# --only, the parts left out give null. No timing is judged here: only that
# each figure was measured.  Prints TAP.
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

# run NAME ARGS...: the bench's output in $dir/NAME, its JSON line in
# $dir/NAME.json.
run() {
    name=$1
    shift
    if AB_BENCH_BUILDDIR=$builddir "$bench" --smoke --json "$@" \
        >"$dir/$name" 2>"$dir/$name.err"; then
        ok "agentbroker-bench --smoke --json $* exits 0"
    else
        not_ok "agentbroker-bench --smoke --json $* exits 0"
        sed 's/^/# /' "$dir/$name.err"
    fi
    tail -n 1 "$dir/$name" >"$dir/$name.json"
}

# The acp part needs node and the SDK client installed in the build tree
# (check_DATA installs it); without them its figures are null.
acp_keys=
if command -v node >/dev/null &&
    test -e "$builddir/tests/acp-client/node_modules/@agentclientprotocol/sdk/package.json"; then
    acp_keys=acp_proxy_vs_direct
fi

run all
for key in $acp_keys relay_rate_1 relay_vs_dbus_1 relay_vs_direct_1 relay_rate_100 \
    latency_p50_added_us latency_p99_added_us first_update_added_ms \
    rss_per_session_kib list_1000_ms list_10000_suspended_ms list_10000_vs_dict \
    reload_1000_added_ms start_10000_added_ms drain_return_ms; do
    check "grep -Eq '\"$key\":-?[0-9]' '$dir/all.json'" "$key is a number"
done
# The raw figures behind them, of every part: "key":[<number>,…].
for key in dbus_rate direct_rate relay_latency_p50_us dbus_latency_p50_us \
    relay_cpu_daemon relay_cpu_agents floor_latency_p50_us floor_cpu_relay \
    dbus_loaded_latency_p50_us loaded_cpu_agents pipe_latency_p50_us \
    direct_first_update_ms rss_0_kib getall_ms list_1000_wire_ms \
    list_1000_lister_ms list_1000_dict_ms list_10000_suspended_encode_ms reload_0_ms \
    reload_agents_restarted start_0_ms; do
    check "grep -Eq '\"$key\":\\[-?[0-9]' '$dir/all.json'" "raw $key is there"
done
if test -n "$acp_keys"; then
    for key in acp_proxy_rate acp_direct_rate; do
        check "grep -Eq '\"$key\":\\[-?[0-9]' '$dir/all.json'" "raw $key is there"
    done
    check "! grep -q null '$dir/all.json'" "no figure is null"
else
    n=$((n + 1))
    echo "ok $n # SKIP acp_proxy_vs_direct: node or tests/acp-client/node_modules missing"
    check "! sed 's/\"acp_[a-z_]*\":\\(null\\|\\[\\]\\)//g' '$dir/all.json' | grep -q null" \
        "no figure but acp's is null"
fi
check "grep -q '\"mode\":\"smoke\"' '$dir/all.json'" "the JSON says it was a smoke run"
check "grep -q '^latency p50, 100x100/s' '$dir/all'" "the table has its rows"

run drain --only drain
check "grep -Eq '\"drain_return_ms\":[0-9]' '$dir/drain.json'" \
    "with --only drain, drain_return_ms is a number"
for key in relay_rate_1 latency_p50_added_us list_1000_ms start_10000_added_ms; do
    check "grep -q '\"$key\":null' '$dir/drain.json'" \
        "with --only drain, $key is null"
done

echo "1..$n"
exit $failed
