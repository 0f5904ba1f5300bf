#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tests/plant-bugs.sh — the tests catch five bugs that once survived them.
#
# Each bug is planted, one at a time, in a copy of the committed tree
# (git archive; the working tree and the repository are left alone); the
# copy is built once, rebuilt after each plant, and the tests that must
# catch the bug are run: each bug passes here when they fail within the
# time limit (a hang counts as not caught). The same tests are run first
# on the unplanted copy, where they must pass.
#
#   in-place            records written in place (the final name opened
#                       with O_TRUNC) instead of a temporary file + rename
#   no-fsync            no fsync of the temporary file before the rename
#   prompt-before-record  session/prompt sent before the turn-start record
#                       is on disk
#   owner-check         the owner check lets anyone act on any session
#   iterate-hang        the JSON-RPC connection never reports "closed":
#                       test-jsonrpc must fail at its deadline, not hang
#
# Usage (from anywhere; takes several minutes, not part of make check):
#   tests/plant-bugs.sh [BUG...]        all five when none is named
# Environment:
#   PLANT_REV=REV        the commit to copy (default HEAD)
#   PLANT_JOBS=N         make -j (default 2)
#   PLANT_TIMEOUT=SEC    per run of a bug's tests (default 900)
#   PLANT_KEEP=1         keep the copy and the logs (printed at the end)
#   PLANT_TESTS_<BUG>    the tests for a bug, '-' written '_', e.g.
#                        PLANT_TESTS_owner_check='tests/test-sessions'
# A plant that no longer matches the code (it moved) is reported as
# such: adapt its pattern below. Exit status 0 when every bug was caught.

