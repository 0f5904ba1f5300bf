/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the broker
 *
 * Owns the daemon's state (agentbrokerd(8)), the configuration in force and
 * the ingress gate. The D-Bus service, the systemd notifier and the
 * health shim only observe it through its properties.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "acp-content.h"
#include "agent-process.h"
#include "broker.h"
#include "error.h"
#include "log.h"
#include "pool.h"
#include "store.h"
#include "thread-id.h"
#include "transcript.h"

struct _AbBroker
{
  GObject parent_instance;

  AbBrokerState state;
  guint generation;
  AbConfig *config;
  char *config_path;
  char *state_dir;
  char *status;
  char *drain_reason;
  guint64 started_at;
  const char *launcher; /* static: "direct" or "systemd" */
  AbPool *pool;

  /* the drain in progress */
  GTask *drain_task;
  guint drain_deadline;
  guint drain_interrupted;
  guint drain_refused; /* prompts still waiting for an agent at the deadline */
  gboolean drain_cutting; /* the deadline is ending what runs: counts first */
  gulong drain_busy_handler;
};

enum
{
  PROP_0,
  PROP_STATE,
  PROP_ACCEPTING,
  PROP_GENERATION,
  PROP_MAX_SESSIONS,
  PROP_STATUS,
  N_PROPS
};

enum
{
  SIGNAL_PROMPT_REFUSED,
  N_SIGNALS
};

static GParamSpec *props[N_PROPS];
static guint signals[N_SIGNALS];

/* Longest agent name (as the config allows) and permission request or
 * option id accepted from a caller: longer ones are refused before they
 * are looked up or quoted back in an error message. */
#define AB_BROKER_MAX_AGENT_BYTES 64
#define AB_BROKER_MAX_ID_BYTES 1024

G_DEFINE_TYPE (AbBroker, ab_broker, G_TYPE_OBJECT)

static const char *const state_names[] = {
  [AB_BROKER_STATE_STARTING] = "starting",
  [AB_BROKER_STATE_RUNNING] = "running",
  [AB_BROKER_STATE_DRAINING] = "draining",
  [AB_BROKER_STATE_DRAINED] = "drained",
  [AB_BROKER_STATE_RELOADING] = "reloading",
  [AB_BROKER_STATE_STOPPING] = "stopping",
};

const char *
ab_broker_state_to_string (AbBrokerState state)
{
  g_return_val_if_fail (state < G_N_ELEMENTS (state_names), "unknown");
  return state_names[state];
}

static gboolean
state_accepts (AbBrokerState state)
{
  return state == AB_BROKER_STATE_RUNNING || state == AB_BROKER_STATE_RELOADING;
}

static void
set_status (AbBroker *self, const char *status)
{
  if (g_strcmp0 (self->status, status) == 0)
    return;
  g_free (self->status);
  self->status = g_strdup (status);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_STATUS]);
}

static void
set_state (AbBroker *self, AbBrokerState state)
{
  gboolean was_accepting = state_accepts (self->state);

  if (self->state == state)
    return;

  g_debug ("state %s → %s", ab_broker_state_to_string (self->state),
           ab_broker_state_to_string (state));
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_STATE]);
  if (was_accepting != state_accepts (state))
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_ACCEPTING]);
}

