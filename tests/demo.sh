#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# agentbroker demo: builds the tree, starts agentbrokerd on a private
# session bus with the demo agent, and drives it with agentctl.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${AB_DEMO_BUILDDIR:-$top/build-demo}

if [ "$(id -u)" -eq 0 ]; then "$top/tests/install-deps.sh"; fi
(cd "$top" && NOCONFIGURE=1 ./autogen.sh >/dev/null)
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$top/configure" --prefix=/usr/local >/dev/null
make -j"$(nproc)" >/dev/null

exec dbus-run-session -- "$top/tests/demo-session.sh" "$build"
