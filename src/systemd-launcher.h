/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — starting an agent as a transient systemd service
 *
 * The properties handed to org.freedesktop.systemd1.Manager's
 * StartTransientUnit for one session's agent.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The a(sv) of unit properties for an agent running @argv with exactly
 * the environment @envp in @cwd for @thread: in AB_SESSIONS_SLICE, stdin
 * and stdout from the file descriptors at @stdin_index and @stdout_index
 * of the call's fd list, stderr to the journal tagged
 * AGENTBROKER_THREAD=@thread, the whole control group killed on stop,
 * the unit collected even when it failed.  With @system_mode the agent
 * also runs under a dynamic user in a read-only system, HOME=@cwd. */
GVariant *ab_systemd_transient_properties (const char *const *argv,
                                           const char *const *envp,
                                           const char *cwd, const char *thread,
                                           gint32 stdin_index,
                                           gint32 stdout_index,
                                           gboolean system_mode);

G_END_DECLS
