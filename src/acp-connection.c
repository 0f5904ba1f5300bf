/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the ACP conversation with one agent: the handshake,
 * prompts, the agent's messages and its end */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "acp-connection.h"
#include "acp.h"
#include "json-text.h"

/* How long an exited agent's remaining output may take to arrive. */
#define EXIT_DRAIN_MSEC 200

G_DEFINE_QUARK (ab - acp - connection - error - quark, ab_acp_connection_error)

struct _AbAcpConnection
{
  GObject parent_instance;

  AbJsonRpc *rpc;
  AbAgentHandle *agent;   /* or NULL: a test's agent */
  char *session_id;       /* the ACP session open or being loaded */
  gboolean loading;       /* session/load or resume runs: not news */
  gboolean started;       /* the handshake was asked for */
  gboolean adopted;       /* an earlier instance's agent: no handshake */
  gboolean reading;       /* the agent's output is read */
  GBytes *unread;         /* read by the earlier instance, not handled */
  gint64 prompt_id;       /* the session/prompt in flight, or 0 */
  gboolean lost;          /* "lost" was emitted */
  gboolean output_closed; /* the agent's output ended */
  GArray *batch;          /* AbAcpUpdate, json owned: not yet emitted */
  guint exit_drain_source;

  /* once ab_acp_connection_close_async() was called */
  gboolean closing;
  gboolean closed;        /* the agent is gone */
  GPtrArray *close_tasks; /* GTask *, completed when it is */
};

enum
{
  SIGNAL_UPDATE,
  SIGNAL_PERMISSION_REQUEST,
  SIGNAL_LOST,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_TYPE (AbAcpConnection, ab_acp_connection, G_TYPE_OBJECT)

static void flush_batch (AbAcpConnection *self);

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
  g_free (started->agent);
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

  flush_batch (self);
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
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);
  AbAcpStarted *started = g_steal_pointer (&s->started);

  started->session_id = session_id;
  g_free (self->session_id);
  self->session_id = g_strdup (session_id);
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
  ab_acp_describe_session (&s->started->agent, reply);
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
  ab_acp_describe_session (&s->started->agent, reply);
  finish (task, g_strdup (s->resume));
}

static void
load_session (GTask *task)
{
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);

  self->loading = TRUE;
  ab_jsonrpc_call (self->rpc, "session/load",
                   ab_acp_load_session_params (s->resume, s->cwd), NULL,
                   on_session_load, g_object_ref (task));
}

/* A refused resume falls back to a load, then to a new session. */
static void
on_session_resume (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;

  if (!step_answered (task, result, &reply, &error))
    return;
  self->loading = FALSE;
  if (reply != NULL)
    {
      s->started->resumed = TRUE;
      finish (task, g_strdup (s->resume));
      return;
    }
  g_message ("session %s: session/resume of %s failed (%s); %s", s->thread,
             s->resume, error->message,
             s->started->can_load ? "loading it"
                                  : "starting a new ACP session");
  if (s->started->can_load)
    {
      load_session (task);
      return;
    }
  s->started->history_lost = TRUE;
  new_session (task);
}

/* With a conversation to go on with: session/resume when the agent can
 * (nothing is replayed), else session/load when it can, else session/new
 * (and the history is lost).  What arrives before the answer to a resume
 * is dropped as a load's replay is: a well-behaved agent sends nothing
 * then, and an agent that replays anyway must not repeat the history to
 * the watchers. */