static void
ab_broker_get_property (GObject *object, guint prop_id, GValue *value,
                        GParamSpec *pspec)
{
  AbBroker *self = AB_BROKER (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_string (value, ab_broker_state_to_string (self->state));
      break;
    case PROP_ACCEPTING:
      g_value_set_boolean (value, ab_broker_get_accepting (self));
      break;
    case PROP_GENERATION:
      g_value_set_uint (value, self->generation);
      break;
    case PROP_MAX_SESSIONS:
      g_value_set_uint (value, self->config->max_sessions);
      break;
    case PROP_STATUS:
      g_value_set_string (value, self->status);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ab_broker_finalize (GObject *object)
{
  AbBroker *self = AB_BROKER (object);

  g_clear_object (&self->pool);
  g_clear_pointer (&self->config, ab_config_unref);
  g_free (self->config_path);
  g_free (self->state_dir);
  g_free (self->status);
  g_free (self->drain_reason);

  G_OBJECT_CLASS (ab_broker_parent_class)->finalize (object);
}

static void
ab_broker_class_init (AbBrokerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = ab_broker_get_property;
  object_class->finalize = ab_broker_finalize;

  /* Read-only views for adapters; "state" is the string
   * org.agentbroker.Broker1(5) documents for State. */
  props[PROP_STATE] = g_param_spec_string (
      "state", NULL, NULL, "starting",
      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_ACCEPTING] = g_param_spec_boolean (
      "accepting", NULL, NULL, FALSE,
      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_GENERATION] = g_param_spec_uint (
      "generation", NULL, NULL, 0, G_MAXUINT, 1,
      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_MAX_SESSIONS] = g_param_spec_uint (
      "max-sessions", NULL, NULL, 0, G_MAXUINT, 0,
      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_STATUS] = g_param_spec_string (
      "status", NULL, NULL, NULL,
      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /* (error): a Prompt was refused; the metrics count them by error. */
  signals[SIGNAL_PROMPT_REFUSED] = g_signal_new (
      "prompt-refused", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
ab_broker_init (AbBroker *self)
{
  self->state = AB_BROKER_STATE_STARTING;
  self->generation = 1;
  self->launcher = "direct";
  self->status = g_strdup (_ ("Starting"));
  self->started_at = (guint64)g_get_real_time ();
}

AbBroker *
ab_broker_new (const char *config_path, AbConfig *config, const char *state_dir)
{
  AbBroker *self = g_object_new (AB_TYPE_BROKER, NULL);

  self->config_path = g_strdup (config_path);
  self->config = ab_config_ref (config);
  self->state_dir = g_strdup (state_dir);
  self->pool = ab_pool_new (config, state_dir);
  ab_pool_restore (self->pool);
  return self;
}

AbPool *
ab_broker_get_pool (AbBroker *self)
{
  return self->pool;
}

void
ab_broker_set_launcher (AbBroker *self, AbAgentLauncher *launcher,
                        const char *name)
{
  g_return_if_fail (AB_IS_BROKER (self));
  g_return_if_fail (g_strcmp0 (name, "direct") == 0
                    || g_strcmp0 (name, "systemd") == 0);

  self->launcher = g_intern_string (name);
  ab_pool_set_launcher (self->pool, launcher);
}

const char *
ab_broker_get_launcher (AbBroker *self)
{
  return self->launcher;
}

AbBrokerState
ab_broker_get_state (AbBroker *self)
{
  return self->state;
}

gboolean
ab_broker_get_accepting (AbBroker *self)
{
  return state_accepts (self->state);
}

guint
ab_broker_get_generation (AbBroker *self)
{
  return self->generation;
}

AbConfig *
ab_broker_get_config (AbBroker *self)
{
  return self->config;
}

const char *
ab_broker_get_config_path (AbBroker *self)
{
  return self->config_path;
}

const char *
ab_broker_get_state_dir (AbBroker *self)
{
  return self->state_dir;
}

const char *
ab_broker_get_status (AbBroker *self)
{
  return self->status;
}

guint64
ab_broker_get_started_at (AbBroker *self)
{
  return self->started_at;
}

static void
set_running_status (AbBroker *self)
{
  g_autofree char *status
      = g_strdup_printf (_ ("Running (generation %u)"), self->generation);

  set_status (self, status);
}

/* Called once the bus name is owned: the daemon is ready for work. */
void
ab_broker_start (AbBroker *self)
{
  g_return_if_fail (self->state == AB_BROKER_STATE_STARTING);

  set_state (self, AB_BROKER_STATE_RUNNING);
  set_running_status (self);
}

/* The D-Bus service reports every Prompt it refuses, whatever refused it
 * (the gate, access, the pool or the session), so observers can count. */
void
ab_broker_count_refusal (AbBroker *self, const GError *error)
{
  g_signal_emit (self, signals[SIGNAL_PROMPT_REFUSED], 0, error);
}

gboolean
ab_broker_may_see (AbBroker *self, const AbCaller *caller, AbSession *session)
{
  if (caller->access >= AB_ACCESS_ADMIN)
    return TRUE;
  return caller->access >= AB_ACCESS_USER
         && ab_session_get_owner (session) == caller->uid;
}

gboolean
ab_broker_find_session (AbBroker *self, const AbCaller *caller,
                        const char *thread, const char *verb,
                        AbSession **session, GError **error)
{
  AbSession *found;

  *session = NULL;
  if (!ab_thread_id_validate (thread, error))
    return FALSE;
  found = ab_pool_lookup (self->pool, thread);
  if (found != NULL && caller != NULL
      && !ab_broker_may_see (self, caller, found))
    {
      if (verb != NULL)
        g_set_error (error, AB_ERROR, AB_ERROR_ACCESS_DENIED,
                     _ ("session %s belongs to uid %u; uid %u may not %s it"),
                     thread, (guint)ab_session_get_owner (found),
                     (guint)caller->uid, verb);
      else
        g_set_error (error, AB_ERROR, AB_ERROR_ACCESS_DENIED,
                     _ ("session %s belongs to uid %u"), thread,
                     (guint)ab_session_get_owner (found));
      return FALSE;
    }
  *session = found;
  return TRUE;
}

AbSession *
ab_broker_lookup_session (AbBroker *self, const AbCaller *caller,
                          const char *thread, const char *verb, GError **error)
{
  AbSession *session;

  if (!ab_broker_find_session (self, caller, thread, verb, &session, error))
    return NULL;
  if (session == NULL)
    g_set_error (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION,
                 _ ("no session for thread %s"), thread);
  return session;
}

/* ---- operations on sessions -------------------------------------------- */

static void
on_pool_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GError) error = NULL;
  guint64 turn = 0;

  if (!ab_pool_prompt_finish (AB_POOL (source), result, &turn, &error))
    {
      ab_broker_count_refusal (g_task_get_source_object (task), error);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  /* Turns count from 1 and never come near G_MAXSSIZE. */
  g_task_return_int (task, (gssize)turn);
}

/* The prompt of Prompt() (@text) or of PromptContent() (@content_json,
 * validated here); either may be NULL. */
static void
prompt_async (AbBroker *self, const AbCaller *caller, const char *thread,
              const char *text, const char *content_json, const char *agent,
              AbBrokerAcceptedFunc accepted, gpointer accepted_data,
              GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) content = NULL;
  g_autofree char *content_text = NULL;
  AbSession *session = NULL;

  if (!ab_broker_check_accepting (self, &error))
    ;
  else if (agent != NULL && strlen (agent) > AB_BROKER_MAX_AGENT_BYTES)
    g_set_error (&error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                 _ ("option 'agent' is longer than %d bytes"),
                 AB_BROKER_MAX_AGENT_BYTES);
  else if (content_json != NULL
           && (content = ab_acp_content_parse (
                   content_json, strlen (content_json),
                   AB_SESSION_MAX_PROMPT_BYTES, &content_text, &error))
                  == NULL)
    ;
  else
    ab_broker_find_session (self, caller, thread, NULL, &session, &error);
  if (error != NULL)
    {
      ab_broker_count_refusal (self, error);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (accepted != NULL)
    accepted (session, caller, accepted_data);
  ab_pool_prompt_content_async (self->pool, thread,
                                content != NULL ? content_text : text, content,
                                agent, caller->uid, caller->connection,
                                on_pool_prompted, g_steal_pointer (&task));
}

void
ab_broker_prompt_async (AbBroker *self, const AbCaller *caller,
                        const char *thread, const char *text, const char *agent,
                        AbBrokerAcceptedFunc accepted, gpointer accepted_data,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  prompt_async (self, caller, thread, text, NULL, agent, accepted,
                accepted_data, callback, user_data);
}

void
ab_broker_prompt_content_async (
    AbBroker *self, const AbCaller *caller, const char *thread,
    const char *content, const char *agent, AbBrokerAcceptedFunc accepted,
    gpointer accepted_data, GAsyncReadyCallback callback, gpointer user_data)
{
  prompt_async (self, caller, thread, NULL, content, agent, accepted,
                accepted_data, callback, user_data);
}

gboolean
ab_broker_prompt_finish (AbBroker *self, GAsyncResult *result, guint64 *turn,
                         GError **error)
{
  gssize value = g_task_propagate_int (G_TASK (result), error);

  if (value < 0)
    return FALSE;
  *turn = (guint64)value;
  return TRUE;
}

gboolean
ab_broker_create_session (AbBroker *self, const AbCaller *caller,
                          const char *thread, const char *agent, GError **error)
{
  if (!ab_broker_check_accepting (self, error))
    return FALSE;
  if (agent != NULL && strlen (agent) > AB_BROKER_MAX_AGENT_BYTES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("option 'agent' is longer than %d bytes"),
                   AB_BROKER_MAX_AGENT_BYTES);
      return FALSE;
    }
  return ab_pool_create_session (self->pool, thread, agent, caller->uid, error);
}

GPtrArray *
ab_broker_list_sessions (AbBroker *self, const AbCaller *caller)
{
  return ab_pool_list (self->pool);
}

gboolean
ab_broker_check_watch (AbBroker *self, const AbCaller *caller,
                       const char *thread, AbSession **session, GError **error)
{
  *session = NULL;
  if (!g_str_equal (thread, "*"))
    return ab_broker_find_session (self, caller, thread, NULL, session, error);
  if (caller->access < AB_ACCESS_ADMIN)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_ACCESS_DENIED,
                   _ ("watching all sessions needs administrator access"));
      return FALSE;
    }
  return TRUE;
}

static void
on_agent_called (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  JsonNode *reply
      = ab_session_agent_call_finish (AB_SESSION (source), result, &error);

  if (reply != NULL)
    g_task_return_pointer (task, reply, (GDestroyNotify)json_node_unref);
  else
    g_task_return_error (task, error);
}

void
ab_broker_agent_call_async (AbBroker *self, const AbCaller *caller,
                            const char *thread, const char *verb,
                            const char *method, JsonObject *params,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  GError *error = NULL;
  AbSession *session
      = ab_broker_lookup_session (self, caller, thread, verb, &error);

  if (session == NULL)
    {
      json_object_unref (params);
      g_task_return_error (task, error);
      return;
    }
  ab_session_agent_call_async (session, method, params, on_agent_called,
                               g_steal_pointer (&task));
}

JsonNode *
ab_broker_agent_call_finish (AbBroker *self, GAsyncResult *result,
                             GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

char *
ab_broker_get_transcript (AbBroker *self, const AbCaller *caller,
                          const char *thread, GError **error)
{
  g_autofree char *store_dir = NULL;

  if (ab_broker_lookup_session (self, caller, thread, "GetTranscript", error)
      == NULL)
    return NULL;
  store_dir = ab_store_dir (self->state_dir);
  return ab_transcript_read (store_dir, thread, error);
}

gboolean
ab_broker_cancel (AbBroker *self, const AbCaller *caller, const char *thread,
                  GError **error)
{
  AbSession *session
      = ab_broker_lookup_session (self, caller, thread, "Cancel", error);

  if (session == NULL)
    return FALSE;
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, caller->uid,
                "Cancel of %s requested by uid %u", thread, (guint)caller->uid);
  ab_session_cancel (session);
  return TRUE;
}

gboolean
ab_broker_kill_session (AbBroker *self, const AbCaller *caller,
                        const char *thread, const char *signal_name,
                        GError **error)
{
  AbSession *session
      = ab_broker_lookup_session (self, caller, thread, "KillSession", error);
  int signo;

  if (session == NULL || !ab_agent_signal_from_name (signal_name, &signo, error)
      || !ab_session_send_signal (session, signo, error))
    return FALSE;
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, caller->uid,
                "KillSession of %s with signal %d requested by uid %u", thread,
                signo, (guint)caller->uid);
  return TRUE;
}

