/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — starting each agent as a transient systemd service */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "agent-process.h"
#include "agent-unit.h"
#include "error.h"
#include "fd-store.h"
#include "jsonrpc.h"
#include "systemd-launcher.h"
#include "systemd-unit-name.h"

#define SESSIONS_STATE "agentbroker-sessions"

struct _AbSystemdLauncher
{
  GObject parent_instance;

  GDBusConnection *bus;
  gboolean system_mode;
  char *own_unit; /* the daemon's unit: every agent's is ordered before it */
  /* Pipes of agents an earlier instance left running, from the fd store:
   * unit name's hash → Kept. */
  GHashTable *kept;
};

/* The daemon's ends of one kept agent's pipes. */
typedef struct
{
  int in_fd;     /* written: the agent's stdin */
  int out_fd;    /* read: its stdout */
  int unread_fd; /* what the earlier instance read but did not handle */
  char *unit;    /* its unit, while it runs */
  char *hash;
} Kept;

static void
kept_free (Kept *kept)
{
  if (kept->in_fd >= 0)
    close (kept->in_fd);
  if (kept->out_fd >= 0)
    close (kept->out_fd);
  if (kept->unread_fd >= 0)
    close (kept->unread_fd);
  g_free (kept->unit);
  g_free (kept->hash);
  g_free (kept);
}

/* The names of an agent's pipes in the fd store, by its unit's hash. */
static char *
stored_name (const char *hash, const char *end)
{
  return g_strdup_printf ("agent-%s-%s", hash, end);
}

/* Hands the daemon's end @fd of an agent's pipe to the manager's fd store
 * (FileDescriptorStoreMax= of the daemon's unit), so that the agent
 * outlives a restart or a crash of the daemon. */
static void
store_fd (int fd, const char *name)
{
  g_autoptr (GError) error = NULL;

  if (!ab_fd_store_add (fd, name, TRUE, &error))
    g_warning ("cannot keep %s in the fd store: %s", name, error->message);
}

static void launcher_iface_init (AbAgentLauncherInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbSystemdLauncher, ab_systemd_launcher, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_LAUNCHER,
                                                launcher_iface_init))

/* What the earlier instance had read of a kept agent's output but not
 * handled (at most @max bytes), out of the fd store. */
static GBytes *
take_unread (Kept *kept, gsize max)
{
  g_autoptr (GByteArray) data = g_byte_array_new ();
  g_autofree char *name = NULL;
  char buffer[65536];
  ssize_t n;

  if (kept->unread_fd < 0)
    return NULL;
  lseek (kept->unread_fd, 0, SEEK_SET);
  while ((n = read (kept->unread_fd, buffer, sizeof buffer)) > 0
         && data->len + (gsize)n <= max)
    g_byte_array_append (data, (const guint8 *)buffer, (guint)n);
  close (g_steal_fd (&kept->unread_fd));
  name = stored_name (kept->hash, "unread");
  ab_fd_store_remove (name);
  return g_byte_array_free_to_bytes (g_steal_pointer (&data));
}

/* Asks the manager to stop @unit, whatever the answer; only while the
 * daemon starts, before its main loop serves anyone. */
static void
stop_unit_sync (GDBusConnection *bus, const char *unit)
{
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager", "StopUnit",
      g_variant_new ("(ss)", unit, "replace"), NULL, G_DBUS_CALL_FLAGS_NONE,
      5000, NULL, NULL);
}

/* Lets go of a kept agent no session goes on with: its pipes leave the
 * fd store, and its unit, if it still runs, is stopped. */
static void
forget_kept (AbSystemdLauncher *self, const char *hash)
{
  Kept *kept = g_hash_table_lookup (self->kept, hash);
  const char *ends[] = { "in", "out", "unread" };

  if (kept == NULL)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (ends); i++)
    {
      g_autofree char *name = stored_name (hash, ends[i]);

      ab_fd_store_remove (name);
    }
  if (kept->unit != NULL)
    {
      g_message ("stopping %s: no session goes on with it", kept->unit);
      stop_unit_sync (self->bus, kept->unit);
    }
  g_hash_table_remove (self->kept, hash);
}

