/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the D-Bus service's callers
 *
 * The bus never gives a unique name to another connection and a
 * connection's uid does not change, so a uid once looked up
 * (GetConnectionUnixUser) holds until the name goes. While the lookup is
 * under way, later calls from the same caller wait behind the first, so a
 * caller's calls are handled in the order they came.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bus-callers.h"

/* Callers whose uid is remembered; past this, those not waiting for a
 * lookup are forgotten (a name whose NameOwnerChanged was missed would
 * otherwise stay forever). */
#define AB_BUS_MAX_CALLERS 4096
/* Largest caller map a test may give (AGENTBROKER_TEST_CALLER_MAP). */
#define AB_BUS_MAX_CALLER_MAP_BYTES (64 * 1024)

struct _AbBusCallers
{
  gatomicrefcount ref_count; /* the owner's, and one per lookup */
  GDBusConnection *connection;
  GHashTable *callers; /* unique name → Caller; NULL once closed */
  char *caller_map;    /* tests only */
};

typedef struct
{
  AbBusIdentityFunc func;
  gpointer user_data;
  GDestroyNotify destroy;
} Pending;

typedef struct
{
  gboolean known;
  gboolean gone; /* the name went while its lookup was under way */
  AbBusIdentity identity;
  GQueue calls; /* Pending *, waiting for the lookup */
} Caller;

static void
pending_free (Pending *pending)
{
  if (pending->destroy != NULL)
    pending->destroy (pending->user_data);
  g_free (pending);
}

static void
caller_free (Caller *caller)
{
  g_queue_clear_full (&caller->calls, (GDestroyNotify)pending_free);
  g_free (caller);
}

static gboolean
caller_is_known (gpointer name, gpointer caller, gpointer user_data)
{
  return ((Caller *)caller)->known;
}

static void
callers_unref (AbBusCallers *self)
{
  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;
  g_clear_pointer (&self->callers, g_hash_table_unref);
  g_object_unref (self->connection);
  g_free (self->caller_map);
  g_free (self);
}

AbBusCallers *
ab_bus_callers_new (GDBusConnection *connection, const char *caller_map)
{
  AbBusCallers *self = g_new0 (AbBusCallers, 1);

  g_atomic_ref_count_init (&self->ref_count);
  self->connection = g_object_ref (connection);
  self->callers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)caller_free);
  self->caller_map = g_strdup (caller_map);
  return self;
}

void
ab_bus_callers_close (AbBusCallers *self)
{
  g_clear_pointer (&self->callers, g_hash_table_unref);
  callers_unref (self);
}

/* The test suite's ordinary users on a private bus, where every real
 * caller has the daemon's own uid and so is the admin: with
 * AGENTBROKER_TEST_CALLER_MAP naming a file of lines "UNIQUE-NAME UID
 * ACCESS" (ACCESS: none, user or admin), a connection listed there is
 * taken for that uid with that access. It is read only when the daemon
 * serves a session bus (ab_bus_new never passes it for the system bus):
 * there the only callers are the user's own connections, who are the
 * admin already, and whoever sets the daemon's environment is that same
 * user, so the map can relabel the user's own connections but give
 * nobody anything. The file is small and local (a test's temporary
 * directory) and read once per connection. */
static gboolean
lookup_caller_map (const char *map, const char *name, AbBusIdentity *identity)
{
  g_autofree char *text = g_malloc (AB_BUS_MAX_CALLER_MAP_BYTES + 1);
  g_auto (GStrv) lines = NULL;
  gsize length = 0;
  int fd = open (map, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  ssize_t n = 0;

  if (fd < 0)
    return FALSE;
  while (
      length < AB_BUS_MAX_CALLER_MAP_BYTES
      && ((n = read (fd, text + length, AB_BUS_MAX_CALLER_MAP_BYTES - length))
              > 0
          || (n < 0 && errno == EINTR)))
    length += MAX (n, 0);
  close (fd);
  text[length] = '\0';
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) fields = g_strsplit (lines[i], " ", 3);
      guint64 uid;

      if (g_strv_length (fields) != 3 || !g_str_equal (fields[0], name)
          || !g_ascii_string_to_unsigned (fields[1], 10, 0, G_MAXUINT32 - 1,
                                          &uid, NULL))
        continue;
      identity->uid = (uid_t)uid;
      identity->mapped = TRUE;
      identity->mapped_access
          = g_str_equal (fields[2], "admin")  ? AB_ACCESS_ADMIN
            : g_str_equal (fields[2], "user") ? AB_ACCESS_USER
                                              : AB_ACCESS_NONE;
      g_message ("test caller map: %s is uid %u with %s", name,
                 (guint)identity->uid,
                 ab_access_to_string (identity->mapped_access));
      return TRUE;
    }
  return FALSE;
}