gboolean
ab_broker_answer_permission (AbBroker *self, const AbCaller *caller,
                             const char *thread, const char *request,
                             const char *option, GError **error)
{
  AbSession *session;

  if (strlen (request) > AB_BROKER_MAX_ID_BYTES
      || strlen (option) > AB_BROKER_MAX_ID_BYTES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("permission request and option ids are at most %d "
                      "bytes"),
                   AB_BROKER_MAX_ID_BYTES);
      return FALSE;
    }
  session = ab_broker_lookup_session (self, caller, thread, "AnswerPermission",
                                      error);
  return session != NULL
         && ab_session_answer_permission (session, request, option, error);
}

static void
on_pool_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_pool_remove_finish (AB_POOL (source), result, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

void
ab_broker_remove_async (AbBroker *self, const AbCaller *caller,
                        const char *thread, GAsyncReadyCallback callback,
                        gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  GError *error = NULL;

  if (ab_broker_lookup_session (self, caller, thread, "RemoveSession", &error)
      == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, caller->uid,
                "RemoveSession of %s requested by uid %u", thread,
                (guint)caller->uid);
  ab_pool_remove_async (self->pool, thread, "removed", on_pool_removed,
                        g_steal_pointer (&task));
}

gboolean
ab_broker_remove_finish (AbBroker *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
ab_broker_check_accepting (AbBroker *self, GError **error)
{
  const char *reason;

  if (state_accepts (self->state))
    return TRUE;

  switch (self->state)
    {
    case AB_BROKER_STATE_STARTING:
      reason = _ ("start-up");
      break;
    case AB_BROKER_STATE_STOPPING:
      reason = _ ("shutdown");
      break;
    default:
      reason
          = self->drain_reason != NULL ? self->drain_reason : _ ("maintenance");
      break;
    }
  /* Drained is no passing state: only Resume() opens the gate again. */
  if (self->state == AB_BROKER_STATE_DRAINED)
    g_set_error (error, AB_ERROR, AB_ERROR_DRAINING,
                 _ ("agentbroker is drained for %s and refuses prompts until "
                    "an admin resumes it (agentctl resume)"),
                 reason);
  else
    g_set_error (error, AB_ERROR, AB_ERROR_DRAINING,
                 _ ("agentbroker is draining for %s; retry in a moment"),
                 reason);
  return FALSE;
}

/* Parse and validate the whole new configuration before touching
 * anything; on failure the old one stays in force. */
gboolean
ab_broker_reload (AbBroker *self, GError **error)
{
  AbBrokerState previous = self->state;
  g_autoptr (AbConfig) config = NULL;
  g_autoptr (GError) local_error = NULL;

  if (previous == AB_BROKER_STATE_STARTING
      || previous == AB_BROKER_STATE_STOPPING
      || previous == AB_BROKER_STATE_RELOADING)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_BUSY, _ ("cannot reload while %s"),
                   ab_broker_state_to_string (previous));
      return FALSE;
    }

  set_state (self, AB_BROKER_STATE_RELOADING);
  set_status (self, _ ("Reloading configuration"));

  /* A file that was read once and has gone is a mistake to report, not
   * a reason to fall back to the built-in default. (A path the operator
   * named was read at start, or the daemon would not have started.) */
  if (g_strv_contains ((const char *const *)self->config->sources,
                       self->config_path))
    config = ab_config_load_required (self->config_path, &local_error);
  else
    config = ab_config_load (self->config_path, &local_error);
  if (config == NULL)
    {
      guint problems = 1;
      g_autofree char *status = NULL;

      for (const char *p = local_error->message; *p != '\0'; p++)
        problems += (*p == '\n');
      ab_log_event (AB_LOG_CONFIG_REFUSED, G_LOG_LEVEL_WARNING, NULL,
                    AB_LOG_NO_CALLER,
                    "reload failed; keeping the previous configuration:\n%s",
                    local_error->message);
      status = g_strdup_printf (
          g_dngettext (GETTEXT_PACKAGE,
                       "Reload failed: %u problem in the configuration; "
                       "previous configuration kept",
                       "Reload failed: %u problems in the configuration; "
                       "previous configuration kept",
                       problems),
          problems);
      set_state (self, previous);
      set_status (self, status);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  g_clear_pointer (&self->config, ab_config_unref);
  self->config = g_steal_pointer (&config);
  ab_pool_set_config (self->pool, self->config);
  self->generation++;
  ab_log_event (AB_LOG_RELOAD, G_LOG_LEVEL_MESSAGE, NULL, AB_LOG_NO_CALLER,
                "configuration reloaded from %s; generation %u",
                self->config_path, self->generation);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_GENERATION]);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_MAX_SESSIONS]);
  set_state (self, previous);
  if (previous == AB_BROKER_STATE_RUNNING)
    set_running_status (self);
  else
    set_status (self, _ ("Drained; reloaded configuration"));
  return TRUE;
}