/* ---- the unit's properties ---------------------------------------------- */

static void
add (GVariantBuilder *b, const char *name, GVariant *value)
{
  g_variant_builder_add (b, "(sv)", name, value);
}

char *
ab_systemd_session_directory (const char *unit)
{
  return g_build_filename ("/var/lib", SESSIONS_STATE, unit, NULL);
}

/* @argv with each "$" doubled: systemd expands $NAME in a command line,
 * and "$$" is its "$". */
static GStrv
escape_dollars (const char *const *argv)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();

  for (gsize i = 0; argv[i] != NULL; i++)
    {
      g_auto (GStrv) parts = g_strsplit (argv[i], "$", -1);

      g_autofree char *escaped = g_strjoinv ("$$", parts);

      g_strv_builder_add (b, escaped);
    }
  return g_strv_builder_end (b);
}

/* The command line: the agent itself, or, when the profile has
 * credentials, a shell that first reads each from the unit's own
 * credentials into its variable. */
static void
add_exec (GVariantBuilder *b, const AbUnitSpec *spec)
{
  GVariantBuilder exec;
  g_autoptr (GString) script = g_string_new (NULL);
  g_autoptr (GStrvBuilder) argv = g_strv_builder_new ();
  g_auto (GStrv) args = NULL;

  g_variant_builder_init (&exec, G_VARIANT_TYPE ("a(sasb)"));
  if (spec->credential_env == NULL || spec->credential_env->len == 0)
    {
      args = escape_dollars (spec->argv);
      g_variant_builder_add (&exec, "(s^asb)", spec->argv[0], args, FALSE);
      add (b, "ExecStart", g_variant_builder_end (&exec));
      return;
    }
  for (guint i = 0; i < spec->credential_env->len; i++)
    {
      const AbEnvEntry *e = g_ptr_array_index (spec->credential_env, i);
      g_autofree char *quoted = g_shell_quote (e->credential);

      g_string_append_printf (script,
                              "%s=\"$(cat \"$CREDENTIALS_DIRECTORY\"/%s)\" && "
                              "export %s && ",
                              e->name, quoted, e->name);
    }
  g_string_append (script, "exec \"$@\"");
  g_strv_builder_add_many (argv, "/bin/sh", "-c", script->str, "sh", NULL);
  g_strv_builder_addv (argv, (const char **)spec->argv);
  {
    g_auto (GStrv) plain = g_strv_builder_end (argv);

    args = escape_dollars ((const char *const *)plain);
  }
  g_variant_builder_add (&exec, "(s^asb)", "/bin/sh", args, FALSE);
  add (b, "ExecStart", g_variant_builder_end (&exec));
}

static void
add_credentials (GVariantBuilder *b, const AbUnitSpec *spec)
{
  GVariantBuilder load;

  if (spec->credential_env == NULL || spec->credential_env->len == 0)
    return;
  g_variant_builder_init (&load, G_VARIANT_TYPE ("a(ss)"));
  for (guint i = 0; i < spec->credential_env->len; i++)
    {
      const AbEnvEntry *e = g_ptr_array_index (spec->credential_env, i);
      g_autofree char *path = g_build_filename (
          spec->credentials != NULL ? spec->credentials : "/nonexistent",
          e->credential, NULL);

      g_variant_builder_add (&load, "(ss)", e->credential, path);
    }
  add (b, "LoadCredential", g_variant_builder_end (&load));
}

