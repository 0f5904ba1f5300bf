#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building and testing agentbroker needs on Debian 12.
set -eu
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# xz-utils: make dist (dist-xz); procps: ps in the tests under systemd;
# dpkg-dev, debhelper: the Debian package test (tests/systemd/deb.sh);
# man-db, groff-base: rendering the man pages (tests/test-manpages.sh);
# tmux: a real terminal for agentctl list (tests/test-agentctl-tty.sh);
# prometheus: promtool checks /metrics (tests/test-health.c); mandoc: lints
# the man pages (tests/test-manpages.sh); polkitd: the polkit rule that
# lets the system daemon start the session units (tests/systemd/units.sh).
# None of them is in a minimal image (debian:12).
packages="build-essential autoconf automake autopoint gettext pkg-config
  libglib2.0-dev libglib2.0-dev-bin libglib2.0-bin libsystemd-dev
  libjson-glib-dev libsoup-3.0-dev libyaml-dev xz-utils
  dbus dbus-user-session systemd systemd-container procps
  clang clang-format libclang-rt-14-dev valgrind curl python3
  dpkg-dev debhelper fakeroot lintian man-db groff-base zsh tmux
  prometheus mandoc polkitd"
# The SDK agent test needs Node.js and npm; a machine that already has
# them (Debian's or NodeSource's) keeps its own.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages="$packages nodejs npm"
fi
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