static void
drain_finish (AbBroker *self)
{
  AbBrokerState next = self->state == AB_BROKER_STATE_STOPPING
                           ? AB_BROKER_STATE_STOPPING
                           : AB_BROKER_STATE_DRAINED;
  g_autoptr (GTask) task = g_steal_pointer (&self->drain_task);
  guint *counts = g_new (guint, 2);

  g_clear_handle_id (&self->drain_deadline, g_source_remove);
  g_clear_signal_handler (&self->drain_busy_handler, self->pool);
  /* In flight at the start, less what the deadline ended. */
  counts[0] = GPOINTER_TO_UINT (g_task_get_task_data (task));
  counts[1] = self->drain_interrupted;
  counts[0] -= MIN (counts[0], counts[1] + self->drain_refused);

  set_state (self, next);
  if (next == AB_BROKER_STATE_DRAINED)
    set_status (self, _ ("Drained; not accepting prompts"));
  ab_log_event (AB_LOG_DRAIN, G_LOG_LEVEL_MESSAGE, NULL, AB_LOG_NO_CALLER,
                "drained: %u turn(s) finished, %u interrupted", counts[0],
                counts[1]);
  g_task_return_pointer (task, counts, g_free);
}

static void
on_busy_changed (AbPool *pool, GParamSpec *pspec, AbBroker *self)
{
  if (ab_pool_get_busy_count (pool) == 0 && self->drain_task != NULL
      && !self->drain_cutting)
    drain_finish (self);
}

