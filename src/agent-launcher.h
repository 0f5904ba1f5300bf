/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — how an agent is started
 *
 * A session asks its launcher for an agent running a profile for a
 * thread, and gets the ACP connection to it.  The launcher decides where the
 * agent runs (its working directory, from the profile's template), with what
 * (its environment, credentials included) and how it is started.
 * AbDirectLauncher spawns the agent as a child of the daemon with
 * ab_agent_process_spawn(); a launcher that starts agents some other way
 * implements the same interface, and the session does not change.
 *
 * No signals: what happens to the agent afterwards is reported by its
 * AbAcpConnection.
 */
#pragma once

#include <gio/gio.h>

#include "ab-config.h"
#include "acp-connection.h"

G_BEGIN_DECLS

/* Longest credential file read into an agent's environment. */
#define AB_AGENT_MAX_CREDENTIAL_BYTES (64 * 1024)

#define AB_TYPE_AGENT_LAUNCHER (ab_agent_launcher_get_type ())
G_DECLARE_INTERFACE (AbAgentLauncher, ab_agent_launcher, AB, AGENT_LAUNCHER,
                     GObject)

struct _AbAgentLauncherInterface
{
  GTypeInterface parent_iface;

  AbAcpConnection *(*launch) (AbAgentLauncher *self,
                              const AbAgentProfile *profile, const char *thread,
                              const char *state_dir, gsize max_message_bytes,
                              char **cwd, GError **error);
};

/* Starts an agent of @profile for @thread, whose working directory
 * templates expand {state} to @state_dir, and returns the connection to
 * it (its handshake not yet run), whose messages are at most
 * @max_message_bytes.  *@cwd is set to the working directory (newly
 * allocated) as soon as it is chosen, even when the start fails
 * afterwards.  Fails with AB_ERROR_AGENT_FAILED or the spawn's error. */
AbAcpConnection *
ab_agent_launcher_launch (AbAgentLauncher *self, const AbAgentProfile *profile,
                          const char *thread, const char *state_dir,
                          gsize max_message_bytes, char **cwd, GError **error);

/* The agent's environment: HOME PATH USER LANG from the daemon's
 * environment (when set), then the @inherit_env names the daemon has,
 * then @extra ("NAME=VALUE" strings), then AGENTBROKER_THREAD=@thread; a
 * later entry replaces an earlier one of the same name.  Free with
 * g_strfreev(). */
char **ab_agent_build_env (const char *const *inherit_env, GPtrArray *extra,
                           const char *thread);

/* Spawns the agent as the daemon's child: the working directory from the
 * template (created 0700), the profile's environment over the inherited
 * names, credentials read from $CREDENTIALS_DIRECTORY. */
#define AB_TYPE_DIRECT_LAUNCHER (ab_direct_launcher_get_type ())
G_DECLARE_FINAL_TYPE (AbDirectLauncher, ab_direct_launcher, AB, DIRECT_LAUNCHER,
                      GObject)

AbAgentLauncher *ab_direct_launcher_new (void);

/* *@cwd (newly allocated): the working directory @profile's template
 * names for @thread, created 0700 with its parents.  FALSE, *@cwd still
 * set, with AB_ERROR_AGENT_FAILED naming it when it cannot be made. */
gboolean ab_agent_make_working_directory (const AbAgentProfile *profile,
                                          const char *thread,
                                          const char *state_dir, char **cwd,
                                          GError **error);

/* The working directory template @template with {thread} replaced by the
 * escaped @thread and {state} by @state_dir. */
char *ab_agent_expand_working_directory (const char *template,
                                         const char *thread,
                                         const char *state_dir);

G_END_DECLS
