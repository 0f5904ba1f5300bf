#!/bin/bash
# The demo itself, run inside dbus-run-session by tests/demo.sh.
set -euo pipefail
build=$1
export PATH="$build/src:$PATH"
work=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

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
agentbrokerd --session --config "$work/agentbroker.yaml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do
    agentctl --user status >/dev/null 2>&1 && break
    sleep 0.1
done

step agentctl --user status
step busctl --user introspect org.agentbroker.Broker1 /org/agentbroker/Broker1 org.agentbroker.Broker1

echo; echo "# a change to the configuration, then a reload"
sed -i 's/max_sessions: 8/max_sessions: 16/' "$work/agentbroker.yaml"
step agentctl --user reload
step agentctl --user status

echo; echo "# a broken configuration is refused; the old one stays in force"
printf 'agents:\n  demo:\n    command: []\npool:\n  max_sessions: many\n' >"$work/agentbroker.yaml"
step agentctl --user reload || echo "(exit status $?)"
step busctl --user get-property org.agentbroker.Broker1 /org/agentbroker/Broker1 org.agentbroker.Broker1 Generation

echo; echo "# stop: SIGTERM ends the daemon with status 0"
kill -TERM "$daemon"
wait "$daemon" && echo "agentbrokerd exited with status $?"
echo; echo "# the daemon's log"
cat "$work/daemon.log"