static void
open_session (GTask *task)
{
  AbAcpConnection *self = g_task_get_source_object (task);
  Start *s = g_task_get_task_data (task);

  if (s->resume != NULL && s->started->can_resume)
    {
      self->loading = TRUE;
      ab_jsonrpc_call (self->rpc, "session/resume",
                       ab_acp_resume_session_params (s->resume, s->cwd), NULL,
                       on_session_resume, g_object_ref (task));
      return;
    }
  if (s->resume != NULL && s->started->can_load)
    {
      load_session (task);
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
  s->started->can_resume = ab_acp_agent_can_resume (reply);
  s->started->auth_methods = ab_acp_describe_auth_methods (reply);
  s->started->agent = ab_acp_describe_agent (reply);
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
  if (self->adopted)
    {
      g_autoptr (AbAcpStarted) started = NULL;

      if (params->resume == NULL)
        {
          g_task_return_new_error (
              task, AB_ACP_CONNECTION_ERROR, AB_ACP_CONNECTION_ERROR_REFUSED,
              "%s",
              _ ("the agent kept from the previous instance has no ACP "
                 "session to go on with"));
          return;
        }
      /* Its session is open already: nothing to ask. */
      g_free (self->session_id);
      self->session_id = g_strdup (params->resume);
      started = g_new0 (AbAcpStarted, 1);
      started->session_id = g_strdup (params->resume);
      g_task_return_pointer (task, g_steal_pointer (&started),
                             (GDestroyNotify)ab_acp_started_free);
      return;
    }
  s = g_new0 (Start, 1);
  s->agent = g_strdup (params->agent);
  s->thread = g_strdup (params->thread);
  s->cwd = g_strdup (params->cwd);
  s->resume = g_strdup (params->resume);
  s->auth_method = g_strdup (params->auth_method);
  s->started = g_new0 (AbAcpStarted, 1);
  g_task_set_task_data (task, s, (GDestroyNotify)start_free);
  /* Until the agent says which session is open, updates of the one to
   * resume are its. */
  g_free (self->session_id);
  self->session_id = g_strdup (params->resume);

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

/* ---- prompts -------------------------------------------------------- */

/* A call the agent answered with an error is REFUSED, with its message;
 * any other failure (the connection's) goes as it is. */
static void
return_call_error (GTask *task, GError *error)
{
  if (error->domain == AB_JSONRPC_ERROR)
    {
      g_task_return_new_error (task, AB_ACP_CONNECTION_ERROR,
                               AB_ACP_CONNECTION_ERROR_REFUSED, "%s",
                               error->message);
      g_error_free (error);
    }
  else
    g_task_return_error (task, error);
}

static void
on_prompt_answered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbAcpConnection *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;

  /* The turn's updates come before its end. */
  flush_batch (self);
  self->prompt_id = 0;
  reply = ab_jsonrpc_call_finish (self->rpc, result, &error);
  if (reply != NULL)
    g_task_return_pointer (task, ab_acp_stop_reason (reply), g_free);
  else
    return_call_error (task, g_steal_pointer (&error));
}

void
ab_acp_connection_prompt_async (AbAcpConnection *self, JsonNode *prompt,
                                GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (AB_IS_ACP_CONNECTION (self));
  g_return_if_fail (prompt != NULL);

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_acp_connection_prompt_async);
  if (self->session_id == NULL || self->closing)
    {
      json_node_unref (prompt);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "%s",
                               _ ("no ACP session is open"));
      return;
    }
  ab_jsonrpc_call (self->rpc, "session/prompt",
                   ab_acp_prompt_params (self->session_id, prompt), NULL,
                   on_prompt_answered, g_steal_pointer (&task));
  self->prompt_id = ab_jsonrpc_get_last_call_id (self->rpc);
}

gint64
ab_acp_connection_get_prompt_id (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), 0);

  return self->prompt_id;
}

void
ab_acp_connection_adopt_prompt_async (AbAcpConnection *self, gint64 id,
                                      GAsyncReadyCallback callback,
                                      gpointer user_data)
{
  GTask *task;

  g_return_if_fail (AB_IS_ACP_CONNECTION (self));
  g_return_if_fail (self->adopted && !self->reading);

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_acp_connection_prompt_async);
  ab_jsonrpc_expect (self->rpc, id, "session/prompt", on_prompt_answered, task);
  self->prompt_id = id;
}

void
ab_acp_connection_go_on (AbAcpConnection *self)
{
  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  if (self->reading || self->closing)
    return;
  self->reading = TRUE;
  if (self->unread != NULL)
    {
      g_autoptr (GBytes) unread = g_steal_pointer (&self->unread);

      ab_jsonrpc_feed (self->rpc, unread);
    }
  ab_jsonrpc_start (self->rpc);
}

