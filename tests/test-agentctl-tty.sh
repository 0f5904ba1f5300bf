#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# agentctl list in a real 80-column terminal (tmux): rows cut to the
# width, the "N sessions listed." footer, the state in colour unless
# NO_COLOR or SYSTEMD_COLORS=0; whole rows with --full or into a pipe.
# Runs agentbrokerd on a private session bus (dbus-run-session).  TAP.
set -u
build=${AB_TEST_BUILDDIR:-$(pwd)}

skip() {
    if [ "${AGENTBROKER_REQUIRE_ALL_TESTS:-0}" = 1 ]; then
        echo "Bail out! $*"
        exit 1
    fi
    echo "1..0 # SKIP $*"
    exit 0
}
command -v tmux >/dev/null || skip "tmux is not installed"
command -v dbus-run-session >/dev/null || skip "dbus-run-session is not installed"
if [ -z "${AB_TTY_TEST_BUS:-}" ]; then
    AB_TTY_TEST_BUS=1 exec dbus-run-session -- "$0" "$@"
fi

export PATH="$build/src:$PATH"
unset COLUMNS LINES NO_COLOR SYSTEMD_COLORS
export LC_ALL=C.UTF-8 # ${#line} counts characters, "…" is one
work=$(mktemp -d "${TMPDIR:-/tmp}/ab-tty.XXXXXX")
socket="ab-tty-$$"
daemon=
prompt_pid=
cleanup() {
    tmux -L "$socket" kill-server 2>/dev/null
    [ -n "$prompt_pid" ] && kill "$prompt_pid" 2>/dev/null
    if [ -n "$daemon" ]; then
        kill -TERM "$daemon" 2>/dev/null
        wait "$daemon" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $*"; }
check() {
    local description=$1
    shift
    if "$@"; then ok "$description"; else not_ok "$description"; fi
}
diag() { sed 's/^/# /' <<<"$*"; }

# poll COMMAND... every 0.1 s for up to 30 s
poll() {
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

cat >"$work/agentbroker.yaml" <<YAML
default_agent: demo
agents:
  demo:
    command: [agentbroker-demo-agent]
timeouts:
  kill: 2s
YAML
export STATE_DIRECTORY="$work/state"
mkdir -p "$STATE_DIRECTORY"
agentbrokerd --session --config "$work/agentbroker.yaml" 2>>"$work/daemon.log" &
daemon=$!
if ! poll agentctl --user status; then
    echo "Bail out! agentbrokerd did not come up: $(cat "$work/daemon.log")"
    exit 1
fi

# Rows far wider than 80 columns: long thread ids.
long=$(printf 'x%.0s' $(seq 120))
for t in a b; do
    agentctl --user prompt "cli:$t/$long" hi >/dev/null 2>&1 ||
        echo "Bail out! the prompt of cli:$t failed"
done
agentctl --user prompt "cli:c/$long" sleep 60 >/dev/null 2>&1 &
prompt_pid=$!
is_busy() { test "$(agentctl --user show -p State --value "$1")" = busy; }
if ! poll is_busy "cli:c/$long"; then
    echo "Bail out! cli:c did not get busy"
    exit 1
fi

# in_tty NAME COMMAND: runs COMMAND in a new 80x24 tmux window and prints
# what the window shows (-e: with its colours), once COMMAND is done or
# after 20 s.
in_tty() {
    local name=$1 command=$2
    tmux -L "$socket" -f /dev/null new-session -d -s "$name" -x 80 -y 24 \
        "$command; tmux -L $socket wait-for -S $name-done; sleep 60"
    if ! timeout 20 tmux -L "$socket" wait-for "$name-done"; then
        echo "# $name: the command did not finish in 20 s" >&2
    fi
    tmux -L "$socket" capture-pane -p -e -J -t "$name"
}
plain() { sed 's/\x1b\[[0-9;]*m//g'; }
# width_at_most N: every line of stdin is at most N characters wide
width_at_most() {
    local line
    while IFS= read -r line; do
        [ "${#line}" -le "$1" ] || return 1
    done
}

tty_list=$(in_tty list "agentctl --user list")
diag "$tty_list"
text=$(plain <<<"$tty_list")
check "a terminal: the header comes first" grep -q '^THREAD  *AGENT  *STATE' <<<"$text"
check "a terminal: every line fits in 80 columns" width_at_most 80 <<<"$text"
check "a terminal: long thread ids are cut with …" \
    test "$(grep -c "^cli:[abc]/x*…" <<<"$text")" = 3
check "a terminal: the footer says 3 sessions listed" \
    grep -qx '3 sessions listed\.' <<<"$text"
check "a terminal: a blank line before the footer" \
    grep -Pzq '\n\n3 sessions listed\.' <<<"$text"
check "a terminal: the busy state is in colour" \
    grep -q $'\x1b\\[[0-9;]*m *busy' <<<"$tty_list"

tty_full=$(in_tty full "agentctl --user list --full")
check "--full: rows are not cut" \
    grep -q "^cli:a/$long " <<<"$(plain <<<"$tty_full")"

tty_legend=$(in_tty legend "agentctl --user --no-legend list")
text=$(plain <<<"$tty_legend")
check "--no-legend: no header" bash -c "! grep -q '^THREAD' <<<\"\$0\"" "$text"
check "--no-legend: no footer" bash -c "! grep -q 'listed' <<<\"\$0\"" "$text"
check "--no-legend: three rows" test "$(grep -c '^cli:' <<<"$text")" = 3

for env in NO_COLOR=1 SYSTEMD_COLORS=0; do
    out=$(in_tty "${env%%=*}" "env $env agentctl --user list")
    check "$env: no colour" bash -c "! grep -q $'\x1b\\\\[[0-9;]*[1-9][0-9;]*m' <<<\"\$0\"" "$out"
done

piped=$(in_tty piped "agentctl --user list | cat")
check "a pipe: whole rows" grep -q "^cli:a/$long " <<<"$(plain <<<"$piped")"
check "a pipe: no colour" bash -c "! grep -q $'\x1b\\\\[[0-9;]*[1-9][0-9;]*m' <<<\"\$0\"" "$piped"

echo "1..$n"
exit $failed