static void
add_sandbox (GVariantBuilder *b, const AbUnitSpec *spec)
{
  const char *const filter[] = { "@system-service", NULL };
  g_autofree char *state = g_build_filename (SESSIONS_STATE, spec->unit, NULL);
  const char *const states[] = { state, NULL };
  g_autofree char *dir = ab_systemd_session_directory (spec->unit);

  add (b, "DynamicUser", g_variant_new_boolean (TRUE));
  add (b, "StateDirectory", g_variant_new_strv (states, -1));
  add (b, "StateDirectoryMode", g_variant_new_uint32 (0700));
  add (b, "WorkingDirectory", g_variant_new_string (dir));
  add (b, "NoNewPrivileges", g_variant_new_boolean (TRUE));
  add (b, "ProtectSystem", g_variant_new_string ("strict"));
  add (b, "ProtectHome", g_variant_new_string ("yes"));
  add (b, "PrivateTmp", g_variant_new_boolean (TRUE));
  add (b, "PrivateDevices", g_variant_new_boolean (TRUE));
  add (b, "ProtectKernelTunables", g_variant_new_boolean (TRUE));
  add (b, "ProtectKernelModules", g_variant_new_boolean (TRUE));
  add (b, "ProtectControlGroups", g_variant_new_boolean (TRUE));
  add (b, "RestrictSUIDSGID", g_variant_new_boolean (TRUE));
  add (b, "SystemCallFilter", g_variant_new ("(b^as)", TRUE, filter));
}

/* An address prefix of IPAddressAllow= and IPAddressDeny=. */
static void
add_prefix (GVariantBuilder *b, int family, const guint8 *bytes, gsize len,
            guint32 prefix)
{
  g_variant_builder_add (
      b, "(i@ayu)", family,
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, bytes, len, 1), prefix);
}

/* The profile's limits (agentbroker.yaml(5), sandbox). */
static void
add_limits (GVariantBuilder *b, const AbSandbox *sandbox)
{
  static const guint8 any[16] = { 0 };
  static const guint8 loopback4[4] = { 127, 0, 0, 0 };
  static const guint8 loopback6[16] = { [15] = 1 };

  if (sandbox == NULL)
    return;
  if (sandbox->memory_max > 0)
    add (b, "MemoryMax", g_variant_new_uint64 (sandbox->memory_max));
  if (sandbox->cpu_percent > 0)
    add (b, "CPUQuotaPerSecUSec",
         g_variant_new_uint64 ((guint64)sandbox->cpu_percent * 10000));
  if (sandbox->tasks_max > 0)
    add (b, "TasksMax", g_variant_new_uint64 (sandbox->tasks_max));
  if (sandbox->network == AB_NETWORK_NONE)
    add (b, "PrivateNetwork", g_variant_new_boolean (TRUE));
  else if (sandbox->network == AB_NETWORK_LOOPBACK)
    {
      GVariantBuilder allow, deny;

      g_variant_builder_init (&allow, G_VARIANT_TYPE ("a(iayu)"));
      add_prefix (&allow, AF_INET, loopback4, sizeof loopback4, 8);
      add_prefix (&allow, AF_INET6, loopback6, sizeof loopback6, 128);
      add (b, "IPAddressAllow", g_variant_builder_end (&allow));
      g_variant_builder_init (&deny, G_VARIANT_TYPE ("a(iayu)"));
      add_prefix (&deny, AF_INET, any, 4, 0);
      add_prefix (&deny, AF_INET6, any, 16, 0);
      add (b, "IPAddressDeny", g_variant_builder_end (&deny));
    }
  if (sandbox->read_only_paths != NULL && sandbox->read_only_paths[0] != NULL)
    add (
        b, "ReadOnlyPaths",
        g_variant_new_strv ((const char *const *)sandbox->read_only_paths, -1));
  if (sandbox->read_write_paths != NULL && sandbox->read_write_paths[0] != NULL)
    add (b, "ReadWritePaths",
         g_variant_new_strv ((const char *const *)sandbox->read_write_paths,
                             -1));
}