char *
ab_acp_connection_prompt_finish (AbAcpConnection *self, GAsyncResult *result,
                                 GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
on_session_call_answered (GObject *source, GAsyncResult *result,
                          gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbAcpConnection *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;
  JsonNode *reply;

  /* What the agent said before its answer comes first. */
  flush_batch (self);
  reply = ab_jsonrpc_call_finish (self->rpc, result, &error);
  if (reply != NULL)
    g_task_return_pointer (task, reply, (GDestroyNotify)json_node_unref);
  else
    return_call_error (task, g_steal_pointer (&error));
}

void
ab_acp_connection_session_call_async (AbAcpConnection *self, const char *method,
                                      JsonObject *params,
                                      GAsyncReadyCallback callback,
                                      gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  JsonNode *node;

  g_return_if_fail (AB_IS_ACP_CONNECTION (self));
  g_return_if_fail (method != NULL && params != NULL);

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_acp_connection_session_call_async);
  if (self->session_id == NULL || self->closing)
    {
      json_object_unref (params);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "%s",
                               _ ("no ACP session is open"));
      return;
    }
  json_object_set_string_member (params, "sessionId", self->session_id);
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, params);
  ab_jsonrpc_call (self->rpc, method, node, NULL, on_session_call_answered,
                   g_steal_pointer (&task));
}

JsonNode *
ab_acp_connection_session_call_finish (AbAcpConnection *self,
                                       GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
ab_acp_connection_cancel (AbAcpConnection *self)
{
  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  if (self->session_id != NULL && !self->closing)
    ab_jsonrpc_notify (self->rpc, "session/cancel",
                       ab_acp_cancel_params (self->session_id));
}

void
ab_acp_connection_answer_permission (AbAcpConnection *self, JsonNode *id,
                                     const char *option_id)
{
  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  if (self->closing)
    return;
  ab_jsonrpc_reply (self->rpc, id,
                    option_id != NULL ? ab_acp_permission_selected (option_id)
                                      : ab_acp_permission_cancelled ());
}

/* ---- the agent's messages --------------------------------------------- */

static void
update_clear (AbAcpUpdate *update)
{
  g_free (update->json);
}

/* The updates read so far leave together. */
static void
flush_batch (AbAcpConnection *self)
{
  g_autoptr (GArray) batch = NULL;

  if (self->batch->len == 0 || self->closing)
    return;
  batch = g_steal_pointer (&self->batch);
  self->batch = g_array_new (FALSE, FALSE, sizeof (AbAcpUpdate));
  g_array_set_clear_func (self->batch, (GDestroyNotify)update_clear);
  g_signal_emit (self, signals[SIGNAL_UPDATE], 0, batch);
}

static gboolean
span_is (const AbJsonSpan *span, const char *text)
{
  return span->data != NULL && span->len == strlen (text)
         && memcmp (span->data, text, span->len) == 0;
}

/* A span over @text, which may be NULL. */
static AbJsonSpan
span_of (const char *text)
{
  return (AbJsonSpan){ text, text != NULL ? strlen (text) : 0 };
}

/* Whether an update of ACP session @session_id is news: one of the open
 * session's, and not history that session/load replays (nor anything
 * before the answer to session/resume). */
static gboolean
update_wanted (AbAcpConnection *self, const AbJsonSpan *session_id)
{
  if (self->session_id != NULL && !span_is (session_id, self->session_id))
    return FALSE;
  return !self->loading;
}

/* One update, however it was read (@json: transfer full).  Outside the
 * dispatch of a read it leaves at once. */
static void
take_update (AbAcpConnection *self, const AbJsonSpan *kind, char *json)
{
  AbAcpUpdate update = {
    .json = json,
    .session_level = span_is (kind, "available_commands_update")
                     || span_is (kind, "current_mode_update"),
    .usage = span_is (kind, "usage_update"),
  };

  g_array_append_val (self->batch, update);
  if (!ab_jsonrpc_is_reading (self->rpc))
    flush_batch (self);
}

static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params,
                 AbAcpConnection *self)
{
  JsonNode *update;
  AbJsonSpan session_id, kind;

  if (g_strcmp0 (method, "session/update") != 0 || params == NULL
      || !JSON_NODE_HOLDS_OBJECT (params))
    return; /* unknown notifications are ignored */

  update = json_object_get_member (json_node_get_object (params), "update");
  if (update == NULL || !JSON_NODE_HOLDS_OBJECT (update))
    return;
  session_id = span_of (ab_acp_get_string (params, "sessionId"));
  if (!update_wanted (self, &session_id))
    return;
  kind = span_of (ab_acp_get_string (update, "sessionUpdate"));
  take_update (self, &kind, json_to_string (update, FALSE));
}

