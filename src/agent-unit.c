/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one agent running as a transient systemd service */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/wait.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "agent-unit.h"
#include "error.h"
#include "fd-store.h"

#define SYSTEMD_NAME "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define MANAGER_IFACE "org.freedesktop.systemd1.Manager"
#define CALL_TIMEOUT_MSEC 25000

/* ExecMainCode: how the main process ended (siginfo's si_code). */
#define CODE_EXITED 1
#define CODE_KILLED 2
#define CODE_DUMPED 3

struct _AbAgentUnit
{
  GObject parent_instance;

  GDBusConnection *bus;
  char *name;
  char *path;
  guint changed_subscription;
  guint removed_subscription;
  guint reloading_subscription;
  gboolean manager_reloading; /* what it says of units may be passing */
  GCancellable *cancellable;  /* the manager calls in flight */
  GStrv remove_when_gone;
  GStrv stored;           /* names of its pipes in the manager's fd store */
  gboolean detached;      /* left running for the daemon's next instance */
  gboolean reading_state; /* read_state () asked, not yet answered */

  gboolean started;   /* it was activating or active */
  guint pid;          /* MainPID */
  char *result;       /* the service's Result, "success" until told */
  gint32 exit_code;   /* ExecMainCode */
  gint32 exit_status; /* ExecMainStatus */
  char *exit;         /* how it ended, once it did */
  char *group;        /* its ControlGroup, once it runs */
  gboolean asked_group;
  int wait_status;

  GPtrArray *waiters; /* GTask *, of terminate: done when it has ended */
  guint kill_source;
};

static void handle_iface_init (AbAgentHandleInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbAgentUnit, ab_agent_unit, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_HANDLE,
                                                handle_iface_init))

char *
ab_agent_unit_object_path (const char *name)
{
  GString *path = g_string_new (SYSTEMD_PATH "/unit/");

  for (const char *p = name; *p != '\0'; p++)
    {
      if (g_ascii_isalnum (*p) && !(p == name && g_ascii_isdigit (*p)))
        g_string_append_c (path, *p);
      else
        g_string_append_printf (path, "_%02x", (guchar)*p);
    }
  return g_string_free (path, FALSE);
}

/* ---- the end ------------------------------------------------------------ */

/* The agent's pipes are no more worth keeping for a next instance. */
static void
forget_stored (AbAgentUnit *self)
{
  for (gsize i = 0; self->stored != NULL && self->stored[i] != NULL; i++)
    ab_fd_store_remove (self->stored[i]);
  g_clear_pointer (&self->stored, g_strfreev);
}

static void
remove_files (AbAgentUnit *self)
{
  for (gsize i = 0;
       self->remove_when_gone != NULL && self->remove_when_gone[i] != NULL; i++)
    if (g_unlink (self->remove_when_gone[i]) != 0 && errno != ENOENT)
      g_warning ("unit %s: cannot remove %s: %s", self->name,
                 self->remove_when_gone[i], g_strerror (errno));
  g_clear_pointer (&self->remove_when_gone, g_strfreev);
  forget_stored (self);
}

static void
complete_waiters (AbAgentUnit *self)
{
  g_autoptr (GPtrArray) waiters = g_steal_pointer (&self->waiters);

  self->waiters = g_ptr_array_new_with_free_func (g_object_unref);
  g_clear_handle_id (&self->kill_source, g_source_remove);
  for (guint i = 0; i < waiters->len; i++)
    g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
}

/* The unit is over: @why when it never ran, else what it says. */
static void
ended (AbAgentUnit *self, const char *why)
{
  if (self->exit != NULL)
    return;
  if (why != NULL)
    {
      self->exit = g_strdup (why);
      self->wait_status = W_EXITCODE (255, 0);
    }
  else if (g_strcmp0 (self->result, "oom-kill") == 0)
    {
      self->exit = g_strdup ("killed by the out-of-memory killer");
      self->wait_status = SIGKILL;
    }
  else if (self->exit_code == CODE_KILLED || self->exit_code == CODE_DUMPED)
    {
      self->exit = g_strdup_printf ("killed by signal %d", self->exit_status);
      self->wait_status = self->exit_status & 0x7f;
    }
  else if (self->exit_code == CODE_EXITED)
    {
      self->exit = g_strdup_printf ("exited with status %d", self->exit_status);
      self->wait_status = W_EXITCODE (self->exit_status & 0xff, 0);
    }
  else
    {
      self->exit
          = g_strdup_printf ("unit %s stopped (%s)", self->name,
                             self->result != NULL ? self->result : "unknown");
      self->wait_status = W_EXITCODE (255, 0);
    }
  self->pid = 0;
  remove_files (self);
  g_debug ("unit %s: %s", self->name, self->exit);
  g_object_ref (self);
  g_signal_emit_by_name (self, "exited", self->wait_status, self->exit);
  complete_waiters (self);
  g_object_unref (self);
}