set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
rev=${PLANT_REV:-HEAD}
jobs=${PLANT_JOBS:-2}
limit=${PLANT_TIMEOUT:-900}
work=$(mktemp -d "${TMPDIR:-/tmp}/ab-plant-XXXXXX") || exit 1
cleanup() {
    if [ "${PLANT_KEEP:-0}" = 1 ]; then
        echo "# copy and logs kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the bugs: name, files, perl substitution (whole file), tests ------

bug_files() {
    case $1 in
    in-place | no-fsync) echo src/store.c ;;
    prompt-before-record) echo src/session.c ;;
    owner-check) (cd "$work/src" && ls src/*.c) ;;
    iterate-hang) echo src/jsonrpc.c ;;
    esac
}

bug_patch() {
    case $1 in
    in-place)
        # the "temporary" file is the record itself
        echo 's/(char \*tmp\s*=\s*)g_strconcat \(path, "\.tmp", NULL\)/$1g_strdup (path)/'
        ;;
    no-fsync)
        echo 's/written < len \|\| fsync \(fd\) < 0/written < len/'
        ;;
    prompt-before-record)
        # start_turn() sends at once instead of after on_turn_start_written()
        echo 's/if \(turn->number <= self->running_recorded\)(\s*send_prompt \(self\);)/if (self->rpc != NULL || turn->number <= self->running_recorded)$1/'
        ;;
    owner-check)
        # "the session's owner is the caller" always true, "is not" always
        # false; either order, the caller "uid" or "caller->uid" (the
        # per-user session count compares other names and is left alone)
        echo 's/(ab_session_get_owner \(session\) == (?:caller->)?uid|(?:caller->)?uid == ab_session_get_owner \(session\))/($1 || TRUE)/g;' \
            's/(ab_session_get_owner \(session\) != (?:caller->)?uid|(?:caller->)?uid != ab_session_get_owner \(session\))/($1 \&\& FALSE)/g'
        ;;
    iterate-hang)
        echo 's/if \(self->state == STATE_FAILED\)(\s*g_signal_emit \(self, signals\[SIGNAL_CLOSED\])/if (self->state == STATE_FAILED \&\& FALSE)$1/'
        ;;
    esac
}

bug_tests() {
    var=PLANT_TESTS_$(echo "$1" | tr - _)
    eval "override=\${$var:-}"
    if [ -n "$override" ]; then
        echo "$override"
        return
    fi
    case $1 in
    in-place) echo tests/test-store tests/test-store-syscalls tests/test-crash ;;
    no-fsync) echo tests/test-store-syscalls ;;
    prompt-before-record) echo tests/test-lifecycle ;;
    owner-check) echo tests/test-access tests/test-sessions tests/test-hostile ;;
    iterate-hang) echo tests/test-jsonrpc ;;
    esac
}

all_bugs="in-place no-fsync prompt-before-record owner-check iterate-hang"
bugs=${*:-$all_bugs}
for bug in $bugs; do
    case " $all_bugs " in
    *" $bug "*) ;;
    *)
        echo "unknown bug '$bug'; known: $all_bugs" >&2
        exit 2
        ;;
    esac
done

# ---- the copy -----------------------------------------------------------

echo "# copying $rev of $srcdir to $work"
mkdir -p "$work/src" "$work/build"
if ! git -C "$srcdir" archive "$rev" | tar -x -C "$work/src"; then
    echo "Bail out! cannot copy $rev"
    exit 1
fi
build() {
    nice make -C "$work/build" -j"$jobs" >>"$work/build.log" 2>&1
}
echo "# building (log: $work/build.log)"
if ! (cd "$work/src" && NOCONFIGURE=1 ./autogen.sh) >"$work/build.log" 2>&1 ||
    ! (cd "$work/build" && "$work/src/configure" --enable-werror) >>"$work/build.log" 2>&1 ||
    ! build; then
    tail -20 "$work/build.log"
    echo "Bail out! the unplanted copy does not build"
    exit 1
fi

# The tests of $@ this tree has (a source or a script of that name).
present_tests() {
    for t in "$@"; do
        if [ -e "$work/src/$t.c" ] || [ -e "$work/src/$t" ]; then
            echo "$t"
        else
            echo "# $t is not in this tree; left out" >&2
        fi
    done
}

# Runs the tests $2 into the log $1; make's status, 124 after the limit.
run_tests() {
    timeout "$limit" nice make -C "$work/build" -j1 check TESTS="$2" \
        >"$work/$1.log" 2>&1
}

n=0
status=0
n_bugs=$(echo $bugs | wc -w)
echo "1..$((n_bugs + 1))"

all_tests=
for bug in $bugs; do
    all_tests="$all_tests $(present_tests $(bug_tests "$bug") 2>/dev/null)"
done
all_tests=$(echo $all_tests | tr ' ' '\n' | sort -u | tr '\n' ' ')
n=$((n + 1))
if run_tests baseline "$all_tests"; then
    echo "ok $n - unplanted: $all_tests pass"
else
    echo "not ok $n - unplanted: $all_tests do not all pass (log: $work/baseline.log)"
    status=1
fi

for bug in $bugs; do
    n=$((n + 1))
    patch=$(bug_patch "$bug")
    tests=$(present_tests $(bug_tests "$bug") | tr '\n' ' ')
    if [ -z "$tests" ]; then
        echo "not ok $n - $bug: none of its tests ($(bug_tests "$bug")) is in this tree"
        status=1
        continue
    fi
    changed=
    for f in $(bug_files "$bug"); do
        cp -p "$work/src/$f" "$work/src/$f.orig"
        perl -0777 -pi -e "$patch" "$work/src/$f"
        if cmp -s "$work/src/$f" "$work/src/$f.orig"; then
            rm -f "$work/src/$f.orig"
        else
            changed="$changed $f"
        fi
    done
    if [ -z "$changed" ]; then
        echo "not ok $n - $bug: the plant no longer matches $(bug_files "$bug" | tr '\n' ' '); adapt it"
        status=1
        continue
    fi
    echo "# $bug planted in$changed"
    for f in $changed; do
        diff -u "$work/src/$f.orig" "$work/src/$f" | sed 's/^/#   /'
    done
    if ! build; then
        echo "not ok $n - $bug: the planted copy does not build (log: $work/build.log)"
        status=1
    else
        run_tests "$bug" "$tests"
        rc=$?
        if [ $rc = 0 ]; then
            echo "not ok $n - $bug survived $tests (log: $work/$bug.log)"
            status=1
        elif [ $rc = 124 ]; then
            echo "not ok $n - $bug: $tests hung past ${limit}s (log: $work/$bug.log)"
            status=1
        else
            failed=$(grep -E '^(FAIL|ERROR):' "$work/$bug.log" | sed 's/^/#   /')
            if [ -n "$failed" ]; then
                echo "ok $n - $bug caught by $tests"
                echo "$failed"
            else
                echo "not ok $n - $bug: make check failed without a test failing (log: $work/$bug.log)"
                status=1
            fi
        fi
    fi
    # Back to the unplanted file, newer than the planted build.
    for f in $changed; do
        cp "$work/src/$f.orig" "$work/src/$f"
        rm -f "$work/src/$f.orig"
        touch "$work/src/$f"
    done
done
exit $status
