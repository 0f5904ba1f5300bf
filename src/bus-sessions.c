/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the sessions on D-Bus
 *
 * One object per session under the object manager at AB_BUS_PATH, its
 * Session1 properties following the session's own, and its stream:
 * Update, TurnEnded and PermissionRequested are unicast to the
 * connection that sent the prompt and to the connections watching the
 * session that may see it, never broadcast.
 */
#include "config.h"

#include <glib/gi18n.h>

#include "bus-sessions.h"
#include "error.h"
#include "names.h"
#include "pool.h"
#include "session.h"

/* Threads one connection may watch at a time. */
#define AB_BUS_MAX_WATCHES 1024

struct _AbBusSessions
{
  AbBroker *broker;
  GDBusConnection *connection;
  AbDBusBroker1 *skeleton;
  GDBusObjectManagerServer *object_manager;
  GHashTable *watchers; /* unique name → Watcher */
};

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

/* ---- watchers ------------------------------------------------------------ */

gboolean
ab_bus_sessions_watch (AbBusSessions *self, const AbCaller *caller,
                       const char *thread, GError **error)
{
  Watcher *watcher = g_hash_table_lookup (self->watchers, caller->connection);

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
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("a connection may watch at most %d threads"),
                   AB_BUS_MAX_WATCHES);
      return FALSE;
    }
  g_hash_table_add (watcher->threads, g_strdup (thread));
  return TRUE;
}

void
ab_bus_sessions_unwatch (AbBusSessions *self, const char *connection,
                         const char *thread)
{
  Watcher *watcher = g_hash_table_lookup (self->watchers, connection);

  if (watcher != NULL)
    g_hash_table_remove (watcher->threads, thread);
}

void
ab_bus_sessions_forget (AbBusSessions *self, const char *connection)
{
  g_hash_table_remove (self->watchers, connection);
}

/* A streaming signal as D-Bus sends it. */
static GVariant *
stream_event_params (const AbStreamEvent *event, const char **signal)
{
  switch (event->kind)
    {
    case AB_STREAM_UPDATE:
      *signal = "Update";
      return g_variant_new ("(t^ast)", event->turn, event->updates, event->seq);
    case AB_STREAM_TURN_ENDED:
      *signal = "TurnEnded";
      return g_variant_new ("(tsst)", event->turn, event->first, event->second,
                            event->seq);
    case AB_STREAM_PERMISSION_REQUESTED:
    default:
      *signal = "PermissionRequested";
      return g_variant_new ("(tsst)", event->turn, event->first, event->second,
                            event->seq);
    }
}

typedef struct
{
  AbBusSessions *self;
  AbSession *session;
  const char *recipient;
} Replay;

static void
emit_one (const AbStreamEvent *event, gpointer user_data)
{
  Replay *replay = user_data;
  const char *signal;
  GVariant *params = stream_event_params (event, &signal);

  g_dbus_connection_emit_signal (replay->self->connection, replay->recipient,
                                 ab_session_get_path (replay->session),
                                 AB_SESSION_IFACE, signal, params, NULL);
}

/* A turn cut off by the previous instance is told to the first
 * connection that prompts or watches its thread and may see it. */
void
ab_bus_sessions_report_interrupted (AbBusSessions *self, AbSession *session,
                                    const AbCaller *recipient)
{
  const AbStreamEvent *ended;
  Replay replay = { self, session, recipient->connection };

  if (!ab_broker_may_see (self->broker, recipient, session)
      || (ended = ab_session_take_interrupted (session)) == NULL)
    return;
  emit_one (ended, &replay);
}

gboolean
ab_bus_sessions_replay (AbBusSessions *self, AbSession *session,
                        const AbCaller *recipient, guint64 after)
{
  Replay replay = { self, session, recipient->connection };

  return ab_session_replay (session, after, emit_one, &replay);
}

/* ---- the stream: unicast to the prompter and the watchers ---------------- */

