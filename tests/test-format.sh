#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every C file of the project is formatted as .clang-format says, and every
# source, script and build file carries the project's SPDX licence line.
# TAP output; without clang-format: a skip (a failure when
# AGENTBROKER_REQUIRE_ALL_TESTS=1).
srcdir=${G_TEST_SRCDIR:-$(dirname "$0")}/..
if ! command -v clang-format >/dev/null 2>&1; then
    if [ "${AGENTBROKER_REQUIRE_ALL_TESTS:-0}" = 1 ]; then
        echo "Bail out! clang-format is not installed"
        exit 1
    fi
    echo "1..0 # SKIP clang-format is not installed"
    exit 0
fi
cd "$srcdir" || exit 1
files=$(find src tests fuzz bench -name '*.[ch]' ! -name 'ab-dbus.[ch]' | sort)
licensed=$(find src tests fuzz bench data dbus man systemd \
    \( -name '*.[ch]' -o -name '*.sh' -o -name '*.inc' -o -name '*.in' \
    -o -name '*.xml' -o -name '*.conf' -o -name '*.[158]' -o -name '*.mjs' \) \
    ! -name 'ab-dbus.[ch]' ! -path '*/node_modules/*' ! -path '*/corpus/*' | sort)
licensed="$licensed Makefile.am configure.ac"
n=0
for f in $files $licensed; do n=$((n + 1)); done
echo "1..$n"
i=0
status=0
for f in $files; do
    i=$((i + 1))
    if clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "ok $i - $f"
    else
        echo "not ok $i - $f is not clang-formatted"
        status=1
    fi
done
for f in $licensed; do
    i=$((i + 1))
    if grep -q 'SPDX-License-Identifier: LGPL-2.1-or-later' "$f"; then
        echo "ok $i - $f carries the licence line"
    else
        echo "not ok $i - $f has no SPDX-License-Identifier line"
        status=1
    fi
done
exit $status
