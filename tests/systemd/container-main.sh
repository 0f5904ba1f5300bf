#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tests/systemd/container-main.sh SCENARIO... — runs as scenario.service
# (written by run.sh) inside the throw-away container: puts the staged
# install where systemd, dbus-daemon, sysusers and tmpfiles look for it,
# then runs each scenario and leaves the results in /out.  The container
# powers off when this ends (SuccessAction=/FailureAction= of the unit).
set -uo pipefail

# Installed paths as the container sees them: under the prefix (bound at
# its own path) or else inside the whole staged tree at /ab-stage, never
# the host's own directory of the same name.
installed() {
    case "$1" in
    "$AB_PREFIX"/*) echo "$1" ;;
    *) echo "/ab-stage$1" ;;
    esac
}

link_all() {
    local from to=$2 f
    from=$(installed "$1")
    mkdir -p "$to"
    for f in "$from"/*; do
        [ -e "$f" ] || continue
        ln -sf "$f" "$to/$(basename "$f")"
    done
}

setup() {
    link_all "$AB_SYSTEMDSYSTEMUNITDIR" /etc/systemd/system
    link_all "$AB_SYSTEMDUSERUNITDIR" /etc/systemd/user
    link_all "$AB_DBUSPOLICYDIR" /etc/dbus-1/system.d
    mkdir -p /etc/sysusers.d /etc/tmpfiles.d
    ln -sf "$(installed "$AB_SYSUSERSDIR")/agentbroker.conf" /etc/sysusers.d/agentbroker.conf
    ln -sf "$(installed "$AB_TMPFILESDIR")/agentbroker.conf" /etc/tmpfiles.d/agentbroker.conf

    # System activation files outside dbus-daemon's standard directories.
    case "$AB_DBUSSYSTEMSERVICEDIR" in
    /usr/share/dbus-1/system-services | /usr/local/share/dbus-1/system-services) ;;
    *)
        cat >/etc/dbus-1/system.d/zz-agentbroker-test-servicedir.conf <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><servicedir>$(installed "$AB_DBUSSYSTEMSERVICEDIR")</servicedir></busconfig>
XML
        ;;
    esac

    # A configuration directory outside the prefix (e.g. --sysconfdir=/etc)
    # is part of the volatile root: copy the installed example in.
    if [ ! -e "$AB_SYSCONFDIR/agentbroker" ]; then
        mkdir -p "$AB_SYSCONFDIR"
        cp -a "/ab-stage$AB_SYSCONFDIR/agentbroker" "$AB_SYSCONFDIR/"
    fi

    systemd-sysusers
    systemd-tmpfiles --create /etc/tmpfiles.d/agentbroker.conf
    systemctl daemon-reload
    busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus ReloadConfig
}

status=0
# A subshell outside any condition, so that set -e applies inside setup.
(
    set -e
    setup
) >/out/setup.log 2>&1
if [ $? -ne 0 ]; then
    echo "container setup failed; see setup.log" >&2
    cat /out/setup.log >&2
    echo 1 >/out/setup.rc
    exit 1
fi

for scenario in "$@"; do
    script=/ab-tests/scenario-$scenario.sh
    echo "=== $scenario" >&2
    timeout --kill-after=5 "${AB_SCENARIO_TIMEOUT:-240}" \
        bash "$script" >"/out/$scenario.tap" 2>"/out/$scenario.err"
    rc=$?
    echo "$rc" >"/out/$scenario.rc"
    if [ "$rc" -ne 0 ]; then status=1; fi
done
exit "$status"