GVariant *
ab_systemd_transient_properties (const AbUnitSpec *spec)
{
  GVariantBuilder b;
  GVariantBuilder env;
  GVariantBuilder fields;
  g_autofree char *field = NULL;
  g_autofree char *description = NULL;

  g_return_val_if_fail (spec != NULL && spec->argv != NULL, NULL);
  g_return_val_if_fail (spec->argv[0] != NULL && spec->thread != NULL, NULL);
  g_return_val_if_fail (spec->unit != NULL, NULL);

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(sv)"));
  description
      = g_strdup_printf ("agentbroker agent for thread %s", spec->thread);
  add (&b, "Description", g_variant_new_string (description));
  add (&b, "Slice", g_variant_new_string (AB_SESSIONS_SLICE));
  /* Ordered before the daemon's unit, so that at shutdown the daemon
   * stops first: it drains, then stops its agents itself.  Not bound to
   * it: BindsTo= would stop the agents while the daemon drains. */
  if (spec->daemon_unit != NULL)
    {
      const char *const units[] = { spec->daemon_unit, NULL };

      add (&b, "Before", g_variant_new_strv (units, -1));
    }
  add_exec (&b, spec);

  g_variant_builder_init (&env, G_VARIANT_TYPE ("as"));
  for (gsize i = 0; spec->envp != NULL && spec->envp[i] != NULL; i++)
    if (!spec->system_mode || !g_str_has_prefix (spec->envp[i], "HOME="))
      g_variant_builder_add (&env, "s", spec->envp[i]);
  if (spec->system_mode)
    {
      g_autofree char *dir = ab_systemd_session_directory (spec->unit);
      g_autofree char *home = g_strconcat ("HOME=", dir, NULL);

      g_variant_builder_add (&env, "s", home);
    }
  add (&b, "Environment", g_variant_builder_end (&env));

  add (&b, "StandardInputFile", g_variant_new_string (spec->stdin_path));
  add (&b, "StandardOutputFile", g_variant_new_string (spec->stdout_path));
  add (&b, "StandardError", g_variant_new_string ("journal"));
  field = g_strconcat ("AGENTBROKER_THREAD=", spec->thread, NULL);
  g_variant_builder_init (&fields, G_VARIANT_TYPE ("aay"));
  /* Each field is a byte array without a terminating zero byte: systemd
   * refuses a field that contains one. */
  g_variant_builder_add_value (
      &fields, g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, field,
                                          strlen (field), sizeof (char)));
  add (&b, "LogExtraFields", g_variant_builder_end (&fields));

  add (&b, "KillMode", g_variant_new_string ("control-group"));
  add (&b, "CollectMode", g_variant_new_string ("inactive-or-failed"));
  add_credentials (&b, spec);
  add_limits (&b, spec->sandbox);

  if (spec->system_mode)
    add_sandbox (&b, spec);
  else if (spec->cwd != NULL)
    add (&b, "WorkingDirectory", g_variant_new_string (spec->cwd));

  return g_variant_builder_end (&b);
}

/* ---- launching ---------------------------------------------------------- */

/* A FIFO at @path, made anew, and the daemon's end of it: read and
 * write, so that opening it neither blocks nor reads an end before the
 * agent has opened its own. */
