#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# launcher: systemd under the real system manager (agentbroker.yaml(5)):
# each session's agent a transient service of its own in
# agentbroker-sessions.slice, as a user of its own, unable to reach the
# daemon's records, its configuration or another session's directory;
# its stderr in the journal of its unit; RemoveSession stops everything
# the agent started, a setsid() double fork included.
set -euo pipefail
. /ab-tests/lib.sh

# Memory limits and accounting need the controllers (see lib.sh).
enable_cgroup_controllers || diag "cannot make the cgroup controllers writable"

# The installed polkit rule, where polkitd reads rules (the staged tree
# lives under $AB_PREFIX, a package puts it under /usr/share).
mkdir -p /etc/polkit-1/rules.d
cp "$AB_PREFIX/share/polkit-1/rules.d/50-agentbroker.rules" /etc/polkit-1/rules.d/

# The agent: probes what it can reach, leaves a grandchild in a session
# of its own (setsid, double fork), then becomes the demo agent.
cat >"$ab_config" <<YAML
launcher: systemd
default_agent: probe
agents:
  probe:
    command:
      - /bin/sh
      - -c
      - |
        id -u >"\$HOME/uid"
        probe() {
          if out=\$("\$@" 2>&1 >/dev/null); then echo "\$*: allowed"
          else case \$out in
            *"Permission denied"*|*"Read-only file system"*) echo "\$*: denied" ;;
            *) echo "\$*: \$out" ;;
          esac; fi
        }
        {
          probe ls /var/lib/agentbroker/sessions
          probe touch /var/lib/agentbroker/planted
          probe cat $ab_config
          for t in alice bob; do
            probe ls "/var/lib/private/agentbroker-sessions/agentbroker-session-test:\$t.service"
          done
          probe touch "\$HOME/mine"
        } >"\$HOME/probe"
        echo "probe agent for \$AGENTBROKER_THREAD up" >&2
        setsid -f sleep \$((10000 + \${#AGENTBROKER_THREAD}))
        exec $AB_BINDIR/agentbroker-demo-agent
  asker:
    command: [$AB_BINDIR/agentbroker-demo-agent]
    permissions: ask
  hog:
    command: [$AB_BINDIR/agentbroker-demo-agent]
    sandbox:
      memory: 64MiB
  limited:
    command:
      - /bin/sh
      - -c
      - |
        tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' >"\$HOME/net"
        exec $AB_BINDIR/agentbroker-demo-agent
    sandbox:
      memory: 64MiB
      cpu: 50%
      tasks: 16
      network: none
timeouts:
  kill: 2s
YAML
chown root:agentbroker "$ab_config"
chmod 0640 "$ab_config"

useradd -M -U -G agentbroker alice
useradd -M -U -G agentbroker bob
check "systemctl start $ab_unit" systemctl start $ab_unit

ctl_as() {
    local user=$1
    shift
    timeout 60 setpriv --reuid="$user" --regid="$user" --init-groups -- \
        "$AB_BINDIR/agentctl" --system "$@" 2>&1
}

status=$(timeout 30 "$AB_BINDIR/agentctl" --system status 2>&1 || true)
if grep -q "Launcher: systemd" <<<"$status"; then
    ok "agentctl status: Launcher: systemd"
else
    not_ok "agentctl status: Launcher: systemd"
    diag "$status"
    journalctl -u "$ab_unit" --no-pager | tail -20 | while read -r l; do diag "$l"; done
fi

for who in alice bob; do
    if out=$(ctl_as "$who" prompt "test:$who" hello); then
        ok "$who: a prompt is answered by an agent in a unit of its own"
    else
        not_ok "$who: a prompt is answered by an agent in a unit of its own"
        diag "$out"
        journalctl --no-pager -n 40 | while read -r l; do diag "$l"; done
    fi
done

unit_of() { echo "agentbroker-session-test:$1.service"; }
dir_of() { echo "/var/lib/private/agentbroker-sessions/$(unit_of "$1")"; }

for who in alice bob; do
    unit=$(unit_of "$who")
    check_eq "$who: the unit runs" "active" "$(systemctl is-active "$unit" || true)"
    check_eq "$who: the unit is in agentbroker-sessions.slice" \
        agentbroker-sessions.slice "$(unit_prop "$unit" Slice)"
    check "$who: the unit is ordered before the daemon's (stopped after it)" \
        grep -qw "$ab_unit" <<<"$(unit_prop "$unit" Before)"
    check_eq "$who: the unit is not bound to the daemon's (a drain keeps it)" \
        "" "$(unit_prop "$unit" BindsTo)"
    check "$who: journalctl -u shows the agent's stderr" \
        bash -c "journalctl --sync; journalctl -u '$unit' --no-pager | grep -q 'probe agent for test:$who up'"
    check "$who: the journal keeps AGENTBROKER_THREAD=" \
        bash -c "journalctl AGENTBROKER_THREAD=test:$who --no-pager | grep -q 'probe agent for test:$who up'"
done

alice_uid=$(cat "$(dir_of alice)/uid" 2>/dev/null || echo none)
bob_uid=$(cat "$(dir_of bob)/uid" 2>/dev/null || echo none)
broker_uid=$(id -u agentbroker)
diag "alice's agent: uid $alice_uid; bob's: uid $bob_uid; the daemon: uid $broker_uid"
if [ "$alice_uid" != none ] && [ "$bob_uid" != none ] &&
    [ "$alice_uid" != "$bob_uid" ] && [ "$alice_uid" != "$broker_uid" ] &&
    [ "$bob_uid" != "$broker_uid" ] && [ "$alice_uid" != 0 ] && [ "$bob_uid" != 0 ]; then
    ok "two sessions run as two uids, neither the daemon's nor root"
else
    not_ok "two sessions run as two uids, neither the daemon's nor root"
fi
check_eq "alice's directory belongs to her agent's uid" "$alice_uid" \
    "$(stat -c %u "$(dir_of alice)" 2>/dev/null || echo "no directory")"

for who in alice bob; do
    probe=$(cat "$(dir_of "$who")/probe" 2>/dev/null || echo "no probe file")
    diag "$who's agent:" "$probe"
    other=alice
    [ "$who" = alice ] && other=bob
    for what in "ls /var/lib/agentbroker/sessions" \
        "touch /var/lib/agentbroker/planted" \
        "cat $ab_config" \
        "ls /var/lib/private/agentbroker-sessions/$(unit_of "$other")"; do
        # refused, or not even there to see
        got=$(grep -F "$what:" <<<"$probe" || echo "$what: (not probed)")
        case $got in
        *": denied" | *"No such file or directory") ok "$who's agent: $what is refused" ;;
        *)
            not_ok "$who's agent: $what is refused"
            diag "$got"
            ;;
        esac
    done
    check "$who's agent: its own directory is writable" \
        grep -q "/mine: allowed$" "$(dir_of "$who")/probe"
done

# --- a profile's sandbox: the unit's limits ------------------------------------
if out=$(timeout 60 "$AB_BINDIR/agentctl" --system prompt --agent limited test:limited hello 2>&1); then
    ok "a prompt to the limited profile is answered"
else
    not_ok "a prompt to the limited profile is answered"
    diag "$out"
fi
limited=$(unit_of limited)
check_eq "sandbox.memory is the unit's MemoryMax" 67108864 "$(unit_prop "$limited" MemoryMax)"
check_eq "sandbox.cpu is the unit's CPUQuota" 500ms "$(unit_prop "$limited" CPUQuotaPerSecUSec)"
check_eq "sandbox.tasks is the unit's TasksMax" 16 "$(unit_prop "$limited" TasksMax)"
check_eq "sandbox.network: none is a network of its own" yes "$(unit_prop "$limited" PrivateNetwork)"
check_eq "with network: none the agent sees only a loopback device" lo \
    "$(cat "$(dir_of limited)/net" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# --- accounting: what each unit uses, read when asked ---------------------------
session_path() { echo "$ab_path/session/$(printf %s "$1" | sed 's/:/_3a/')"; }
session_prop() {
    busctl --system get-property "$ab_name" "$(session_path "$1")" \
        org.agentbroker.Session1 "$2" | cut -d' ' -f2- | tr -d '"'
}
# systemd's own reading, as the daemon reports it: a number, or 2^64-1
# where systemd shows [not set] (no such controller for the unit).
systemd_value() {
    local v
    v=$(unit_prop "$1" "$2")
    case $v in
    "" | "[not set]" | infinity) echo 18446744073709551615 ;;
    *) echo "$v" ;;
    esac
}
bob_unit=$(unit_of bob)
check_eq "Session1.Unit names bob's unit" "$bob_unit" "$(session_prop test:bob Unit)"
check_eq "TasksCurrent is what systemd counts for the unit" \
    "$(systemd_value "$bob_unit" TasksCurrent)" "$(session_prop test:bob TasksCurrent)"
