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
#include "agent-process.h"
#include "bus.h"
#include "error.h"
#include "log.h"
#include "pool.h"
#include "session-list.h"
#include "session.h"
#include "thread-id.h"

/* Threads one connection may watch at a time. */
#define AB_BUS_MAX_WATCHES 1024
/* Longest agent name (as the config allows) and permission request or
 * option id accepted from a caller: longer ones are refused before they
 * are looked up or quoted back in an error message. */
#define AB_BUS_MAX_AGENT_BYTES 64
#define AB_BUS_MAX_ID_BYTES 1024
/* Callers whose uid is remembered; past this, those not waiting for a
 * lookup are forgotten (a name whose NameOwnerChanged was missed would
 * otherwise stay forever). */
#define AB_BUS_MAX_CALLERS 4096

struct _AbBus
{
  GObject parent_instance;

  AbBroker *broker;
  GDBusConnection *connection;
  gboolean system_bus;
  AbDBusBroker1 *skeleton;
  GDBusObjectManagerServer *object_manager;
  GHashTable *watchers; /* unique name → set of thread ids or "*" */
  GHashTable *callers;  /* unique name → Caller */
  guint name_owner_subscription;
};

G_DEFINE_TYPE (AbBus, ab_bus, G_TYPE_OBJECT)

typedef void (*AbBusHandler) (AbBus *self, GDBusMethodInvocation *invocation,
                              GVariant *params, uid_t uid, AbAccess access);

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

/* What the daemon knows of one caller. The bus never gives a unique name
 * to another connection and a connection's uid does not change, so a uid
 * once looked up holds until the name goes (NameOwnerChanged). While the
 * lookup is under way, later calls from the same caller wait behind the
 * first, so a caller's calls are handled in the order they came. */
typedef struct
{
  gboolean known;
  gboolean gone; /* the name went while its lookup was under way */
  uid_t uid;
  GQueue calls; /* AuthCall *, waiting for the lookup */
} Caller;

static void
caller_free (Caller *caller)
{
  g_queue_clear_full (&caller->calls, (GDestroyNotify)auth_call_free);
  g_free (caller);
}

static gboolean
caller_is_known (gpointer name, gpointer caller, gpointer user_data)
{
  return ((Caller *)caller)->known;
}

typedef struct
{
  AbBus *bus;
  char *name;
} CallerLookup;

static void
caller_lookup_free (CallerLookup *lookup)
{
  g_object_unref (lookup->bus);
  g_free (lookup->name);
  g_free (lookup);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CallerLookup, caller_lookup_free)

/* Runs @call's handler if its caller, @uid, has the access it needs;
 * refuses it otherwise. Frees @call. */
static void
run_call (AuthCall *call, uid_t uid)
{
  AbBus *self = call->bus;
  GDBusMethodInvocation *invocation = call->invocation;
  const char *method = g_dbus_method_invocation_get_method_name (invocation);
  AbAccess access = ab_access_for_uid (ab_broker_get_config (self->broker), uid,
                                       self->system_bus);

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
                   g_dbus_method_invocation_get_parameters (invocation), uid,
                   access);
  auth_call_free (call);
}

static void
on_caller_uid (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CallerLookup) lookup = user_data;
  AbBus *self = lookup->bus;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  Caller *caller;
  AuthCall *call;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  /* Gone with the bus object (ab_bus_dispose), its calls with it. */
  if (self->callers == NULL)
    return;
  caller = g_hash_table_lookup (self->callers, lookup->name);
  g_return_if_fail (caller != NULL && !caller->known);

  if (reply == NULL)
    {
      while ((call = g_queue_pop_head (&caller->calls)) != NULL)
        {
          g_dbus_method_invocation_return_error (
              call->invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
              _ ("cannot determine the caller's credentials: %s"),
              error->message);
          auth_call_free (call);
        }
      g_hash_table_remove (self->callers, lookup->name);
      return;
    }

  caller->known = TRUE;
  g_variant_get (reply, "(u)", &caller->uid);
  /* A handler never runs the main loop, so no call joins the queue
   * meanwhile; the entry is not removed under it either. */
  while ((call = g_queue_pop_head (&caller->calls)) != NULL)
    run_call (call, caller->uid);
  if (caller->gone)
    g_hash_table_remove (self->callers, lookup->name);
}

