/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — a running agent, however it was started */
#include "config.h"

#include <signal.h>

#include <glib/gi18n.h>

#include "agent-handle.h"
#include "error.h"

G_DEFINE_INTERFACE (AbAgentHandle, ab_agent_handle, G_TYPE_OBJECT)

static void
ab_agent_handle_default_init (AbAgentHandleInterface *iface)
{
  g_signal_new ("exited", G_TYPE_FROM_INTERFACE (iface), G_SIGNAL_RUN_LAST, 0,
                NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT,
                G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

guint
ab_agent_handle_get_pid (AbAgentHandle *self)
{
  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), 0);

  return AB_AGENT_HANDLE_GET_IFACE (self)->get_pid (self);
}

const char *
ab_agent_handle_get_exit_description (AbAgentHandle *self)
{
  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), NULL);

  return AB_AGENT_HANDLE_GET_IFACE (self)->get_exit_description (self);
}

char *
ab_agent_handle_get_stderr_tail (AbAgentHandle *self)
{
  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), NULL);

  return AB_AGENT_HANDLE_GET_IFACE (self)->get_stderr_tail (self);
}

void
ab_agent_handle_detach (AbAgentHandle *self, GBytes *unread)
{
  AbAgentHandleInterface *iface;

  g_return_if_fail (AB_IS_AGENT_HANDLE (self));

  iface = AB_AGENT_HANDLE_GET_IFACE (self);
  if (iface->detach != NULL)
    iface->detach (self, unread);
}

const char *
ab_agent_handle_get_unit (AbAgentHandle *self)
{
  AbAgentHandleInterface *iface;

  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), NULL);

  iface = AB_AGENT_HANDLE_GET_IFACE (self);
  return iface->get_unit != NULL ? iface->get_unit (self) : NULL;
}

void
ab_agent_handle_get_usage (AbAgentHandle *self, AbAgentUsage *usage)
{
  AbAgentHandleInterface *iface;

  ab_agent_usage_init (usage);
  g_return_if_fail (AB_IS_AGENT_HANDLE (self));

  iface = AB_AGENT_HANDLE_GET_IFACE (self);
  if (iface->get_usage != NULL)
    iface->get_usage (self, usage);
}

void
ab_agent_handle_terminate_async (AbAgentHandle *self, gint64 kill_timeout_usec,
                                 GCancellable *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer user_data)
{
  g_return_if_fail (AB_IS_AGENT_HANDLE (self));

  AB_AGENT_HANDLE_GET_IFACE (self)->terminate_async (
      self, kill_timeout_usec, cancellable, callback, user_data);
}

gboolean
ab_agent_handle_terminate_finish (AbAgentHandle *self, GAsyncResult *result,
                                  GError **error)
{
  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), FALSE);

  return AB_AGENT_HANDLE_GET_IFACE (self)->terminate_finish (self, result,
                                                             error);
}

void
ab_agent_handle_kill_now (AbAgentHandle *self)
{
  g_return_if_fail (AB_IS_AGENT_HANDLE (self));

  AB_AGENT_HANDLE_GET_IFACE (self)->kill_now (self);
}

gboolean
ab_agent_handle_send_signal (AbAgentHandle *self, int signo, GError **error)
{
  g_return_val_if_fail (AB_IS_AGENT_HANDLE (self), FALSE);

  return AB_AGENT_HANDLE_GET_IFACE (self)->send_signal (self, signo, error);
}

gboolean
ab_agent_signal_from_name (const char *name, int *out_signo, GError **error)
{
  static const struct
  {
    const char *name;
    int signo;
  } known[] = {
    { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT },
    { "KILL", SIGKILL }, { "USR1", SIGUSR1 },   { "USR2", SIGUSR2 },
    { "TERM", SIGTERM }, { "CONT", SIGCONT },   { "STOP", SIGSTOP },
    { "TSTP", SIGTSTP }, { "WINCH", SIGWINCH },
  };
  const char *bare = g_str_has_prefix (name, "SIG") ? name + 3 : name;
  guint64 number = 0;
  gboolean numeric
      = g_ascii_string_to_unsigned (name, 10, 1, 64, &number, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (known); i++)
    if (numeric ? (guint64)known[i].signo == number
                : g_str_equal (bare, known[i].name))
      {
        *out_signo = known[i].signo;
        return TRUE;
      }
  g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
               _ ("'%.32s' is not a signal agentbroker sends; use one of "
                  "HUP INT QUIT KILL USR1 USR2 TERM CONT STOP TSTP WINCH"),
               name);
  return FALSE;
}