ours=$(session_prop test:bob MemoryCurrent)
theirs=$(systemd_value "$bob_unit" MemoryCurrent)
diag "bob's unit: memory $ours (systemd: $theirs)," \
    "CPU $(session_prop test:bob CPUUsageNSec) ns (systemd: $(systemd_value "$bob_unit" CPUUsageNSec))," \
    "tasks $(session_prop test:bob TasksCurrent)"
if [ "$theirs" = 18446744073709551615 ]; then
    check_eq "MemoryCurrent is unknown where systemd has no value" "$theirs" "$ours"
else
    check "MemoryCurrent is within a quarter of systemd's reading" \
        test "$ours" -gt $((theirs * 3 / 4)) -a "$ours" -lt $((theirs * 5 / 4))
fi
theirs=$(systemd_value "$bob_unit" CPUUsageNSec)
ours=$(session_prop test:bob CPUUsageNSec)
if [ "$theirs" = 18446744073709551615 ]; then
    check_eq "CPUUsageNSec is unknown where systemd has no value" "$theirs" "$ours"
else
    check "CPUUsageNSec is some CPU time, at most systemd's later reading" \
        test "$ours" -gt 0 -a "$ours" -le "$(systemd_value "$bob_unit" CPUUsageNSec)"
fi
listed=$(timeout 30 "$AB_BINDIR/agentctl" --system list --full 2>&1 || true)
diag "$listed"
check "agentctl list has MEM and CPU columns" \
    grep -qE '^THREAD +AGENT +STATE +PID +IDLE +TURNS +MEM +CPU +OWNER' <<<"$listed"
