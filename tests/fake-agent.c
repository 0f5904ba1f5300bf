/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — a scripted ACP agent in the test's own process */
#include "config.h"

#include <string.h>

#include "acp.h"
#include "error.h"
#include "fake-agent.h"
#include "rpc-pair.h"
#include "store.h"

struct _AbFakeAgent
{
  AbFakeLauncher *launcher; /* unowned */
  AbJsonRpc *rpc;           /* the agent's end */
  int fd;                   /* its socket, owned by its streams */
  char *store_dir;
  char *thread;
  char *session_id;
  GPtrArray *log;
  GQueue prompts; /* JsonNode *: ids of prompts not yet answered */
  gboolean closed;
};

struct _AbFakeLauncher
{
  GObject parent_instance;

  GPtrArray *agents; /* AbFakeAgent * */
  char *fail_next;
  guint sessions; /* ACP sessions opened, for their ids */
  gboolean as_units;
  AbAgentUsage usage;
  gboolean can_resume;
};

/* ---- an agent "unit": a handle with a name and a usage ------------------ */

#define AB_TYPE_FAKE_UNIT (ab_fake_unit_get_type ())
G_DECLARE_FINAL_TYPE (AbFakeUnit, ab_fake_unit, AB, FAKE_UNIT, GObject)

struct _AbFakeUnit
{
  GObject parent_instance;
  char *name;
  AbAgentUsage usage;
};

static void unit_iface_init (AbAgentHandleInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbFakeUnit, ab_fake_unit, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_HANDLE,
                                                unit_iface_init))

static guint
unit_get_pid (AbAgentHandle *handle)
{
  return 4242;
}

static const char *
unit_get_exit_description (AbAgentHandle *handle)
{
  return NULL;
}

static char *
unit_get_stderr_tail (AbAgentHandle *handle)
{
  return g_strdup ("");
}

static void
unit_terminate_async (AbAgentHandle *handle, gint64 kill_timeout_usec,
                      GCancellable *cancellable, GAsyncReadyCallback callback,
                      gpointer user_data)
{
  g_autoptr (GTask) task
      = g_task_new (handle, cancellable, callback, user_data);

  g_task_return_boolean (task, TRUE);
}

static gboolean
unit_terminate_finish (AbAgentHandle *handle, GAsyncResult *result,
                       GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
unit_kill_now (AbAgentHandle *handle)
{
}

static gboolean
unit_send_signal (AbAgentHandle *handle, int signo, GError **error)
{
  return TRUE;
}

static const char *
unit_get_unit (AbAgentHandle *handle)
{
  return AB_FAKE_UNIT (handle)->name;
}

static void
unit_get_usage (AbAgentHandle *handle, AbAgentUsage *usage)
{
  *usage = AB_FAKE_UNIT (handle)->usage;
}

static void
unit_iface_init (AbAgentHandleInterface *iface)
{
  iface->get_pid = unit_get_pid;
  iface->get_exit_description = unit_get_exit_description;
  iface->get_stderr_tail = unit_get_stderr_tail;
  iface->terminate_async = unit_terminate_async;
  iface->terminate_finish = unit_terminate_finish;
  iface->kill_now = unit_kill_now;
  iface->send_signal = unit_send_signal;
  iface->get_unit = unit_get_unit;
  iface->get_usage = unit_get_usage;
}

static void
ab_fake_unit_finalize (GObject *object)
{
  g_free (AB_FAKE_UNIT (object)->name);
  G_OBJECT_CLASS (ab_fake_unit_parent_class)->finalize (object);
}

static void
ab_fake_unit_class_init (AbFakeUnitClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = ab_fake_unit_finalize;
}

static void
ab_fake_unit_init (AbFakeUnit *self)
{
}

static void launcher_iface_init (AbAgentLauncherInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbFakeLauncher, ab_fake_launcher, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_LAUNCHER,
                                                launcher_iface_init))

static void
agent_free (AbFakeAgent *agent)
{
  g_signal_handlers_disconnect_by_data (agent->rpc, agent);
  ab_jsonrpc_close (agent->rpc);
  g_object_unref (agent->rpc);
  g_free (agent->store_dir);
  g_free (agent->thread);
  g_free (agent->session_id);
  g_ptr_array_unref (agent->log);
  g_queue_clear_full (&agent->prompts, (GDestroyNotify)json_node_unref);
  g_free (agent);
}

