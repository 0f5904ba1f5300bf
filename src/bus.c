/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the D-Bus service
 *
 * Exports org.agentbroker.Broker1, checks every caller's access level
 * (the callers' uids: bus-callers.c), and hands each call to the broker;
 * the session objects and their streams are bus-sessions.c's. No state
 * lives here: properties are bound to the broker's.
 */
#include "config.h"

#include <string.h>
#include <sys/resource.h>

#include <glib/gi18n.h>

#include "ab-dbus.h"
#include "access.h"
#include "bus-callers.h"
#include "bus-sessions.h"
#include "bus.h"
#include "error.h"
#include "log.h"
#include "pool.h"
#include "session-list.h"
#include "session.h"

struct _AbBus
{
  GObject parent_instance;

  AbBroker *broker;
  GDBusConnection *connection;
  gboolean system_bus;
  AbDBusBroker1 *skeleton;
  AbBusSessions *sessions;
  AbBusCallers *callers;
  guint name_owner_subscription;
};

G_DEFINE_TYPE (AbBus, ab_bus, G_TYPE_OBJECT)

typedef void (*AbBusHandler) (AbBus *self, GDBusMethodInvocation *invocation,
                              GVariant *params, const AbCaller *caller);

typedef struct
{
  AbBus *bus;
  GDBusMethodInvocation *invocation;
  AbAccess required;
  AbBusHandler handler;
} AuthCall;

static void
auth_call_free (AuthCall *call)
{
  g_object_unref (call->bus);
  g_object_unref (call->invocation);
  g_free (call);
}

/* Runs @call's handler if @known, its caller, has the access it needs;
 * refuses it otherwise. */
static void
run_call (AuthCall *call, const AbBusIdentity *known)
{
  AbBus *self = call->bus;
  GDBusMethodInvocation *invocation = call->invocation;
  const char *method = g_dbus_method_invocation_get_method_name (invocation);
  uid_t uid = known->uid;
  AbAccess access
      = known->mapped ? known->mapped_access
                      : ab_access_for_uid (ab_broker_get_config (self->broker),
                                           uid, self->system_bus);
  AbCaller caller
      = { uid, access, g_dbus_method_invocation_get_sender (invocation) };

  if (access < call->required)
    {
      AbConfig *config = ab_broker_get_config (self->broker);
      gboolean admin = call->required == AB_ACCESS_ADMIN;
      g_autoptr (GStrvBuilder) granting = g_strv_builder_new ();
      g_auto (GStrv) names = NULL;
      g_autofree char *groups = NULL;

      /* Admins may do what users may: either list grants user access. */
      if (!admin)
        g_strv_builder_addv (granting, (const char **)config->access_users);
      g_strv_builder_addv (granting, (const char **)config->access_admins);
      names = g_strv_builder_end (granting);
      groups = g_strjoinv (", ", names);
      g_autoptr (GError) denied = g_error_new (
          AB_ERROR, AB_ERROR_ACCESS_DENIED,
          admin ? _ ("%s needs administrator access, granted by the groups: "
                     "%s; uid %u has %s")
                : _ ("%s needs user access, granted by the groups: %s; uid "
                     "%u has %s"),
          method, groups[0] != '\0' ? groups : "root", uid,
          ab_access_to_string (access));

      g_message ("refused %s from uid %u (access %s)", method, uid,
                 ab_access_to_string (access));
      if (g_str_equal (method, "Prompt")
          || g_str_equal (method, "PromptContent"))
        ab_broker_count_refusal (self->broker, denied);
      g_dbus_method_invocation_return_gerror (invocation, denied);
    }
  else
    call->handler (self, invocation,
                   g_dbus_method_invocation_get_parameters (invocation),
                   &caller);
}

static void
on_identity (const AbBusIdentity *identity, const GError *error,
             gpointer user_data)
{
  AuthCall *call = user_data;

  if (identity == NULL)
    g_dbus_method_invocation_return_error (
        call->invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
        _ ("cannot determine the caller's credentials: %s"), error->message);
  else
    run_call (call, identity);
}

/* Runs @handler once the caller's uid is known (looking it up at the bus
 * the first time) if the caller has at least @required access. Always
 * returns TRUE: the invocation is handled, now or later. */
static gboolean
authorize (AbBus *self, GDBusMethodInvocation *invocation, AbAccess required,
           AbBusHandler handler)
{
  AuthCall *call = g_new0 (AuthCall, 1);

  call->bus = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  call->required = required;
  call->handler = handler;
  ab_bus_callers_resolve (self->callers,
                          g_dbus_method_invocation_get_sender (invocation),
                          on_identity, call, (GDestroyNotify)auth_call_free);
  return TRUE;
}

/* RLIMIT_NOFILE's soft limit, G_MAXUINT64 for none (RLIM_INFINITY). */
static guint64
open_file_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur == RLIM_INFINITY)
    return G_MAXUINT64;
  return limit.rlim_cur;
}

