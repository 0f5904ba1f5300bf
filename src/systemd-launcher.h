/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — starting each agent as a transient systemd service
 *
 * AbSystemdLauncher starts a session's agent as its own service,
 * agentbroker-session-<thread>.service (systemd-unit-name.h), in
 * agentbroker-sessions.slice, through StartTransientUnit on the manager
 * the daemon runs under.  The agent's stdin and stdout are FIFOs in the
 * daemon's state directory that the manager opens for the unit (stdio
 * passed as descriptors would take the agent's stderr along); its stderr
 * goes to the journal from the unit, tagged
 * AGENTBROKER_THREAD=.  The unit is bound to the daemon's own unit, so no
 * agent outlives it, and stopping the unit stops its whole control group.
 *
 * Under the system manager each agent also runs as a user of its own
 * (DynamicUser=) in a read-only system, with a private /tmp and no
 * devices; its working directory and HOME are its own state directory,
 * /var/lib/agentbroker-sessions/<unit>, which no other session can reach,
 * and the profile's credentials reach it as systemd credentials, not
 * through the daemon's environment.  Under a user's manager it runs as
 * that user, in the working directory the profile's template names.
 */
#pragma once

#include <gio/gio.h>

#include "agent-launcher.h"

G_BEGIN_DECLS

/* What a session's unit is made of. */
typedef struct
{
  const char *const *argv;
  const char *const *envp; /* the agent's whole environment */
  const char *cwd;         /* user mode: its working directory */
  const char *thread;
  const char *unit;          /* the unit's name */
  const char *daemon_unit;   /* the daemon's unit, or NULL */
  const char *credentials;   /* the daemon's $CREDENTIALS_DIRECTORY */
  GPtrArray *credential_env; /* AbEnvEntry *, those with a credential */
  const AbSandbox *sandbox;  /* the profile's limits, or NULL */
  const char *stdin_path;    /* FIFOs the manager opens for the agent */
  const char *stdout_path;
  gboolean system_mode;
} AbUnitSpec;

/* The a(sv) of StartTransientUnit properties for @spec (floating). */
GVariant *ab_systemd_transient_properties (const AbUnitSpec *spec);

/* The working directory of @unit's agent under the system manager. */
char *ab_systemd_session_directory (const char *unit);

#define AB_TYPE_SYSTEMD_LAUNCHER (ab_systemd_launcher_get_type ())
G_DECLARE_FINAL_TYPE (AbSystemdLauncher, ab_systemd_launcher, AB,
                      SYSTEMD_LAUNCHER, GObject)

/* A launcher using the manager on @bus (the system bus with
 * @system_mode, else the user's session bus), which must be the manager
 * of the daemon's own unit.  Fails when it cannot be reached, when the
 * daemon runs in no unit of it, or when it does not let the daemon start
 * units.  @passed (or NULL) holds the pipes of the agents an earlier
 * instance left running (ab_systemd_take_passed_fds()): the launcher
 * takes those whose agent still runs and goes on with them when their
 * session starts its agent; every other agent unit still running is
 * stopped. */
AbAgentLauncher *ab_systemd_launcher_new (GDBusConnection *bus,
                                          gboolean system_mode,
                                          GHashTable *passed, GError **error);

/* The descriptors systemd passed from the daemon's fd store that hold
 * agents' pipes: name → descriptor.  Read before anything else takes the
 * passed descriptors. */
GHashTable *ab_systemd_take_passed_fds (void);
/* Closes those left in @passed and frees it. */
void ab_systemd_passed_fds_close (GHashTable *passed);

/* Whether the agent of @thread was left running by an earlier instance,
 * for its session to go on with. */
gboolean ab_systemd_launcher_keeps_agent (AbSystemdLauncher *self,
                                          const char *thread);
/* Stops the kept agents no session went on with. */
void ab_systemd_launcher_release_unclaimed (AbSystemdLauncher *self);
/* Whether the manager is restarting the daemon's own unit (systemctl
 * restart), rather than stopping it. */
gboolean ab_systemd_launcher_restart_pending (AbSystemdLauncher *self);

G_END_DECLS