/* Runs @handler once the caller's uid is known (looking it up at the bus
 * the first time) if the caller has at least @required access. Always
 * returns TRUE: the invocation is handled, now or later. */
static gboolean
authorize (AbBus *self, GDBusMethodInvocation *invocation, AbAccess required,
           AbBusHandler handler)
{
  const char *sender = g_dbus_method_invocation_get_sender (invocation);
  AuthCall *call = g_new0 (AuthCall, 1);
  Caller *caller = g_hash_table_lookup (self->callers, sender);
  CallerLookup *lookup;

  call->bus = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  call->required = required;
  call->handler = handler;

  if (caller != NULL && caller->known)
    {
      run_call (call, caller->uid);
      return TRUE;
    }
  if (caller != NULL)
    {
      g_queue_push_tail (&caller->calls, call);
      return TRUE;
    }

  if (g_hash_table_size (self->callers) >= AB_BUS_MAX_CALLERS)
    g_hash_table_foreach_remove (self->callers, caller_is_known, NULL);
  caller = g_new0 (Caller, 1);
  g_queue_push_tail (&caller->calls, call);
  g_hash_table_insert (self->callers, g_strdup (sender), caller);
  lookup = g_new0 (CallerLookup, 1);
  lookup->bus = g_object_ref (self);
  lookup->name = g_strdup (sender);
  g_dbus_connection_call (
      self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
      "org.freedesktop.DBus", "GetConnectionUnixUser",
      g_variant_new ("(s)", sender), G_VARIANT_TYPE ("(u)"),
      G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_caller_uid, lookup);
  return TRUE;
}

/* ---- the broker's lifecycle ------------------------------------------ */

static void
do_reload (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;

  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, uid,
                "Reload requested by uid %u", uid);
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
          uid_t uid, AbAccess access)
{
  g_autofree char *reason
      = g_strdup_printf (_ ("a drain requested by uid %u"), uid);
  guint timeout_seconds;

  g_variant_get (params, "(u)", &timeout_seconds);
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, uid,
                "Drain (%u s) requested by uid %u", timeout_seconds, uid);
  ab_broker_drain_async (self->broker, timeout_seconds, reason, on_drained,
                         g_object_ref (invocation));
}

static void
do_resume (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;

  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, NULL, uid,
                "Resume requested by uid %u", uid);
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
                    const char *thread, uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;
  AbSession *session;

  if (!ab_thread_id_validate (thread, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return NULL;
    }
  session = ab_pool_lookup (ab_broker_get_pool (self->broker), thread);
  if (session == NULL)
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_NO_SUCH_SESSION,
          _ ("no session for thread %s"), thread);
      return NULL;
    }
  if (access < AB_ACCESS_ADMIN && ab_session_get_owner (session) != uid)
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
          _ ("session %s belongs to uid %u; uid %u may not %s it"), thread,
          (guint)ab_session_get_owner (session), (guint)uid,
          g_dbus_method_invocation_get_method_name (invocation));
      return NULL;
    }
  return session;
}

/* A turn cut off by the previous instance is told to the first
 * connection that prompts or watches its thread. */
static void
report_interrupted (AbBus *self, AbSession *session, const char *recipient)
{
  guint64 turn;

  if (!ab_session_take_interrupted (session, &turn))
    return;
  g_dbus_connection_emit_signal (
      self->connection, recipient, ab_session_get_path (session),
      "org.agentbroker.Session1", "TurnEnded",
      g_variant_new ("(tss)", turn, "interrupted",
                     _ ("agentbroker stopped while this turn was running")),
      NULL);
}

