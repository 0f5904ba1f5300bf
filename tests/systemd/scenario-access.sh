#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Access under real systemd (org.agentbroker.Broker1(5)): real non-root users on the real
# system bus with the installed policy file.
#   outsider  in no access group: refused by the bus policy, and — with a
#             test policy that lets them through — by the daemon itself
#   alice,bob in agentbroker (access.users): prompt; cannot cancel, remove
#             or prompt the other's session, nor Watch "*" (the daemon
#             decides), nor Drain or Reload (the policy decides)
#   carol     in agentbroker-admin (access.admins): removes alice's session
#   root      removes any session
set -euo pipefail
. /ab-tests/lib.sh

bus_denied=org.freedesktop.DBus.Error.AccessDenied
daemon_denied=org.agentbroker.Error.AccessDenied

cat >"$ab_config" <<YAML
default_agent: demo
agents:
  demo:
    command: [$AB_BINDIR/agentbroker-demo-agent]
timeouts:
  kill: 2s
YAML

useradd -M -U outsider
useradd -M -U -G agentbroker alice
useradd -M -U -G agentbroker bob
useradd -M -U -G agentbroker-admin carol
alice_uid=$(id -u alice)
diag "outsider: $(id outsider)" "alice: $(id alice)" "bob: $(id bob)" "carol: $(id carol)"

check "systemctl start $ab_unit" systemctl start $ab_unit

# call USER METHOD ARG...: gdbus call on the broker as USER (root when
# USER is root); prints the reply, or the error with its D-Bus name.
call() {
    local user=$1 method=$2
    shift 2
    local cmd=(gdbus call --system --dest "$ab_name" --object-path "$ab_path"
        --method "$ab_name.$method" -- "$@")
    if [ "$user" = root ]; then "${cmd[@]}" 2>&1; else as_user "$user" "${cmd[@]}" 2>&1; fi
}

# refused DESCRIPTION ERROR_NAME USER METHOD ARG...: the call fails with
# ERROR_NAME
refused() {
    local description=$1 name=$2 output
    shift 2
    if output=$(call "$@"); then
        not_ok "$description"
        diag "the call succeeded: $output"
    elif grep -qF "$name" <<<"$output"; then
        ok "$description"
        diag "$output"
    else
        not_ok "$description"
        diag "expected $name, got: $output"
    fi
}

# succeeds DESCRIPTION USER METHOD ARG...
succeeds() {
    local description=$1 output
    shift
    if output=$(call "$@"); then ok "$description"; else
        not_ok "$description"
        diag "$output"
    fi
}

has_session() { call root GetSession "$1" >/dev/null; }
no_session() { ! has_session "$1"; }

# agentctl USER ARG...: agentctl --system as USER; output on stdout
agentctl_as() {
    local user=$1
    shift
    as_user "$user" "$AB_BINDIR/agentctl" --system "$@" 2>&1
}

# --- outsider: the installed policy refuses ---------------------------------
refused "outsider: Prompt is refused by the bus policy" "$bus_denied" \
    outsider Prompt cli:outsider/x hello '{}'
refused "outsider: ListSessions is refused by the bus policy" "$bus_denied" \
    outsider ListSessions '@a{sv} {}'
refused "outsider: RemoveSession is refused by the bus policy" "$bus_denied" \
    outsider RemoveSession cli:alice/x
if out=$(agentctl_as outsider prompt cli:outsider/x hello); then
    not_ok "outsider: agentctl prompt fails"
    diag "$out"
else
    ok "outsider: agentctl prompt fails"
    diag "$out"
fi
# one_line_naming TEXT NEEDLE: TEXT is one line that contains NEEDLE and
# none of dbus-daemon's rule dump
one_line_naming() {
    [ "$(wc -l <<<"$1")" = 1 ] && grep -qF -- "$2" <<<"$1" &&
        ! grep -q 'matched rules' <<<"$1"
}
check "outsider: agentctl says in one line that the group agentbroker is lacking" \
    one_line_naming "$out" "needs membership in the group agentbroker (access.users)"