check_eq "GetSession's unit is the unit's name" "$bob_unit" \
    "$(timeout 30 "$AB_BINDIR/agentctl" --system show -p Unit --value test:bob)"

# --- an agent past its memory limit ---------------------------------------------
# Bob streams while the hog's agent allocates past sandbox.memory.
daemon_pid=$(unit_prop "$ab_unit" MainPID)
check "the hog's agent starts within its limit" \
    timeout 60 "$AB_BINDIR/agentctl" --system prompt --agent hog test:hog "alloc 8"
check_eq "the hog's unit has the limit" 67108864 "$(unit_prop "$(unit_of hog)" MemoryMax)"
ctl_as bob prompt test:bob "pace 25 50" >/tmp/neighbour.out 2>&1 &
neighbour=$!
hog_rc=0
hog_out=$(timeout 60 "$AB_BINDIR/agentctl" --system prompt --agent hog test:hog "alloc 1024" 2>&1) ||
    hog_rc=$?
diag "the hog's prompt: exit status $hog_rc:" "$hog_out"
check "the hog's turn fails (exit status 1 or 3)" test "$hog_rc" -ne 0 -a "$hog_rc" -ne 124
# cgroup v2 tells an OOM kill apart (the unit's Result is oom-kill); on
# cgroup v1 systemd 252 sees only a SIGKILL.
if grep -q "out-of-memory" <<<"$hog_out"; then
    ok "the hog's turn ends saying the out-of-memory killer ended the agent"
elif [ -d /sys/fs/cgroup/memory ] && grep -q "killed by signal 9" <<<"$hog_out"; then
    ok "the hog's turn ends with its agent killed by signal 9 (cgroup v1: systemd cannot tell an OOM kill)"
else
    not_ok "the hog's turn ends saying the agent was killed for its memory"
fi
neighbour_rc=0
wait "$neighbour" || neighbour_rc=$?
check_eq "the neighbour's stream completes" 0 "$neighbour_rc"
check_eq "the neighbour got all 50 chunks" 50 "$(grep -oE 't=[0-9]+' /tmp/neighbour.out | wc -l)"
check_eq "the daemon is untouched (same main process)" "$daemon_pid" "$(unit_prop "$ab_unit" MainPID)"
check "bob's agent is untouched" systemctl is-active -q "$(unit_of bob)"
check_eq "the hog's session alone failed" failed \
    "$(timeout 30 "$AB_BINDIR/agentctl" --system show -p State --value test:hog)"
# The killed agent's unit is gone before its thread starts another.
wait_until 30 sh -c "! systemctl list-units --all --no-legend 'agentbroker-session-test:hog.service' | grep -q ." ||
    diag "the hog's unit is still there: $(systemctl list-units --all --no-legend 'agentbroker-session-test:hog.service')"
if out=$(timeout 60 "$AB_BINDIR/agentctl" --system prompt test:hog "alloc 8" 2>&1); then
    ok "the hog's next prompt starts a fresh agent and is answered"