static gboolean
on_drain_deadline (gpointer user_data)
{
  AbBroker *self = user_data;
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);
  g_autoptr (GError) refusal = NULL;

  self->drain_deadline = 0;
  ab_broker_check_accepting (self, &refusal);
  g_assert (refusal != NULL);
  self->drain_cutting = TRUE;
  for (guint i = 0; i < all->len; i++)
    {
      AbSession *s = g_ptr_array_index (all, i);
      guint refused = 0;

      if (ab_session_is_busy (s))
        {
          self->drain_interrupted
              += ab_session_interrupt (s, refusal, &refused);
          self->drain_refused += refused;
        }
    }
  self->drain_cutting = FALSE;
  ab_log_event (AB_LOG_TURN_INTERRUPTED, G_LOG_LEVEL_MESSAGE, NULL,
                AB_LOG_NO_CALLER,
                "drain deadline reached: interrupting %u turn(s), refusing %u "
                "prompt(s) still waiting for an agent",
                self->drain_interrupted, self->drain_refused);
  if (ab_pool_get_busy_count (self->pool) == 0)
    drain_finish (self);
  return G_SOURCE_REMOVE;
}

/* Gates ingress (the caller has set the state), then waits for every
 * turn in flight, queued ones and prompts waiting for their agent
 * included; at the deadline the remaining turns are cut and reported
 * interrupted, and the waiting prompts are refused. Pending permission
 * requests are denied so they cannot hold the drain. */