static int
open_fifo (const char *path, GError **error)
{
  int fd;

  if ((g_unlink (path) != 0 && errno != ENOENT) || mkfifo (path, 0600) != 0
      || (fd = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
    {
      int saved = errno;

      g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                   _ ("cannot make the agent's pipe %s: %s"), path,
                   g_strerror (saved));
      return -1;
    }
  return fd;
}

static AbAcpConnection *
systemd_launch (AbAgentLauncher *launcher, const AbAgentProfile *prof,
                const char *thread, const char *state_dir,
                gsize max_message_bytes, char **cwd, GError **error)
{
  AbSystemdLauncher *self = AB_SYSTEMD_LAUNCHER (launcher);
  g_autofree char *unit = ab_systemd_unit_name_for_thread (thread);
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, unit, -1);
  g_autofree char *pipes = g_build_filename (state_dir, "pipes", NULL);
  g_autofree char *in_path = NULL;
  g_autofree char *out_path = NULL;
  g_autoptr (GPtrArray) literal = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) credential_env = g_ptr_array_new ();
  g_auto (GStrv) envp = NULL;
  g_autoptr (GInputStream) out = NULL;
  g_autoptr (GOutputStream) in = NULL;
  g_autoptr (AbAgentUnit) agent = NULL;
  g_autoptr (AbJsonRpc) rpc = NULL;
  g_autofree char *stored_in = NULL;
  g_autofree char *stored_out = NULL;
  Kept *kept;
  int in_fd, out_fd;

  if (self->system_mode)
    *cwd = ab_systemd_session_directory (unit); /* the manager makes it */
  else if (!ab_agent_make_working_directory (prof, thread, state_dir, cwd,
                                             error))
    return NULL;
  if (g_mkdir_with_parents (pipes, 0700) != 0)
    {
      int saved = errno;

      g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                   _ ("cannot make the agent's pipe %s: %s"), pipes,
                   g_strerror (saved));
      return NULL;
    }

  for (guint i = 0; i < prof->env->len; i++)
    {
      AbEnvEntry *e = g_ptr_array_index (prof->env, i);

      if (e->credential != NULL)
        g_ptr_array_add (credential_env, e);
      else
        g_ptr_array_add (literal, g_strdup_printf ("%s=%s", e->name, e->value));
    }
  envp = ab_agent_build_env ((const char *const *)prof->inherit_env, literal,
                             thread);

  in_path = g_strconcat (pipes, "/", hash, ".in", NULL);
  out_path = g_strconcat (pipes, "/", hash, ".out", NULL);
  stored_in = stored_name (hash, "in");
  stored_out = stored_name (hash, "out");
  kept = g_hash_table_lookup (self->kept, hash);
  if (kept != NULL)
    {
      AbAcpConnection *conn;

      g_message ("session %s: going on with the agent in unit %s", thread,
                 unit);
      g_autoptr (GBytes) unread = take_unread (kept, max_message_bytes);

      in = g_unix_output_stream_new (g_steal_fd (&kept->in_fd), TRUE);
      out = g_unix_input_stream_new (g_steal_fd (&kept->out_fd), TRUE);
      g_hash_table_remove (self->kept, hash);
      agent = ab_agent_unit_attach (
          self->bus, unit, (const char *const[]){ in_path, out_path, NULL },
          (const char *const[]){ stored_in, stored_out, NULL });
      rpc = ab_jsonrpc_new (out, in, max_message_bytes);
      conn = ab_acp_connection_new_adopted (rpc, AB_AGENT_HANDLE (agent),
                                            unread);
      return conn;
    }
  in_fd = open_fifo (in_path, error);
  if (in_fd < 0)
    return NULL;
  in = g_unix_output_stream_new (in_fd, TRUE);
  out_fd = open_fifo (out_path, error);
  if (out_fd < 0)
    {
      g_unlink (in_path);
      return NULL;
    }
  out = g_unix_input_stream_new (out_fd, TRUE);
  store_fd (in_fd, stored_in);
  store_fd (out_fd, stored_out);

  agent = ab_agent_unit_start (
      self->bus, unit,
      ab_systemd_transient_properties (&(AbUnitSpec){
          .argv = (const char *const *)prof->command,
          .envp = (const char *const *)envp,
          .cwd = *cwd,
          .thread = thread,
          .unit = unit,
          .daemon_unit = self->own_unit,
          .credentials = g_getenv ("CREDENTIALS_DIRECTORY"),
          .credential_env = credential_env,
          .sandbox = &prof->sandbox,
          .stdin_path = in_path,
          .stdout_path = out_path,
          .system_mode = self->system_mode,
      }),
      (const char *const[]){ in_path, out_path, NULL },
      (const char *const[]){ stored_in, stored_out, NULL });
  rpc = ab_jsonrpc_new (out, in, max_message_bytes);
  return ab_acp_connection_new (rpc, AB_AGENT_HANDLE (agent));
}

static void
launcher_iface_init (AbAgentLauncherInterface *iface)
{
  iface->launch = systemd_launch;
}