else
    not_ok "the hog's next prompt starts a fresh agent and is answered"
    diag "$out"
fi

# --- RemoveSession stops the whole unit ---------------------------------------
# The grandchildren: sleep 10010 (test:alice) and sleep 10008 (test:bob).
check "alice's setsid grandchild runs" pgrep -x -f "sleep 10010"
check "alice: agentctl remove" timeout 60 "$AB_BINDIR/agentctl" --system remove test:alice
check "alice's unit is gone" wait_until 30 \
    bash -c "! systemctl is-active -q '$(unit_of alice)'"
check "no process of alice's session remains (the setsid grandchild included)" \
    wait_until 30 bash -c "! pgrep -x -f 'sleep 10010'"
check "bob's agent is untouched" systemctl is-active -q "$(unit_of bob)"
check "bob's grandchild is untouched" pgrep -x -f "sleep 10008"
if out=$(ctl_as bob prompt test:bob again); then
    ok "bob: his session still answers"
else
    not_ok "bob: his session still answers"
    diag "$out"
fi

# --- systemctl daemon-reload (a package upgrade does one) keeps every agent ------
bob_pid=$(unit_prop "$(unit_of bob)" MainPID)
check "systemctl daemon-reload" systemctl daemon-reload
sleep 2
check_eq "bob's agent survives a daemon-reload" "$bob_pid" "$(unit_prop "$(unit_of bob)" MainPID)"
check_eq "bob's session is still idle" idle \
    "$(timeout 30 "$AB_BINDIR/agentctl" --system show -p State --value test:bob)"

# --- a restart, a crash: the agents go on -----------------------------------------
unit_pid() { unit_prop "$1" MainPID; }
started_at() { bus_prop StartedAt; }
check "bob: his session answers before the restart" ctl_as bob prompt test:bob before
bob_pid=$(unit_pid "$(unit_of bob)")
before=$(started_at)
journal_mark /tmp/units.cursor
check "systemctl restart $ab_unit" systemctl restart "$ab_unit"
check "the daemon is back" wait_until 60 unit_running "$ab_unit"
check "the daemon is a new instance (StartedAt changed)" test "$(started_at)" != "$before"
check_eq "bob's agent kept its process across the restart" "$bob_pid" "$(unit_pid "$(unit_of bob)")"
check_eq "bob's session is idle with its agent, no prompt needed" idle \
    "$(timeout 30 "$AB_BINDIR/agentctl" --system show -p State --value test:bob)"
if out=$(ctl_as bob prompt test:bob "after the restart"); then
    ok "bob: his session answers after the restart"
else
    not_ok "bob: his session answers after the restart"
    diag "$out"
fi
check_eq "the same agent answered (same pid)" "$bob_pid" "$(unit_pid "$(unit_of bob)")"
# (journalctl moves a --cursor-file on: one copy per read)
cp /tmp/units.cursor /tmp/units.cursor2
agent_log=$(journal_since /tmp/units.cursor -u "$(unit_of bob)" || true)
daemon_log=$(journal_since /tmp/units.cursor2 -u "$ab_unit" || true)
diag "since the restart: $(wc -l <<<"$agent_log") journal lines of bob's agent," \
    "$(wc -l <<<"$daemon_log") of the daemon"
check "no session/load after the restart: the agent went on" \
    bash -c "! grep -q 'loaded session' <<<\"\$1\"" _ "$agent_log"
check "the daemon said it went on with bob's agent" \
    grep -q 'session test:bob: going on with the agent' <<<"$daemon_log"

before=$(started_at)
check "systemctl kill --kill-whom=main -s KILL $ab_unit" systemctl kill --kill-whom=main -s KILL "$ab_unit"
check "the daemon comes back (Restart=on-failure)" wait_until 60 \
    bash -c ". /ab-tests/lib.sh; unit_running $ab_unit && [ \"\$(bus_prop StartedAt 2>/dev/null)\" != '$before' ]"
check_eq "bob's agent kept its process across the crash" "$bob_pid" "$(unit_pid "$(unit_of bob)")"
if out=$(ctl_as bob prompt test:bob "after the crash"); then
    ok "bob: his session answers after the crash, from the same agent"
else
    not_ok "bob: his session answers after the crash, from the same agent"
    diag "$out"
fi
check_eq "still the same agent" "$bob_pid" "$(unit_pid "$(unit_of bob)")"