static void
start_drain (AbBroker *self, guint timeout_seconds, const char *reason,
             GTask *task)
{
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);
  guint busy = 0;

  g_free (self->drain_reason);
  self->drain_reason = g_strdup (reason);
  for (guint i = 0; i < all->len; i++)
    {
      AbSession *s = g_ptr_array_index (all, i);

      ab_session_deny_permissions (s);
      busy += ab_session_get_queued (s)
              + (ab_session_get_state (s) == AB_SESSION_STATE_BUSY);
    }

  g_task_set_task_data (task, GUINT_TO_POINTER (busy), NULL);
  self->drain_task = task;
  self->drain_interrupted = 0;
  self->drain_refused = 0;
  if (ab_pool_get_busy_count (self->pool) == 0)
    {
      drain_finish (self);
      return;
    }
  self->drain_busy_handler = g_signal_connect (
      self->pool, "notify::busy-count", G_CALLBACK (on_busy_changed), self);
  self->drain_deadline = g_timeout_add_full (
      G_PRIORITY_DEFAULT,
      (guint)MIN ((guint64)timeout_seconds * 1000, G_MAXUINT),
      on_drain_deadline, self, NULL);
}

void
ab_broker_drain_async (AbBroker *self, guint timeout_seconds,
                       const char *reason, GAsyncReadyCallback callback,
                       gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);

  if (self->state != AB_BROKER_STATE_RUNNING
      && self->state != AB_BROKER_STATE_DRAINED)
    {
      g_task_return_new_error (task, AB_ERROR, AB_ERROR_BUSY,
                               _ ("cannot drain while %s"),
                               ab_broker_state_to_string (self->state));
      g_object_unref (task);
      return;
    }
  set_state (self, AB_BROKER_STATE_DRAINING);
  set_status (self, _ ("Draining"));
  start_drain (self, timeout_seconds, reason, task);
}

gboolean
ab_broker_drain_finish (AbBroker *self, GAsyncResult *result, guint *finished,
                        guint *interrupted, GError **error)
{
  g_autofree guint *counts = g_task_propagate_pointer (G_TASK (result), error);

  if (counts == NULL)
    return FALSE;
  *finished = counts[0];
  *interrupted = counts[1];
  return TRUE;
}