out=$(agentctl_as outsider list || true)
check "outsider: agentctl list says so too" \
    one_line_naming "$out" "list needs membership in the group agentbroker"
diag "$out"
state=$(as_user outsider busctl --system get-property "$ab_name" "$ab_path" \
    "$ab_name" State 2>&1 || true)
check_eq "outsider: the manager's State property stays readable" \
    's "running"' "$state"
check "outsider created no session" no_session cli:outsider/x

# --- alice: prompts; the policy keeps the control plane from her -------------
if out=$(agentctl_as alice prompt cli:alice/x hello); then
    ok "alice: agentctl --system prompt cli:alice/x hello exits 0"
else
    not_ok "alice: agentctl --system prompt cli:alice/x hello exits 0"
fi
diag "$out"
check "alice: the demo agent answered" test -n "$out"
session=$(call root GetSession cli:alice/x || true)
check "alice owns cli:alice/x (uid $alice_uid)" \
    grep -qE "'owner': <uint32 $alice_uid>" <<<"$session"
check "alice: ListSessions" call alice ListSessions '@a{sv} {}'
refused "alice: Drain is refused by the bus policy" "$bus_denied" alice Drain 5
out=$(agentctl_as alice drain || true)
check "alice: agentctl drain says in one line that agentbroker-admin is lacking" \
    one_line_naming "$out" "drain needs membership in the group agentbroker-admin"
diag "$out"
refused "alice: Reload is refused by the bus policy" "$bus_denied" alice Reload
refused "alice: Watch * is refused by the daemon (admins only)" "$daemon_denied" \
    alice Watch '*'

# --- a stranger sees no thread id ---------------------------------------------
# A session's object path holds its thread id: the policy lets a stranger
# introspect the manager object and nothing else.
alice_path="$ab_path/session/cli_3aalice_2fx"
tree=$(as_user outsider busctl --system --list tree "$ab_name" 2>&1 || true)
diag "outsider's busctl tree:" "$tree"
if grep -qF "$ab_path/session/" <<<"$tree"; then
    not_ok "outsider: busctl tree shows no session path"
else
    ok "outsider: busctl tree shows no session path"
fi
check "outsider: introspects the manager object" \
    as_user outsider busctl --system introspect "$ab_name" "$ab_path"
if out=$(as_user outsider busctl --system introspect "$ab_name" "$alice_path" 2>&1); then
    not_ok "outsider: introspecting a session object is refused"
    diag "$out"
else
    ok "outsider: introspecting a session object is refused"
    diag "$out"
fi
if out=$(as_user outsider busctl --system introspect "$ab_name" "$ab_path/session" 2>&1); then
    not_ok "outsider: introspecting the sessions' parent path is refused"
    diag "$out"
else
    ok "outsider: introspecting the sessions' parent path is refused"
fi
tree=$(as_user alice busctl --system --list tree "$ab_name" 2>&1 || true)
check "alice (access.users): busctl tree shows her session" \
    grep -qF "$alice_path" <<<"$tree"

# --- who receives a stream ---------------------------------------------------
# listen USER THREAD OUT: as USER, in the background, Watch THREAD (errors
# ignored: a stranger may not call it) and write every signal from the
# bus to OUT, one "signal MEMBER PATH" a line, until /tmp/stop-listen exists
# (or 60 s pass).
rm -f /tmp/stop-listen
listen() {
    as_user "$1" /usr/bin/python3 - "$ab_name" "$ab_path" "$2" >"$3" 2>&1 <<'PY' &
import os, sys, time
from gi.repository import Gio, GLib
name, path, thread = sys.argv[1:4]
bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
def on_signal(conn, sender, obj, iface, member, params):
    print("signal", member, obj, flush=True)
bus.signal_subscribe(None, None, None, None, None, Gio.DBusSignalFlags.NONE,
                     on_signal)
try:
    bus.call_sync(name, path, name, "Watch", GLib.Variant("(s)", (thread,)),
                  None, Gio.DBusCallFlags.NONE, 10000, None)
    print("watching", thread, flush=True)
except GLib.Error as e:
    print("no watch:", e.message, flush=True)
loop = GLib.MainLoop()
deadline = time.monotonic() + 60
def tick():
    if os.path.exists("/tmp/stop-listen") or time.monotonic() > deadline:
        loop.quit()
    return True
GLib.timeout_add(100, tick)
loop.run()
PY
}
listen alice cli:bob/leak /tmp/listen-alice
listen outsider cli:bob/leak /tmp/listen-outsider
listen carol cli:bob/leak /tmp/listen-carol
for f in /tmp/listen-alice /tmp/listen-outsider /tmp/listen-carol; do
    wait_until 20 grep -q "watch" "$f" || not_ok "$f: the listener started"
