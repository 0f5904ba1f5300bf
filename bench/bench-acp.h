/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — the ACP front door: the official SDK's client
 * (tests/acp-client/bench.mjs) reading a streamed answer */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* node and the SDK client's bench script in the build tree @builddir
 * (installed there with npm ci), or FALSE with why in @why (free it). */
gboolean bench_acp_find (const char *builddir, char **node, char **script,
                         char **why);

/* Updates per second the client read of "stream @n 16" from @command (an
 * ACP agent command, NULL-terminated), its session in @cwd, with
 * DBUS_SESSION_BUS_ADDRESS=@bus_address; NAN on failure (said on
 * stderr). */
double bench_acp_rate (const char *node, const char *script,
                       const char *bus_address, const char *cwd, guint64 n,
                       const char *const *command);

G_END_DECLS
