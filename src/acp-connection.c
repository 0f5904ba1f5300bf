/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the ACP conversation with one agent: the handshake */
#include "config.h"

#include <glib/gi18n.h>

#include "acp-connection.h"
#include "acp.h"

G_DEFINE_QUARK (ab - acp - connection - error - quark, ab_acp_connection_error)

struct _AbAcpConnection
{
  GObject parent_instance;

  AbJsonRpc *rpc;
  gboolean loading; /* session/load runs: its updates replay history */
  gboolean started; /* the handshake was asked for */
};

G_DEFINE_TYPE (AbAcpConnection, ab_acp_connection, G_TYPE_OBJECT)

/* The handshake in progress: the task's data. */
typedef struct
{
  char *agent;
  char *thread;
  char *cwd;
  char *resume;
  char *auth_method;
  AbAcpStarted *started;
} Start;

void
ab_acp_started_free (AbAcpStarted *started)
{
  if (started == NULL)
    return;
  g_free (started->session_id);
  g_free (started->auth_methods);
  g_free (started);
}

static void
start_free (Start *s)
{
  g_free (s->agent);
  g_free (s->thread);
  g_free (s->cwd);
  g_free (s->resume);
  g_free (s->auth_method);
  ab_acp_started_free (s->started);
  g_free (s);
}

/* The agent's answer to a step: TRUE with the result in @reply, or with
 * NULL there and the agent's JSON-RPC error in @error.  FALSE when the
 * connection failed: @task is then completed with that failure. */
static gboolean
step_answered (GTask *task, GAsyncResult *result, JsonNode **reply,
               GError **error)
{
  AbAcpConnection *self = g_task_get_source_object (task);
  g_autoptr (GError) local = NULL;

  *reply = ab_jsonrpc_call_finish (self->rpc, result, &local);
  if (*reply == NULL && local->domain != AB_JSONRPC_ERROR)
    {
      self->loading = FALSE;
      g_task_return_error (task, g_steal_pointer (&local));
      return FALSE;
    }
  if (local != NULL)
    g_propagate_error (error, g_steal_pointer (&local));
  return TRUE;
}

static void refuse (GTask *task, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
refuse (GTask *task, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_task_return_new_error (task, AB_ACP_CONNECTION_ERROR,
                           AB_ACP_CONNECTION_ERROR_REFUSED, "%s", message);
}

static void
finish (GTask *task, char *session_id)
{
  Start *s = g_task_get_task_data (task);
  AbAcpStarted *started = g_steal_pointer (&s->started);

  started->session_id = session_id;
  g_task_return_pointer (task, started, (GDestroyNotify)ab_acp_started_free);
}

/* An agent that needs authentication fails session/new with
 * "Authentication required": say which methods it offers, unless the
 * profile named one. */
static void
on_session_new (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Start *s = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;
  char *id;

  if (!step_answered (task, result, &reply, &error))
    return;
  if (reply == NULL)
    {
      if (s->auth_method == NULL && s->started->auth_methods != NULL
          && s->started->auth_methods[0] != '\0')
        refuse (task,
                _ ("agent '%s' failed session/new: %s (the agent offers the "
                   "auth methods %s; name one as auth_method in its "
                   "profile)"),
                s->agent, error->message, s->started->auth_methods);
      else
        refuse (task, _ ("agent '%s' failed session/new: %s"), s->agent,
                error->message);
      return;
    }
  id = ab_acp_session_id_from_result (reply);
  if (id == NULL)
    {
      refuse (task, "%s",
              _ ("agent answered session/new without a valid sessionId"));
      return;
    }
  finish (task, id);
}

static void
new_session (GTask *task)
{
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);

  ab_jsonrpc_call (self->rpc, "session/new", ab_acp_new_session_params (s->cwd),
                   NULL, on_session_new, g_object_ref (task));
}

