# SPDX-License-Identifier: LGPL-2.1-or-later
# tests/systemd/lib.sh — sourced by the scenario-*.sh scripts inside the
# test container.  Results are TAP lines without numbers ("ok - …",
# "not ok - …", "# …" diagnostics); run.sh numbers them.

ab_failed=0
ab_name=org.agentbroker.Broker1
ab_path=/org/agentbroker/Broker1
ab_unit=agentbrokerd.service
ab_config="$AB_SYSCONFDIR/agentbroker/agentbroker.yaml"

diag() {
    if [ -n "$*" ]; then printf '%s\n' "$*" | sed 's/^/# /'; fi
}

ok() { echo "ok - $*"; }

not_ok() {
    echo "not ok - $*"
    ab_failed=$((ab_failed + 1))
}

# check DESCRIPTION COMMAND [ARG...]: ok when COMMAND succeeds; its output
# becomes a diagnostic when it does not.
check() {
    local description=$1 output
    shift
    if output=$("$@" 2>&1); then
        ok "$description"
    else
        not_ok "$description"
        diag "\$ $(printf '%q ' "$@")"
        diag "$output"
    fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1"
        diag "expected: '$2'" "   got: '$3'"
    fi
}

# sigstop_main DESCRIPTION PID: SIGSTOP a daemon's main process, as a check.
# A MainPID of 0 (the unit not running) would otherwise stop this very
# script's process group.
sigstop_main() {
    if [ "${2:-0}" -gt 1 ]; then
        check "$1" kill -STOP "$2"
    else
        not_ok "$1"
        diag "no main process to stop (MainPID '${2:-}')"
        return 1
    fi
}

# enable_cgroup_controllers: on a cgroup v1 (hybrid) host the container
# sees each controller's hierarchy read-only, so systemd inside can give a
# unit neither a memory limit nor accounting.  Mounted again writable
# (the container's own namespace: the host's view does not change) and
# systemd re-executed, it can.  Nothing to do under cgroup v2.
enable_cgroup_controllers() {
    local dir options
    for dir in /sys/fs/cgroup/*; do
        [ -d "$dir" ] && [ ! -L "$dir" ] || continue
        case ${dir##*/} in
        memory | pids | cpu | cpuacct | cpu,cpuacct | cpuacct,cpu) ;;
        *) continue ;;
        esac
        options=$(findmnt -n -o VFS-OPTIONS,FSTYPE "$dir" 2>/dev/null) || continue
        case $options in
        ro,*" cgroup") ;;
        *) continue ;;
        esac
        umount -l "$dir" && mount -t cgroup -o "${dir##*/}" cgroup "$dir" ||
            return 1
    done
    systemctl daemon-reexec
}

# unit_prop UNIT PROPERTY: the property's value, as `systemctl show` has it
unit_prop() {
    systemctl show -P "$2" "$1"
}

# bus_prop PROPERTY: the value of a org.agentbroker.Broker1 property, e.g.
# "5" for Generation (busctl prints "u 5")
bus_prop() {
    busctl --system get-property "$ab_name" "$ab_path" "$ab_name" "$1" |
        cut -d' ' -f2-
}

# wait_until SECONDS COMMAND [ARG...]: poll COMMAND every 0.2 s
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.2
    done
}

unit_is() {
    [ "$(systemctl show -P ActiveState "$1")" = "$2" ]
}

# unit_running UNIT: active (running). After an activation by socket or bus
# the first answer can come before systemd has read READY=1, so callers
# poll with wait_until.
unit_running() {
    [ "$(unit_prop "$1" ActiveState) $(unit_prop "$1" SubState)" = "active running" ]
}

# as_user USER COMMAND...: run with USER's uid, gid and groups (no PAM in
# the container, so no su/runuser)
as_user() {
    local user=$1
    shift
    setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
}

# journal_since CURSOR_FILE [journalctl args]: entries after the cursor
# saved by journal_mark
journal_mark() {
    journalctl --sync 2>/dev/null || true
    journalctl -n 0 --show-cursor -q --cursor-file="$1" >/dev/null 2>&1 || true
}

journal_since() {
    local cursor_file=$1
    shift
    journalctl --sync 2>/dev/null || true
    journalctl --no-pager -q -o cat --cursor-file="$cursor_file" "$@"
}

finish() {
    if [ "$ab_failed" -gt 0 ]; then
        diag "$ab_failed check(s) failed"
        exit 1
    fi
    exit 0
}
