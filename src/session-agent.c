/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: the agent's start, messages and end */
#include "config.h"

#include <string.h>

#include "session-private.h"

/* ---- the agent's messages ---------------------------------------------- */

static void
notify_token_usage (AbSession *self)
{
  self->usage_notified = g_get_monotonic_time ();
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_TOKEN_USAGE]);
}

static gboolean
on_usage_due (gpointer user_data)
{
  AbSession *self = user_data;

  self->usage_source = 0;
  notify_token_usage (self);
  return G_SOURCE_REMOVE;
}

/* A usage_update: its values are kept (the update itself goes on to the
 * watchers as every other).  An agent may send one with every chunk: a
 * change is notified at most once a second, and the last one always. */
static void
take_usage (AbSession *self, const char *json)
{
  gint64 since;

  if (json == NULL
      || !ab_acp_read_usage (json, strlen (json), &self->token_usage))
    return;
  if (self->usage_source != 0)
    return;
  since = g_get_monotonic_time () - self->usage_notified;
  if (self->usage_notified == 0 || since >= G_USEC_PER_SEC)
    notify_token_usage (self);
  else
    self->usage_source = g_timeout_add (
        (guint)((G_USEC_PER_SEC - since) / 1000) + 1, on_usage_due, self);
}

/* Updates read together leave together, as soon as the connection has
 * them: a slow agent's update leaves alone, without waiting for another
 * turn of the main loop. Those about the session go as turn 0. */
static void
on_update (AbAcpConnection *conn, GArray *updates, AbSession *self)
{
  self->last_progress = g_get_monotonic_time ();
  session_touch (self);
  for (guint i = 0; i < updates->len; i++)
    {
      AbAcpUpdate *update = &g_array_index (updates, AbAcpUpdate, i);

      if (update->usage)
        take_usage (self, update->json);
      session_queue_update (self,
                            self->current != NULL && !update->session_level
                                ? self->current->number
                                : 0,
                            g_steal_pointer (&update->json));
    }
  session_flush_updates (self);
}

void
session_complete_suspend_tasks (AbSession *self)
{
  g_autoptr (GPtrArray) tasks = g_steal_pointer (&self->suspend_tasks);

  self->suspend_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < tasks->len; i++)
    g_task_return_boolean (g_ptr_array_index (tasks, i), TRUE);
}

/* The agent is gone: suspends complete, once the record is written. */
void
session_finish_suspends (AbSession *self)
{
  if (self->writes > 0)
    {
      self->suspends_wait = TRUE;
      return;
    }
  session_complete_suspend_tasks (self);
}

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbSession) self = user_data;

  ab_acp_connection_close_finish (AB_ACP_CONNECTION (source), result);
  if (self->closing == AB_ACP_CONNECTION (source))
    {
      g_clear_object (&self->closing);
      /* The pool counts the agent gone now. */
      g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_PID]);
    }
  session_finish_suspends (self);
  session_schedule_kick (self);
}

/* Prompts waiting for the agent get @code with @message: none was
 * accepted. */
void
session_refuse_waiters (AbSession *self, int code, const char *message)
{
  StartWaiter *waiter;

  if (self->waiting_turn > self->turns && !g_queue_is_empty (&self->waiters))
    session_forget_waiting_prompt (self);
  while ((waiter = g_queue_pop_head (&self->waiters)) != NULL)
    {
      g_task_return_new_error (waiter->task, AB_ERROR, code, "%s", message);
      session_waiter_free (waiter);
    }
  session_notify_queued (self);
}

void
session_fail_waiters (AbSession *self, const char *message)
{
  session_refuse_waiters (self, AB_ERROR_AGENT_FAILED, message);
}

/* Stops the agent process group; the session ends in @final_state. */
void
session_teardown (AbSession *self, AbSessionState final_state)
{
  g_clear_handle_id (&self->handshake_source, g_source_remove);
  session_flush_updates (self);
  session_deny_all_permissions (self);

  if (self->conn == NULL)
    {
      session_set_state (self, final_state);
      if (self->closing == NULL)
        session_finish_suspends (self);
      return;
    }
  g_signal_handlers_disconnect_by_data (self->conn, self);
  self->closing = g_steal_pointer (&self->conn);
  session_set_state (self, final_state);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_PID]);
  ab_acp_connection_close_async (self->closing, self->config->kill_timeout_usec,
                                 on_closed, g_object_ref (self));
}

/* The agent died or broke the protocol. Whoever waits hears why; the
 * session is failed and the next prompt starts a new agent. */
static void
agent_lost (AbSession *self, const char *reason, const char *why)
{
  g_autofree char *tail = NULL;
  g_autofree char *message = NULL;

  if (self->conn == NULL)
    return;

  tail = ab_acp_connection_get_stderr_tail (self->conn);
  if (tail != NULL && tail[0] != '\0')
    message = g_strdup_printf ("%s; agent stderr:\n%s", why, tail);
  else
    message = g_strdup (why);

  ab_log_event (AB_LOG_AGENT_LOST, G_LOG_LEVEL_WARNING, self->thread,
                AB_LOG_NO_CALLER, "session %s: agent lost: %s", self->thread,
                why);
  g_free (self->failure);
  self->failure = g_strdup (message);

  session_fail_waiters (self, message);
  session_end_turn (self, reason, message);
  session_teardown (self, AB_SESSION_STATE_FAILED);
}