static void
on_group (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbAgentUnit) self = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) value = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         NULL);
  if (reply == NULL)
    return;
  g_variant_get (reply, "(v)", &value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    {
      g_free (self->group);
      self->group = g_variant_dup_string (value, NULL);
    }
}

/* The unit's control group, asked once it runs (the manager names it when
 * the unit starts, and does not signal it), for what the unit uses. */
static void
ask_group (AbAgentUnit *self)
{
  if (self->asked_group || self->bus == NULL)
    return;
  self->asked_group = TRUE;
  g_dbus_connection_call (
      self->bus, SYSTEMD_NAME, self->path, "org.freedesktop.DBus.Properties",
      "Get",
      g_variant_new ("(ss)", "org.freedesktop.systemd1.Service",
                     "ControlGroup"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MSEC,
      self->cancellable, on_group, g_object_ref (self));
}

static void
take_property (AbAgentUnit *self, const char *name, GVariant *value)
{
  if (g_str_equal (name, "MainPID")
      && g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    {
      self->pid = g_variant_get_uint32 (value);
      if (self->pid != 0)
        ask_group (self);
    }
  else if (g_str_equal (name, "Result")
           && g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    {
      g_free (self->result);
      self->result = g_variant_dup_string (value, NULL);
    }
  else if (g_str_equal (name, "ExecMainCode")
           && g_variant_is_of_type (value, G_VARIANT_TYPE_INT32))
    self->exit_code = g_variant_get_int32 (value);
  else if (g_str_equal (name, "ExecMainStatus")
           && g_variant_is_of_type (value, G_VARIANT_TYPE_INT32))
    self->exit_status = g_variant_get_int32 (value);
}

/* PropertiesChanged of the unit's Unit or Service interface: the service's
 * come first, so its result is known when the unit turns inactive. */
static void
on_properties_changed (GDBusConnection *bus, const char *sender,
                       const char *path, const char *iface, const char *signal,
                       GVariant *parameters, gpointer user_data)
{
  AbAgentUnit *self = user_data;
  g_autoptr (GVariantIter) iter = NULL;
  const char *interface, *name, *state = NULL;
  GVariant *value;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(sa{sv}as)")))
    return;
  g_variant_get (parameters, "(&sa{sv}@as)", &interface, &iter, NULL);
  while (g_variant_iter_loop (iter, "{&sv}", &name, &value))
    {
      if (g_str_equal (name, "ActiveState")
          && g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        state = g_variant_get_string (value, NULL);
      else
        take_property (self, name, value);
    }
  if (state == NULL)
    return;
  /* While the manager reloads (a package upgrade) a unit can look gone
   * for a moment: asked again once the reload is over. */
  if (self->manager_reloading)
    return;
  /* A new unit is inactive until its start begins. */
  if (g_str_equal (state, "failed")
      || (g_str_equal (state, "inactive") && self->started))
    ended (self, NULL);
  else if (!g_str_equal (state, "inactive"))
    self->started = TRUE;
}

/* What the manager says of a unit now, as if it had signalled it. */
static void
on_state_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbAgentUnit) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);
  g_autoptr (GVariant) props = NULL;

  self->reading_state = FALSE;
  if (reply == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_autofree char *why = NULL;

          g_dbus_error_strip_remote_error (error);
          why = g_strdup_printf ("unit %s is gone (%s)", self->name,
                                 error->message);
          ended (self, why);
        }
      return;
    }
  props = g_variant_get_child_value (reply, 0);
  on_properties_changed (G_DBUS_CONNECTION (source), SYSTEMD_NAME, self->path,
                         "org.freedesktop.DBus.Properties", "PropertiesChanged",
                         g_variant_new ("(s@a{sv}as)", "", props, NULL), self);
}

/* Asks the manager for the unit's state and how its main process ended,
 * taken as if it had signalled them. */
static void
read_state (AbAgentUnit *self)
{
  const char *ifaces[]
      = { "org.freedesktop.systemd1.Service", "org.freedesktop.systemd1.Unit" };

  self->reading_state = TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (ifaces); i++)
    g_dbus_connection_call (
        self->bus, SYSTEMD_NAME, self->path, "org.freedesktop.DBus.Properties",
        "GetAll", g_variant_new ("(s)", ifaces[i]), G_VARIANT_TYPE ("(a{sv})"),
        G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MSEC, self->cancellable,
        on_state_read, g_object_ref (self));
}