# --- a turn goes on across restarts ----------------------------------------------
# 2,000 numbered chunks over about 20 s; three restarts while they stream.
chunks_in_order() { grep -oE '[0-9]+ t=' "$1" | tr -dc '0-9\n' | cmp -s - <(seq 1 "$2"); }
bob_pid=$(unit_pid "$(unit_of bob)")
# A watcher of the thread, besides the prompter: it follows each restart
# with WatchFrom from the last signal it received.
ctl_as bob watch test:bob >/tmp/watch.out 2>/tmp/watch.err &
watcher=$!
sleep 1
ctl_as bob prompt test:bob "pace 100 2000" >/tmp/long.out 2>/tmp/long.err &
long=$!
restarts_ok=0
for i in 1 2 3; do
    sleep 4
    before=$(started_at)
    # On the container's writable cgroup v1 hierarchies systemd now and
    # then fails to set up the new instance's cgroup (EIO, ENOENT); the
    # unit then comes back through Restart=on-failure, a new instance
    # all the same.
    systemctl restart "$ab_unit" || diag "restart $i: the job failed; waiting for Restart=on-failure"
    wait_until 60 bash -c ". /ab-tests/lib.sh; unit_running $ab_unit && [ \"\$(bus_prop StartedAt 2>/dev/null)\" != '$before' ]" &&
        restarts_ok=$((restarts_ok + 1))
done
check_eq "three restarts while the turn streamed, each a new instance" 3 "$restarts_ok"
long_rc=0
wait "$long" || long_rc=$?
diag "the long turn: exit status $long_rc; $(grep -oE '[0-9]+ t=' /tmp/long.out | wc -l) chunks; $(head -c 300 /tmp/long.err)"
check_eq "agentctl prompt exits 0 after the restarts" 0 "$long_rc"
if chunks_in_order /tmp/long.out 2000; then
    ok "it printed all 2,000 chunks, each once, in order"
else
    not_ok "it printed all 2,000 chunks, each once, in order"
    diag "missing: $(grep -oE '[0-9]+ t=' /tmp/long.out | tr -dc '0-9\n' | sort | comm -13 - <(seq 1 2000 | sort) | sort -n | tr '\n' ' ' | head -c 400)"
    diag "twice: $(grep -oE '[0-9]+ t=' /tmp/long.out | tr -dc '0-9\n' | sort -n | uniq -d | tr '\n' ' ' | head -c 200)"
fi
check_eq "the agent kept its process through the restarts" "$bob_pid" "$(unit_pid "$(unit_of bob)")"
wait_until 10 grep -q 'ended: end_turn' /tmp/watch.out || diag "the watcher did not see the turn end"
kill -INT "$watcher" 2>/dev/null
watch_rc=0
wait "$watcher" || watch_rc=$?
diag "the watcher: exit status $watch_rc; $(grep -oE '[0-9]+ t=' /tmp/watch.out | wc -l) chunks; $(head -c 300 /tmp/watch.err)"
if chunks_in_order /tmp/watch.out 2000; then
    ok "agentctl watch printed all 2,000 chunks too, each once, in order"
else
    not_ok "agentctl watch printed all 2,000 chunks too, each once, in order"
    diag "missing: $(grep -oE '[0-9]+ t=' /tmp/watch.out | tr -dc '0-9\n' | sort | comm -13 - <(seq 1 2000 | sort) | sort -n | tr '\n' ' ' | head -c 400)"
    diag "twice: $(grep -oE '[0-9]+ t=' /tmp/watch.out | tr -dc '0-9\n' | sort -n | uniq -d | tr '\n' ' ' | head -c 200)"
fi
check "the watcher saw the turn end once" test "$(grep -c 'ended: end_turn' /tmp/watch.out)" -eq 1
check "the watcher was not told of lost updates" sh -c '! grep -q "were lost" /tmp/watch.out'

# --- a prompt queued behind a running turn goes over too --------------------------
ctl_as bob prompt test:bob "pace 50 200" >/tmp/first.out 2>/tmp/first.err &
first=$!
sleep 1
ctl_as bob prompt test:bob "echo queued across the restart" >/tmp/queued.out 2>/tmp/queued.err &
queued=$!
wait_until 10 sh -c "[ \"\$(timeout 30 $AB_BINDIR/agentctl --system show -p Queued --value test:bob)\" = 1 ]" ||
    diag "the second prompt is not queued: $(head -c 300 /tmp/queued.err)"
check_eq "the second prompt waits behind the first" 1 \
    "$(timeout 30 "$AB_BINDIR/agentctl" --system show -p Queued --value test:bob)"