static void
ab_systemd_launcher_finalize (GObject *object)
{
  AbSystemdLauncher *self = AB_SYSTEMD_LAUNCHER (object);

  g_clear_object (&self->bus);
  g_free (self->own_unit);
  g_hash_table_unref (self->kept);
  G_OBJECT_CLASS (ab_systemd_launcher_parent_class)->finalize (object);
}

static void
ab_systemd_launcher_class_init (AbSystemdLauncherClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = ab_systemd_launcher_finalize;
}

static void
ab_systemd_launcher_init (AbSystemdLauncher *self)
{
  self->kept = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)kept_free);
}

/* The name of the unit of the manager on @bus that the daemon runs in. */
static char *
own_unit (GDBusConnection *bus, GError **error)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) id = NULL;
  const char *path;

  reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager", "GetUnitByPID",
      g_variant_new ("(u)", (guint32)getpid ()), G_VARIANT_TYPE ("(o)"),
      G_DBUS_CALL_FLAGS_NONE, 5000, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(&o)", &path);
  g_clear_pointer (&id, g_variant_unref);
  id = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", "org.freedesktop.systemd1.Unit", "Id"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL, error);
  if (id == NULL)
    return NULL;
  {
    g_autoptr (GVariant) value = NULL;

    g_variant_get (id, "(v)", &value);
    if (!g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s",
                     "the manager named the daemon's unit oddly");
        return NULL;
      }
    return g_variant_dup_string (value, NULL);
  }
}

/* Whether the manager lets this daemon start transient units, asked
 * without starting one: the manager checks the caller's permission
 * (polkit's manage-units, or uid 0) before it looks at the unit, so a
 * name of no unit type is refused as an invalid argument only to a
 * caller that may start units. */
static gboolean
may_start_units (GDBusConnection *bus, GError **error)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) local = NULL;

  reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager", "StartTransientUnit",
      g_variant_new ("(ssa(sv)a(sa(sv)))", "agentbroker-probe.invalid", "fail",
                     NULL, NULL),
      NULL, G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &local);
  if (reply != NULL
      || g_error_matches (local, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS))
    return TRUE;
  g_dbus_error_strip_remote_error (local);
  g_set_error (error, AB_ERROR, AB_ERROR_NOT_SUPPORTED,
               _ ("the systemd manager does not let this daemon start units "
                  "(%s); system mode needs the polkit rule "
                  "50-agentbroker.rules and polkitd"),
               local->message);
  return FALSE;
}

/* The session units of the manager on @bus that are not yet inactive. */
static GPtrArray *
running_session_units (GDBusConnection *bus)
{
  static const char *const patterns[]
      = { AB_SESSION_UNIT_PREFIX "*.service",
          AB_HASHED_SESSION_UNIT_PREFIX "*.service", NULL };
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariantIter) iter = NULL;
  const char *name, *active;

  reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager", "ListUnitsByPatterns",
      g_variant_new ("(^as^as)", (const char *const[]){ NULL }, patterns),
      G_VARIANT_TYPE ("(a(ssssssouso))"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL,
      NULL);
  if (reply == NULL)
    return names;
  g_variant_get (reply, "(a(ssssssouso))", &iter);
  while (g_variant_iter_next (iter, "(&s&s&s&s&s&s&ou&s&o)", &name, NULL, NULL,
                              &active, NULL, NULL, NULL, NULL, NULL, NULL))
    if (!g_str_equal (active, "inactive") && !g_str_equal (active, "failed"))
      g_ptr_array_add (names, g_strdup (name));
  return names;
}

/* Agents a previous instance of the daemon left running (it was killed
 * and its agents did not end with their input): stopped, and waited for
 * up to @wait_usec, before a thread can need its unit's name again. */