static void
on_lost (AbAcpConnection *conn, const char *reason, const char *why,
         AbSession *self)
{
  agent_lost (self, reason, why);
}

/* ---- start-up: spawn and handshake -------------------------------------- */

static void
handshake_done (AbSession *self)
{
  StartWaiter *waiter;

  g_clear_handle_id (&self->handshake_source, g_source_remove);
  g_clear_pointer (&self->failure, g_free);
  /* An adopted agent may be at a turn handed over already. */
  session_set_state (self, self->current != NULL ? AB_SESSION_STATE_BUSY
                                                 : AB_SESSION_STATE_IDLE);
  g_message ("session %s: agent '%s' ready (pid %u, ACP session %s)",
             self->thread, self->agent, session_get_pid (self),
             self->acp_session);

  while ((waiter = g_queue_pop_head (&self->waiters)) != NULL)
    {
      guint64 turn = session_accept_turn (self, waiter->text, waiter->content,
                                          waiter->sender);
      g_task_return_pointer (waiter->task, g_memdup2 (&turn, sizeof turn),
                             g_free);
      session_waiter_free (waiter);
    }
  session_schedule_kick (self);
}

static void
set_acp_session (AbSession *self, char *id)
{
  if (g_strcmp0 (self->acp_session, id) == 0)
    {
      g_free (id);
      return;
    }
  g_free (self->acp_session);
  self->acp_session = id;
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_ACP_SESSION]);
  /* A prompt waiting for the handshake starts its turn right away, and
   * that write carries the ACP session too. */
  if (g_queue_is_empty (&self->waiters) && g_queue_is_empty (&self->queue))
    session_persist (self);
}

/* The handshake is over: the ACP session is open, or the agent refused
 * (a failed connection is reported once, as the agent lost). */
static void
on_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbSession) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AbAcpStarted) started = ab_acp_connection_start_finish (
      AB_ACP_CONNECTION (source), result, &error);

  if (AB_ACP_CONNECTION (source) != self->conn)
    return;
  if (started == NULL)
    {
      if (g_error_matches (error, AB_ACP_CONNECTION_ERROR,
                           AB_ACP_CONNECTION_ERROR_REFUSED))
        agent_lost (self, "agent-error", error->message);
      return;
    }
  if (started->history_lost)
    self->history_lost = TRUE;
  set_acp_session (self, g_steal_pointer (&started->session_id));
  /* An agent adopted from the previous instance was described then. */
  if (started->agent != NULL)
    g_signal_emit (self, session_signals[SIGNAL_AGENT_READY], 0,
                   started->agent);
  handshake_done (self);
}

static gboolean
on_handshake_timeout (gpointer user_data)
{
  AbSession *self = user_data;

  self->handshake_source = 0;
  agent_lost (self, "agent-error",
              _ ("the agent did not complete the ACP handshake within "
                 "timeouts.handshake"));
  return G_SOURCE_REMOVE;
}

/* Starts the agent and its handshake; NULL, or why it failed. */
static char *
spawn_agent (AbSession *self)
{
  const AbAgentProfile *prof = session_profile (self);
  g_autoptr (GError) error = NULL;
  char *cwd = NULL;

  if (prof == NULL)
    return g_strdup_printf (_ ("agent profile '%s' is not configured"),
                            self->agent);

  self->conn = ab_agent_launcher_launch (
      self->launcher, prof, self->thread, self->state_dir,
      self->config->max_message_bytes, &cwd, &error);
  if (cwd != NULL)
    {
      gboolean changed = g_strcmp0 (cwd, self->cwd) != 0;

      g_free (self->cwd);
      self->cwd = cwd;
      if (changed)
        g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_CWD]);
    }
  if (self->conn == NULL)
    return g_strdup (error->message);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_PID]);
  g_signal_connect (self->conn, "update", G_CALLBACK (on_update), self);
  g_signal_connect (self->conn, "permission-request",
                    G_CALLBACK (session_on_permission_request), self);
  g_signal_connect (self->conn, "lost", G_CALLBACK (on_lost), self);

  self->handshake_source
      = g_timeout_add (MAX (self->config->handshake_timeout_usec / 1000, 1),
                       on_handshake_timeout, self);
  ab_acp_connection_start_async (
      self->conn,
      &(AbAcpStartParams){ .agent = self->agent,
                           .thread = self->thread,
                           .cwd = self->cwd,
                           .resume = self->acp_session,
                           .auth_method = prof->auth_method },
      on_started, g_object_ref (self));
  return NULL;
}

void
session_start_agent (AbSession *self)
{
  g_autofree char *message = NULL;

  g_return_if_fail (self->conn == NULL && self->closing == NULL);
  g_return_if_fail (self->launcher != NULL);

  /* The new agent runs the current profile: a switch asked for the old
   * one is done (a turn ending later must not stop this agent). */
  self->restart_pending = FALSE;
  session_set_state (self, AB_SESSION_STATE_STARTING);
  message = spawn_agent (self);
  if (message == NULL)
    return;

  ab_log_event (AB_LOG_AGENT_START_FAILED, G_LOG_LEVEL_WARNING, self->thread,
                AB_LOG_NO_CALLER, "session %s: cannot start agent: %s",
                self->thread, message);
  g_free (self->failure);
  self->failure = g_strdup (message);
  session_fail_waiters (self, message);
  session_drop_queue (self, "agent-error", message);
  session_set_state (self, AB_SESSION_STATE_FAILED);
}