/* ---- the broker's lifecycle ------------------------------------------ */

static void
do_reload (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;

  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, caller->uid,
                "Reload requested by uid %u", (guint)caller->uid);
  if (!ab_broker_reload (self->broker, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
on_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;
  guint finished = 0, interrupted = 0;

  if (!ab_broker_drain_finish (AB_BROKER (source), result, &finished,
                               &interrupted, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (
      invocation, g_variant_new ("(uu)", finished, interrupted));
}

static void
do_drain (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
          const AbCaller *caller)
{
  g_autofree char *reason
      = g_strdup_printf (_ ("a drain requested by uid %u"), (guint)caller->uid);
  guint timeout_seconds;

  g_variant_get (params, "(u)", &timeout_seconds);
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, caller->uid,
                "Drain (%u s) requested by uid %u", timeout_seconds,
                (guint)caller->uid);
  ab_broker_drain_async (self->broker, timeout_seconds, reason, on_drained,
                         g_object_ref (invocation));
}

static void
do_resume (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;

  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, caller->uid,
                "Resume requested by uid %u", (guint)caller->uid);
  if (!ab_broker_resume (self->broker, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

/* ---- sessions ---------------------------------------------------------- */

/* Each session keeps its dictionary between calls (ab_session_to_variant);
 * the array only refers to them. */
static void
do_list_sessions (AbBus *self, GDBusMethodInvocation *invocation,
                  GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) options = g_variant_get_child_value (params, 0);
  g_autoptr (GPtrArray) all = NULL;
  AbSessionFilter filter;
  GVariant *array;

  if (!ab_session_filter_parse (&filter, options, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  if (filter.own)
    {
      filter.by_owner = TRUE;
      filter.owner = caller->uid;
    }
  all = ab_broker_list_sessions (self->broker, caller);
  array = ab_session_list_build (all, &filter);
  ab_session_filter_clear (&filter);
  g_dbus_method_invocation_return_value (invocation,
                                         g_variant_new_tuple (&array, 1));
}

static void
do_get_session (AbBus *self, GDBusMethodInvocation *invocation,
                GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread;
  AbSession *session;

  g_variant_get (params, "(&s)", &thread);
  /* Every user may read every session: no caller to check. */
  session = ab_broker_lookup_session (self->broker, NULL, thread, NULL, &error);
  if (session == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (
      invocation,
      g_variant_new_tuple ((GVariant *[]){ ab_session_details (session) }, 1));
}

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;
  guint64 turn = 0;

  if (!ab_broker_prompt_finish (AB_BROKER (source), result, &turn, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    g_dbus_method_invocation_return_value (invocation,
                                           g_variant_new ("(t)", turn));
}

/* The prompt is accepted: a turn its thread's session lost to the
 * previous instance is told first. */
static void
on_prompt_accepted (AbSession *session, const AbCaller *caller,
                    gpointer user_data)
{
  AbBus *self = user_data;

  if (session != NULL)
    ab_bus_sessions_report_interrupted (self->sessions, session, caller);
}

/* Prompt() and PromptContent(): the same arguments, text or the JSON
 * text of ACP content blocks. */
static void
do_prompt (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GVariant) options = NULL;
  g_autoptr (GVariant) agent_value = NULL;
  const char *thread, *text, *agent = NULL;
  gboolean content = g_str_equal (
      g_dbus_method_invocation_get_method_name (invocation), "PromptContent");

  g_variant_get (params, "(&s&s@a{sv})", &thread, &text, &options);
  agent_value = g_variant_lookup_value (options, "agent", NULL);
  if (agent_value != NULL
      && !g_variant_is_of_type (agent_value, G_VARIANT_TYPE_STRING))
    {
      g_autoptr (GError) error
          = g_error_new (AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                         _ ("option 'agent' must be a string, not '%s'"),
                         g_variant_get_type_string (agent_value));

      ab_broker_count_refusal (self->broker, error);
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  if (agent_value != NULL)
    agent = g_variant_get_string (agent_value, NULL);
  if (content)
    ab_broker_prompt_content_async (self->broker, caller, thread, text, agent,
                                    on_prompt_accepted, self, on_prompted,
                                    g_object_ref (invocation));
  else
    ab_broker_prompt_async (self->broker, caller, thread, text, agent,
                            on_prompt_accepted, self, on_prompted,
                            g_object_ref (invocation));
}

static void
do_get_transcript (AbBus *self, GDBusMethodInvocation *invocation,
                   GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *lines = NULL;
  g_auto (GStrv) entries = NULL;
  GVariantBuilder builder;
  const char *thread;

  g_variant_get (params, "(&s)", &thread);
  lines = ab_broker_get_transcript (self->broker, caller, thread, &error);
  if (lines == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  entries = g_strsplit (lines, "\n", -1);
  g_variant_builder_init (&builder, G_VARIANT_TYPE ("as"));
  for (char **entry = entries; *entry != NULL; entry++)
    if (**entry != '\0')
      g_variant_builder_add (&builder, "s", *entry);
  g_dbus_method_invocation_return_value (invocation,
                                         g_variant_new ("(as)", &builder));
}

static void
do_create_session (AbBus *self, GDBusMethodInvocation *invocation,
                   GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) options = NULL;
  g_autoptr (GVariant) agent_value = NULL;
  const char *thread, *agent = NULL;

  g_variant_get (params, "(&s@a{sv})", &thread, &options);
  agent_value = g_variant_lookup_value (options, "agent", NULL);
  if (agent_value != NULL
      && !g_variant_is_of_type (agent_value, G_VARIANT_TYPE_STRING))
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("option 'agent' must be a string, not '%s'"),
          g_variant_get_type_string (agent_value));
      return;
    }
  if (agent_value != NULL)
    agent = g_variant_get_string (agent_value, NULL);
  if (!ab_broker_create_session (self->broker, caller, thread, agent, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

/* ---- the agent's session: mode and configuration options ----------------- */

/* Longest mode id, option id or option value passed to an agent. */
#define AB_BUS_MAX_OPTION_BYTES 256

static gboolean
check_option_text (const char *what, const char *text, GError **error)
{
  gsize len = strlen (text);

  if (len == 0 || len > AB_BUS_MAX_OPTION_BYTES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("%s must be 1 to %d bytes"), what,
                   AB_BUS_MAX_OPTION_BYTES);
      return FALSE;
    }
  return TRUE;
}

static void
on_mode_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = ab_broker_agent_call_finish (AB_BROKER (source), result, &error);

  if (reply == NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
do_set_session_mode (AbBus *self, GDBusMethodInvocation *invocation,
                     GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread, *mode;
  JsonObject *request;

  g_variant_get (params, "(&s&s)", &thread, &mode);
  if (!check_option_text ("mode", mode, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  request = json_object_new ();
  json_object_set_string_member (request, "modeId", mode);
  ab_broker_agent_call_async (self->broker, caller, thread, "SetSessionMode",
                              "session/set_mode", request, on_mode_set,
                              g_object_ref (invocation));
}

/* The agent's configOptions, as JSON text. */
static void
on_option_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply
      = ab_broker_agent_call_finish (AB_BROKER (source), result, &error);
  JsonNode *options = NULL;
  g_autofree char *text = NULL;

  if (reply == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  if (JSON_NODE_HOLDS_OBJECT (reply))
    options = json_object_get_member (json_node_get_object (reply),
                                      "configOptions");
  text = options != NULL && JSON_NODE_HOLDS_ARRAY (options)
             ? json_to_string (options, FALSE)
             : g_strdup ("[]");
  g_dbus_method_invocation_return_value (invocation,
                                         g_variant_new ("(s)", text));
}

static void
do_set_session_config_option (AbBus *self, GDBusMethodInvocation *invocation,
                              GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) value = NULL;
  const char *thread, *option;
  JsonObject *request;

  g_variant_get (params, "(&s&sv)", &thread, &option, &value);
  if (!check_option_text ("option", option, &error)
      || (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING)
          && !check_option_text ("value", g_variant_get_string (value, NULL),
                                 &error)))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  request = json_object_new ();
  json_object_set_string_member (request, "configId", option);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
    {
      json_object_set_string_member (request, "type", "boolean");
      json_object_set_boolean_member (request, "value",
                                      g_variant_get_boolean (value));
    }
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    json_object_set_string_member (request, "value",
                                   g_variant_get_string (value, NULL));
  else
    {
      json_object_unref (request);
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("value must be a string or a boolean, not '%s'"),
          g_variant_get_type_string (value));
      return;
    }
  ab_broker_agent_call_async (self->broker, caller, thread,
                              "SetSessionConfigOption",
                              "session/set_config_option", request,
                              on_option_set, g_object_ref (invocation));
}

/* ---- profiles ------------------------------------------------------------ */

static const char *
permissions_name (AbPermissions permissions)
{
  switch (permissions)
    {
    case AB_PERMISSIONS_ALLOW:
      return "allow";
    case AB_PERMISSIONS_ASK:
      return "ask";
    case AB_PERMISSIONS_DENY:
    default:
      return "deny";
    }
}

/* One profile of ListProfiles(): its name and what is known of it. */
static GVariant *
profile_variant (AbBus *self, const AbConfig *config,
                 const AbAgentProfile *profile)
{
  AbPool *pool = ab_broker_get_pool (self->broker);
  g_auto (GVariantDict) dict = G_VARIANT_DICT_INIT (NULL);
  gint64 when = 0;
  const char *seen = ab_pool_get_agent_seen (pool, profile->name, &when);

  g_variant_dict_insert (&dict, "default", "b",
                         g_str_equal (profile->name, config->default_agent));
  g_variant_dict_insert (&dict, "permissions", "s",
                         permissions_name (profile->permissions));
  g_variant_dict_insert (&dict, "agent", "s", seen != NULL ? seen : "");
  g_variant_dict_insert (&dict, "seen", "t", (guint64)MAX (when, 0));
  return g_variant_new ("(s@a{sv})", profile->name, g_variant_dict_end (&dict));
}

static void
do_list_profiles (AbBus *self, GDBusMethodInvocation *invocation,
                  GVariant *params, const AbCaller *caller)
{
  AbConfig *config = ab_broker_get_config (self->broker);
  GVariantBuilder profiles;

  g_variant_builder_init (&profiles, G_VARIANT_TYPE ("a(sa{sv})"));
  for (guint i = 0; i < config->agents->len; i++)
    g_variant_builder_add_value (
        &profiles,
        profile_variant (self, config, g_ptr_array_index (config->agents, i)));
  g_dbus_method_invocation_return_value (
      invocation, g_variant_new ("(a(sa{sv}))", &profiles));
}

/* Answers @invocation with nothing, or with @error when it is set. */
static void
return_result (GDBusMethodInvocation *invocation, const GError *error)
{
  if (error != NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
do_cancel (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread;

  g_variant_get (params, "(&s)", &thread);
  ab_broker_cancel (self->broker, caller, thread, &error);
  return_result (invocation, error);
}

static void
on_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;

  ab_broker_remove_finish (AB_BROKER (source), result, &error);
  return_result (invocation, error);
}

static void
do_remove_session (AbBus *self, GDBusMethodInvocation *invocation,
                   GVariant *params, const AbCaller *caller)
{
  const char *thread;

  g_variant_get (params, "(&s)", &thread);
  ab_broker_remove_async (self->broker, caller, thread, on_removed,
                          g_object_ref (invocation));
}

static void
do_kill_session (AbBus *self, GDBusMethodInvocation *invocation,
                 GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread, *signal_name;

  g_variant_get (params, "(&s&s)", &thread, &signal_name);
  ab_broker_kill_session (self->broker, caller, thread, signal_name, &error);
  return_result (invocation, error);
}

static void
do_answer_permission (AbBus *self, GDBusMethodInvocation *invocation,
                      GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread, *request, *option;

  g_variant_get (params, "(&s&s&s)", &thread, &request, &option);
  ab_broker_answer_permission (self->broker, caller, thread, request, option,
                               &error);
  return_result (invocation, error);
}

/* ---- watching ----------------------------------------------------------- */

static void
on_name_owner_changed (GDBusConnection *connection, const char *sender_name,
                       const char *object_path, const char *interface_name,
                       const char *signal_name, GVariant *parameters,
                       gpointer user_data)
{
  AbBus *self = user_data;
  const char *name, *old_owner, *new_owner;

  g_variant_get (parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
  if (new_owner[0] != '\0')
    return;
  /* A connection went: its watches and its uid go with it. */
  ab_bus_sessions_forget (self->sessions, name);
  ab_bus_callers_forget (self->callers, name);
}

static void
do_watch (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
          const AbCaller *caller)
{
  const char *method = g_dbus_method_invocation_get_method_name (invocation);
  const char *thread;
  gboolean watch = !g_str_equal (method, "Unwatch");
  gboolean from = g_str_equal (method, "WatchFrom");
  guint64 after = 0;
  g_autoptr (GError) error = NULL;
  AbSession *session = NULL;

  if (from)
    g_variant_get (params, "(&st)", &thread, &after);
  else
    g_variant_get (params, "(&s)", &thread);
  if (from && g_str_equal (thread, "*"))
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("WatchFrom takes one thread id; Watch(\"*\") watches all "
             "sessions"));
      return;
    }
  if (!ab_broker_check_watch (self->broker, caller, thread, &session, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }

  if (!watch)
    {
      ab_bus_sessions_unwatch (self->sessions, caller->connection, thread);
      g_dbus_method_invocation_return_value (invocation, NULL);
      return;
    }
  if (!ab_bus_sessions_watch (self->sessions, caller, thread, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  if (from)
    {
      /* What it missed goes first, in order; then its reply; then what
       * comes next. */
      gboolean complete
          = session == NULL
            || ab_bus_sessions_replay (self->sessions, session, caller, after);

      g_dbus_method_invocation_return_value (invocation,
                                             g_variant_new ("(b)", complete));
    }
  else
    g_dbus_method_invocation_return_value (invocation, NULL);

  if (g_str_equal (thread, "*"))
    {
      g_autoptr (GPtrArray) all
          = ab_pool_list (ab_broker_get_pool (self->broker));
      for (guint i = 0; i < all->len; i++)
        ab_bus_sessions_report_interrupted (self->sessions,
                                            g_ptr_array_index (all, i), caller);
    }
  else if (session != NULL)
    ab_bus_sessions_report_interrupted (self->sessions, session, caller);
}

/* ---- method entry points ------------------------------------------------- */

static gboolean
on_handle_list_sessions (AbDBusBroker1 *skeleton,
                         GDBusMethodInvocation *invocation, GVariant *options,
                         AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_list_sessions);
}

static gboolean
on_handle_get_session (AbDBusBroker1 *skeleton,
                       GDBusMethodInvocation *invocation, const char *thread,
                       AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_get_session);
}

static gboolean
on_handle_prompt (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  const char *thread, const char *text, GVariant *options,
                  AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_prompt);
}

static gboolean
on_handle_prompt_content (AbDBusBroker1 *skeleton,
                          GDBusMethodInvocation *invocation, const char *thread,
                          const char *content, GVariant *options, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_prompt);
}

static gboolean
on_handle_get_transcript (AbDBusBroker1 *skeleton,
                          GDBusMethodInvocation *invocation, const char *thread,
                          AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_get_transcript);
}

static gboolean
on_handle_create_session (AbDBusBroker1 *skeleton,
                          GDBusMethodInvocation *invocation, const char *thread,
                          GVariant *options, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_create_session);
}

static gboolean
on_handle_set_session_mode (AbDBusBroker1 *skeleton,
                            GDBusMethodInvocation *invocation,
                            const char *thread, const char *mode, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_set_session_mode);
}

static gboolean
on_handle_set_session_config_option (AbDBusBroker1 *skeleton,
                                     GDBusMethodInvocation *invocation,
                                     const char *thread, const char *option,
                                     GVariant *value, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER,
                    do_set_session_config_option);
}

static gboolean
on_handle_list_profiles (AbDBusBroker1 *skeleton,
                         GDBusMethodInvocation *invocation, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_list_profiles);
}

static gboolean
on_handle_cancel (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_cancel);
}