static void
emit_to_recipients (AbBusSessions *self, AbSession *session,
                    const char *prompter, const char *signal, GVariant *params)
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
                   const char *prompter, guint64 seq, AbBusSessions *self)
{
  emit_to_recipients (self, session, prompter, "Update",
                      g_variant_new ("(t^ast)", turn, updates, seq));
}

static void
on_session_turn_ended (AbSession *session, guint64 turn, const char *reason,
                       const char *message, const char *prompter,
                       gint64 duration_usec, guint64 seq, AbBusSessions *self)
{
  emit_to_recipients (self, session, prompter, "TurnEnded",
                      g_variant_new ("(tsst)", turn, reason, message, seq));
}

static void
on_session_permission (AbSession *session, guint64 turn, const char *request,
                       const char *json, const char *prompter, guint64 seq,
                       AbBusSessions *self)
{
  emit_to_recipients (self, session, prompter, "PermissionRequested",
                      g_variant_new ("(tsst)", turn, request, json, seq));
}

/* ---- session objects ----------------------------------------------------- */

/* A session's Session1: the generated skeleton, but for the usage
 * properties, read from the agent's unit whenever a caller asks (Get or
 * GetAll) rather than kept up to date for every session. */
#define AB_TYPE_BUS_SESSION (ab_bus_session_get_type ())
G_DECLARE_FINAL_TYPE (AbBusSession, ab_bus_session, AB, BUS_SESSION,
                      AbDBusSession1Skeleton)

struct _AbBusSession
{
  AbDBusSession1Skeleton parent_instance;
  AbSession *session;
};

G_DEFINE_TYPE (AbBusSession, ab_bus_session, AB_DBUS_TYPE_SESSION1_SKELETON)

enum
{
  PROP_MEMORY = 1,
  PROP_CPU,
  PROP_TASKS,
};