/* The same, read from the text without a JSON tree (most of what an agent
 * sends while streaming).  FALSE: on_notification decides. */
static gboolean
on_notification_text (AbJsonRpc *rpc, const char *method, const char *params,
                      gsize len, gpointer user_data)
{
  AbAcpConnection *self = user_data;
  AbJsonSpan session_id, update, kind;

  if (strcmp (method, "session/update") != 0)
    return FALSE;
  switch (ab_acp_scan_update (params, len, &session_id, &update, &kind))
    {
    case AB_ACP_UPDATE_UNSURE:
      return FALSE;
    case AB_ACP_UPDATE_IGNORED:
      return TRUE;
    case AB_ACP_UPDATE_FOUND:
      break;
    }
  if (update_wanted (self, &session_id))
    take_update (self, &kind, g_strndup (update.data, update.len));
  return TRUE;
}

/* The lines of one read were dispatched: their updates leave together. */
static void
on_read_done (AbJsonRpc *rpc, gpointer user_data)
{
  flush_batch (user_data);
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            AbAcpConnection *self)
{
  if (g_strcmp0 (method, "session/request_permission") != 0)
    return FALSE; /* AbJsonRpc answers -32601 */

  /* Updates sent before the question belong before it. */
  flush_batch (self);
  g_signal_emit (self, signals[SIGNAL_PERMISSION_REQUEST], 0, id, params);
  return TRUE;
}

/* ---- the end of the agent ---------------------------------------------- */

static void
emit_lost (AbAcpConnection *self, const char *reason, const char *why)
{
  if (self->lost || self->closing)
    return;
  self->lost = TRUE;
  g_clear_handle_id (&self->exit_drain_source, g_source_remove);
  flush_batch (self);
  g_signal_emit (self, signals[SIGNAL_LOST], 0, reason, why);
}

static const char *
exit_description (AbAcpConnection *self)
{
  if (self->agent == NULL)
    return NULL;
  return ab_agent_handle_get_exit_description (self->agent);
}

/* The agent is gone: how it ended, when known. */
static void
emit_exited (AbAcpConnection *self)
{
  const char *why = exit_description (self);

  emit_lost (self, "agent-exited",
             why != NULL ? why : _ ("the agent closed its output"));
}

static gboolean
on_exit_drained (gpointer user_data)
{
  AbAcpConnection *self = user_data;

  self->exit_drain_source = 0;
  emit_exited (self);
  return G_SOURCE_REMOVE;
}

static void
wait_a_moment (AbAcpConnection *self)
{
  if (self->exit_drain_source == 0 && !self->lost)
    self->exit_drain_source
        = g_timeout_add (EXIT_DRAIN_MSEC, on_exit_drained, self);
}

/* The end of the agent's output usually comes a moment before the end of
 * the agent: wait that moment, to say how it ended. */
static void
on_rpc_closed (AbJsonRpc *rpc, const GError *error, AbAcpConnection *self)
{
  if (error != NULL)
    {
      emit_lost (self, "agent-error", error->message);
      return;
    }
  self->output_closed = TRUE;
  if (self->agent != NULL && exit_description (self) == NULL)
    wait_a_moment (self);
  else
    emit_exited (self);
}

/* Output the agent wrote before it died may still be in the pipe: read it
 * first, unless a grandchild keeps the pipe open. */
