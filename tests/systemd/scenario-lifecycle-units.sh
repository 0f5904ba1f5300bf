#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The lifecycle scenario again with launcher: systemd: every agent a
# transient unit of its own while the daemon reloads, drains, restarts,
# is killed and watchdog-killed.
set -uo pipefail
# The installed polkit rule, where polkitd reads rules.
mkdir -p /etc/polkit-1/rules.d
cp "$AB_PREFIX/share/polkit-1/rules.d/50-agentbroker.rules" /etc/polkit-1/rules.d/
export AB_LAUNCHER=systemd
exec bash /ab-tests/scenario-lifecycle.sh
