/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the systemd unit a session's agent runs in */
#include "config.h"

#include <string.h>

#include "systemd-unit-name.h"

#define UNIT_SUFFIX ".service"

static void
escape_into (GString *out, const char *s)
{
  for (const char *p = s; *p != '\0'; p++)
    {
      guchar c = (guchar)*p;

      if (c == '/')
        g_string_append_c (out, '-');
      else if ((g_ascii_isalnum (c) || c == ':' || c == '_' || c == '.')
               && !(c == '.' && p == s))
        g_string_append_c (out, (char)c);
      else
        g_string_append_printf (out, "\\x%02x", c);
    }
}

char *
ab_systemd_unit_name_for_thread (const char *thread)
{
  g_autoptr (GString) name = g_string_new (AB_SESSION_UNIT_PREFIX);
  g_autofree char *hash = NULL;

  g_return_val_if_fail (thread != NULL && thread[0] != '\0', NULL);

  escape_into (name, thread);
  g_string_append (name, UNIT_SUFFIX);
  if (name->len <= AB_UNIT_NAME_MAX)
    return g_string_free (g_steal_pointer (&name), FALSE);

  hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  return g_strconcat (AB_HASHED_SESSION_UNIT_PREFIX, hash, UNIT_SUFFIX, NULL);
}