static void
on_unit_removed (GDBusConnection *bus, const char *sender, const char *path,
                 const char *iface, const char *signal, GVariant *parameters,
                 gpointer user_data)
{
  AbAgentUnit *self = user_data;
  const char *name;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(so)")))
    return;
  g_variant_get (parameters, "(&s&o)", &name, NULL);
  /* The manager also unloads a unit it still runs (a daemon-reload, as
   * a package upgrade does): what it says of the unit now decides. */
  if (g_str_equal (name, self->name) && self->started && self->exit == NULL
      && !self->reading_state && !self->manager_reloading)
    read_state (self);
}

static void
on_reloading (GDBusConnection *bus, const char *sender, const char *path,
              const char *iface, const char *signal, GVariant *parameters,
              gpointer user_data)
{
  AbAgentUnit *self = user_data;
  gboolean active;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(b)")))
    return;
  g_variant_get (parameters, "(b)", &active);
  self->manager_reloading = active;
  if (!active && self->started && self->exit == NULL && !self->reading_state)
    read_state (self);
}

/* ---- the start ---------------------------------------------------------- */

/* StopUnit, whatever the answer. */
static void
stop_unheard (AbAgentUnit *self)
{
  g_dbus_connection_call (
      self->bus, SYSTEMD_NAME, SYSTEMD_PATH, MANAGER_IFACE, "StopUnit",
      g_variant_new ("(ss)", self->name, "replace"), NULL,
      G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MSEC, NULL, NULL, NULL);
}

/* How the manager answered a call: NULL when it did what was asked or the
 * call was cancelled, else the error, with its D-Bus name in @name. */
static GError *
manager_refusal (GObject *source, GAsyncResult *result, char **name)
{
  GError *error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);

  if (reply != NULL
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (&error);
      return NULL;
    }
  *name = g_dbus_error_get_remote_error (error);
  g_dbus_error_strip_remote_error (error);
  return error;
}

static void
on_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbAgentUnit) self = user_data;
  g_autofree char *name = NULL;
  g_autoptr (GError) error = manager_refusal (source, result, &name);
  g_autofree char *why = NULL;

  if (error == NULL)
    {
      /* Stopped before the manager had it: it must not run on. */
      if (self->exit != NULL)
        stop_unheard (self);
      return;
    }
  /* The previous agent of the thread, bound to a previous instance of the
   * daemon, may still be stopping. */
  if (g_strcmp0 (name, "org.freedesktop.systemd1.UnitExists") == 0)
    why = g_strdup_printf (_ ("unit %s still exists (an agent of this "
                              "thread is still stopping); try again"),
                           self->name);
  else
    why = g_strdup_printf (_ ("systemd did not start unit %s: %s"), self->name,
                           error->message);
  g_warning ("%s", why);
  ended (self, why);
}

/* A unit followed from now on: no change of it can be missed after. */
static AbAgentUnit *
unit_new (GDBusConnection *bus, const char *name,
          const char *const *remove_when_gone, const char *const *stored)
{
  AbAgentUnit *self = g_object_new (AB_TYPE_AGENT_UNIT, NULL);

  self->bus = g_object_ref (bus);
  self->name = g_strdup (name);
  self->path = ab_agent_unit_object_path (name);
  self->remove_when_gone = g_strdupv ((char **)remove_when_gone);
  self->stored = g_strdupv ((char **)stored);
  self->changed_subscription = g_dbus_connection_signal_subscribe (
      bus, SYSTEMD_NAME, "org.freedesktop.DBus.Properties", "PropertiesChanged",
      self->path, NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_properties_changed, self,
      NULL);
  self->removed_subscription = g_dbus_connection_signal_subscribe (
      bus, SYSTEMD_NAME, MANAGER_IFACE, "UnitRemoved", SYSTEMD_PATH, name,
      G_DBUS_SIGNAL_FLAGS_NONE, on_unit_removed, self, NULL);
  self->reloading_subscription = g_dbus_connection_signal_subscribe (
      bus, SYSTEMD_NAME, MANAGER_IFACE, "Reloading", SYSTEMD_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_reloading, self, NULL);
  return self;
}

