/* agentbroker — the D-Bus service
 *
 * Exports org.agentbroker.Broker1 and the object manager, checks every
 * caller's access level, and hands each call to the broker. No state
 * lives here: properties are bound to the broker's.
 */
#include "config.h"

#include <glib/gi18n.h>

#include "ab-dbus.h"
#include "access.h"
#include "bus.h"
#include "error.h"

struct _AbBus
{
  GObject parent_instance;

  AbBroker *broker;
  GDBusConnection *connection;
  gboolean system_bus;
  AbDBusBroker1 *skeleton;
  GDBusObjectManagerServer *object_manager;
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

static void
on_caller_uid (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AuthCall *call = user_data;
  AbBus *self = call->bus;
  GDBusMethodInvocation *invocation = call->invocation;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  guint32 uid;
  AbAccess access;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (reply == NULL)
    {
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
          _ ("cannot determine the caller's credentials: %s"), error->message);
      auth_call_free (call);
      return;
    }

  g_variant_get (reply, "(u)", &uid);
  access = ab_access_for_uid (ab_broker_get_config (self->broker), uid,
                              self->system_bus);
  if (access < call->required)
    {
      g_message ("refused %s from uid %u (access %s)",
                 g_dbus_method_invocation_get_method_name (invocation), uid,
                 ab_access_to_string (access));
      g_dbus_method_invocation_return_error (
          invocation, AB_ERROR, AB_ERROR_ACCESS_DENIED,
          call->required == AB_ACCESS_ADMIN
              ? _ ("%s needs administrator access; uid %u has %s access")
              : _ ("%s needs user access; uid %u has %s access"),
          g_dbus_method_invocation_get_method_name (invocation), uid,
          ab_access_to_string (access));
      auth_call_free (call);
      return;
    }

  call->handler (self, invocation,
                 g_dbus_method_invocation_get_parameters (invocation),
                 (uid_t)uid, access);
  auth_call_free (call);
}

/* Look up the caller's uid at the bus, then run @handler if the caller
 * has at least @required access. Always returns TRUE: the invocation is
 * handled, now or later. */
static gboolean
authorize (AbBus *self, GDBusMethodInvocation *invocation, AbAccess required,
           AbBusHandler handler)
{
  AuthCall *call = g_new0 (AuthCall, 1);

  call->bus = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  call->required = required;
  call->handler = handler;

  g_dbus_connection_call (
      self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
      "org.freedesktop.DBus", "GetConnectionUnixUser",
      g_variant_new ("(s)", g_dbus_method_invocation_get_sender (invocation)),
      G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_caller_uid,
      call);
  return TRUE;
}

/* ---- methods backed by the broker ---------------------------------- */

static void
do_reload (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;

  g_message ("Reload requested by uid %u", uid);
  if (!ab_broker_reload (self->broker, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static void
do_drain (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
          uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *reason
      = g_strdup_printf (_ ("a drain requested by uid %u"), uid);

  g_message ("Drain requested by uid %u", uid);
  if (!ab_broker_drain (self->broker, reason, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation,
                                         g_variant_new ("(uu)", 0, 0));
}

static void
do_resume (AbBus *self, GDBusMethodInvocation *invocation, GVariant *params,
           uid_t uid, AbAccess access)
{
  g_autoptr (GError) error = NULL;

  g_message ("Resume requested by uid %u", uid);
  if (!ab_broker_resume (self->broker, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return;
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

/* ---- methods the sessions layer will back -------------------------- */

static void
do_not_supported (AbBus *self, GDBusMethodInvocation *invocation,
                  GVariant *params, uid_t uid, AbAccess access)
{
  g_dbus_method_invocation_return_error (
      invocation, AB_ERROR, AB_ERROR_NOT_SUPPORTED,
      _ ("%s is not available in agentbroker %s"),
      g_dbus_method_invocation_get_method_name (invocation), PACKAGE_VERSION);
}

static gboolean
on_handle_list_sessions (AbDBusBroker1 *skeleton,
                         GDBusMethodInvocation *invocation, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_get_session (AbDBusBroker1 *skeleton,
                       GDBusMethodInvocation *invocation, const char *thread,
                       AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_prompt (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  const char *thread, const char *text, GVariant *options,
                  AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_cancel (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                  const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_remove_session (AbDBusBroker1 *skeleton,
                          GDBusMethodInvocation *invocation, const char *thread,
                          AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_watch (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                 const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_unwatch (AbDBusBroker1 *skeleton, GDBusMethodInvocation *invocation,
                   const char *thread, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
}

static gboolean
on_handle_answer_permission (AbDBusBroker1 *skeleton,
                             GDBusMethodInvocation *invocation,
                             const char *thread, const char *request,
                             const char *option, AbBus *self)
{
  return authorize (self, invocation, AB_ACCESS_USER, do_not_supported);
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

  self->broker = g_object_ref (broker);
  self->connection = g_object_ref (connection);
  self->system_bus = system_bus;
  self->skeleton = ab_dbus_broker1_skeleton_new ();

  for (gsize i = 0; i < G_N_ELEMENTS (bound); i++)
    g_object_bind_property (broker, bound[i], self->skeleton, bound[i],
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

  self->object_manager = g_dbus_object_manager_server_new (AB_BUS_PATH);
  g_dbus_object_manager_server_set_connection (self->object_manager,
                                               connection);
  return g_steal_pointer (&self);
}