static void
stop_leftovers (AbSystemdLauncher *self, gint64 wait_usec)
{
  GDBusConnection *bus = self->bus;
  g_autoptr (GPtrArray) running = running_session_units (bus);
  g_autoptr (GPtrArray) left = g_ptr_array_new ();
  gint64 deadline = g_get_monotonic_time () + wait_usec;

  for (guint i = 0; i < running->len; i++)
    {
      const char *unit = running->pdata[i];
      g_autofree char *hash
          = g_compute_checksum_for_string (G_CHECKSUM_SHA256, unit, -1);
      Kept *kept = g_hash_table_lookup (self->kept, hash);

      if (kept != NULL)
        kept->unit = g_strdup (unit);
      else
        g_ptr_array_add (left, (gpointer)unit);
    }
  if (left->len == 0)
    return;
  g_message ("stopping %u agent unit(s) a previous instance left running",
             left->len);
  for (guint i = 0; i < left->len; i++)
    stop_unit_sync (bus, left->pdata[i]);
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GPtrArray) still = running_session_units (bus);

      if (still->len == 0)
        return;
      g_usleep (50 * 1000);
    }
  g_warning ("agent units of a previous instance are still stopping; "
             "their threads' first prompts may fail until they are gone");
}

/* The pipes of the agents an earlier instance left running, as the fd
 * store passed them (@passed: name → descriptor, taken); those of an
 * agent that no longer runs are let go of. */
static void
take_kept (AbSystemdLauncher *self, GHashTable *passed)
{
  GHashTableIter iter;
  gpointer key, value;
  GPtrArray *gone;

  g_hash_table_iter_init (&iter, passed);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      const char *name = key;
      const char *end = strrchr (name, '-');
      g_autofree char *hash = NULL;
      int *slot;
      Kept *kept;

      if (!g_str_has_prefix (name, "agent-") || end == NULL
          || end < name + strlen ("agent-"))
        continue;
      hash = g_strndup (name + strlen ("agent-"),
                        end - name - strlen ("agent-"));
      kept = g_hash_table_lookup (self->kept, hash);
      if (kept == NULL)
        {
          kept = g_new0 (Kept, 1);
          kept->in_fd = kept->out_fd = kept->unread_fd = -1;
          kept->hash = g_strdup (hash);
          g_hash_table_insert (self->kept, g_strdup (hash), kept);
        }
      slot = g_str_equal (end, "-in")       ? &kept->in_fd
             : g_str_equal (end, "-out")    ? &kept->out_fd
             : g_str_equal (end, "-unread") ? &kept->unread_fd
                                            : NULL;
      if (slot == NULL || *slot >= 0)
        continue;
      *slot = GPOINTER_TO_INT (value);
      g_hash_table_iter_steal (&iter);
      g_free (key);
    }

  stop_leftovers (self, 30 * G_USEC_PER_SEC);

  gone = g_ptr_array_new ();
  g_hash_table_iter_init (&iter, self->kept);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Kept *kept = value;

      if (kept->unit == NULL || kept->in_fd < 0 || kept->out_fd < 0)
        g_ptr_array_add (gone, kept->hash);
    }
  for (guint i = 0; i < gone->len; i++)
    forget_kept (self, gone->pdata[i]);
  g_ptr_array_unref (gone);
  if (g_hash_table_size (self->kept) > 0)
    g_message ("%u agent(s) of the previous instance still run; their "
               "sessions go on with them",
               g_hash_table_size (self->kept));
}

AbAgentLauncher *
ab_systemd_launcher_new (GDBusConnection *bus, gboolean system_mode,
                         GHashTable *passed, GError **error)
{
  g_autoptr (AbSystemdLauncher) self = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *unit = NULL;

  g_return_val_if_fail (G_IS_DBUS_CONNECTION (bus), NULL);

  /* Without a subscription the manager signals no unit's changes. */
  reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL,
      G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &local);
  if (reply != NULL)
    unit = own_unit (bus, &local);
  if (unit == NULL)
    {
      g_dbus_error_strip_remote_error (local);
      g_set_error (error, AB_ERROR, AB_ERROR_NOT_SUPPORTED,
                   _ ("the systemd manager cannot be reached: %s"),
                   local->message);
      return NULL;
    }
  if (!may_start_units (bus, error))
    return NULL;
  self = g_object_new (AB_TYPE_SYSTEMD_LAUNCHER, NULL);
  self->bus = g_object_ref (bus);
  self->system_mode = system_mode;
  self->own_unit = g_steal_pointer (&unit);
  if (passed != NULL)
    take_kept (self, passed);
  else
    stop_leftovers (self, 30 * G_USEC_PER_SEC);
  return AB_AGENT_LAUNCHER (g_steal_pointer (&self));
}