static void log_line (AbFakeAgent *agent, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
log_line (AbFakeAgent *agent, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_ptr_array_add (agent->log, g_strdup_vprintf (format, args));
  va_end (args);
}

static JsonNode *
parse (const char *json)
{
  g_autoptr (GError) error = NULL;
  JsonNode *node = json_from_string (json, &error);

  g_assert_no_error (error);
  return node;
}

/* The running turn of the thread's record now on disk; 0 without one.
 * Read file by file: a load of the store would tidy it up under the
 * session's writes. */
static guint64
running_on_disk (AbFakeAgent *agent)
{
  g_autoptr (GDir) dir = g_dir_open (agent->store_dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (agent->store_dir, name, NULL);
      g_autofree char *data = NULL;
      g_autoptr (AbSessionRecord) r = NULL;
      gsize len;

      if (!g_str_has_suffix (name, ".json")
          || !g_file_get_contents (path, &data, &len, NULL))
        continue;
      r = ab_session_record_parse (data, len, NULL);
      if (r != NULL && g_str_equal (r->thread, agent->thread))
        return r->running_turn;
    }
  return 0;
}

/* The text of a prompt's first content block. */
static const char *
prompt_text (JsonNode *params)
{
  JsonArray *blocks
      = json_object_get_array_member (json_node_get_object (params), "prompt");

  return json_object_get_string_member (
      json_array_get_object_element (blocks, 0), "text");
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            AbFakeAgent *agent)
{
  if (g_str_equal (method, "initialize"))
    {
      log_line (agent, "initialize");
      ab_jsonrpc_reply (
          agent->rpc, id,
          parse (agent->launcher->can_resume
                     ? "{\"protocolVersion\":1,\"agentCapabilities\":"
                       "{\"loadSession\":true,\"sessionCapabilities\":"
                       "{\"resume\":{}}}}"
                     : "{\"protocolVersion\":1,\"agentCapabilities\":"
                       "{\"loadSession\":true}}"));
    }
  else if (g_str_equal (method, "session/new"))
    {
      g_autofree char *result = NULL;

      log_line (agent, "session/new");
      agent->session_id
          = g_strdup_printf ("fake-%u", ++agent->launcher->sessions);
      result = g_strdup_printf ("{\"sessionId\":\"%s\"}", agent->session_id);
      ab_jsonrpc_reply (agent->rpc, id, parse (result));
    }
  else if (g_str_equal (method, "session/load"))
    {
      agent->session_id = g_strdup (ab_acp_get_string (params, "sessionId"));
      log_line (agent, "session/load %s", agent->session_id);
      ab_jsonrpc_reply (agent->rpc, id, NULL);
    }
  else if (g_str_equal (method, "session/resume"))
    {
      agent->session_id = g_strdup (ab_acp_get_string (params, "sessionId"));
      log_line (agent, "session/resume %s", agent->session_id);
      ab_jsonrpc_reply (agent->rpc, id, NULL);
    }
  else if (g_str_equal (method, "session/prompt"))
    {
      log_line (agent,
                "session/prompt %s (record: running %" G_GUINT64_FORMAT ")",
                prompt_text (params), running_on_disk (agent));
      g_queue_push_tail (&agent->prompts, json_node_ref (id));
    }
  else
    return FALSE;
  return TRUE;
}

static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params,
                 AbFakeAgent *agent)
{
  log_line (agent, "%s", method);
}

static void
on_closed (AbJsonRpc *rpc, const GError *error, AbFakeAgent *agent)
{
  agent->closed = TRUE;
}

static AbAcpConnection *
fake_launch (AbAgentLauncher *launcher, const AbAgentProfile *profile,
             const char *thread, const char *state_dir, gsize max_message_bytes,
             char **cwd, GError **error)
{
  AbFakeLauncher *self = AB_FAKE_LAUNCHER (launcher);
  g_autoptr (AbJsonRpc) rpc = NULL;
  g_autofree char *fail = g_steal_pointer (&self->fail_next);
  AbFakeAgent *agent;
  int fds[2];
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GOutputStream) out = NULL;

  *cwd = g_strdup ("/fake/cwd");
  if (fail != NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED, "%s", fail);
      return NULL;
    }

  /* the session's end */
  rpc = ab_test_rpc_pair (max_message_bytes, &fds[1]);
  /* the agent's */
  agent = g_new0 (AbFakeAgent, 1);
  agent->launcher = self;
  agent->fd = fds[1];
  in = g_unix_input_stream_new (fds[1], TRUE);
  out = g_unix_output_stream_new (dup (fds[1]), TRUE);
  agent->rpc = ab_jsonrpc_new (in, out, max_message_bytes);
  agent->store_dir = ab_store_dir (state_dir);
  agent->thread = g_strdup (thread);
  agent->log = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&agent->prompts);
  g_signal_connect (agent->rpc, "request", G_CALLBACK (on_request), agent);
  g_signal_connect (agent->rpc, "notification", G_CALLBACK (on_notification),
                    agent);
  g_signal_connect (agent->rpc, "closed", G_CALLBACK (on_closed), agent);
  ab_jsonrpc_start (agent->rpc);
  g_ptr_array_add (self->agents, agent);
  if (self->as_units)
    {
      g_autoptr (AbFakeUnit) unit = g_object_new (AB_TYPE_FAKE_UNIT, NULL);

      unit->name = g_strdup_printf ("fake-%s.service", thread);
      unit->usage = self->usage;
      return ab_acp_connection_new (rpc, AB_AGENT_HANDLE (unit));
    }
  return ab_acp_connection_new (rpc, NULL);
}

static void
launcher_iface_init (AbAgentLauncherInterface *iface)
{
  iface->launch = fake_launch;
}

