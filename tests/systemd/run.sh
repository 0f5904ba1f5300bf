#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tests/systemd/run.sh [SCENARIO...] — run scenario-SCENARIO.sh scripts
# under the machine's own systemd in a throw-away container (HACKING.md).
#
# Installs the build tree with `make install DESTDIR=<temp>`, boots
# `systemd-nspawn -D / --volatile=yes` (tmpfs root, host /usr read-only) with
# the staged prefix bound over its own path, and runs the scenarios there as
# one oneshot unit.  Nothing on the host changes.  Prints TAP; exits 77 (skip)
# when it cannot run, unless AGENTBROKER_REQUIRE_ALL_TESTS=1, where a skip is
# a failure.  With no SCENARIO, runs them all.
#
# Environment: abs_top_builddir or AB_TEST_BUILDDIR (default: the current directory when it is a
# configured build tree, else the source tree), AB_SYSTEMD_TEST_TIMEOUT
# (seconds for the whole boot, default 600), AB_KEEP_TEMP=1 to keep the
# staging directory, results and journal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)

skip() {
    if [ "${AGENTBROKER_REQUIRE_ALL_TESTS:-0}" = 1 ]; then
        echo "Bail out! $* (AGENTBROKER_REQUIRE_ALL_TESTS=1 makes a skip a failure)"
        exit 99
    fi
    echo "1..0 # SKIP $*"
    exit 77
}

hard_error() {
    echo "Bail out! $*"
    exit 99
}

# --- can we run at all? ------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "tests under real systemd need root"
command -v systemd-nspawn >/dev/null ||
    skip "systemd-nspawn not found (apt-get install systemd-container)"
[ -x /usr/lib/systemd/systemd ] || [ -x /lib/systemd/systemd ] ||
    skip "no systemd on this machine to boot in a container"

if [ -n "${abs_top_builddir:-${AB_TEST_BUILDDIR:-}}" ]; then
    builddir=${abs_top_builddir:-$AB_TEST_BUILDDIR}
elif [ -f "$PWD/config.status" ] && [ -f "$PWD/Makefile" ]; then
    builddir=$PWD
else
    builddir=$top_srcdir
fi
[ -f "$builddir/Makefile" ] || hard_error "no configured build tree at $builddir (set abs_top_builddir)"