typedef struct
{
  AbBusCallers *callers;
  char *name;
} Lookup;

static void
lookup_free (Lookup *lookup)
{
  callers_unref (lookup->callers);
  g_free (lookup->name);
  g_free (lookup);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Lookup, lookup_free)

static void
on_caller_uid (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Lookup) lookup = user_data;
  AbBusCallers *self = lookup->callers;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  Caller *caller;
  Pending *pending;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  /* Closed meanwhile (the service went), its calls with it. */
  if (self->callers == NULL)
    return;
  caller = g_hash_table_lookup (self->callers, lookup->name);
  g_return_if_fail (caller != NULL && !caller->known);

  if (reply == NULL)
    {
      while ((pending = g_queue_pop_head (&caller->calls)) != NULL)
        {
          pending->func (NULL, error, pending->user_data);
          pending_free (pending);
        }
      g_hash_table_remove (self->callers, lookup->name);
      return;
    }

  caller->known = TRUE;
  g_variant_get (reply, "(u)", &caller->identity.uid);
  if (self->caller_map != NULL)
    lookup_caller_map (self->caller_map, lookup->name, &caller->identity);
  /* A handler never runs the main loop, so no call joins the queue
   * meanwhile; the entry is not removed under it either. */
  while ((pending = g_queue_pop_head (&caller->calls)) != NULL)
    {
      pending->func (&caller->identity, NULL, pending->user_data);
      pending_free (pending);
    }
  if (caller->gone)
    g_hash_table_remove (self->callers, lookup->name);
}

void
ab_bus_callers_resolve (AbBusCallers *self, const char *sender,
                        AbBusIdentityFunc func, gpointer user_data,
                        GDestroyNotify destroy)
{
  Caller *caller = g_hash_table_lookup (self->callers, sender);
  Pending *pending;
  Lookup *lookup;

  if (caller != NULL && caller->known)
    {
      func (&caller->identity, NULL, user_data);
      if (destroy != NULL)
        destroy (user_data);
      return;
    }
  pending = g_new0 (Pending, 1);
  pending->func = func;
  pending->user_data = user_data;
  pending->destroy = destroy;
  if (caller != NULL)
    {
      g_queue_push_tail (&caller->calls, pending);
      return;
    }

  if (g_hash_table_size (self->callers) >= AB_BUS_MAX_CALLERS)
    g_hash_table_foreach_remove (self->callers, caller_is_known, NULL);
  caller = g_new0 (Caller, 1);
  g_queue_push_tail (&caller->calls, pending);
  g_hash_table_insert (self->callers, g_strdup (sender), caller);
  lookup = g_new0 (Lookup, 1);
  lookup->callers = self;
  g_atomic_ref_count_inc (&self->ref_count);
  lookup->name = g_strdup (sender);
  g_dbus_connection_call (
      self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
      "org.freedesktop.DBus", "GetConnectionUnixUser",
      g_variant_new ("(s)", sender), G_VARIANT_TYPE ("(u)"),
      G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_caller_uid, lookup);
}

void
ab_bus_callers_forget (AbBusCallers *self, const char *name)
{
  Caller *caller = g_hash_table_lookup (self->callers, name);

  if (caller != NULL && caller->known)
    g_hash_table_remove (self->callers, name);
  else if (caller != NULL)
    caller->gone = TRUE;
}
