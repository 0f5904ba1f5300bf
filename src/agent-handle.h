/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — a running agent, however it was started
 *
 * An AbAcpConnection talks to its agent over the agent's stdin and stdout
 * and stops it through this interface: AbAgentProcess is an agent the
 * daemon spawned as its child, AbAgentUnit one that runs as a transient
 * systemd service.
 *
 * Signal (emitted from the main loop, once, when the agent is gone):
 *
 *   void exited (AbAgentHandle *self, int wait_status,
 *                const char *description, gpointer user_data);
 *       @wait_status as from waitpid() (a unit's is made from its main
 *       process's exit code or signal); @description is "exited with
 *       status 3", "killed by signal 9" or, for a unit, "killed by the
 *       out-of-memory killer".
 */
#pragma once

#include <gio/gio.h>

#include "agent-usage.h"

G_BEGIN_DECLS

#define AB_TYPE_AGENT_HANDLE (ab_agent_handle_get_type ())
G_DECLARE_INTERFACE (AbAgentHandle, ab_agent_handle, AB, AGENT_HANDLE, GObject)

struct _AbAgentHandleInterface
{
  GTypeInterface parent_iface;

  guint (*get_pid) (AbAgentHandle *self);
  const char *(*get_exit_description) (AbAgentHandle *self);
  char *(*get_stderr_tail) (AbAgentHandle *self);
  void (*terminate_async) (AbAgentHandle *self, gint64 kill_timeout_usec,
                           GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data);
  gboolean (*terminate_finish) (AbAgentHandle *self, GAsyncResult *result,
                                GError **error);
  void (*kill_now) (AbAgentHandle *self);
  gboolean (*send_signal) (AbAgentHandle *self, int signo, GError **error);
  /* Optional: only a unit can outlive the daemon. */
  void (*detach) (AbAgentHandle *self, GBytes *unread);
  /* Optional: an agent that is no unit has neither. */
  const char *(*get_unit) (AbAgentHandle *self);
  void (*get_usage) (AbAgentHandle *self, AbAgentUsage *usage);
};

/* The agent's main process id; 0 when none is known. */
guint ab_agent_handle_get_pid (AbAgentHandle *self);
/* NULL while the agent runs, else how it ended ("exited with status 3"). */
const char *ab_agent_handle_get_exit_description (AbAgentHandle *self);
/* The last lines the agent wrote to stderr, joined with "\n"; "" when
 * none are kept here (a unit's go to the journal). */
char *ab_agent_handle_get_stderr_tail (AbAgentHandle *self);
/* SIGTERM to everything the agent started, SIGKILL after
 * @kill_timeout_usec; completes once all of it is gone.  Never fails
 * except when cancelled (cancelling stops only the wait). */
void ab_agent_handle_terminate_async (AbAgentHandle *self,
                                      gint64 kill_timeout_usec,
                                      GCancellable *cancellable,
                                      GAsyncReadyCallback callback,
                                      gpointer user_data);
gboolean ab_agent_handle_terminate_finish (AbAgentHandle *self,
                                           GAsyncResult *result,
                                           GError **error);
/* SIGKILL to everything the agent started, at once (the daemon exits). */
void ab_agent_handle_kill_now (AbAgentHandle *self);
/* @signo to everything the agent started (agentctl kill).  Fails with
 * AB_ERROR_FAILED when nothing of it is left. */
gboolean ab_agent_handle_send_signal (AbAgentHandle *self, int signo,
                                      GError **error);

/* The agent is left running when the handle goes, for the daemon's next
 * instance (a unit), with @unread (what was read of its output but not
 * handled, or NULL); an agent that cannot outlive the daemon ignores it. */
void ab_agent_handle_detach (AbAgentHandle *self, GBytes *unread);
/* The systemd unit the agent runs as, or NULL. */
const char *ab_agent_handle_get_unit (AbAgentHandle *self);
/* What the agent's unit uses now, read when asked; every value unknown
 * for an agent that is no unit or has ended. */
void ab_agent_handle_get_usage (AbAgentHandle *self, AbAgentUsage *usage);

/* The signal of @name: "TERM", "SIGTERM" or its number "15", from the few
 * an operator sends an agent (HUP INT QUIT KILL USR1 USR2 TERM CONT STOP
 * TSTP WINCH).  Anything else fails with AB_ERROR_INVALID_ARGUMENT. */
gboolean ab_agent_signal_from_name (const char *name, int *out_signo,
                                    GError **error);

G_END_DECLS