static void
on_session_load (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;

  if (!step_answered (task, result, &reply, &error))
    return;
  self->loading = FALSE;
  if (reply == NULL)
    {
      g_message ("session %s: session/load of %s failed (%s); starting a "
                 "new ACP session",
                 s->thread, s->resume, error->message);
      s->started->history_lost = TRUE;
      new_session (task);
      return;
    }
  finish (task, g_strdup (s->resume));
}

/* session/load when there is a conversation to resume and the agent can,
 * else session/new (and the history is lost). */
static void
open_session (GTask *task)
{
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);

  if (s->resume != NULL && s->started->can_load)
    {
      self->loading = TRUE;
      ab_jsonrpc_call (self->rpc, "session/load",
                       ab_acp_load_session_params (s->resume, s->cwd), NULL,
                       on_session_load, g_object_ref (task));
      return;
    }
  if (s->resume != NULL)
    s->started->history_lost = TRUE;
  new_session (task);
}

static void
step_refused (GTask *task, const char *what, const GError *error)
{
  Start *s = g_task_get_task_data (task);

  refuse (task, _ ("agent '%s' failed %s: %s"), s->agent, what, error->message);
}

static void
on_authenticated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;

  if (!step_answered (task, result, &reply, &error))
    return;
  if (reply == NULL)
    {
      step_refused (task, "authenticate", error);
      return;
    }
  open_session (task);
}

static void
on_initialized (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;

  if (!step_answered (task, result, &reply, &error))
    return;
  if (reply == NULL)
    {
      step_refused (task, "initialize", error);
      return;
    }

  s->started->can_load = ab_acp_agent_can_load (reply);
  s->started->auth_methods = ab_acp_describe_auth_methods (reply);
  if (s->auth_method != NULL)
    ab_jsonrpc_call (self->rpc, "authenticate",
                     ab_acp_authenticate_params (s->auth_method), NULL,
                     on_authenticated, g_object_ref (task));
  else
    open_session (task);
}

void
ab_acp_connection_start_async (AbAcpConnection *self,
                               const AbAcpStartParams *params,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  Start *s;

  g_return_if_fail (AB_IS_ACP_CONNECTION (self));
  g_return_if_fail (params != NULL && params->cwd != NULL);
  g_return_if_fail (!self->started);

  self->started = TRUE;
  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_acp_connection_start_async);
  s = g_new0 (Start, 1);
  s->agent = g_strdup (params->agent);
  s->thread = g_strdup (params->thread);
  s->cwd = g_strdup (params->cwd);
  s->resume = g_strdup (params->resume);
  s->auth_method = g_strdup (params->auth_method);
  s->started = g_new0 (AbAcpStarted, 1);
  g_task_set_task_data (task, s, (GDestroyNotify)start_free);

  ab_jsonrpc_call (self->rpc, "initialize", ab_acp_initialize_params (), NULL,
                   on_initialized, g_steal_pointer (&task));
}

AbAcpStarted *
ab_acp_connection_start_finish (AbAcpConnection *self, GAsyncResult *result,
                                GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
ab_acp_connection_is_loading (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), FALSE);

  return self->loading;
}

AbJsonRpc *
ab_acp_connection_get_rpc (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), NULL);

  return self->rpc;
}

static void
ab_acp_connection_finalize (GObject *object)
{
  AbAcpConnection *self = AB_ACP_CONNECTION (object);

  g_clear_object (&self->rpc);
  G_OBJECT_CLASS (ab_acp_connection_parent_class)->finalize (object);
}

static void
ab_acp_connection_class_init (AbAcpConnectionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = ab_acp_connection_finalize;
}

static void
ab_acp_connection_init (AbAcpConnection *self)
{
}

AbAcpConnection *
ab_acp_connection_new (AbJsonRpc *rpc)
{
  AbAcpConnection *self;

  g_return_val_if_fail (AB_IS_JSONRPC (rpc), NULL);

  self = g_object_new (AB_TYPE_ACP_CONNECTION, NULL);
  self->rpc = g_object_ref (rpc);
  return self;
}