/* The caller's filter and the compact reply are session-list.c's. */
static void
do_list_sessions (AbBus *self, GDBusMethodInvocation *invocation,
                  GVariant *params, uid_t uid, AbAccess access)
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
  all = ab_pool_list (ab_broker_get_pool (self->broker));
  array = ab_session_list_build (all, &filter);
  ab_session_filter_clear (&filter);
  g_dbus_method_invocation_return_value (invocation,
                                         g_variant_new_tuple (&array, 1));
}

static void
do_get_session (AbBus *self, GDBusMethodInvocation *invocation,
                GVariant *params, uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;
  const char *thread;
  AbSession *session;

  g_variant_get (params, "(&s)", &thread);
  if (!ab_thread_id_validate (thread, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  session = ab_pool_lookup (ab_broker_get_pool (self->broker), thread);
  if (session == NULL)
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_NO_SUCH_SESSION,
          _ ("no session for thread %s"), thread);
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
           uid_t uid, AbAccess access)
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

  session = ab_pool_lookup (ab_broker_get_pool (self->broker), thread);
  if (session != NULL && access < AB_ACCESS_ADMIN
      && ab_session_get_owner (session) != uid)
    {
      g_set_error (&error, AB_ERROR, AB_ERROR_ACCESS_DENIED,
                   _ ("session %s belongs to uid %u"), thread,
                   (guint)ab_session_get_owner (session));
      refuse_prompt (self, invocation, error);
      return;
    }

  if (session != NULL)
    report_interrupted (self, session,
                        g_dbus_method_invocation_get_sender (invocation));
  call = g_new0 (AuthCall, 1);
  call->bus = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  ab_pool_prompt_async (ab_broker_get_pool (self->broker), thread, text, agent,
                        uid, g_dbus_method_invocation_get_sender (invocation),
                        on_prompted, call);
}

static void
do_cancel (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           uid_t uid, AbAccess access)
{
  const char *thread;
  AbSession *session;

  g_variant_get (params, "(&s)", &thread);
  session = session_for_caller (self, invocation, thread, uid, access);
  if (session == NULL)
    return;
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, uid,
                "Cancel of %s requested by uid %u", thread, uid);
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
                   GVariant *params, uid_t uid, AbAccess access)
{
  const char *thread;

  g_variant_get (params, "(&s)", &thread);
  if (session_for_caller (self, invocation, thread, uid, access) == NULL)
    return;
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, uid,
                "RemoveSession of %s requested by uid %u", thread, uid);
  ab_pool_remove_async (ab_broker_get_pool (self->broker), thread, "removed",
                        on_removed, g_object_ref (invocation));
}