static gboolean
on_handle_remove_session (AbDBusBroker1 *skeleton,
                          GDBusMethodInvocation *invocation, const char *thread,
                          AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_remove_session);
}

static gboolean
on_handle_kill_session (AbDBusBroker1 *skeleton,
                        GDBusMethodInvocation *invocation, const char *thread,
                        const char *signal_name, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_kill_session);
}

static gboolean
on_handle_watch (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                 const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_watch);
}

static gboolean
on_handle_watch_from (AbDBusBroker1 *skeleton,
                      GDBusMethodInvocation *invocation, const char *thread,
                      guint64 after, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_watch);
}

static gboolean
on_handle_unwatch (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                   const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_watch);
}

static gboolean
on_handle_answer_permission (AbDBusBroker1 *skeleton,
                             GDBusMethodInvocation *invocation,
                             const char *thread, const char *request,
                             const char *option, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_answer_permission);
}

static gboolean
on_handle_drain (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                 guint timeout_seconds, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_ADMIN, do_drain);
}

static gboolean
on_handle_resume (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_ADMIN, do_resume);
}

static gboolean
on_handle_reload (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_ADMIN, do_reload);
}

/* ---- object -------------------------------------------------------- */

static void
ab_bus_dispose (GObject *object)
{
  AbBus *self = AB_BUS (object);

  if (self->name_owner_subscription != 0)
    g_dbus_connection_signal_unsubscribe (self->connection,
                                          self->name_owner_subscription);
  self->name_owner_subscription = 0;
  g_clear_pointer (&self->sessions, ab_bus_sessions_free);
  g_clear_pointer (&self->callers, ab_bus_callers_close);
  if (self->skeleton != NULL)
    g_dbus_interface_skeleton_unexport (
        G_DBUS_INTERFACE_SKELETON (self->skeleton));
  g_clear_object (&self->skeleton);
  g_clear_object (&self->connection);
  g_clear_object (&self->broker);

  G_OBJECT_CLASS (ab_bus_parent_class)->dispose (object);
}

