/* agentbroker — the D-Bus service
 *
 * Exports org.agentbroker.Broker1 and the object manager, checks every
 * caller's access level, and hands each call to the broker. No state
 * lives here: properties are bound to the broker's.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "ab-dbus.h"
#include "access.h"
#include "bus-callers.h"
#include "bus.h"
#include "error.h"
#include "pool.h"
#include "session.h"

/* Threads one connection may watch at a time. */
#define AB_BUS_MAX_WATCHES 1024
/* Longest agent name (as the config allows) and permission request or
 * option id accepted from a caller: longer ones are refused before they
 * are looked up or quoted back in an error message. */
#define AB_BUS_MAX_AGENT_BYTES 64
#define AB_BUS_MAX_ID_BYTES 1024

struct _AbBus
{
  GObject parent_instance;

  AbBroker *broker;
  GDBusConnection *connection;
  gboolean system_bus;
  AbDBusBroker1 *skeleton;
  GDBusObjectManagerServer *object_manager;
  GHashTable *watchers; /* unique name → Watcher */
  AbBusCallers *callers;
  guint name_owner_subscription;
};

G_DEFINE_TYPE (AbBus, ab_bus, G_TYPE_OBJECT)

typedef void (*AbBusHandler) (AbBus *self, GDBusMethodInvocation *invocation,
                              GVariant *params, const AbCaller *caller);

/* A connection that watches sessions, with the identity it had when it
 * asked: each recipient is checked again when a signal is sent. */
typedef struct
{
  uid_t uid;
  AbAccess access;
  GHashTable *threads; /* thread ids, or "*" */
} Watcher;

static void
watcher_free (Watcher *watcher)
{
  g_hash_table_unref (watcher->threads);
  g_free (watcher);
}

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
      g_autoptr (GError) denied = g_error_new (
          AB_ERROR, AB_ERROR_ACCESS_DENIED,
          call->required == AB_ACCESS_ADMIN
              ? _ ("%s needs administrator access; uid %u has %s")
              : _ ("%s needs user access; uid %u has %s"),
          method, uid, ab_access_to_string (access));

      g_message ("refused %s from uid %u (access %s)", method, uid,
                 ab_access_to_string (access));
      if (g_str_equal (method, "Prompt"))
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

/* ---- the broker's lifecycle ------------------------------------------ */

static void
do_reload (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;

  g_message ("Reload requested by uid %u", (guint)caller->uid);
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
  g_message ("Drain (%u s) requested by uid %u", timeout_seconds,
             (guint)caller->uid);
  ab_broker_drain_async (self->broker, timeout_seconds, reason, on_drained,
                         g_object_ref (invocation));
}