systemctl restart "$ab_unit" || diag "the restart job failed; waiting for Restart=on-failure"
first_rc=0
wait "$first" || first_rc=$?
queued_rc=0
wait "$queued" || queued_rc=$?
diag "the first: exit status $first_rc, $(grep -oE '[0-9]+ t=' /tmp/first.out | wc -l) chunks; the queued: exit status $queued_rc, $(head -c 200 /tmp/queued.err)"
check_eq "the running turn goes on across the restart" 0 "$first_rc"
check "it printed its 200 chunks, each once, in order" chunks_in_order /tmp/first.out 200
check_eq "the queued prompt runs after it, in the new instance" 0 "$queued_rc"
check "the queued prompt got its answer" grep -q "queued across the restart" /tmp/queued.out

# --- a permission request pending across a restart -------------------------------
# (as root: bob's group may prompt, the admin answers his own sessions' too)
asks() { grep -c 'asks for permission (request' /tmp/ask.out 2>/dev/null || echo 0; }
timeout 120 "$AB_BINDIR/agentctl" --system prompt --agent asker test:asker permission \
    >/tmp/ask.out 2>&1 &
asker=$!
check "the asker's agent asks for permission" wait_until 30 bash -c "[ \$(grep -c 'asks for permission' /tmp/ask.out) -ge 1 ]"
asker_pid=$(unit_pid "$(unit_of asker)")
before=$(started_at)
check "systemctl restart $ab_unit with the request pending" systemctl restart "$ab_unit"
check "the new instance asks the prompting client again" wait_until 30 \
    bash -c "[ \$(grep -c 'asks for permission' /tmp/ask.out) -ge 2 ]"
request=$(grep -o 'asks for permission (request [0-9]*' /tmp/ask.out | tail -n 1 | grep -o '[0-9]*$')
check "the request is answered after the restart (allow_once)" \
    timeout 30 "$AB_BINDIR/agentctl" --system answer test:asker "$request" allow_once
asker_rc=0
wait "$asker" || asker_rc=$?
diag "the asker's prompt: exit status $asker_rc:" "$(cat /tmp/ask.out)"
check_eq "the turn goes on and ends well" 0 "$asker_rc"
check "the agent heard the answer given after the restart" grep -q 'permission: allow_once' /tmp/ask.out
check_eq "the same agent" "$asker_pid" "$(unit_pid "$(unit_of asker)")"

# --- a crash mid-turn: the turn ends interrupted, the agent goes on -------------
ctl_as bob prompt test:bob "pace 50 500" >/tmp/crash.out 2>/tmp/crash.err &
crashed=$!
sleep 3
before=$(started_at)
check "systemctl kill --kill-whom=main -s KILL $ab_unit mid-turn" systemctl kill --kill-whom=main -s KILL "$ab_unit"
crash_rc=0
wait "$crashed" || crash_rc=$?
diag "the crashed turn: exit status $crash_rc; $(grep -oE '[0-9]+ t=' /tmp/crash.out | wc -l) chunks; $(head -c 300 /tmp/crash.err)"
check_eq "the crashed turn's prompt exits 3 (interrupted, told, never a silent gap)" 3 "$crash_rc"
check "it was told: interrupted" grep -q "turn ended: interrupted" /tmp/crash.out
check_eq "the agent kept its process through the crash" "$bob_pid" "$(unit_pid "$(unit_of bob)")"
if out=$(ctl_as bob prompt test:bob "after the crashed turn"); then
    ok "bob: his session answers after the crashed turn"
else
    not_ok "bob: his session answers after the crashed turn"
    diag "$out"
fi

# --- launcher: auto takes systemd where the manager lets the daemon ----------
sed -i 's/^launcher: systemd$/launcher: auto/' "$ab_config"
check "systemctl restart $ab_unit with launcher: auto" systemctl restart "$ab_unit"
check "launcher: auto with the polkit rule: Launcher is systemd" \
    wait_until 30 bash -c "[ \"\$(busctl --system get-property $ab_name $ab_path $ab_name Launcher)\" = 's \"systemd\"' ]"

# --- the daemon's stop takes every agent with it ------------------------------
check "systemctl stop $ab_unit" systemctl stop "$ab_unit"
check "bob's unit is gone with the daemon" wait_until 30 \
    bash -c "! systemctl is-active -q '$(unit_of bob)'"
check "no grandchild remains" wait_until 30 bash -c "! pgrep -x -f 'sleep 1000[0-9]+'"
finish