static void
on_agent_exited (AbAgentHandle *agent, int wait_status, const char *description,
                 AbAcpConnection *self)
{
  if (self->output_closed)
    emit_exited (self);
  else
    wait_a_moment (self);
}

static void
complete_close (AbAcpConnection *self)
{
  g_autoptr (GPtrArray) tasks = g_steal_pointer (&self->close_tasks);

  self->closed = TRUE;
  self->close_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < tasks->len; i++)
    g_task_return_boolean (g_ptr_array_index (tasks, i), TRUE);
}

static void
on_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbAcpConnection) self = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_agent_handle_terminate_finish (AB_AGENT_HANDLE (source), result,
                                         &error))
    g_warning ("stopping agent %u: %s",
               ab_agent_handle_get_pid (AB_AGENT_HANDLE (source)),
               error->message);
  complete_close (self);
}

/* Nothing the agent sends or does reaches this connection any more. */
static void
stop_listening (AbAcpConnection *self)
{
  g_clear_handle_id (&self->exit_drain_source, g_source_remove);
  g_signal_handlers_disconnect_by_data (self->rpc, self);
  ab_jsonrpc_set_text_handlers (self->rpc, NULL, NULL, NULL);
  ab_jsonrpc_close (self->rpc);
  if (self->agent != NULL)
    g_signal_handlers_disconnect_by_data (self->agent, self);
}

void
ab_acp_connection_close_async (AbAcpConnection *self, gint64 kill_timeout_usec,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_acp_connection_close_async);
  if (self->closed)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  g_ptr_array_add (self->close_tasks, task);
  if (self->closing)
    return;

  self->closing = TRUE;
  g_array_set_size (self->batch, 0);
  stop_listening (self);
  if (self->agent == NULL)
    {
      complete_close (self);
      return;
    }
  ab_agent_handle_terminate_async (self->agent, kill_timeout_usec, NULL,
                                   on_terminated, g_object_ref (self));
}

void
ab_acp_connection_close_finish (AbAcpConnection *self, GAsyncResult *result)
{
  g_return_if_fail (g_task_is_valid (result, self));

  g_task_propagate_boolean (G_TASK (result), NULL);
}

/* ---- the agent --------------------------------------------------------- */

guint
ab_acp_connection_get_pid (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), 0);

  /* An agent being stopped no longer serves anyone. */
  if (self->agent == NULL || self->closing)
    return 0;
  return ab_agent_handle_get_pid (self->agent);
}

const char *
ab_acp_connection_get_unit (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), NULL);

  if (self->agent == NULL || self->closing)
    return NULL;
  return ab_agent_handle_get_unit (self->agent);
}

void
ab_acp_connection_get_usage (AbAcpConnection *self, AbAgentUsage *usage)
{
  ab_agent_usage_init (usage);
  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  if (self->agent != NULL && !self->closing)
    ab_agent_handle_get_usage (self->agent, usage);
}

char *
ab_acp_connection_get_stderr_tail (AbAcpConnection *self)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), NULL);

  if (self->agent == NULL)
    return NULL;
  return ab_agent_handle_get_stderr_tail (self->agent);
}

gboolean
ab_acp_connection_send_signal (AbAcpConnection *self, int signo, GError **error)
{
  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), FALSE);

  if (self->agent == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s",
                   _ ("no process of the agent is known"));
      return FALSE;
    }
  return ab_agent_handle_send_signal (self->agent, signo, error);
}

void
ab_acp_connection_kill_now (AbAcpConnection *self)
{
  g_return_if_fail (AB_IS_ACP_CONNECTION (self));

  if (self->agent != NULL)
    ab_agent_handle_kill_now (self->agent);
}

/* ---- the object -------------------------------------------------------- */

static void
ab_acp_connection_dispose (GObject *object)
{
  AbAcpConnection *self = AB_ACP_CONNECTION (object);

  if (self->rpc != NULL)
    stop_listening (self);
  g_clear_object (&self->rpc);
  g_clear_object (&self->agent); /* a process is killed if still alive */
  G_OBJECT_CLASS (ab_acp_connection_parent_class)->dispose (object);
}