static void
do_resume (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;

  g_message ("Resume requested by uid %u", (guint)caller->uid);
  if (!ab_broker_resume (self->broker, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

/* ---- sessions ---------------------------------------------------------- */

/* The session of @thread if the caller may act on it: its owner or an
 * admin. Otherwise NULL, with the invocation answered. */
static AbSession *
session_for_caller (AbBus *self, GDBusMethodInvocation *invocation,
                    const char *thread, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  AbSession *session = ab_broker_lookup_session (
      self->broker, caller, thread,
      g_dbus_method_invocation_get_method_name (invocation), &error);

  if (session == NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  return session;
}

/* A turn cut off by the previous instance is told to the first
 * connection that prompts or watches its thread and may see it. */
static void
report_interrupted (AbBus *self, AbSession *session, const AbCaller *recipient)
{
  guint64 turn;

  if (!ab_broker_may_see (self->broker, recipient, session)
      || !ab_session_take_interrupted (session, &turn))
    return;
  g_dbus_connection_emit_signal (
      self->connection, recipient->connection, ab_session_get_path (session),
      AB_SESSION_IFACE, "TurnEnded",
      g_variant_new ("(tss)", turn, "interrupted",
                     _ ("agentbroker stopped while this turn was running")),
      NULL);
}

/* Each session keeps its dictionary between calls (ab_session_to_variant);
 * the array only refers to them. */
static void
do_list_sessions (AbBus *self, GDBusMethodInvocation *invocation,
                  GVariant *params, const AbCaller *caller)
{
  g_autoptr (GPtrArray) all = ab_pool_list (ab_broker_get_pool (self->broker));
  g_autofree GVariant **dicts = g_new (GVariant *, all->len + 1);
  GVariant *array;

  for (guint i = 0; i < all->len; i++)
    dicts[i] = ab_session_to_variant (g_ptr_array_index (all, i));
  array = g_variant_new_array (G_VARIANT_TYPE_VARDICT, dicts, all->len);
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
      invocation, g_variant_new_tuple (
                      (GVariant *[]){ ab_session_to_variant (session) }, 1));
}

/* A refused Prompt is counted (for /metrics), then answered. */
static void
refuse_prompt (AbBus *self, GDBusMethodInvocation *invocation,
               const GError *error)
{
  ab_broker_count_refusal (self->broker, error);
  g_dbus_method_invocation_return_gerror (invocation, error);
}

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AuthCall *call = user_data; /* only bus and invocation are set */
  g_autoptr (GError) error = NULL;
  guint64 turn = 0;

  if (!ab_pool_prompt_finish (AB_POOL (source), result, &turn, &error))
    refuse_prompt (call->bus, call->invocation, error);
  else
    g_dbus_method_invocation_return_value (call->invocation,
                                           g_variant_new ("(t)", turn));
  auth_call_free (call);
}

static void
do_prompt (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) options = NULL;
  g_autoptr (GVariant) agent_value = NULL;
  const char *thread, *text, *agent = NULL;
  AbSession *session;
  AuthCall *call;

  g_variant_get (params, "(&s&s@a{sv})", &thread, &text, &options);
  if (!ab_broker_check_accepting (self->broker, &error))
    {
      refuse_prompt (self, invocation, error);
      return;
    }

  agent_value = g_variant_lookup_value (options, "agent", NULL);
  if (agent_value != NULL)
    {
      if (!g_variant_is_of_type (agent_value, G_VARIANT_TYPE_STRING))
        {
          g_set_error (&error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("option 'agent' must be a string, not '%s'"),
                       g_variant_get_type_string (agent_value));
          refuse_prompt (self, invocation, error);
          return;
        }
      agent = g_variant_get_string (agent_value, NULL);
      if (strlen (agent) > AB_BUS_MAX_AGENT_BYTES)
        {
          g_set_error (&error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("option 'agent' is longer than %d bytes"),
                       AB_BUS_MAX_AGENT_BYTES);
          refuse_prompt (self, invocation, error);
          return;
        }
    }

  if (!ab_broker_find_session (self->broker, caller, thread, NULL, &session,
                               &error))
    {
      refuse_prompt (self, invocation, error);
      return;
    }

  if (session != NULL)
    report_interrupted (self, session, caller);
  call = g_new0 (AuthCall, 1);
  call->bus = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  ab_pool_prompt_async (ab_broker_get_pool (self->broker), thread, text, agent,
                        caller->uid, caller->connection, on_prompted, call);
}

static void
do_cancel (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           const AbCaller *caller)
{
  const char *thread;
  AbSession *session;

  g_variant_get (params, "(&s)", &thread);
  session = session_for_caller (self, invocation, thread, caller);
  if (session == NULL)
    return;
  g_message ("Cancel of %s requested by uid %u", thread, (guint)caller->uid);
  ab_session_cancel (session);
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
on_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GDBusMethodInvocation) invocation = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_pool_remove_finish (AB_POOL (source), result, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
do_remove_session (AbBus *self, GDBusMethodInvocation *invocation,
                   GVariant *params, const AbCaller *caller)
{
  const char *thread;

  g_variant_get (params, "(&s)", &thread);
  if (session_for_caller (self, invocation, thread, caller) == NULL)
    return;
  g_message ("RemoveSession of %s requested by uid %u", thread,
             (guint)caller->uid);
  ab_pool_remove_async (ab_broker_get_pool (self->broker), thread, "removed",
                        on_removed, g_object_ref (invocation));
}

static void
do_answer_permission (AbBus *self, GDBusMethodInvocation *invocation,
                      GVariant *params, const AbCaller *caller)
{
  g_autoptr (GError) error = NULL;
  const char *thread, *request, *option;
  AbSession *session;

  g_variant_get (params, "(&s&s&s)", &thread, &request, &option);
  if (strlen (request) > AB_BUS_MAX_ID_BYTES
      || strlen (option) > AB_BUS_MAX_ID_BYTES)
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("permission request and option ids are at most %d bytes"),
          AB_BUS_MAX_ID_BYTES);
      return;
    }
  session = session_for_caller (self, invocation, thread, caller);
  if (session == NULL)
    return;
  if (!ab_session_answer_permission (session, request, option, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
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
  g_hash_table_remove (self->watchers, name);
  ab_bus_callers_forget (self->callers, name);
}

static void
do_watch (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
          const AbCaller *caller)
{
  const char *thread;
  gboolean watch = g_str_equal (
      g_dbus_method_invocation_get_method_name (invocation), "Watch");
  Watcher *watcher;
  AbSession *session = NULL;

  g_variant_get (params, "(&s)", &thread);
  if (g_str_equal (thread, "*"))
    {
      if (caller->access < AB_ACCESS_ADMIN)
        {
          g_dbus_method_invocation_return_error (
              invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
              _ ("watching all sessions needs administrator access"));
          return;
        }
    }
  else
    {
      g_autoptr (GError) error = NULL;

      if (!ab_broker_find_session (self->broker, caller, thread, NULL, &session,
                                   &error))
        {
          g_dbus_method_invocation_return_gerror (invocation, error);
          return;
        }
    }

  watcher = g_hash_table_lookup (self->watchers, caller->connection);
  if (!watch)
    {
      if (watcher != NULL)
        g_hash_table_remove (watcher->threads, thread);
      g_dbus_method_invocation_return_value (invocation, NULL);
      return;
    }

  if (watcher == NULL)
    {
      watcher = g_new0 (Watcher, 1);
      watcher->threads
          = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      g_hash_table_insert (self->watchers, g_strdup (caller->connection),
                           watcher);
    }
  /* A connection's uid does not change; its access is that of its
   * latest Watch. */
  watcher->uid = caller->uid;
  watcher->access = caller->access;
  if (g_hash_table_size (watcher->threads) >= AB_BUS_MAX_WATCHES
      && !g_hash_table_contains (watcher->threads, thread))
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("a connection may watch at most %d threads"), AB_BUS_MAX_WATCHES);
      return;
    }
  g_hash_table_add (watcher->threads, g_strdup (thread));
  g_dbus_method_invocation_return_value (invocation, NULL);

  if (g_str_equal (thread, "*"))
    {
      g_autoptr (GPtrArray) all
          = ab_pool_list (ab_broker_get_pool (self->broker));
      for (guint i = 0; i < all->len; i++)
        report_interrupted (self, g_ptr_array_index (all, i), caller);
    }
  else if (session != NULL)
    report_interrupted (self, session, caller);
}