if [ $# -eq 0 ]; then
    for f in "$here"/scenario-*.sh; do
        f=${f##*/scenario-}
        set -- "$@" "${f%.sh}"
    done
fi
for scenario in "$@"; do
    [ -f "$here/scenario-$scenario.sh" ] || hard_error "no scenario $here/scenario-$scenario.sh"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentbroker-systemd-test.XXXXXX")
stage=$tmp/stage
out=$tmp/out
harness=$tmp/harness
mkdir -p "$stage" "$out" "$harness"
keep=${AB_KEEP_TEMP:-0}
cleanup() {
    if [ "$keep" = 1 ]; then
        echo "# kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# The nested make must not inherit the jobserver or variables of a
# surrounding `make check`.
build_make() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u DESTDIR \
        "${MAKE:-make}" --no-print-directory -C "$builddir" "$@"
}

# --- install into the staging tree ---------------------------------------
vars="prefix bindir libexecdir sysconfdir systemdsystemunitdir systemduserunitdir
      dbuspolicydir dbussystemservicedir dbussessionservicedir sysusersdir tmpfilesdir"
recipe="@:"
for v in $vars; do
    recipe="$recipe; echo 'AB_$(echo "$v" | tr '[:lower:]' '[:upper:]')=\$($v)'"
done
build_make -s --eval="ab-print-dirs: ; $recipe" ab-print-dirs >"$harness/dirs.env" ||
    hard_error "cannot read the install directories from $builddir/Makefile"
# shellcheck source=/dev/null
. "$harness/dirs.env"
# How many rounds the bench scenario measures (make bench sets it).
echo "AB_BENCH_RUNS=${AB_BENCH_RUNS:-}" >>"$harness/dirs.env"

case "$AB_PREFIX" in
/ | /usr | /usr/ | /etc* | /var* | /proc* | /sys* | /dev* | /run*)
    skip "prefix $AB_PREFIX would hide the host's own files in the container; configure with --prefix=/usr/local"
    ;;
/*) ;;
*) hard_error "prefix '$AB_PREFIX' is not absolute" ;;
esac

if ! build_make install DESTDIR="$stage" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    hard_error "make install DESTDIR=$stage failed"
fi

binds=(
    --bind-ro="$stage$AB_PREFIX:$AB_PREFIX"
    --bind-ro="$stage:/ab-stage"
    --bind-ro="$here:/ab-tests"
    --bind-ro="$harness:/ab-harness"
    --bind-ro="$harness/scenario.service:/etc/systemd/system/scenario.service"
    --bind="$out:/out"
)
# The SDK agent (tests/sdk-agent, its npm packages installed by make
# check) for scenarios that run a Node.js agent under the sandboxed unit.
if [ -d "$builddir/tests/sdk-agent/node_modules" ]; then
    binds+=(--bind-ro="$builddir/tests/sdk-agent:/ab-sdk-agent")
fi
# The volatile root has an empty /etc; awk and friends are alternatives links.
if [ -d /etc/alternatives ]; then
    binds+=(--bind-ro=/etc/alternatives)
fi
# Scenarios rewrite the configuration: give them a writable copy when it
# lives under the (read-only) prefix.  Elsewhere (/etc) it is in the
# volatile root already and container-main.sh copies it in.
case "$AB_SYSCONFDIR" in
"$AB_PREFIX"/*)
    mkdir -p "$tmp/sysconf"
    cp -a "$stage$AB_SYSCONFDIR/." "$tmp/sysconf/"
    binds+=(--bind="$tmp/sysconf:$AB_SYSCONFDIR")
    ;;
esac

limit=${AB_SYSTEMD_TEST_TIMEOUT:-600}
cat >"$harness/scenario.service" <<EOF2
[Unit]
Description=agentbroker tests under real systemd: $*
Requires=dbus.socket
After=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
EnvironmentFile=/ab-harness/dirs.env
ExecStart=/bin/bash /ab-tests/container-main.sh $*
ExecStopPost=/bin/sh -c 'journalctl --sync; journalctl -b --no-pager -o short-monotonic >/out/journal.txt'
TimeoutStartSec=$((limit > 60 ? limit - 30 : 30))
EOF2

# --- boot --------------------------------------------------------------------
started=$SECONDS
rc=0
timeout --kill-after=15 "$limit" systemd-nspawn -D / --volatile=yes \
    --register=no --keep-unit --quiet -M "abtest-$$" \
    "${binds[@]}" \
    -b systemd.firstboot=off systemd.unit=scenario.service \
    </dev/null >"$tmp/console.log" 2>&1 || rc=$?
echo "# container ran for $((SECONDS - started)) s (systemd-nspawn exit status $rc)"

# --- results as TAP ------------------------------------------------------
n=0
failed=0
if [ -f "$out/setup.rc" ]; then
    n=$((n + 1))
    failed=1
    echo "not ok $n - container setup"
    sed 's/^/# /' "$out/setup.log"
fi
for scenario in "$@"; do
    echo "# scenario $scenario"
    scenario_failed=0
    if [ -f "$out/$scenario.tap" ]; then
        while IFS= read -r line; do
            case "$line" in
            "not ok"*)
                n=$((n + 1))
                failed=1
                scenario_failed=1
                echo "not ok $n${line#not ok}"
                ;;
            "ok"*)
                n=$((n + 1))
                echo "ok $n${line#ok}"
                ;;
            "#"*) echo "$line" ;;
            *) echo "# $line" ;;
            esac
        done <"$out/$scenario.tap"
    fi
    src=$(cat "$out/$scenario.rc" 2>/dev/null || echo "none (did not run or did not finish)")
    if [ "$src" != 0 ] && [ "$scenario_failed" = 0 ]; then
        n=$((n + 1))
        failed=1
        echo "not ok $n - scenario $scenario: exit status $src"
    fi
    if [ "$src" != 0 ] && [ -s "$out/$scenario.err" ]; then
        echo "--- stderr of scenario $scenario" >&2
        cat "$out/$scenario.err" >&2
    fi
done
if [ "$n" -eq 0 ]; then
    n=1
    failed=1
    echo "not ok 1 - the container produced no results"
fi
echo "1..$n"

if [ "$failed" != 0 ]; then
    {
        echo "--- container console"
        cat "$tmp/console.log"
        echo "--- container journal"
        cat "$out/journal.txt" 2>/dev/null || echo "(no journal was saved)"
    } >&2
    keep=1
    exit 1
fi
exit 0