static void
ab_acp_connection_finalize (GObject *object)
{
  AbAcpConnection *self = AB_ACP_CONNECTION (object);

  g_array_unref (self->batch);
  g_ptr_array_unref (self->close_tasks);
  g_free (self->session_id);
  g_clear_pointer (&self->unread, g_bytes_unref);
  G_OBJECT_CLASS (ab_acp_connection_parent_class)->finalize (object);
}

static void
ab_acp_connection_class_init (AbAcpConnectionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_acp_connection_dispose;
  object_class->finalize = ab_acp_connection_finalize;

  signals[SIGNAL_UPDATE] = g_signal_new (
      "update", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      g_cclosure_marshal_VOID__POINTER, G_TYPE_NONE, 1, G_TYPE_POINTER);
  signals[SIGNAL_PERMISSION_REQUEST]
      = g_signal_new ("permission-request", G_TYPE_FROM_CLASS (klass),
                      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                      JSON_TYPE_NODE | G_SIGNAL_TYPE_STATIC_SCOPE,
                      JSON_TYPE_NODE | G_SIGNAL_TYPE_STATIC_SCOPE);
  signals[SIGNAL_LOST] = g_signal_new (
      "lost", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
}

static void
ab_acp_connection_init (AbAcpConnection *self)
{
  self->batch = g_array_new (FALSE, FALSE, sizeof (AbAcpUpdate));
  g_array_set_clear_func (self->batch, (GDestroyNotify)update_clear);
  self->close_tasks = g_ptr_array_new_with_free_func (g_object_unref);
}

GBytes *
ab_acp_connection_detach (AbAcpConnection *self)
{
  g_autoptr (GBytes) unread = NULL;

  g_return_val_if_fail (AB_IS_ACP_CONNECTION (self), NULL);

  if (self->closing || self->closed)
    return NULL;
  self->closing = TRUE;
  self->closed = TRUE;
  g_array_set_size (self->batch, 0);
  unread = ab_jsonrpc_take_unread (self->rpc);
  stop_listening (self);
  if (self->agent != NULL)
    ab_agent_handle_detach (self->agent, unread);
  return g_steal_pointer (&unread);
}

static AbAcpConnection *
connection_new (AbJsonRpc *rpc, AbAgentHandle *agent)
{
  AbAcpConnection *self;

  g_return_val_if_fail (AB_IS_JSONRPC (rpc), NULL);
  g_return_val_if_fail (agent == NULL || AB_IS_AGENT_HANDLE (agent), NULL);

  self = g_object_new (AB_TYPE_ACP_CONNECTION, NULL);
  self->rpc = g_object_ref (rpc);
  if (agent != NULL)
    {
      self->agent = g_object_ref (agent);
      g_signal_connect (agent, "exited", G_CALLBACK (on_agent_exited), self);
    }
  g_signal_connect (rpc, "notification", G_CALLBACK (on_notification), self);
  g_signal_connect (rpc, "request", G_CALLBACK (on_request), self);
  g_signal_connect (rpc, "closed", G_CALLBACK (on_rpc_closed), self);
  ab_jsonrpc_set_text_handlers (rpc, on_notification_text, on_read_done, self);
  return self;
}

AbAcpConnection *
ab_acp_connection_new (AbJsonRpc *rpc, AbAgentHandle *agent)
{
  AbAcpConnection *self = connection_new (rpc, agent);

  self->reading = TRUE;
  ab_jsonrpc_start (rpc);
  return self;
}

AbAcpConnection *
ab_acp_connection_new_adopted (AbJsonRpc *rpc, AbAgentHandle *agent,
                               GBytes *unread)
{
  AbAcpConnection *self = connection_new (rpc, agent);

  self->adopted = TRUE;
  self->unread = unread != NULL ? g_bytes_ref (unread) : NULL;
  /* Past any id the earlier instance can have used for its requests. */
  ab_jsonrpc_continue_from (rpc, g_get_real_time ());
  return self;
}