/* ---- the stream: unicast to the prompter and the watchers ---------------- */

static void
emit_to_recipients (AbBus *self, AbSession *session, const char *prompter,
                    const char *signal, GVariant *params)
{
  const char *thread = ab_session_get_thread (session);
  g_autoptr (GPtrArray) sent = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key, value;

  g_variant_ref_sink (params);
  if (prompter != NULL)
    {
      g_dbus_connection_emit_signal (self->connection, prompter,
                                     ab_session_get_path (session),
                                     AB_SESSION_IFACE, signal, params, NULL);
      g_ptr_array_add (sent, (gpointer)prompter);
    }

  /* The prompter's call was checked against this very session, whose
   * owner never changes. A watcher is checked now: its watch may predate
   * the session, or the removal and reuse of the thread id by another
   * user. */
  g_hash_table_iter_init (&iter, self->watchers);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Watcher *watcher = value;
      AbCaller recipient = { watcher->uid, watcher->access, key };

      if (!g_hash_table_contains (watcher->threads, thread)
          && !g_hash_table_contains (watcher->threads, "*"))
        continue;
      if (g_strcmp0 (key, prompter) == 0
          || !ab_broker_may_see (self->broker, &recipient, session))
        continue;
      g_dbus_connection_emit_signal (self->connection, key,
                                     ab_session_get_path (session),
                                     AB_SESSION_IFACE, signal, params, NULL);
    }
  g_variant_unref (params);
}

