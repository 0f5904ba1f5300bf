#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The installed agentbrokerd under the real systemd and system bus:
# Type=notify start, the D-Bus API, reload with a good and a broken
# configuration, the watchdog, stop, bus activation and the policy file.
set -euo pipefail
. /ab-tests/lib.sh

good_config() {
    cat >"$ab_config" <<YAML
default_agent: demo
agents:
  demo:
    command: [$AB_BINDIR/agentbroker-demo-agent]
pool:
  max_sessions: $1
YAML
}

broker_state_unchanged() {
    check_eq "$1: unit still active (running)" "active running" \
        "$(unit_prop $ab_unit ActiveState) $(unit_prop $ab_unit SubState)"
    check_eq "$1: Generation unchanged" "$2" "$(bus_prop Generation)"
}

# --- start ------------------------------------------------------------------
diag "configuration: $ab_config"
check "agentbrokerd.service starts with the shipped example configuration" \
    systemctl start $ab_unit
if ! unit_is $ab_unit active; then
    diag "$(journalctl -b -u $ab_unit --no-pager -o cat | tail -n 20)"
    diag "retrying with a minimal configuration"
    good_config 64
    systemctl reset-failed $ab_unit || true
    check "agentbrokerd.service starts with a minimal configuration" \
        systemctl start $ab_unit
fi
check_eq "Type=notify" notify "$(unit_prop $ab_unit Type)"
check_eq "active (running) after READY=1" "active running" \
    "$(unit_prop $ab_unit ActiveState) $(unit_prop $ab_unit SubState)"
main_pid=$(unit_prop $ab_unit MainPID)
check_eq "the daemon runs as user agentbroker" agentbroker \
    "$(ps -o user= -p "$main_pid" 2>&1 | tr -d ' ')"
diag "status: $(unit_prop $ab_unit StatusText)"
check "the daemon sent STATUS=" test -n "$(unit_prop $ab_unit StatusText)"
check_eq "the state directory is the one of StateDirectory=" \
    "700 agentbroker" "$(stat -c '%a %U' /var/lib/agentbroker)"
# launcher: auto (the default) without the polkit rule where polkitd reads
# rules: the manager does not let the daemon's user start units.
check_eq "launcher: auto without the polkit rule is direct" 's "direct"' \
    "$(busctl --system get-property $ab_name $ab_path $ab_name Launcher)"
check "the daemon says why it chose direct" bash -c \
    "journalctl -u $ab_unit --no-pager -o cat | grep -q 'does not let this daemon start units'"

# --- the D-Bus API as root -------------------------------------------------
introspection=$(busctl --system introspect $ab_name $ab_path 2>&1) || true
check "busctl introspect shows org.agentbroker.Broker1" \
    grep -q '^org\.agentbroker\.Broker1 *interface' <<<"$introspection"
check "busctl introspect shows the ObjectManager" \
    grep -q '^org\.freedesktop\.DBus\.ObjectManager *interface' <<<"$introspection"
generation=$(bus_prop Generation 2>&1) || true
check "Generation is readable with busctl" test -n "$generation"
diag "Generation $generation"
check_eq "State is running" '"running"' "$(bus_prop State)"

# --- reload ------------------------------------------------------------------
good_config 17
check "systemctl reload succeeds with a good configuration change" \
    systemctl reload $ab_unit
check_eq "Generation went up by one" "$((generation + 1))" "$(bus_prop Generation)"
check_eq "the new configuration is in force (MaxSessions)" 17 "$(bus_prop MaxSessions)"
check_eq "same process after a reload" "$main_pid" "$(unit_prop $ab_unit MainPID)"
generation=$(bus_prop Generation)

cursor=$(mktemp)
journal_mark "$cursor"
printf 'default_agent: demo\nagents:\n  demo: {command: [x]\npool: [\n' >"$ab_config"
check "systemctl reload fails on a YAML syntax error" \
    bash -c "! systemctl reload $ab_unit"
broker_state_unchanged "after the syntax error" "$generation"
problems=$(journal_since "$cursor" -u $ab_unit)
check "the journal names the syntax error as file:line:column" \
    grep -qE "$(printf '%s' "$ab_config" | sed 's/[.]/\\./g'):[0-9]+:[0-9]+" <<<"$problems"
diag "$(grep -m3 -F "$ab_config" <<<"$problems" || true)"

journal_mark "$cursor"
good_config many
check "systemctl reload fails on a value of the wrong type" \
    bash -c "! systemctl reload $ab_unit"
broker_state_unchanged "after the type error" "$generation"
problems=$(journal_since "$cursor" -u $ab_unit)
check "the journal names the bad value at line 6" \
    grep -qF "$ab_config:6:" <<<"$problems"
diag "$(grep -m3 -F "$ab_config" <<<"$problems" || true)"
check_eq "the old configuration stays in force" 17 "$(bus_prop MaxSessions)"

good_config 64
check "systemctl reload succeeds again once fixed" systemctl reload $ab_unit
check_eq "Generation went up by one" "$((generation + 1))" "$(bus_prop Generation)"

