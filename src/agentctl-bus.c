/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — the broker on the bus: connecting to it, its errors as one
 * line each, ListSessions() and the sessions' dictionaries and object
 * paths
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "agentctl.h"
#include "error.h"
#include "names.h"

/* ---- connecting ------------------------------------------------------ */

gboolean
connect_broker (AbCtl *ctl, GError **error)
{
  ctl->connection = g_bus_get_sync (
      ctl->system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION, NULL, error);
  if (ctl->connection == NULL)
    return FALSE;

  /* The timeout is long because reload and drain wait for the broker. */
  ctl->broker = ab_dbus_broker1_proxy_new_sync (
      ctl->connection, G_DBUS_PROXY_FLAGS_NONE, AB_BUS_NAME, AB_BUS_PATH, NULL,
      error);
  if (ctl->broker == NULL)
    return FALSE;
  g_dbus_proxy_set_default_timeout (G_DBUS_PROXY (ctl->broker), G_MAXINT);
  return TRUE;
}

/* ---- errors -------------------------------------------------------- */

/* The verb being run, and whether it is one for admins only: what an
 * access refusal is explained with. */
const char *running_verb = "";
gboolean running_admin_verb;

/* An access refusal as one line that says what the caller lacks and
 * which group grants it, in place of dbus-daemon's dump of its rules
 * ("Rejected send message, 2 matched rules; type=…").  The groups are
 * the defaults of access.users and access.admins. */
static int
fail_access (GError *error, gboolean from_bus)
{
  g_autofree char *user = user_name ((guint32)getuid ());

  if (running_admin_verb)
    return fail (_ ("permission denied: %s needs membership in the group "
                    "agentbroker-admin (access.admins); user %s lacks it"),
                 running_verb, user);
  if (from_bus)
    return fail (_ ("permission denied: %s needs membership in the group "
                    "agentbroker (access.users) or agentbroker-admin; user "
                    "%s is in neither"),
                 running_verb, user);
  /* The daemon's own check: its message names the session or the
   * access it wanted. */
  return fail (_ ("permission denied: %s — your own sessions need the group "
                  "agentbroker (access.users), other users' sessions the "
                  "group agentbroker-admin (access.admins)"),
               error->message);
}

/* A D-Bus error as one line: the daemon's message without the remote
 * error name that GDBus prepends.  "No such session" exits 4, as
 * systemctl's "no such unit". */
int
fail_dbus (GError *error)
{
  gboolean no_session
      = g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION);
  gboolean bus_denied
      = g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED);

  g_dbus_error_strip_remote_error (error);
  if (bus_denied || g_error_matches (error, AB_ERROR, AB_ERROR_ACCESS_DENIED))
    return fail_access (error, bus_denied);
  fail ("%s", error->message);
  return no_session ? AB_EXIT_NO_SESSION : EXIT_FAILURE;
}

/* ---- session dictionaries ------------------------------------------ */

const char *
dict_string (GVariant *dict, const char *key)
{
  const char *value;

  if (g_variant_lookup (dict, key, "&s", &value)
      || g_variant_lookup (dict, key, "&o", &value))
    return value;
  return "";
}

guint64
dict_number (GVariant *dict, const char *key)
{
  guint64 t;
  guint32 u;

  if (g_variant_lookup (dict, key, "t", &t))
    return t;
  if (g_variant_lookup (dict, key, "u", &u))
    return u;
  return 0;
}

char *
session_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (AB_SESSION_PREFIX, escaped, NULL);
}

/* The thread of a session object: its path is the escaped thread id. */
char *
thread_from_path (const char *path)
{
  if (g_str_has_prefix (path, AB_SESSION_PREFIX))
    {
      g_autofree guint8 *thread
          = g_dbus_unescape_object_path (path + strlen (AB_SESSION_PREFIX));

      if (thread != NULL && g_utf8_validate ((const char *)thread, -1, NULL))
        return (char *)g_steal_pointer (&thread);
    }
  return g_strdup (path);
}

/* ListSessions(), only the sessions in @states if not NULL. */
gboolean
list_sessions (AbCtl *ctl, const char *const *states, GVariant **sessions,
               GError **error)
{
  g_auto (GVariantDict) options = G_VARIANT_DICT_INIT (NULL);

  if (states != NULL)
    g_variant_dict_insert_value (&options, "states",
                                 g_variant_new_strv (states, -1));
  return ab_dbus_broker1_call_list_sessions_sync (
      ctl->broker, g_variant_dict_end (&options), sessions, NULL, error);
}
