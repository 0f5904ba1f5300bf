#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# make check entry: the Debian package under real systemd (root only).
#
# Builds agentbroker_*.deb with dpkg-buildpackage from the committed tree
# (`git archive HEAD` of the source checkout; from a tarball, e.g. under
# make distcheck, from a copy of the unpacked source), then boots the
# machine's own systemd on a copy-on-write overlay of the whole root
# (installing a .deb writes /usr) and runs
# scenario-deb.sh there.  Every change lands in a tmpfs upper layer; nothing
# of the host changes.  Prints TAP; exits 77 (skip) when it cannot run,
# unless AGENTBROKER_REQUIRE_ALL_TESTS=1.
#
# Environment: AB_DEB (use this .deb instead of building one),
# AB_SYSTEMD_TEST_TIMEOUT (seconds for the boot, default 600),
# AB_KEEP_TEMP=1 (keep the build, results and journal).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)

skip() {
    if [ "${AGENTBROKER_REQUIRE_ALL_TESTS:-0}" = 1 ]; then
        echo "Bail out! $* (AGENTBROKER_REQUIRE_ALL_TESTS=1 makes a skip a failure)"
        exit 99
    fi
    echo "1..0 # SKIP $*"
    exit 0
}
hard_error() {
    echo "Bail out! $*"
    exit 99
}

[ "$(id -u)" = 0 ] || skip "the package test under real systemd needs root"
command -v systemd-nspawn >/dev/null ||
    skip "systemd-nspawn not found (apt-get install systemd-container)"
[ -x /usr/lib/systemd/systemd ] || [ -x /lib/systemd/systemd ] ||
    skip "no systemd on this machine to boot in a container"
if [ -z "${AB_DEB:-}" ]; then
    command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
        skip "dpkg-buildpackage or debhelper missing (apt-get install dpkg-dev debhelper)"
fi
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    skip "no overlay file system"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentbroker-deb-test.XXXXXX")
root=$tmp/ov/root
keep=${AB_KEEP_TEMP:-0}
cleanup() {
    if mountpoint -q "$root" 2>/dev/null; then umount "$root" || umount -l "$root"; fi
    if mountpoint -q "$tmp/ov" 2>/dev/null; then umount "$tmp/ov" || umount -l "$tmp/ov"; fi
    if [ "$keep" = 1 ]; then
        echo "# kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# --- the package --------------------------------------------------------------
mkdir -p "$tmp/debs"
if [ -n "${AB_DEB:-}" ]; then
    cp "$AB_DEB" "$tmp/debs/"
else
    version=$(sed -n '1s/^agentbroker (\([^)]*\)).*/\1/p' "$top_srcdir/debian/changelog")
    src=$tmp/build/agentbroker-$version
    mkdir -p "$src"
    # Only the top of a checkout is one: an unpacked tarball can sit inside
    # another checkout (make distcheck under build-check/ in the source
    # tree), where `git archive` would see an untracked subdirectory.
    git_top=$(git -C "$top_srcdir" rev-parse --show-toplevel 2>/dev/null || true)
    if [ -n "$git_top" ] && [ "$(cd "$git_top" && pwd -P)" = "$(cd "$top_srcdir" && pwd -P)" ]; then
        echo "# building from git archive HEAD ($(git -C "$top_srcdir" rev-parse --short HEAD))"
        git -C "$top_srcdir" archive HEAD | tar -x -C "$src"
    else
        echo "# building from a copy of $top_srcdir"
        cp -a "$top_srcdir/." "$src/"
        chmod -R u+w "$src"
    fi
    started=$SECONDS
    # nocheck: the suite runs in this very `make check` already.
    if ! (cd "$src" &&
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u DESTDIR \
            DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
            dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
        tail -n 60 "$tmp/build.log" | sed 's/^/# /'
        keep=1
        hard_error "dpkg-buildpackage failed; log in $tmp/build.log"
    fi
    echo "# dpkg-buildpackage took $((SECONDS - started)) s"
    mv "$tmp"/build/agentbroker_*.deb "$tmp/debs/"
fi

# --- a copy-on-write view of the whole machine -------------------------------
mkdir -p "$tmp/ov" "$tmp/out" "$tmp/harness"
# The upper layer must not be an overlay itself (the root of a container
# often is): a tmpfs.
mount -t tmpfs -o mode=0755 ab-deb-test "$tmp/ov"
mkdir -p "$tmp/ov/up" "$tmp/ov/work" "$root"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$tmp/ov/up,workdir=$tmp/ov/work" "$root" ||
    skip "cannot mount an overlay of / here"

limit=${AB_SYSTEMD_TEST_TIMEOUT:-600}
cat >"$tmp/harness/scenario.service" <<EOF2
[Unit]
Description=agentbroker package test under real systemd
Requires=dbus.socket
After=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/bash -c 'timeout --kill-after=5 $((limit > 90 ? limit - 60 : 30)) bash /ab-tests/scenario-deb.sh >/out/deb.tap 2>/out/deb.err; echo \$? >/out/deb.rc'
ExecStopPost=/bin/sh -c 'journalctl --sync; journalctl -b --no-pager -o short-monotonic >/out/journal.txt'
TimeoutStartSec=$((limit > 60 ? limit - 30 : 30))
EOF2

started=$SECONDS
rc=0
timeout --kill-after=15 "$limit" systemd-nspawn -D "$root" \
    --register=no --keep-unit --quiet -M "abdeb-$$" \
    --bind-ro="$tmp/debs:/ab-deb" \
    --bind-ro="$here:/ab-tests" \
    --bind-ro="$tmp/harness/scenario.service:/etc/systemd/system/scenario.service" \
    --bind="$tmp/out:/out" \
    -b systemd.firstboot=off systemd.unit=scenario.service \
    </dev/null >"$tmp/console.log" 2>&1 || rc=$?
echo "# container ran for $((SECONDS - started)) s (systemd-nspawn exit status $rc)"

# --- results as TAP ----------------------------------------------------------
n=0
failed=0
if [ -f "$tmp/out/deb.tap" ]; then
    while IFS= read -r line; do
        case "$line" in
        "not ok"*)
            n=$((n + 1))
            failed=1
            echo "not ok $n${line#not ok}"
            ;;
        "ok"*)
            n=$((n + 1))
            echo "ok $n${line#ok}"
            ;;
        "#"*) echo "$line" ;;
        *) echo "# $line" ;;
        esac
    done <"$tmp/out/deb.tap"
fi
src_rc=$(cat "$tmp/out/deb.rc" 2>/dev/null || echo "none (did not run or did not finish)")
if [ "$src_rc" != 0 ]; then
    [ "$failed" = 1 ] || {
        n=$((n + 1))
        echo "not ok $n - scenario deb: exit status $src_rc"
    }
    failed=1
    if [ -s "$tmp/out/deb.err" ]; then
        echo "--- stderr of scenario deb" >&2
        cat "$tmp/out/deb.err" >&2
    fi
fi
echo "1..$n"
if [ "$failed" != 0 ]; then
    {
        echo "--- container console"
        cat "$tmp/console.log"
        echo "--- container journal"
        cat "$tmp/out/journal.txt" 2>/dev/null || echo "(no journal was saved)"
    } >&2
    keep=1
    exit 1
fi
exit 0