static void
ab_bus_session_get_property (GObject *object, guint prop_id, GValue *value,
                             GParamSpec *pspec)
{
  AbBusSession *self = AB_BUS_SESSION (object);
  AbAgentUsage usage;

  ab_session_get_usage (self->session, &usage);
  switch (prop_id)
    {
    case PROP_MEMORY:
      g_value_set_uint64 (value, usage.memory_bytes);
      break;
    case PROP_CPU:
      g_value_set_uint64 (value, usage.cpu_nsec);
      break;
    case PROP_TASKS:
      g_value_set_uint64 (value, usage.tasks);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* The generated setters are never called for these: nothing to keep. */
static void
ab_bus_session_set_property (GObject *object, guint prop_id,
                             const GValue *value, GParamSpec *pspec)
{
  if (prop_id < PROP_MEMORY || prop_id > PROP_TASKS)
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
ab_bus_session_finalize (GObject *object)
{
  g_clear_object (&AB_BUS_SESSION (object)->session);
  G_OBJECT_CLASS (ab_bus_session_parent_class)->finalize (object);
}

static void
ab_bus_session_class_init (AbBusSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = ab_bus_session_get_property;
  object_class->set_property = ab_bus_session_set_property;
  object_class->finalize = ab_bus_session_finalize;
  g_object_class_override_property (object_class, PROP_MEMORY,
                                    "memory-current");
  g_object_class_override_property (object_class, PROP_CPU, "cpuusage-nsec");
  g_object_class_override_property (object_class, PROP_TASKS, "tasks-current");
}

static void
ab_bus_session_init (AbBusSession *self)
{
}

static const char *
session_unit (AbSession *session)
{
  const char *unit = ab_session_get_unit (session);

  return unit != NULL ? unit : "";
}

/* What the agent's usage_update said: four properties, one change. */
static void
set_token_usage (AbDBusSession1 *iface, AbSession *session)
{
  AbAcpUsage usage;

  ab_session_get_token_usage (session, &usage);
  ab_dbus_session1_set_context_used (iface, usage.used);
  ab_dbus_session1_set_context_size (iface, usage.size);
  ab_dbus_session1_set_cost (iface, usage.cost);
  ab_dbus_session1_set_cost_currency (iface, usage.currency);
}

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
    {
      ab_dbus_session1_set_pid (iface, ab_session_get_pid (session));
      ab_dbus_session1_set_unit (iface, session_unit (session));
    }
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
  else if (g_str_equal (name, "token-usage"))
    set_token_usage (iface, session);
}

static void
export_session (AbBusSessions *self, AbSession *session)
{
  g_autoptr (AbDBusObjectSkeleton) object = NULL;
  /* Every property at once: one construction, not eleven sets. */
  g_autoptr (AbDBusSession1) iface = g_object_new (
      AB_TYPE_BUS_SESSION, "thread", ab_session_get_thread (session), "agent",
      ab_session_get_agent (session), "owner",
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
      "unit", session_unit (session), NULL);

  AB_BUS_SESSION (iface)->session = g_object_ref (session);
  set_token_usage (iface, session);

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
on_session_added (AbPool *pool, AbSession *session, AbBusSessions *self)
{
  export_session (self, session);
  ab_dbus_broker1_emit_session_added (self->skeleton,
                                      ab_session_get_thread (session),
                                      ab_session_get_path (session));
}

static void
on_session_removed (AbPool *pool, AbSession *session, const char *reason,
                    AbBusSessions *self)
{
  g_signal_handlers_disconnect_by_data (session, self);
  g_signal_handlers_disconnect_matched (session, G_SIGNAL_MATCH_FUNC, 0, 0,
                                        NULL, on_session_notify, NULL);
  g_dbus_object_manager_server_unexport (self->object_manager,
                                         ab_session_get_path (session));
  ab_dbus_broker1_emit_session_removed (
      self->skeleton, ab_session_get_thread (session), reason);
}

/* ---- the object ---------------------------------------------------------- */

AbBusSessions *
ab_bus_sessions_new (AbBroker *broker, GDBusConnection *connection,
                     AbDBusBroker1 *skeleton)
{
  AbBusSessions *self = g_new0 (AbBusSessions, 1);
  AbPool *pool = ab_broker_get_pool (broker);
  g_autoptr (GPtrArray) restored = ab_pool_list (pool);

  self->broker = g_object_ref (broker);
  self->connection = g_object_ref (connection);
  self->skeleton = g_object_ref (skeleton);
  self->watchers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)watcher_free);
  /* Sessions restored before the bus came up get their objects first and
   * are registered with the connection in one go: exported one by one on
   * a connection, each sent an InterfacesAdded signal no client can be
   * listening for yet (the name is not ours until after this), nearly
   * half of a start with 10,000 records. */
  self->object_manager = g_dbus_object_manager_server_new (AB_BUS_PATH);
  for (guint i = 0; i < restored->len; i++)
    export_session (self, g_ptr_array_index (restored, i));
  g_dbus_object_manager_server_set_connection (self->object_manager,
                                               connection);

  g_signal_connect (pool, "session-added", G_CALLBACK (on_session_added), self);
  g_signal_connect (pool, "session-removed", G_CALLBACK (on_session_removed),
                    self);
  return self;
}

void
ab_bus_sessions_free (AbBusSessions *self)
{
  AbPool *pool = ab_broker_get_pool (self->broker);
  g_autoptr (GPtrArray) all = ab_pool_list (pool);

  g_signal_handlers_disconnect_by_data (pool, self);
  for (guint i = 0; i < all->len; i++)
    g_signal_handlers_disconnect_by_data (g_ptr_array_index (all, i), self);
  g_dbus_object_manager_server_set_connection (self->object_manager, NULL);
  g_object_unref (self->object_manager);
  g_hash_table_unref (self->watchers);
  g_object_unref (self->skeleton);
  g_object_unref (self->connection);
  g_object_unref (self->broker);
  g_free (self);
}
