/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target for thread ids
 *
 * A thread id arrives from any D-Bus client and names a directory and an
 * object path, so validation is checked against the rule as
 * org.agentbroker.Broker1(5) writes it, restated independently here.  For every
 * input, valid or not, the object path must be a valid D-Bus object path under
 * the sessions prefix whose last element escapes back to the input (so no two
 * threads share a path or a working directory) and carries nothing but
 * [A-Za-z0-9_].
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#include "error.h"
#include "thread-id.h"

#define PREFIX "/org/agentbroker/Broker1/session/"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* org.agentbroker.Broker1(5): 1-200 bytes of [A-Za-z0-9._:/@+-], not starting
 * with '/' or '.', with no ".." path segment. */
static gboolean
valid_by_design (const char *thread)
{
  static const char allowed[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789._:/@+-";
  g_auto (GStrv) segments = NULL;
  size_t len = strlen (thread);

  if (len < 1 || len > 200 || strspn (thread, allowed) != len)
    return FALSE;
  if (thread[0] == '/' || thread[0] == '.')
    return FALSE;
  segments = g_strsplit (thread, "/", -1);
  for (guint i = 0; segments[i] != NULL; i++)
    if (strcmp (segments[i], "..") == 0)
      return FALSE;
  return TRUE;
}

static void
check_object_path (const char *thread)
{
  g_autofree char *path = ab_thread_id_to_object_path (thread);
  g_autofree guint8 *back = NULL;
  const char *element;

  if (!g_variant_is_object_path (path) || !g_str_has_prefix (path, PREFIX))
    abort ();
  element = path + strlen (PREFIX);
  /* No '/' in the element: the escaped thread is one path element, also
   * when it becomes a directory name. */
  if (element[0] == '\0'
      || strspn (element, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
             != strlen (element))
    abort ();
  back = g_dbus_unescape_object_path (element);
  if (thread[0] == '\0')
    {
      /* the empty string escapes to "_" */
      if (back != NULL && back[0] != '\0')
        abort ();
      return;
    }
  if (back == NULL || strcmp ((const char *)back, thread) != 0)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* D-Bus strings hold no NUL: the thread ends at the first one. */
  g_autofree char *thread = g_strndup ((const char *)data, size);
  g_autoptr (GError) error = NULL;
  gboolean valid = ab_thread_id_validate (thread, &error);

  if (valid != valid_by_design (thread))
    abort ();
  if (valid != (error == NULL))
    abort ();
  if (error != NULL
      && (!g_error_matches (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT)
          || !g_utf8_validate (error->message, -1, NULL)))
    abort ();
  check_object_path (thread);
  return 0;
}
