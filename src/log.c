/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — log output
 *
 * Under systemd, stderr is connected to the journal; writing structured
 * entries there keeps fields such as AGENTBROKER_THREAD= searchable. Run
 * by hand, the daemon prints plain lines.
 */
#include "config.h"

#include <stdio.h>

#include "log.h"

/* Generated once with systemd-id128 new; data/agentbroker.catalog
 * describes each.  Never change one: operators search for them. */
static const char *const event_ids[] = {
  [AB_LOG_SESSION_CREATED] = "0f2d22f8973843e28383199115a636ef",
  [AB_LOG_SESSION_REMOVED] = "eabcc3e99f2d4faca64b6690a8d3c093",
  [AB_LOG_AGENT_LOST] = "5b822607a87a4220a4c2fdda1c59c5cb",
  [AB_LOG_AGENT_START_FAILED] = "380f7cda9634489eadfd7f3e8c09263e",
  [AB_LOG_TURN_INTERRUPTED] = "fe42e497f7404730a73d819841868015",
  [AB_LOG_DRAIN] = "1c7e1902b1024a83b55639438795ed70",
  [AB_LOG_RELOAD] = "17364fe97f9449ca9011e0344ec157fc",
  [AB_LOG_CONFIG_REFUSED] = "5f815c8b1b3c48cd908b773bc0736a10",
  [AB_LOG_REQUEST] = "6a6d7612dcc2471c83457c0d3aa72427",
};
G_STATIC_ASSERT (G_N_ELEMENTS (event_ids) == AB_LOG_N_EVENTS);

static gboolean log_verbose;
static gboolean log_to_journal;
static gboolean log_fields;

const char *
ab_log_event_id (AbLogEvent event)
{
  g_return_val_if_fail (event < AB_LOG_N_EVENTS, NULL);
  return event_ids[event];
}

/* syslog's priority of a GLib level, as GLib's own writers have it */
static const char *
level_priority (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "3";
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return "4";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "5";
  if (level & G_LOG_LEVEL_INFO)
    return "6";
  return "7";
}

void
ab_log_event (AbLogEvent event, GLogLevelFlags level, const char *thread,
              gint64 caller_uid, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *uid = NULL;
  GLogField fields[7];
  gsize n = 0;
  va_list args;

  g_return_if_fail (event < AB_LOG_N_EVENTS);

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  fields[n++] = (GLogField){ "MESSAGE", message, -1 };
  fields[n++] = (GLogField){ "MESSAGE_ID", event_ids[event], -1 };
  fields[n++] = (GLogField){ "PRIORITY", level_priority (level), -1 };
  fields[n++] = (GLogField){ "SYSLOG_IDENTIFIER", "agentbrokerd", -1 };
  fields[n++] = (GLogField){ "GLIB_DOMAIN", G_LOG_DOMAIN, -1 };
  if (thread != NULL)
    fields[n++] = (GLogField){ "AGENTBROKER_THREAD", thread, -1 };
  if (caller_uid >= 0)
    {
      uid = g_strdup_printf ("%" G_GINT64_FORMAT, caller_uid);
      fields[n++] = (GLogField){ "AGENTBROKER_CALLER_UID", uid, -1 };
    }
  g_assert (n <= G_N_ELEMENTS (fields));
  g_log_structured_array (level, fields, n);
}

/* Every field as a NAME=value line, an empty line after the entry; a
 * value's line breaks become spaces, so that each field is one line. */
static void
write_fields (const GLogField *fields, gsize n_fields)
{
  g_autoptr (GString) entry = g_string_new (NULL);

  for (gsize i = 0; i < n_fields; i++)
    {
      gsize start;

      if (fields[i].length >= 0)
        continue; /* binary: not for a line */
      g_string_append_printf (entry, "%s=", fields[i].key);
      start = entry->len;
      g_string_append (entry, fields[i].value);
      for (gsize j = start; j < entry->len; j++)
        if (entry->str[j] == '\n')
          entry->str[j] = ' ';
      g_string_append_c (entry, '\n');
    }
  g_string_append_c (entry, '\n');
  fwrite (entry->str, 1, entry->len, stderr);
  fflush (stderr);
}

static GLogWriterOutput
ab_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
               gpointer user_data)
{
  /* Debug and info lines only with --verbose or G_MESSAGES_DEBUG. */
  if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) != 0 && !log_verbose
      && g_log_writer_default_would_drop (level, G_LOG_DOMAIN))
    return G_LOG_WRITER_HANDLED;

  if (log_fields)
    {
      write_fields (fields, n_fields);
      return G_LOG_WRITER_HANDLED;
    }

  if (log_to_journal
      && g_log_writer_journald (level, fields, n_fields, user_data)
             == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;

  return g_log_writer_standard_streams (level, fields, n_fields, user_data);
}

void
ab_log_init (gboolean verbose)
{
  log_verbose = verbose;
  log_to_journal = g_log_writer_is_journald (fileno (stderr));
  log_fields = g_strcmp0 (g_getenv ("AGENTBROKER_LOG_FIELDS"), "1") == 0;
  g_log_set_writer_func (ab_log_writer, NULL, NULL);
}
