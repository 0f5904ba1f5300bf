/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — real ACP peers (an agent on the official SDK, a
 * production agent from npm) behind the daemon on a private bus.
 *
 * A small fixture on top of daemon-fixture and collector: the daemon, the
 * streaming signals of its connection, a watchdog, where the peers'
 * npm packages are installed, and how a peer that is not installed is
 * reported (a skip, or a failure under AGENTBROKER_REQUIRE_ALL_TESTS=1).
 */
#pragma once

#include <gio/gio.h>

#include "collector.h"
#include "daemon-fixture.h"

G_BEGIN_DECLS

typedef struct
{
  AbDaemonFixture d;
  AbCollector *c; /* signals on d.connection */
} PeerFixture;

/* Sets up the fixture (no daemon yet); @alarm_seconds bounds the whole
 * test: a hang prints the daemon's log and exits. */
void peer_fixture_up (PeerFixture *fx, guint alarm_seconds);
void peer_fixture_down (PeerFixture *fx);
void peer_fixture_start (PeerFixture *fx, const char *yaml);

/* The file @relpath of the npm package directory tests/@pkgdir whose
 * node_modules/@probe exists: first in the build tree (a copy installed
 * there with npm ci), then in the source tree; NULL if neither. */
char *peer_find_installed (const char *pkgdir, const char *relpath,
                           const char *probe);

/* A peer that is not there: skip with @why, or fail under
 * AGENTBROKER_REQUIRE_ALL_TESTS=1. */
void peer_unavailable (const char *why);

G_END_DECLS