static void
ab_bus_class_init (AbBusClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = ab_bus_dispose;
}

static void
ab_bus_init (AbBus *self)
{
}

AbBus *
ab_bus_new (AbBroker *broker, GDBusConnection *connection, gboolean system_bus,
            GError **error)
{
  g_autoptr (AbBus) self = g_object_new (AB_TYPE_BUS, NULL);
  static const char *const bound[]
      = { "state", "accepting", "generation", "max-sessions" };
  static const char *const counts[]
      = { "session-count", "running-count", "busy-count" };
  AbPool *pool = ab_broker_get_pool (broker);

  self->broker = g_object_ref (broker);
  self->connection = g_object_ref (connection);
  self->system_bus = system_bus;
  self->skeleton = ab_dbus_broker1_skeleton_new ();

  for (gsize i = 0; i < G_N_ELEMENTS (bound); i++)
    g_object_bind_property (broker, bound[i], self->skeleton, bound[i],
                            G_BINDING_SYNC_CREATE);
  for (gsize i = 0; i < G_N_ELEMENTS (counts); i++)
    g_object_bind_property (pool, counts[i], self->skeleton, counts[i],
                            G_BINDING_SYNC_CREATE);
  ab_dbus_broker1_set_version (self->skeleton, PACKAGE_VERSION);
  ab_dbus_broker1_set_started_at (self->skeleton,
                                  ab_broker_get_started_at (broker));
  ab_dbus_broker1_set_open_file_limit (self->skeleton, open_file_limit ());
  ab_dbus_broker1_set_launcher (self->skeleton,
                                ab_broker_get_launcher (self->broker));

#define CONNECT(signal, handler)                                               \
  g_signal_connect (self->skeleton, signal, G_CALLBACK (handler), self)
  CONNECT ("handle-list-sessions", on_handle_list_sessions);
  CONNECT ("handle-get-session", on_handle_get_session);
  CONNECT ("handle-prompt", on_handle_prompt);
  CONNECT ("handle-prompt-content", on_handle_prompt_content);
  CONNECT ("handle-list-profiles", on_handle_list_profiles);
  CONNECT ("handle-get-transcript", on_handle_get_transcript);
  CONNECT ("handle-create-session", on_handle_create_session);
  CONNECT ("handle-set-session-mode", on_handle_set_session_mode);
  CONNECT ("handle-set-session-config-option",
           on_handle_set_session_config_option);
  CONNECT ("handle-cancel", on_handle_cancel);
  CONNECT ("handle-remove-session", on_handle_remove_session);
  CONNECT ("handle-kill-session", on_handle_kill_session);
  CONNECT ("handle-drain", on_handle_drain);
  CONNECT ("handle-resume", on_handle_resume);
  CONNECT ("handle-reload", on_handle_reload);
  CONNECT ("handle-watch", on_handle_watch);
  CONNECT ("handle-watch-from", on_handle_watch_from);
  CONNECT ("handle-unwatch", on_handle_unwatch);
  CONNECT ("handle-answer-permission", on_handle_answer_permission);
#undef CONNECT

  if (!g_dbus_interface_skeleton_export (
          G_DBUS_INTERFACE_SKELETON (self->skeleton), connection, AB_BUS_PATH,
          error))
    return NULL;

  self->sessions = ab_bus_sessions_new (broker, connection, self->skeleton);
  /* The test caller map never applies to the system bus. */
  self->callers = ab_bus_callers_new (
      connection, system_bus ? NULL : g_getenv ("AGENTBROKER_TEST_CALLER_MAP"));
  self->name_owner_subscription = g_dbus_connection_signal_subscribe (
      connection, "org.freedesktop.DBus", "org.freedesktop.DBus",
      "NameOwnerChanged", "/org/freedesktop/DBus", NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_name_owner_changed, self, NULL);
  return g_steal_pointer (&self);
}