static void
do_kill_session (AbBus *self, GDBusMethodInvocation *invocation,
                 GVariant *params, uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;
  const char *thread, *signal_name;
  AbSession *session;
  int signo;

  g_variant_get (params, "(&s&s)", &thread, &signal_name);
  session = session_for_caller (self, invocation, thread, uid, access);
  if (session == NULL)
    return;
  if (!ab_agent_signal_from_name (signal_name, &signo, &error)
      || !ab_session_send_signal (session, signo, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  ab_log_event (AB_LOG_REQUEST, G_LOG_LEVEL_MESSAGE, thread, uid,
                "KillSession of %s with signal %d requested by uid %u", thread,
                signo, uid);
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
do_answer_permission (AbBus *self, GDBusMethodInvocation *invocation,
                      GVariant *params, uid_t uid, AbAccess access)
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
  session = session_for_caller (self, invocation, thread, uid, access);
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
  Caller *caller;

  g_variant_get (parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
  if (new_owner[0] != '\0')
    return;
  /* A connection went: its watches and its uid go with it. */
  g_hash_table_remove (self->watchers, name);
  caller = g_hash_table_lookup (self->callers, name);
  if (caller != NULL && caller->known)
    g_hash_table_remove (self->callers, name);
  else if (caller != NULL)
    caller->gone = TRUE;
}

static void
do_watch (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
          uid_t uid, AbAccess access)
{
  const char *thread;
  const char *sender = g_dbus_method_invocation_get_sender (invocation);
  gboolean watch = g_str_equal (
      g_dbus_method_invocation_get_method_name (invocation), "Watch");
  GHashTable *threads;

  g_variant_get (params, "(&s)", &thread);
  if (g_str_equal (thread, "*"))
    {
      if (access < AB_ACCESS_ADMIN)
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
      AbSession *session;

      if (!ab_thread_id_validate (thread, &error))
        {
          g_dbus_method_invocation_return_gerror (invocation, error);
          return;
        }
      session = ab_pool_lookup (ab_broker_get_pool (self->broker), thread);
      if (session != NULL && access < AB_ACCESS_ADMIN
          && ab_session_get_owner (session) != uid)
        {
          g_dbus_method_invocation_return_error (
              invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
              _ ("session %s belongs to uid %u"), thread,
              (guint)ab_session_get_owner (session));
          return;
        }
    }

  threads = g_hash_table_lookup (self->watchers, sender);
  if (!watch)
    {
      if (threads != NULL)
        g_hash_table_remove (threads, thread);
      g_dbus_method_invocation_return_value (invocation, NULL);
      return;
    }

  if (threads == NULL)
    {
      threads = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      g_hash_table_insert (self->watchers, g_strdup (sender), threads);
    }
  if (g_hash_table_size (threads) >= AB_BUS_MAX_WATCHES
      && !g_hash_table_contains (threads, thread))
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("a connection may watch at most %d threads"), AB_BUS_MAX_WATCHES);
      return;
    }
  g_hash_table_add (threads, g_strdup (thread));
  g_dbus_method_invocation_return_value (invocation, NULL);

  if (g_str_equal (thread, "*"))
    {
      g_autoptr (GPtrArray) all
          = ab_pool_list (ab_broker_get_pool (self->broker));
      for (guint i = 0; i < all->len; i++)
        report_interrupted (self, g_ptr_array_index (all, i), sender);
    }
  else if (ab_pool_lookup (ab_broker_get_pool (self->broker), thread) != NULL)
    report_interrupted (
        self, ab_pool_lookup (ab_broker_get_pool (self->broker), thread),
        sender);
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
      g_dbus_connection_emit_signal (
          self->connection, prompter, ab_session_get_path (session),
          "org.agentbroker.Session1", signal, params, NULL);
      g_ptr_array_add (sent, (gpointer)prompter);
    }

  g_hash_table_iter_init (&iter, self->watchers);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      if (!g_hash_table_contains (value, thread)
          && !g_hash_table_contains (value, "*"))
        continue;
      if (g_strcmp0 (key, prompter) == 0)
        continue;
      g_dbus_connection_emit_signal (
          self->connection, key, ab_session_get_path (session),
          "org.agentbroker.Session1", signal, params, NULL);
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
  else if (g_str_equal (name, "last-turn"))
    ab_dbus_session1_set_last_turn (iface, ab_session_get_last_turn (session));
  else if (g_str_equal (name, "last-reason"))
    ab_dbus_session1_set_last_reason (
        iface, ab_session_get_last_reason (session) != NULL
                   ? ab_session_get_last_reason (session)
                   : "");
  else if (g_str_equal (name, "cwd"))
    ab_dbus_session1_set_cwd (iface, ab_session_get_cwd (session));
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
      ab_session_get_queued (session), "last-turn",
      ab_session_get_last_turn (session), "last-reason",
      ab_session_get_last_reason (session) != NULL
          ? ab_session_get_last_reason (session)
          : "",
      NULL);

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
  g_clear_pointer (&self->callers, g_hash_table_unref);
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
  CONNECT ("handle-kill-session", on_handle_kill_session);
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
                                          (GDestroyNotify)g_hash_table_unref);
  self->callers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)caller_free);
  self->name_owner_subscription = g_dbus_connection_signal_subscribe (
      connection, "org.freedesktop.DBus", "org.freedesktop.DBus",
      "NameOwnerChanged", "/org/freedesktop/DBus", NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_name_owner_changed, self, NULL);

  g_signal_connect (pool, "session-added", G_CALLBACK (on_session_added), self);
  g_signal_connect (pool, "session-removed", G_CALLBACK (on_session_removed),
                    self);
  return g_steal_pointer (&self);
}