static void
ab_fake_launcher_finalize (GObject *object)
{
  AbFakeLauncher *self = AB_FAKE_LAUNCHER (object);

  g_ptr_array_unref (self->agents);
  g_free (self->fail_next);
  G_OBJECT_CLASS (ab_fake_launcher_parent_class)->finalize (object);
}

static void
ab_fake_launcher_class_init (AbFakeLauncherClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = ab_fake_launcher_finalize;
}

static void
ab_fake_launcher_init (AbFakeLauncher *self)
{
  self->agents = g_ptr_array_new_with_free_func ((GDestroyNotify)agent_free);
}

AbFakeLauncher *
ab_fake_launcher_new (void)
{
  return g_object_new (AB_TYPE_FAKE_LAUNCHER, NULL);
}

void
ab_fake_launcher_fail_next (AbFakeLauncher *self, const char *message)
{
  g_free (self->fail_next);
  self->fail_next = g_strdup (message);
}

void
ab_fake_launcher_set_resume (AbFakeLauncher *self, gboolean can_resume)
{
  self->can_resume = can_resume;
}

guint
ab_fake_launcher_get_launches (AbFakeLauncher *self)
{
  return self->agents->len;
}

void
ab_fake_launcher_set_usage (AbFakeLauncher *self, const AbAgentUsage *usage)
{
  self->as_units = usage != NULL;
  if (usage != NULL)
    self->usage = *usage;
}

AbFakeAgent *
ab_fake_launcher_get_agent (AbFakeLauncher *self, guint i)
{
  g_assert_cmpuint (i, <, self->agents->len);
  return g_ptr_array_index (self->agents, i);
}

char *
ab_fake_agent_get_log (AbFakeAgent *agent)
{
  GString *all = g_string_new (NULL);

  for (guint i = 0; i < agent->log->len; i++)
    g_string_append_printf (all, "%s%s", i > 0 ? "\n" : "",
                            (const char *)g_ptr_array_index (agent->log, i));
  return g_string_free (all, FALSE);
}

gboolean
ab_fake_agent_has_logged (AbFakeAgent *agent, const char *line)
{
  for (guint i = 0; i < agent->log->len; i++)
    if (g_str_equal (g_ptr_array_index (agent->log, i), line))
      return TRUE;
  return FALSE;
}

guint
ab_fake_agent_get_pending_prompts (AbFakeAgent *agent)
{
  return g_queue_get_length (&agent->prompts);
}

gboolean
ab_fake_agent_is_closed (AbFakeAgent *agent)
{
  return agent->closed;
}

void
ab_fake_agent_send_text (AbFakeAgent *agent, const char *text)
{
  g_autofree char *update = ab_acp_text_update (text);

  ab_fake_agent_send_update (agent, update);
}

void
ab_fake_agent_send_update (AbFakeAgent *agent, const char *update)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "sessionId");
  json_builder_add_string_value (b, agent->session_id);
  json_builder_set_member_name (b, "update");
  json_builder_add_value (b, parse (update));
  json_builder_end_object (b);
  ab_jsonrpc_notify (agent->rpc, "session/update", json_builder_get_root (b));
}

void
ab_fake_agent_finish_prompt (AbFakeAgent *agent, const char *stop_reason)
{
  g_autoptr (JsonNode) id = g_queue_pop_head (&agent->prompts);
  g_autofree char *json
      = g_strdup_printf ("{\"stopReason\":\"%s\"}", stop_reason);

  g_assert_nonnull (id);
  ab_jsonrpc_reply (agent->rpc, id, parse (json));
}

static void
on_permission_answered (GObject *source, GAsyncResult *result,
                        gpointer user_data)
{
  AbFakeAgent *agent = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = ab_jsonrpc_call_finish (AB_JSONRPC (source), result, &error);
  JsonObject *outcome;

  if (reply == NULL)
    return; /* the connection went */
  outcome
      = json_object_get_object_member (json_node_get_object (reply), "outcome");
  if (g_str_equal (json_object_get_string_member (outcome, "outcome"),
                   "selected"))
    log_line (agent, "permission selected %s",
              json_object_get_string_member (outcome, "optionId"));
  else
    log_line (agent, "permission cancelled");
}

void
ab_fake_agent_ask_permission (AbFakeAgent *agent)
{
  g_autofree char *json = g_strdup_printf (
      "{\"sessionId\":\"%s\",\"toolCall\":{\"toolCallId\":\"t1\"},"
      "\"options\":[{\"optionId\":\"yes\",\"name\":\"Yes\",\"kind\":"
      "\"allow_once\"},{\"optionId\":\"no\",\"name\":\"No\",\"kind\":"
      "\"reject_once\"}]}",
      agent->session_id);

  ab_jsonrpc_call (agent->rpc, "session/request_permission", parse (json), NULL,
                   on_permission_answered, agent);
}

void
ab_fake_agent_exit (AbFakeAgent *agent)
{
  g_signal_handlers_disconnect_by_data (agent->rpc, agent);
  ab_jsonrpc_close (agent->rpc);
  agent->closed = TRUE;
  shutdown (agent->fd, SHUT_RDWR);
}