static void
on_session_update (AbSession *session, guint64 turn, const char *const *updates,
                   const char *prompter, AbBus *self)
{
  emit_to_recipients (self, session, prompter, "Update",
                      g_variant_new ("(t^as)", turn, updates));
}

static void
on_session_turn_ended (AbSession *session, guint64 turn, const char *reason,
                       const char *message, const char *prompter, AbBus *self)
{
  emit_to_recipients (self, session, prompter, "TurnEnded",
                      g_variant_new ("(tss)", turn, reason, message));
}

static void
on_session_permission (AbSession *session, guint64 turn, const char *request,
                       const char *json, const char *prompter, AbBus *self)
{
  emit_to_recipients (self, session, prompter, "PermissionRequested",
                      g_variant_new ("(tss)", turn, request, json));
}

/* ---- session objects ----------------------------------------------------- */

/* The Session1 properties that follow the session's own. One notify
 * handler instead of a GBinding per property: six bindings per session
 * were a fifth of a start with 10,000 records. */
static void
on_session_notify (AbSession *session, GParamSpec *pspec, AbDBusSession1 *iface)
{
  const char *name = g_param_spec_get_name (pspec);

  if (g_str_equal (name, "state"))
    ab_dbus_session1_set_state (
        iface, ab_session_state_to_string (ab_session_get_state (session)));
  else if (g_str_equal (name, "pid"))
    ab_dbus_session1_set_pid (iface, ab_session_get_pid (session));
  else if (g_str_equal (name, "acp-session"))
    ab_dbus_session1_set_acp_session (iface,
                                      ab_session_get_acp_session (session));
  else if (g_str_equal (name, "last-activity"))
    ab_dbus_session1_set_last_activity (
        iface, (guint64)ab_session_get_last_activity (session));
  else if (g_str_equal (name, "turns"))
    ab_dbus_session1_set_turns (iface, (guint)ab_session_get_turns (session));
  else if (g_str_equal (name, "queued"))
    ab_dbus_session1_set_queued (iface, ab_session_get_queued (session));
}

static void
export_session (AbBus *self, AbSession *session)
{
  g_autoptr (AbDBusObjectSkeleton) object = NULL;
  /* Every property at once: one construction, not eleven sets. */
  g_autoptr (AbDBusSession1) iface = g_object_new (
      AB_DBUS_TYPE_SESSION1_SKELETON, "thread", ab_session_get_thread (session),
      "agent", ab_session_get_agent (session), "owner",
      (guint)ab_session_get_owner (session), "cwd",
      ab_session_get_cwd (session), "created",
      (guint64)ab_session_get_created (session), "state",
      ab_session_state_to_string (ab_session_get_state (session)), "pid",
      ab_session_get_pid (session), "acp-session",
      ab_session_get_acp_session (session), "last-activity",
      (guint64)ab_session_get_last_activity (session), "turns",
      (guint)ab_session_get_turns (session), "queued",
      ab_session_get_queued (session), NULL);

  g_signal_connect_object (session, "notify", G_CALLBACK (on_session_notify),
                           iface, 0);

  g_signal_connect (session, "update", G_CALLBACK (on_session_update), self);
  g_signal_connect (session, "turn-ended", G_CALLBACK (on_session_turn_ended),
                    self);
  g_signal_connect (session, "permission-requested",
                    G_CALLBACK (on_session_permission), self);

  object = ab_dbus_object_skeleton_new (ab_session_get_path (session));
  ab_dbus_object_skeleton_set_session1 (object, iface);
  g_dbus_object_manager_server_export (self->object_manager,
                                       G_DBUS_OBJECT_SKELETON (object));
}

static void
on_session_added (AbPool *pool, AbSession *session, AbBus *self)
{
  export_session (self, session);
  ab_dbus_broker1_emit_session_added (self->skeleton,
                                      ab_session_get_thread (session),
                                      ab_session_get_path (session));
}

