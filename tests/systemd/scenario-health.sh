#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The HTTP health shim under real systemd (agentbrokerd(8)): enabling
# agentbroker-health.socket makes the endpoints answer, a connection to it
# starts agentbrokerd.service when it is stopped, /readyz follows Drain and
# Resume and stays 200 through a reload, /livez stays 200 throughout.
set -euo pipefail
. /ab-tests/lib.sh

socket=agentbroker-health.socket
url=http://127.0.0.1:8090

# status PATH [SECONDS]: the HTTP status code, 000 when nothing answered
# within SECONDS (default 5)
status() { curl -s -o /dev/null -m "${2:-5}" -w '%{http_code}' "$url$1" || true; }
body() { curl -s -m 5 "$url$1" || true; }
ready_is() { [ "$(status /readyz)" = "$1" ]; }

cat >"$ab_config" <<YAML
default_agent: demo
agents:
  demo:
    command: [$AB_BINDIR/agentbroker-demo-agent]
YAML

systemctl stop $ab_unit 2>/dev/null || true
check "systemctl enable --now $socket" systemctl enable --now $socket
check_eq "$socket is listening" "active listening" \
    "$(unit_prop $socket ActiveState) $(unit_prop $socket SubState)"
check_eq "the service is not running yet" inactive "$(unit_prop $ab_unit ActiveState)"

# --- socket activation ----------------------------------------------------------
# The first answer waits for the daemon to start: allow for a loaded machine.
check_eq "a connection to 127.0.0.1:8090 starts the service and /livez answers 200" \
    200 "$(status /livez 60)"
check "the service becomes active (running)" wait_until 30 unit_running $ab_unit
check "/readyz turns 200 once the daemon is ready" wait_until 30 ready_is 200
check "/healthz reports state running" \
    grep -q '"state":"running"' <<<"$(body /healthz)"
metrics=$(body /metrics)
check "/metrics has agentbroker_up 1" grep -qx 'agentbroker_up 1' <<<"$metrics"
check "/metrics has TYPE lines" grep -q '^# TYPE agentbroker_turns_total counter$' <<<"$metrics"
headers=$(curl -s -m 5 -D - -o /dev/null "$url/livez" | tr -d '\r')
check "X-Agentbroker-Generation on responses" \
    grep -qi '^X-Agentbroker-Generation: 1$' <<<"$headers"
check_eq "POST is 405" 405 "$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST "$url/livez")"
check_eq "other paths are 404" 404 "$(status /nope)"
journal_mark /tmp/health.cursor
check "the daemon took the socket from systemd" \
    grep -q 'health: serving on 1 socket(s) from systemd' \
    <<<"$(journalctl -b -u $ab_unit --no-pager -o cat)"

# --- drain, resume, reload --------------------------------------------------------
# The turn runs (the demo agent's "gate PATH" holds it) until the checks
# below have read /readyz during the drain (once it ends the reason is
# "drained"); the agent's sandbox leaves /run visible.
gate=/run/agentbroker-test-gate-health
rm -f $gate
check "a prompt starts a turn" busctl --system call $ab_name $ab_path $ab_name \
    Prompt 'ssa{sv}' cli:health/a "gate $gate" 0
busctl --system --timeout=60 call $ab_name $ab_path $ab_name Drain u 30 \
    >/tmp/drain.out 2>&1 &
drain_pid=$!
check "/readyz is 503 while draining" wait_until 8 ready_is 503
check "/readyz says why" grep -q '"reason":"draining"' <<<"$(body /readyz)"
check_eq "/livez stays 200 while draining" 200 "$(status /livez)"
touch $gate
if wait "$drain_pid"; then ok "Drain returns"; else
    not_ok "Drain returns"
    diag "$(cat /tmp/drain.out)"
fi
check "/readyz says drained" grep -q '"reason":"drained"' <<<"$(body /readyz)"
check_eq "/livez stays 200 when drained" 200 "$(status /livez)"
check "Resume" busctl --system call $ab_name $ab_path $ab_name Resume
check_eq "/readyz is 200 after Resume" 200 "$(status /readyz)"

check "systemctl reload" systemctl reload $ab_unit
check_eq "/readyz is 200 after the reload" 200 "$(status /readyz)"
headers=$(curl -s -m 5 -D - -o /dev/null "$url/readyz" | tr -d '\r')
check "the generation went up" grep -qi '^X-Agentbroker-Generation: 2$' <<<"$headers"
check "/metrics counted the drain" grep -qx \
    'agentbroker_drains_total 1' <<<"$(body /metrics)"
check "/metrics counted the reload" grep -qx \
    'agentbroker_reloads_total 1' <<<"$(body /metrics)"

# --- stopped again: the next connection starts it again ----------------------------
check "systemctl stop $ab_unit" systemctl stop $ab_unit
check_eq "$socket still listens" listening "$(unit_prop $socket SubState)"
check_eq "a new connection starts the service again" 200 "$(status /livez 60)"
check "the service is active again" wait_until 30 unit_is $ab_unit active

systemctl stop $ab_unit $socket 2>/dev/null || true
finish
