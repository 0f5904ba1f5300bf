#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The installed files are where systemd, dbus-daemon, sysusers and tmpfiles
# expect them, and are accepted by them.  Needs no running daemon.
set -euo pipefail
. /ab-tests/lib.sh

check "sysusers created user agentbroker" id agentbroker
check_eq "agentbroker's home is the state directory" /var/lib/agentbroker \
    "$(getent passwd agentbroker | cut -d: -f6)"
check "sysusers created group agentbroker-admin" getent group agentbroker-admin
check "tmpfiles created the drop-in directory" test -d "$AB_SYSCONFDIR/agentbroker/agentbroker.d"
check_eq "tmpfiles created the state directory 0700 agentbroker" "700 agentbroker" \
    "$(stat -c '%a %U' /var/lib/agentbroker 2>&1)"
check "the example configuration is installed" test -f "$ab_config"

for unit in agentbrokerd.service agentbroker-health.socket \
    agentbroker-config.path agentbroker-config-reload.service; do
    check_eq "systemd loads $unit" loaded "$(unit_prop "$unit" LoadState)"
done
check "systemd-analyze verify accepts the units" systemd-analyze verify --man=no \
    agentbrokerd.service agentbroker-health.socket \
    agentbroker-config.path agentbroker-config-reload.service

exec_start=$(unit_prop agentbrokerd.service ExecStart)
check "ExecStart names the installed daemon" \
    grep -qF "path=$AB_LIBEXECDIR/agentbrokerd ;" <<<"$exec_start"
check "the installed daemon is executable" test -x "$AB_LIBEXECDIR/agentbrokerd"
check "the installed agentctl is executable" test -x "$AB_BINDIR/agentctl"

exposure=$(systemd-analyze security agentbrokerd.service 2>&1 |
    sed -n 's/.*Overall exposure level for agentbrokerd.service: \([0-9.]*\).*/\1/p')
diag "systemd-analyze security: exposure $exposure"
# One decimal as printed; awk is an alternatives link that the volatile
# /etc does not have.
at_most_3_5() { [[ $1 =~ ^[0-9]+\.[0-9]$ ]] && [ "$((10#${1/./}))" -le 35 ]; }
check "exposure of agentbrokerd.service is at most 3.5" at_most_3_5 "$exposure"

check "dbus-daemon accepts the configuration with our policy" \
    busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus ReloadConfig
check "org.agentbroker.Broker1 is activatable on the system bus" \
    grep -qx org.agentbroker.Broker1 <<<"$(busctl --system list --activatable \
        --no-legend | cut -d' ' -f1)"
finish