AbAgentUnit *
ab_agent_unit_start (GDBusConnection *bus, const char *name,
                     GVariant *properties, const char *const *remove_when_gone,
                     const char *const *stored)
{
  AbAgentUnit *self;

  g_return_val_if_fail (G_IS_DBUS_CONNECTION (bus), NULL);
  g_return_val_if_fail (name != NULL && properties != NULL, NULL);

  self = unit_new (bus, name, remove_when_gone, stored);
  g_dbus_connection_call (
      bus, SYSTEMD_NAME, SYSTEMD_PATH, MANAGER_IFACE, "StartTransientUnit",
      g_variant_new (
          "(ss@a(sv)@a(sa(sv)))", name, "fail", properties,
          g_variant_new_array (G_VARIANT_TYPE ("(sa(sv))"), NULL, 0)),
      G_VARIANT_TYPE ("(o)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MSEC,
      self->cancellable, on_started, g_object_ref (self));
  return self;
}

AbAgentUnit *
ab_agent_unit_attach (GDBusConnection *bus, const char *name,
                      const char *const *remove_when_gone,
                      const char *const *stored)
{
  AbAgentUnit *self;

  g_return_val_if_fail (G_IS_DBUS_CONNECTION (bus), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  self = unit_new (bus, name, remove_when_gone, stored);
  self->started = TRUE; /* by the earlier instance */
  /* The service's main process and how it ended first, then whether it
   * is still active (a unit gone by then reads as inactive). */
  read_state (self);
  return self;
}

const char *
ab_agent_unit_get_name (AbAgentUnit *self)
{
  g_return_val_if_fail (AB_IS_AGENT_UNIT (self), NULL);

  return self->name;
}

/* ---- stopping ----------------------------------------------------------- */

static void
on_manager_answered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbAgentUnit) self = user_data;
  g_autofree char *name = NULL;
  g_autoptr (GError) error = manager_refusal (source, result, &name);

  if (error == NULL)
    return;
  /* A unit the manager does not know is gone. */
  if (g_strcmp0 (name, "org.freedesktop.systemd1.NoSuchUnit") == 0)
    ended (self, NULL);
  else
    g_warning ("unit %s: %s", self->name, error->message);
}

static void
call_manager (AbAgentUnit *self, const char *method, GVariant *parameters)
{
  g_dbus_connection_call (self->bus, SYSTEMD_NAME, SYSTEMD_PATH, MANAGER_IFACE,
                          method, parameters, NULL, G_DBUS_CALL_FLAGS_NONE,
                          CALL_TIMEOUT_MSEC, self->cancellable,
                          on_manager_answered, g_object_ref (self));
}

static gboolean
on_kill_due (gpointer user_data)
{
  AbAgentUnit *self = user_data;

  self->kill_source = 0;
  g_message ("unit %s did not stop in time; killing it", self->name);
  call_manager (self, "KillUnit",
                g_variant_new ("(ssi)", self->name, "all", SIGKILL));
  return G_SOURCE_REMOVE;
}

static void
unit_terminate_async (AbAgentHandle *handle, gint64 kill_timeout_usec,
                      GCancellable *cancellable, GAsyncReadyCallback callback,
                      gpointer user_data)
{
  AbAgentUnit *self = AB_AGENT_UNIT (handle);
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, unit_terminate_async);
  if (self->exit != NULL)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  g_ptr_array_add (self->waiters, task);
  if (self->waiters->len > 1)
    return;
  /* The unit's stop sends SIGTERM to its whole control group. */
  call_manager (self, "StopUnit",
                g_variant_new ("(ss)", self->name, "replace"));
  self->kill_source
      = g_timeout_add (MAX (kill_timeout_usec / 1000, 1), on_kill_due, self);
}

static gboolean
unit_terminate_finish (AbAgentHandle *handle, GAsyncResult *result,
                       GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* At the daemon's exit: the call must leave before the process does. */
static void
unit_kill_now (AbAgentHandle *handle)
{
  AbAgentUnit *self = AB_AGENT_UNIT (handle);
  g_autoptr (GVariant) reply = NULL;

  if (self->exit != NULL)
    return;
  reply = g_dbus_connection_call_sync (
      self->bus, SYSTEMD_NAME, SYSTEMD_PATH, MANAGER_IFACE, "KillUnit",
      g_variant_new ("(ssi)", self->name, "all", SIGKILL), NULL,
      G_DBUS_CALL_FLAGS_NONE, 1000, NULL, NULL);
}

static gboolean
unit_send_signal (AbAgentHandle *handle, int signo, GError **error)
{
  AbAgentUnit *self = AB_AGENT_UNIT (handle);

  if (self->exit != NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_FAILED,
                   _ ("unit %s is not running"), self->name);
      return FALSE;
    }
  call_manager (self, "KillUnit",
                g_variant_new ("(ssi)", self->name, "all", signo));
  return TRUE;
}