gboolean
ab_broker_resume (AbBroker *self, GError **error)
{
  /* Already what Resume() asks for: done. */
  if (self->state == AB_BROKER_STATE_RUNNING)
    return TRUE;
  if (self->state != AB_BROKER_STATE_DRAINED)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_BUSY, _ ("cannot resume while %s"),
                   ab_broker_state_to_string (self->state));
      return FALSE;
    }

  g_clear_pointer (&self->drain_reason, g_free);
  set_state (self, AB_BROKER_STATE_RUNNING);
  set_running_status (self);
  return TRUE;
}

typedef struct
{
  guint pending;
  gboolean keep_agents;
} StopData;

/* The agents are stopped or handed over: no session streams any more,
 * and each record keeps the last number of its stream. */
static void
stopped (AbBroker *self, GTask *task)
{
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);

  for (guint i = 0; i < all->len; i++)
    ab_session_seal_stream (g_ptr_array_index (all, i));
  g_task_return_boolean (task, TRUE);
}

static void
on_stop_session_suspended (GObject *source, GAsyncResult *result,
                           gpointer user_data)
{
  GTask *task = user_data;
  StopData *data = g_task_get_task_data (task);

  ab_session_suspend_finish (AB_SESSION (source), result, NULL);
  if (--data->pending == 0)
    stopped (g_task_get_source_object (task), task);
  g_object_unref (task);
}

/* Every turn has ended: stop the agents, gracefully, and finish; or,
 * for a restart, leave them running for the next instance. */
static void
stop_agents (AbBroker *self, GTask *task)
{
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);
  StopData *data = g_task_get_task_data (task);

  if (data->keep_agents)
    {
      for (guint i = 0; i < all->len; i++)
        ab_session_detach_agent (g_ptr_array_index (all, i));
      stopped (self, task);
      return;
    }
  data->pending = 1;
  for (guint i = 0; i < all->len; i++)
    {
      AbSession *s = g_ptr_array_index (all, i);

      if (!ab_session_is_running (s))
        continue;
      data->pending++;
      ab_session_suspend_async (s, _ ("agentbroker is stopping"),
                                on_stop_session_suspended, g_object_ref (task));
    }
  if (--data->pending == 0)
    stopped (self, task);
}

static void
on_stop_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbBroker *self = AB_BROKER (source);
  guint finished = 0, interrupted = 0;

  ab_broker_drain_finish (self, result, &finished, &interrupted, NULL);
  set_state (self, AB_BROKER_STATE_STOPPING);
  set_status (self, _ ("Stopping agents"));
  stop_agents (self, task);
}

/* Stop: gate ingress, let running turns finish within timeouts.drain,
 * then stop every agent. The state stays "stopping" throughout. */
void
ab_broker_stop_async (AbBroker *self, gboolean keep_agents,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  guint seconds
      = (guint)((self->config->drain_timeout_usec + G_USEC_PER_SEC - 1)
                / G_USEC_PER_SEC);
  StopData *data = g_new0 (StopData, 1);

  data->keep_agents = keep_agents;
  g_task_set_task_data (task, data, g_free);
  /* A restart hands every turn over as it stands: no drain. */
  if (keep_agents)
    {
      if (self->drain_task != NULL)
        {
          g_clear_handle_id (&self->drain_deadline, g_source_remove);
          on_drain_deadline (self);
        }
      set_state (self, AB_BROKER_STATE_STOPPING);
      set_status (self, _ ("Restarting: the agents go on"));
      stop_agents (self, task);
      return;
    }
  if (self->drain_task != NULL)
    {
      /* A drain is already waiting: cut it short, then stop. */
      g_clear_handle_id (&self->drain_deadline, g_source_remove);
      on_drain_deadline (self);
    }
  if (self->state == AB_BROKER_STATE_DRAINING || self->drain_task != NULL)
    {
      set_state (self, AB_BROKER_STATE_STOPPING);
      stop_agents (self, task);
      return;
    }

  set_state (self, AB_BROKER_STATE_STOPPING);
  set_status (self, _ ("Stopping: waiting for running turns"));
  start_drain (self, seconds, _ ("shutdown"),
               g_task_new (self, NULL, on_stop_drained, task));
}

gboolean
ab_broker_stop_finish (AbBroker *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