done
if out=$(agentctl_as bob prompt cli:bob/leak 'stream 3'); then
    ok "bob: prompts cli:bob/leak, watched by alice before it existed"
else
    not_ok "bob: prompts cli:bob/leak, watched by alice before it existed"
    diag "$out"
fi
wait_until 20 grep -q "^signal TurnEnded " /tmp/listen-carol ||
    not_ok "carol (admin) received the turn's end"
touch /tmp/stop-listen
wait
diag "alice received:" "$(cat /tmp/listen-alice)" \
    "outsider received:" "$(cat /tmp/listen-outsider)" \
    "carol received:" "$(cat /tmp/listen-carol)"
check "carol (admin, watching): received bob's stream" \
    grep -q "^signal Update $ab_path/session/cli_3abob_2fleak" /tmp/listen-carol
check "alice (watching before bob's session existed): received none of it" \
    sh -c '! grep -q "^signal \(Update\|TurnEnded\|PermissionRequested\) " /tmp/listen-alice'
check "outsider: received no signal of the broker at all" \
    sh -c '! grep -q "^signal .* /org/agentbroker" /tmp/listen-outsider'
check "alice (access.users): received the broadcast of bob's new session" \
    grep -q "^signal SessionAdded $ab_path" /tmp/listen-alice

# --- bob: the policy lets these through; the daemon refuses ------------------
refused "bob: RemoveSession of alice's session is refused by the daemon" \
    "$daemon_denied" bob RemoveSession cli:alice/x
refused "bob: KillSession of alice's session is refused by the daemon" \
    "$daemon_denied" bob KillSession cli:alice/x TERM
refused "bob: Cancel of alice's session is refused by the daemon" \
    "$daemon_denied" bob Cancel cli:alice/x
refused "bob: Prompt on alice's session is refused by the daemon" \
    "$daemon_denied" bob Prompt cli:alice/x 'echo from bob' '{}'
refused "bob: Watch of alice's session is refused by the daemon" \
    "$daemon_denied" bob Watch cli:alice/x
if out=$(agentctl_as bob remove cli:alice/x); then
    not_ok "bob: agentctl remove cli:alice/x fails"
else
    ok "bob: agentctl remove cli:alice/x fails"
fi
diag "$out"
check "bob: the refusal names the session's owner and agentbroker-admin" \
    one_line_naming "$out" "belongs to uid $alice_uid"
check "bob: … and the group for other users' sessions" \
    one_line_naming "$out" "other users' sessions the group agentbroker-admin"
if out=$(agentctl_as bob kill -s CONT cli:alice/x); then
    not_ok "bob: agentctl kill cli:alice/x fails"
else
    ok "bob: agentctl kill cli:alice/x fails"
fi
diag "$out"
check "alice's session is still there" has_session cli:alice/x
if out=$(agentctl_as bob prompt cli:bob/x 'echo bob here'); then
    ok "bob: prompts his own session"
else
    not_ok "bob: prompts his own session"
    diag "$out"
fi
succeeds "bob: removes his own session" bob RemoveSession cli:bob/x