static void
on_session_removed (AbPool *pool, AbSession *session, const char *reason,
                    AbBus *self)
{
  g_signal_handlers_disconnect_by_data (session, self);
  g_signal_handlers_disconnect_matched (session, G_SIGNAL_MATCH_FUNC, 0, 0,
                                        NULL, on_session_notify, NULL);
  g_dbus_object_manager_server_unexport (self->object_manager,
                                         ab_session_get_path (session));
  ab_dbus_broker1_emit_session_removed (
      self->skeleton, ab_session_get_thread (session), reason);
}

/* ---- method entry points ------------------------------------------------- */

static gboolean
on_handle_list_sessions (AbDBusBroker1 *skeleton,
                         GDBusMethodInvocation *invocation, AbBus *self)
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
on_handle_watch (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                 const char *thread, AbBus *self)
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

  if (self->broker != NULL)
    g_signal_handlers_disconnect_by_data (ab_broker_get_pool (self->broker),
                                          self);
  if (self->name_owner_subscription != 0)
    g_dbus_connection_signal_unsubscribe (self->connection,
                                          self->name_owner_subscription);
  self->name_owner_subscription = 0;
  g_clear_pointer (&self->watchers, g_hash_table_unref);
  g_clear_pointer (&self->callers, ab_bus_callers_close);
  if (self->skeleton != NULL)
    g_dbus_interface_skeleton_unexport (
        G_DBUS_INTERFACE_SKELETON (self->skeleton));
  g_clear_object (&self->skeleton);
  if (self->object_manager != NULL)
    g_dbus_object_manager_server_set_connection (self->object_manager, NULL);
  g_clear_object (&self->object_manager);
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
  g_autoptr (GPtrArray) restored = NULL;

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

#define CONNECT(signal, handler)                                               \
  g_signal_connect (self->skeleton, signal, G_CALLBACK (handler), self)
  CONNECT ("handle-list-sessions", on_handle_list_sessions);
  CONNECT ("handle-get-session", on_handle_get_session);
  CONNECT ("handle-prompt", on_handle_prompt);
  CONNECT ("handle-cancel", on_handle_cancel);
  CONNECT ("handle-remove-session", on_handle_remove_session);
  CONNECT ("handle-drain", on_handle_drain);
  CONNECT ("handle-resume", on_handle_resume);
  CONNECT ("handle-reload", on_handle_reload);
  CONNECT ("handle-watch", on_handle_watch);
  CONNECT ("handle-unwatch", on_handle_unwatch);
  CONNECT ("handle-answer-permission", on_handle_answer_permission);
#undef CONNECT

  if (!g_dbus_interface_skeleton_export (
          G_DBUS_INTERFACE_SKELETON (self->skeleton), connection, AB_BUS_PATH,
          error))
    return NULL;

  /* Sessions restored before the bus came up get their objects first and
   * are registered with the connection in one go: exported one by one on
   * a connection, each sent an InterfacesAdded signal no client can be
   * listening for yet (the name is not ours until after this), nearly
   * half of a start with 10,000 records. */
  self->object_manager = g_dbus_object_manager_server_new (AB_BUS_PATH);
  restored = ab_pool_list (pool);
  for (guint i = 0; i < restored->len; i++)
    export_session (self, g_ptr_array_index (restored, i));
  g_dbus_object_manager_server_set_connection (self->object_manager,
                                               connection);

  self->watchers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)watcher_free);
  /* The test caller map never applies to the system bus. */
  self->callers = ab_bus_callers_new (
      connection, system_bus ? NULL : g_getenv ("AGENTBROKER_TEST_CALLER_MAP"));
  self->name_owner_subscription = g_dbus_connection_signal_subscribe (
      connection, "org.freedesktop.DBus", "org.freedesktop.DBus",
      "NameOwnerChanged", "/org/freedesktop/DBus", NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_name_owner_changed, self, NULL);

  g_signal_connect (pool, "session-added", G_CALLBACK (on_session_added), self);
  g_signal_connect (pool, "session-removed", G_CALLBACK (on_session_removed),
                    self);
  return g_steal_pointer (&self);
}
