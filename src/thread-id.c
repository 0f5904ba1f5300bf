/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — thread ids: validation and escaping
 *
 * A thread id names a directory and an object path, so it is checked
 * before anything is created from it (org.agentbroker.Broker1(5)).
 */
#include "config.h"

#include <string.h>

#include <gio/gio.h>
#include <glib/gi18n.h>

#include "error.h"
#include "names.h"
#include "thread-id.h"

static gboolean
thread_char_ok (char c)
{
  return g_ascii_isalnum (c) || strchr ("._:/@+-", c) != NULL;
}

gboolean
ab_thread_id_validate (const char *thread, GError **error)
{
  gsize len;

  if (thread == NULL || thread[0] == '\0')
    {
      g_set_error_literal (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                           _ ("thread id is empty"));
      return FALSE;
    }

  len = strlen (thread);
  if (len > AB_THREAD_ID_MAX)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("thread id is %zu bytes long; at most %d allowed"), len,
                   AB_THREAD_ID_MAX);
      return FALSE;
    }

  for (gsize i = 0; i < len; i++)
    {
      if (!thread_char_ok (thread[i]))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("thread id contains byte 0x%02x at offset %zu; "
                          "allowed are letters, digits and ._:/@+-"),
                       (guint)(guchar)thread[i], i);
          return FALSE;
        }
    }

  if (thread[0] == '/' || thread[0] == '.')
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("thread id must not start with '%c'"), thread[0]);
      return FALSE;
    }

  /* ".." as a whole path segment could walk out of a working directory. */
  for (const char *seg = thread; seg != NULL;)
    {
      const char *slash = strchr (seg, '/');
      gsize seg_len = slash != NULL ? (gsize)(slash - seg) : strlen (seg);

      if (seg_len == 2 && seg[0] == '.' && seg[1] == '.')
        {
          g_set_error_literal (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                               _ ("thread id must not contain a '..' path "
                                  "segment"));
          return FALSE;
        }
      seg = slash != NULL ? slash + 1 : NULL;
    }

  return TRUE;
}

char *
ab_thread_id_to_object_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (AB_SESSION_PREFIX, escaped, NULL);
}