# --- carol (admin) and root may act on anyone's session ----------------------
if out=$(agentctl_as carol remove cli:alice/x); then
    ok "carol (admin): agentctl remove cli:alice/x"
else
    not_ok "carol (admin): agentctl remove cli:alice/x"
    diag "$out"
fi
check "alice's session is gone" no_session cli:alice/x
agentctl_as alice prompt cli:alice/y 'echo again' >/dev/null ||
    not_ok "alice: prompts cli:alice/y"
succeeds "root: RemoveSession of alice's session" root RemoveSession cli:alice/y
check "cli:alice/y is gone" no_session cli:alice/y

# --- outsider past the policy: the daemon's own check ------------------------
# A test-only policy lets outsider send anything to the broker: what
# refuses now is the daemon, from the caller's credentials.
open_policy=/etc/dbus-1/system.d/zz-agentbroker-test-open.conf
cat >"$open_policy" <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="outsider">
    <allow send_destination="org.agentbroker.Broker1"/>
  </policy>
</busconfig>
XML
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus ReloadConfig
refused "outsider past the policy: Prompt is refused by the daemon" \
    "$daemon_denied" outsider Prompt cli:outsider/x hello '{}'
refused "outsider past the policy: ListSessions is refused by the daemon" \
    "$daemon_denied" outsider ListSessions '@a{sv} {}'
refused "outsider past the policy: Drain is refused by the daemon" \
    "$daemon_denied" outsider Drain 5
check "outsider still created no session" no_session cli:outsider/x
rm -f "$open_policy"
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus ReloadConfig

# A Node.js agent on the official ACP SDK works under the sandboxed unit
# (it needs writable and executable memory, which the unit allows).
if [ -f /ab-sdk-agent/agent.mjs ] && [ -d /ab-sdk-agent/node_modules ]; then
    cat >>"$ab_config" <<YAML
  sdk:
    command: [$(command -v node), /ab-sdk-agent/agent.mjs]
YAML
    # the config's agents: block is the last mapping but one; rebuild it
    python3 - "$ab_config" <<'PY'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines()
sdk = [l for l in lines[-2:]]
rest = lines[:-2]
i = rest.index("timeouts:")
open(p, "w").write("\n".join(rest[:i] + sdk + rest[i:]) + "\n")
PY
    check "systemctl reload with an SDK agent profile" systemctl reload $ab_unit
    out=$(agentctl_as alice prompt --agent sdk cli:alice/sdk "hello from alice") || true
    diag "sdk agent said: $out"
    check "alice: the SDK agent (Node.js) answered under the sandbox" \
        grep -q "sdk-agent:" <<<"$out"
else
    not_ok "the SDK agent is available in the container"
    diag "tests/sdk-agent/node_modules is missing in the build tree: run make check (it runs npm ci)"
fi

# Session records hold prompts: only the daemon's user may read them.
state_dir=/var/lib/agentbroker
agentctl_as bob prompt cli:bob/records "keep this private" >/dev/null || true
check_eq "the state directory is 0700 agentbroker" "700 agentbroker" \
    "$(stat -c '%a %U' "$state_dir")"
check_eq "the records directory is 0700" "700" \
    "$(stat -c '%a' "$state_dir/sessions")"
record=$(ls "$state_dir"/sessions/*.json | head -n 1)
check_eq "a session record is 0600 agentbroker" "600 agentbroker" \
    "$(stat -c '%a %U' "$record")"
check "alice cannot list the session records" \
    sh -c "! setpriv --reuid=alice --regid=alice --init-groups ls $state_dir/sessions >/dev/null 2>&1"
check "alice cannot read bob's session record" \
    sh -c "! setpriv --reuid=alice --regid=alice --init-groups cat $record >/dev/null 2>&1"

check_eq "the daemon is unharmed (active running)" "active running" \
    "$(unit_prop $ab_unit ActiveState) $(unit_prop $ab_unit SubState)"
check_eq "State is running" '"running"' "$(bus_prop State)"

systemctl stop $ab_unit 2>/dev/null || true
finish
