#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Debian package under real systemd, in a copy-on-write view of the
# whole machine (deb.sh): dpkg -i brings the service up, a member of the
# agentbroker group prompts it, an upgrade keeps the session and a turn
# streaming through it, dpkg -r stops it cleanly and keeps the state, reinstalling resumes the session, and
# dpkg --purge removes the state.
set -euo pipefail
AB_SYSCONFDIR=/etc
. /ab-tests/lib.sh

deb=$(ls /ab-deb/agentbroker_*.deb)
state=/var/lib/agentbroker

# Docker images forbid service starts from maintainer scripts (exit 101);
# this is a copy-on-write root, so the package may behave as on a host.
if [ -e /usr/sbin/policy-rc.d ]; then
    diag "removing /usr/sbin/policy-rc.d of the host image"
    rm -f /usr/sbin/policy-rc.d
fi
if dpkg-query -W agentbroker >/dev/null 2>&1; then
    dpkg --purge agentbroker >/dev/null 2>&1 || true
fi

active() { unit_is $ab_unit active; }
main_pid() { unit_prop $ab_unit MainPID; }
# Every client call is bounded, so that a hang fails one check instead of
# the whole scenario.
prompt_as_alice() {
    as_user alice timeout 60 agentctl --system prompt "$@"
}

# --- install ---------------------------------------------------------------
check "dpkg -i $(basename "$deb")" dpkg -i "$deb"
check "user agentbroker exists" getent passwd agentbroker
check "group agentbroker exists" getent group agentbroker
check "group agentbroker-admin exists" getent group agentbroker-admin
check_eq "agentbrokerd.service is enabled" enabled "$(systemctl is-enabled $ab_unit 2>&1)"
check "agentbrokerd.service is active after install" wait_until 30 active
check_eq "agentbroker-health.socket is left disabled" disabled \
    "$(systemctl is-enabled agentbroker-health.socket 2>&1)"
check "the configuration is a conffile" \
    grep -q ' /etc/agentbroker/agentbroker.yaml ' <<<"$(dpkg-query -W -f='${Conffiles}\n' agentbroker) "
check_eq "the state directory belongs to agentbroker" "700 agentbroker" \
    "$(stat -c '%a %U' $state 2>&1)"
check "the man pages are installed" man -w agentctl agentbrokerd agentbroker.yaml org.agentbroker.Broker1
check "the zsh completion is installed" test -f /usr/share/zsh/vendor-completions/_agentctl
check "the bash completion is installed" test -f /usr/share/bash-completion/completions/agentctl

# --- a member of the agentbroker group prompts -------------------------------
useradd -M -U -G agentbroker alice
out=$(prompt_as_alice cli:x hello 2>&1) && rc=0 || rc=$?
check_eq "alice (group agentbroker): agentctl --system prompt cli:x hello" 0 "$rc"
diag "$out"
check "the demo agent answered" grep -q 'I remember 0 earlier prompt' <<<"$out"
list=$(as_user alice timeout 30 agentctl --system --json list --all 2>&1) || true
check "agentctl list shows cli:x" grep -Eq '"thread" *: *"cli:x"' <<<"$list"
german=$(as_user alice env LANGUAGE=de LANG=C.UTF-8 agentctl frobnicate 2>&1) || true
check_eq "the installed German catalogue is used" \
    "agentctl: unbekannter Befehl „frobnicate“; siehe „agentctl --help“" "$german"
useradd -M -U bob
out=$(as_user bob timeout 30 agentctl --system prompt cli:y hello 2>&1) && rc=0 || rc=$?
check "bob (no group) is refused" test "$rc" -ne 0
diag "$out"

# --- upgrade (reinstall): restarted, the session kept ------------------------
# The package's polkit rule lets the daemon start units: launcher auto is
# systemd.
check_eq "launcher: auto under the package is systemd" '"systemd"' "$(bus_prop Launcher)"
# A turn streams through the upgrade: the restart hands it over.
pid=$(main_pid)
as_user alice timeout 120 agentctl --system prompt cli:x "pace 100 800" >/tmp/upgrade.out 2>&1 &
streaming=$!
check "a turn streams" wait_until 30 grep -q ' t=' /tmp/upgrade.out
check "dpkg -i again (upgrade path) while it streams" dpkg -i "$deb"
check "active after the upgrade" wait_until 30 active
check "the daemon was restarted" test "$(main_pid)" != "$pid"
stream_rc=0
wait "$streaming" || stream_rc=$?
diag "the streaming prompt: exit status $stream_rc; $(grep -oE '[0-9]+ t=' /tmp/upgrade.out | wc -l) chunks;" \
    "$(grep -v ' t=' /tmp/upgrade.out | head -c 400)"
check_eq "the streaming prompt ends well across the upgrade" 0 "$stream_rc"
check "all 800 chunks, each once, in order" bash -c \
    "grep -oE '[0-9]+ t=' /tmp/upgrade.out | tr -dc '0-9\\n' | cmp -s - <(seq 1 800)"
list=$(as_user alice timeout 30 agentctl --system --json list --all 2>&1) || true
check "cli:x survives the upgrade" grep -Eq '"thread" *: *"cli:x"' <<<"$list"

# --- remove: a clean stop, state and configuration kept ----------------------
pid=$(main_pid)
journal_mark /tmp/cursor
check "dpkg -r agentbroker" dpkg -r agentbroker
check "the daemon is gone" test ! -e "/proc/$pid"
log=$(journal_since /tmp/cursor _PID="$pid" 2>&1)
check "the daemon logged a clean stop" grep -qx stopped <<<"$log"
units=$(journal_since /tmp/cursor -u $ab_unit 2>&1)
check "systemd saw no failure" test -z "$(grep -E 'Failed with result|status=[1-9]|SIGKILL' <<<"$units")"
diag "$(tail -n 5 <<<"$units")"
check "the state directory is kept" test -d "$state"
check "the configuration is kept" test -f /etc/agentbroker/agentbroker.yaml
check "agentctl is removed" test ! -e /usr/bin/agentctl

# --- reinstall: the earlier session resumes --------------------------------
check "dpkg -i after removal" dpkg -i "$deb"
check "active after reinstalling" wait_until 30 active
list=$(as_user alice timeout 30 agentctl --system --json list --all 2>&1) || true
check "ListSessions shows cli:x again" grep -Eq '"thread" *: *"cli:x"' <<<"$list"
busctl_out=$(timeout 30 busctl --system call $ab_name $ab_path $ab_name ListSessions 'a{sv}' 0 2>&1) || true
check "busctl ListSessions shows cli:x" grep -q '"cli:x"' <<<"$busctl_out"
out=$(prompt_as_alice cli:x again 2>&1) && rc=0 || rc=$?
check_eq "prompting cli:x after reinstalling" 0 "$rc"
diag "$out"
check "the agent resumed the conversation (session/load)" \
    grep -q 'I remember 2 earlier prompts' <<<"$out"

# --- purge -------------------------------------------------------------------
check "dpkg --purge agentbroker" dpkg --purge agentbroker
check "the service is gone" test "$(systemctl is-active $ab_unit 2>&1)" != active
check "the state directory is removed" test ! -e "$state"
check "the configuration is removed" test ! -e /etc/agentbroker
finish