GHashTable *
ab_systemd_take_passed_fds (void)
{
  GHashTable *passed
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto (GStrv) names = NULL;
  /* The environment stays for the health shim, which takes its own. */
  int n = sd_listen_fds_with_names (FALSE, &names);

  for (int i = 0; i < n && names != NULL; i++)
    if (g_str_has_prefix (names[i], "agent-"))
      g_hash_table_insert (passed, g_strdup (names[i]),
                           GINT_TO_POINTER (SD_LISTEN_FDS_START + i));
  return passed;
}

void
ab_systemd_passed_fds_close (GHashTable *passed)
{
  GHashTableIter iter;
  gpointer key, value;

  if (passed == NULL)
    return;
  g_hash_table_iter_init (&iter, passed);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      ab_fd_store_remove (key);
      close (GPOINTER_TO_INT (value));
    }
  g_hash_table_unref (passed);
}

gboolean
ab_systemd_launcher_keeps_agent (AbSystemdLauncher *self, const char *thread)
{
  g_autofree char *unit = ab_systemd_unit_name_for_thread (thread);
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, unit, -1);

  g_return_val_if_fail (AB_IS_SYSTEMD_LAUNCHER (self), FALSE);

  return g_hash_table_contains (self->kept, hash);
}

void
ab_systemd_launcher_release_unclaimed (AbSystemdLauncher *self)
{
  GHashTableIter iter;
  gpointer key;

  g_return_if_fail (AB_IS_SYSTEMD_LAUNCHER (self));

  for (;;)
    {
      g_autofree char *hash = NULL;

      g_hash_table_iter_init (&iter, self->kept);
      if (!g_hash_table_iter_next (&iter, &key, NULL))
        break;
      hash = g_strdup (key);
      forget_kept (self, hash);
    }
}

/* A property of the manager's object @path, or NULL. */
static GVariant *
manager_property (GDBusConnection *bus, const char *path, const char *iface,
                  const char *name)
{
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.systemd1", path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", iface, name), G_VARIANT_TYPE ("(v)"),
      G_DBUS_CALL_FLAGS_NONE, 5000, NULL, NULL);
  GVariant *value = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(v)", &value);
  return value;
}

gboolean
ab_systemd_launcher_restart_pending (AbSystemdLauncher *self)
{
  g_autofree char *path = NULL;
  g_autoptr (GVariant) job = NULL;
  g_autoptr (GVariant) type = NULL;
  const char *job_path;
  guint32 id;

  g_return_val_if_fail (AB_IS_SYSTEMD_LAUNCHER (self), FALSE);

  path = ab_agent_unit_object_path (self->own_unit);
  job = manager_property (self->bus, path, "org.freedesktop.systemd1.Unit",
                          "Job");
  if (job == NULL || !g_variant_is_of_type (job, G_VARIANT_TYPE ("(uo)")))
    return FALSE;
  g_variant_get (job, "(u&o)", &id, &job_path);
  if (id == 0)
    return FALSE;
  type = manager_property (self->bus, job_path, "org.freedesktop.systemd1.Job",
                           "JobType");
  return type != NULL && g_variant_is_of_type (type, G_VARIANT_TYPE_STRING)
         && (g_str_equal (g_variant_get_string (type, NULL), "restart")
             || g_str_equal (g_variant_get_string (type, NULL), "try-restart"));
}
