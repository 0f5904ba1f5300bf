/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the systemd unit a session's agent runs in
 *
 * Each session's agent is meant to run as its own transient service,
 * named after the thread so that systemctl and journalctl find it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The slice all session units are placed in. */
#define AB_SESSIONS_SLICE "agentbroker-sessions.slice"

/* The two forms of a session unit's name (below). */
#define AB_SESSION_UNIT_PREFIX "agentbroker-session-"
#define AB_HASHED_SESSION_UNIT_PREFIX "agentbroker-hashed-session-"

/* Longest unit name systemd accepts, suffix included. */
#define AB_UNIT_NAME_MAX 255

/* The service unit name for @thread (a valid thread id):
 * "agentbroker-session-<escaped>.service", the thread escaped as
 * systemd-escape does ('/' becomes '-', other bytes outside
 * [A-Za-z0-9:_.] become \xNN).  When that is longer than
 * AB_UNIT_NAME_MAX the name is "agentbroker-hashed-session-<sha256 of
 * the thread>.service"; the two forms never collide. */
char *ab_systemd_unit_name_for_thread (const char *thread);

G_END_DECLS
