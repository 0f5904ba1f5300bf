#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo itself, run inside dbus-run-session by tests/demo.sh: a real
# conversation with the demo agent through agentbrokerd and agentctl.
set -euo pipefail
build=$1
export PATH="$build/src:$PATH"
work=$(mktemp -d)
daemon=
trap 'stop_daemon; rm -rf "$work"' EXIT

say() { printf '\n\033[1;34m# %s\033[0m\n' "$*"; }
step() { printf '\033[1m$ %s\033[0m\n' "$*"; "$@"; }
# wait_for COMMAND...: poll COMMAND every 0.1 s, for up to 30 s
wait_for() {
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

start_daemon() {
    agentbrokerd --session --config "$work/agentbroker.yaml" 2>>"$work/daemon.log" &
    daemon=$!
    wait_for agentctl --user status && return 0
    echo "agentbrokerd did not come up; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
}

stop_daemon() {
    [ -n "$daemon" ] || return 0
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=
}

cat >"$work/agentbroker.yaml" <<YAML
default_agent: demo
agents:
  demo:
    command: [agentbroker-demo-agent]
pool:
  max_sessions: 8
YAML
export STATE_DIRECTORY="$work/state"
mkdir -p "$STATE_DIRECTORY"

say "agentbrokerd on a private session bus"
start_daemon
step agentctl --user status

say "a prompt on a new thread: the demo agent's answer streams back"
step agentctl --user prompt cli:alice/demo "Hello! What can you do?"
step agentctl --user list
step busctl --user tree org.agentbroker.Broker1

say "a second thread streams at the same time as the first"
echo '$ agentctl --user prompt cli:bob/demo "stream 5 24" > bob.txt &'
agentctl --user prompt cli:bob/demo "stream 5 24" >"$work/bob.txt" &
bob=$!
step agentctl --user prompt cli:alice/demo "What did I ask you before?"
wait "$bob"
step cat "$work/bob.txt"

say "drain: running turns finish, new prompts are refused with a reason"
echo '$ agentctl --user prompt cli:bob/demo "sleep 2" > bob.txt &'
agentctl --user prompt cli:bob/demo "sleep 2" >"$work/bob.txt" &
bob=$!
# the turn has started once its first chunk is out
wait_for test -s "$work/bob.txt" || true
step agentctl --user drain --timeout 10 &
drain=$!
draining() {
    busctl --user get-property org.agentbroker.Broker1 /org/agentbroker/Broker1 \
        org.agentbroker.Broker1 State | grep -qE '"drain(ing|ed)"'
}
wait_for draining || true
step agentctl --user prompt cli:alice/demo "Are you there?" || echo "(refused, exit status $?)"
wait "$bob" "$drain"
step cat "$work/bob.txt"
step agentctl --user resume

say "reload: a changed setting applies in place; the session keeps its agent"
sed -i 's/max_sessions: 8/max_sessions: 16/' "$work/agentbroker.yaml"
step agentctl --user reload
step agentctl --user list

say "a broken configuration is refused, naming every problem; nothing changes"
cp "$work/agentbroker.yaml" "$work/good.yaml"
printf 'agents:\n  demo:\n    command: []\npool:\n  max_sessions: many\n' >"$work/agentbroker.yaml"
step agentctl --user reload || echo "(refused, exit status $?)"
cp "$work/good.yaml" "$work/agentbroker.yaml"

say "restart: the daemon stops cleanly and the next one resumes every session"
stop_daemon
start_daemon
step agentctl --user list --all
step agentctl --user prompt cli:alice/demo "Do you still remember me?"

say "removal: the agent's process group is stopped and the session is gone"
step agentctl --user remove cli:bob/demo
step agentctl --user list

stop_daemon
say "the daemon's log"
cat "$work/daemon.log"