# --- watchdog --------------------------------------------------------------
# Unit files change only while the unit is stopped: a daemon-reload with
# the unit running followed at once by a restart once left systemd trying
# to start the new process in the cgroup it had just removed ("Failed at
# step CGROUP").
systemctl stop $ab_unit
mkdir -p /etc/systemd/system/$ab_unit.d
printf '[Service]\nWatchdogSec=2s\n' >/etc/systemd/system/$ab_unit.d/50-test-watchdog.conf
systemctl daemon-reload
check "start with WatchdogSec=2s" systemctl start $ab_unit
check_eq "WatchdogUSec is 2s" 2s "$(unit_prop $ab_unit WatchdogUSec)"
main_pid=$(unit_prop $ab_unit MainPID)
restarts=$(unit_prop $ab_unit NRestarts)
sleep 7
check_eq "still active after more than 3 watchdog periods" active \
    "$(unit_prop $ab_unit ActiveState)"
check_eq "no restarts" "$restarts" "$(unit_prop $ab_unit NRestarts)"
check_eq "same process" "$main_pid" "$(unit_prop $ab_unit MainPID)"

# A main loop that stops answering is killed and the unit restarted.
sigstop_main "SIGSTOP the main process" "$main_pid"
restarted() {
    [ "$(unit_prop $ab_unit NRestarts)" -gt "$restarts" ] &&
        unit_is $ab_unit active &&
        [ "$(unit_prop $ab_unit MainPID)" != "$main_pid" ]
}
check "a stopped main loop is killed by the watchdog and restarted" \
    wait_until 60 restarted
# systemd's own message reaches the journal asynchronously.
watchdog_logged() {
    journalctl --sync 2>/dev/null || true
    journalctl -b -u $ab_unit -o cat | grep -q 'Watchdog timeout'
}
check "the watchdog timeout is in the journal" wait_until 10 watchdog_logged

systemctl stop $ab_unit
rm /etc/systemd/system/$ab_unit.d/50-test-watchdog.conf
systemctl daemon-reload
systemctl start $ab_unit

# --- the system policy file ----------------------------------------------
policy=/etc/dbus-1/system.d/org.agentbroker.Broker1.conf
check_eq "the policy in /etc/dbus-1/system.d is the installed file" \
    "$AB_DBUSPOLICYDIR/org.agentbroker.Broker1.conf" "$(readlink -f $policy)"
check "the policy is identical to what make install put in dbuspolicydir" \
    cmp "$policy" "/ab-stage$AB_DBUSPOLICYDIR/org.agentbroker.Broker1.conf"

useradd -M -U nobodyab
useradd -M -U -G agentbroker abuser
useradd -M -U -G agentbroker-admin abadmin

# call USER METHOD: dbus-send prints the D-Bus error name, busctl does not
call() {
    as_user "$1" dbus-send --system --print-reply --dest=$ab_name $ab_path \
        "$ab_name.$2" 2>&1 || true
}
bus_denied='org.freedesktop.DBus.Error.AccessDenied'

reply=$(call nobodyab Reload)
check "outsider: Reload is refused by the bus policy" grep -q "$bus_denied" <<<"$reply"
diag "$reply"
reply=$(call nobodyab ListSessions)
check "outsider: ListSessions is refused by the bus policy" grep -q "$bus_denied" <<<"$reply"
check "outsider: introspection is allowed" \
    as_user nobodyab busctl --system introspect $ab_name $ab_path
reply=$(call agentbroker Reload)
check "the agents' user: Reload is refused by the bus policy" grep -q "$bus_denied" <<<"$reply"

# Answered by the daemon (a return or one of its own errors), not the bus.
# (busctl: dbus-send cannot send ListSessions' a{sv}.)
reply=$(as_user abuser busctl --system call $ab_name $ab_path $ab_name \
    ListSessions 'a{sv}' 0 2>&1 || true)
check "access.users member: ListSessions passes the bus policy" \
    grep -qE '^a\(sssuusttuutsbosttt\) |org\.agentbroker\.Error\.' <<<"$reply"
diag "$reply"
reply=$(call abuser Reload)
check "access.users member: Reload is refused by the bus policy" grep -q "$bus_denied" <<<"$reply"

generation=$(bus_prop Generation)
reply=$(call abadmin Reload)
check "access.admins member: Reload succeeds" grep -q '^method return' <<<"$reply"
diag "$reply"
check_eq "access.admins member: Generation went up" "$((generation + 1))" "$(bus_prop Generation)"

# --- agentbroker-config.path: a change to the file reloads ---------------
generation_is() { [ "$(bus_prop Generation)" = "$1" ]; }
check "systemctl start agentbroker-config.path" \
    systemctl start agentbroker-config.path
generation=$(bus_prop Generation)
good_config 13
check "writing the config reloads the broker (Generation goes up)" \
    wait_until 60 generation_is "$((generation + 1))"
check_eq "the written setting is in force" "13" "$(bus_prop MaxSessions)"
systemctl stop agentbroker-config.path

# --- stop, then bus activation -------------------------------------------
check "systemctl stop succeeds" systemctl stop $ab_unit
check_eq "stopped with Result=success" success "$(unit_prop $ab_unit Result)"
check_eq "the daemon exited with status 0" 0 "$(unit_prop $ab_unit ExecMainStatus)"

check "a call to the stopped broker activates agentbrokerd.service" \
    busctl --system --timeout=30 get-property $ab_name $ab_path $ab_name Generation
check "active (running) after bus activation" wait_until 30 unit_running $ab_unit
check "systemctl stop succeeds again" systemctl stop $ab_unit
check_eq "stopped with Result=success" success "$(unit_prop $ab_unit Result)"

finish
