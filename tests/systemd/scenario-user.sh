#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The user broker under a real user manager (a lingering user's
# user@.service): with the default launcher: auto each session's agent is
# a transient unit of that manager, running as the user, in
# agentbroker-sessions.slice; removal and the broker's stop end it.
set -uo pipefail
. /ab-tests/lib.sh

user=carol
useradd -m -U "$user"
uid=$(id -u "$user")
home=/home/$user
as_carol() {
    timeout 60 setpriv --reuid="$user" --regid="$user" --init-groups -- \
        env HOME="$home" XDG_RUNTIME_DIR="/run/user/$uid" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" "$@"
}
ctl() { as_carol "$AB_BINDIR/agentctl" --user "$@"; }
user_unit_of() { echo "agentbroker-session-user:$1.service"; }

# The container's /etc is empty: user@.service's PAM stack (PAMName=
# systemd-user) is given one that lets the user's manager start.
if [ ! -e /etc/pam.d/systemd-user ]; then
    mkdir -p /etc/pam.d
    printf '%s\n' "account required pam_permit.so" \
        "session required pam_permit.so" \
        "session optional pam_systemd.so" >/etc/pam.d/systemd-user
fi
check "loginctl enable-linger $user" loginctl enable-linger "$user"
if wait_until 60 systemctl is-active -q "user@$uid.service"; then
    ok "the user's manager runs (user@$uid.service)"
else
    not_ok "the user's manager runs (user@$uid.service)"
    journalctl -b --no-pager -o cat _UID="$uid" | tail -n 30 | while read -r l; do diag "$l"; done
    finish
fi
check "the user's bus is up" wait_until 30 test -S "/run/user/$uid/bus"

mkdir -p "$home/.config/agentbroker"
cat >"$home/.config/agentbroker/agentbroker.yaml" <<YAML
default_agent: demo
agents:
  demo:
    command:
      - /bin/sh
      - -c
      - |
        echo "user agent for \$AGENTBROKER_THREAD up" >&2
        id -u >"\$HOME/agent-uid-\${AGENTBROKER_THREAD#user:}"
        exec $AB_BINDIR/agentbroker-demo-agent
YAML
chown -R "$user:$user" "$home/.config"

check "systemctl --user start agentbrokerd" as_carol systemctl --user start agentbrokerd.service
status=$(ctl status 2>&1 || true)
if grep -q "Launcher: systemd" <<<"$status"; then
    ok "launcher: auto under the user's manager is systemd"
else
    not_ok "launcher: auto under the user's manager is systemd"
    diag "$status"
    as_carol journalctl --user -u agentbrokerd --no-pager 2>&1 | tail -20 | while read -r l; do diag "$l"; done
fi

if out=$(ctl prompt user:one hello 2>&1); then
    ok "a prompt to the user broker is answered"
else
    not_ok "a prompt to the user broker is answered"
    diag "$out"
fi
unit=$(user_unit_of one)
check_eq "the agent is a transient unit of the user's manager" active \
    "$(as_carol systemctl --user is-active "$unit" 2>&1)"
check_eq "in agentbroker-sessions.slice" agentbroker-sessions.slice \
    "$(as_carol systemctl --user show -P Slice "$unit" 2>&1)"
check_eq "the agent runs as the user" "$uid" "$(cat "$home/agent-uid-one" 2>&1)"
main=$(as_carol systemctl --user show -P MainPID "$unit" 2>&1)
check_eq "its main process belongs to the user" "$user" "$(ps -o user= -p "$main" 2>&1 | tr -d ' ')"
check_eq "Session1.Unit names it" "$unit" "$(ctl show -p Unit --value user:one 2>&1)"
check "the user journal has the agent's stderr" bash -c \
    "journalctl --sync; journalctl _SYSTEMD_USER_UNIT='$unit' --no-pager -o cat | grep -q 'user agent for user:one up'"

check "agentctl --user remove user:one" ctl remove user:one
unit_ended() {
    case $(as_carol systemctl --user is-active "$1" 2>&1) in
    inactive | failed | unknown) ! pgrep -u "$uid" -f agentbroker-demo-agent ;;
    *) return 1 ;;
    esac
}
check "the unit is gone after the removal" wait_until 30 unit_ended "$unit"

check "a second session answers" ctl prompt user:two hello
check "systemctl --user stop agentbrokerd" as_carol systemctl --user stop agentbrokerd.service
check "the broker's stop ends its agents' units" wait_until 30 \
    bash -c "! pgrep -u $uid -f agentbroker-demo-agent"
finish