static guint
unit_get_pid (AbAgentHandle *handle)
{
  return AB_AGENT_UNIT (handle)->pid;
}

static const char *
unit_get_exit_description (AbAgentHandle *handle)
{
  return AB_AGENT_UNIT (handle)->exit;
}

static char *
unit_get_stderr_tail (AbAgentHandle *handle)
{
  return g_strdup ("");
}

static const char *
unit_get_unit (AbAgentHandle *handle)
{
  return AB_AGENT_UNIT (handle)->name;
}

static void
unit_get_usage (AbAgentHandle *handle, AbAgentUsage *usage)
{
  AbAgentUnit *self = AB_AGENT_UNIT (handle);

  if (self->exit == NULL)
    ab_agent_usage_read ("/", self->group, self->name, usage);
}

/* What was read of the agent's output but not handled goes to the fd
 * store beside its pipes, as "agent-HASH-unread". */
static void
store_unread (AbAgentUnit *self, GBytes *unread)
{
  gsize len;
  const char *data = g_bytes_get_data (unread, &len);
  g_autofree char *name = NULL;
  g_autoptr (GError) error = NULL;
  int fd;

  if (len == 0 || self->stored == NULL || self->stored[0] == NULL
      || !g_str_has_suffix (self->stored[0], "-in"))
    return;
  name = g_strdup_printf ("%.*s-unread",
                          (int)(strlen (self->stored[0]) - strlen ("-in")),
                          self->stored[0]);
  fd = memfd_create (name, MFD_CLOEXEC);
  if (fd < 0 || write (fd, data, len) != (ssize_t)len)
    {
      g_warning ("unit %s: cannot keep %zu bytes of its output: %s", self->name,
                 len, g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return;
    }
  if (!ab_fd_store_add (fd, name, FALSE, &error))
    g_warning ("unit %s: cannot keep %zu bytes of its output: %s", self->name,
               len, error->message);
  close (fd);
}

static void
unit_detach (AbAgentHandle *handle, GBytes *unread)
{
  AbAgentUnit *self = AB_AGENT_UNIT (handle);

  self->detached = TRUE;
  if (unread != NULL)
    store_unread (self, unread);
}

static void
handle_iface_init (AbAgentHandleInterface *iface)
{
  iface->get_pid = unit_get_pid;
  iface->get_exit_description = unit_get_exit_description;
  iface->get_stderr_tail = unit_get_stderr_tail;
  iface->terminate_async = unit_terminate_async;
  iface->terminate_finish = unit_terminate_finish;
  iface->kill_now = unit_kill_now;
  iface->send_signal = unit_send_signal;
  iface->get_unit = unit_get_unit;
  iface->detach = unit_detach;
  iface->get_usage = unit_get_usage;
}

/* ---- the object --------------------------------------------------------- */

static void
ab_agent_unit_dispose (GObject *object)
{
  AbAgentUnit *self = AB_AGENT_UNIT (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->kill_source, g_source_remove);
  if (self->bus != NULL)
    {
      g_dbus_connection_signal_unsubscribe (self->bus,
                                            self->changed_subscription);
      g_dbus_connection_signal_unsubscribe (self->bus,
                                            self->removed_subscription);
      g_dbus_connection_signal_unsubscribe (self->bus,
                                            self->reloading_subscription);
      /* A unit still running is the daemon's no more: stop it, unless
       * it is left for the next instance. */
      if (self->exit == NULL && !self->detached)
        stop_unheard (self);
      g_clear_object (&self->bus);
    }
  G_OBJECT_CLASS (ab_agent_unit_parent_class)->dispose (object);
}

static void
ab_agent_unit_finalize (GObject *object)
{
  AbAgentUnit *self = AB_AGENT_UNIT (object);

  g_ptr_array_unref (self->waiters);
  g_object_unref (self->cancellable);
  g_free (self->name);
  g_free (self->path);
  g_free (self->result);
  g_free (self->exit);
  g_free (self->group);
  if (!self->detached)
    remove_files (self);
  g_strfreev (self->remove_when_gone);
  g_strfreev (self->stored);
  G_OBJECT_CLASS (ab_agent_unit_parent_class)->finalize (object);
}

static void
ab_agent_unit_class_init (AbAgentUnitClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_agent_unit_dispose;
  object_class->finalize = ab_agent_unit_finalize;
}

static void
ab_agent_unit_init (AbAgentUnit *self)
{
  self->cancellable = g_cancellable_new ();
  self->waiters = g_ptr_array_new_with_free_func (g_object_unref);
}
