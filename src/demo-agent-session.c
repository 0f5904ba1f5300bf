/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — sessions and their transcript: the history of
 * each session, kept in memory and appended as JSON lines to
 * <cwd>/.demo-agent/<sessionId>.log, which session/load reads back
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "demo-agent.h"

static void
demo_entry_free (gpointer data)
{
  DemoEntry *entry = data;

  g_free (entry->role);
  g_free (entry->text);
  g_free (entry);
}

void
demo_session_free (gpointer data)
{
  DemoSession *session = data;

  g_free (session->id);
  g_free (session->cwd);
  g_free (session->log_path);
  g_ptr_array_unref (session->history);
  g_free (session);
}

gboolean
session_id_is_valid (const char *id)
{
  if (id == NULL || *id == '\0' || strlen (id) > 128)
    return FALSE;
  for (const char *p = id; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static char *
session_log_path (const char *cwd, const char *id)
{
  g_autofree char *name = g_strconcat (id, ".log", NULL);

  return g_build_filename (cwd, ".demo-agent", name, NULL);
}

DemoSession *
session_new (const char *id, const char *cwd)
{
  DemoSession *session = g_new0 (DemoSession, 1);

  session->id = g_strdup (id);
  session->cwd = g_strdup (cwd);
  session->log_path = session_log_path (cwd, id);
  session->history = g_ptr_array_new_with_free_func (demo_entry_free);
  return session;
}

void
session_remember (DemoSession *session, const char *role, const char *text)
{
  DemoEntry *entry = g_new0 (DemoEntry, 1);
  g_autoptr (JsonObject) line = json_object_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;
  FILE *log;

  entry->role = g_strdup (role);
  entry->text = g_strdup (text);
  g_ptr_array_add (session->history, entry);

  json_object_set_string_member (line, "role", role);
  json_object_set_string_member (line, "text", text);
  node = json_node_init_object (json_node_alloc (), line);
  json = json_to_string (node, FALSE);

  /* Appended at once so a crash or SIGKILL loses nothing said before it. */
  log = g_fopen (session->log_path, "ae");
  if (log == NULL)
    {
      demo_log ("cannot append to %s: %s", session->log_path,
                g_strerror (errno));
      return;
    }
  fprintf (log, "%s\n", json);
  if (fclose (log) != 0)
    demo_log ("cannot write %s: %s", session->log_path, g_strerror (errno));
}

gboolean
session_read_log (DemoSession *session, GError **error)
{
  g_autofree char *contents = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents (session->log_path, &contents, NULL, error))
    return FALSE;

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      JsonObject *object;
      DemoEntry *entry;

      if (*lines[i] == '\0')
        continue;
      /* A torn last line (crash while appending) is skipped, not fatal. */
      if (!json_parser_load_from_data (parser, lines[i], -1, NULL)
          || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        {
          demo_log ("%s:%u: not a transcript entry, skipped", session->log_path,
                    i + 1);
          continue;
        }
      object = json_node_get_object (json_parser_get_root (parser));
      entry = g_new0 (DemoEntry, 1);
      entry->role = g_strdup (
          json_object_get_string_member_with_default (object, "role", "user"));
      entry->text = g_strdup (
          json_object_get_string_member_with_default (object, "text", ""));
      g_ptr_array_add (session->history, entry);
    }
  return TRUE;
}

guint
session_count_prompts (DemoSession *session, const char **last_prompt)
{
  guint count = 0;

  *last_prompt = NULL;
  for (guint i = 0; i < session->history->len; i++)
    {
      DemoEntry *entry = g_ptr_array_index (session->history, i);

      if (g_strcmp0 (entry->role, "user") == 0)
        {
          count++;
          *last_prompt = entry->text;
        }
    }
  return count;
}

DemoSession *
lookup_session (JsonObject *params, JsonNode *id)
{
  const char *session_id
      = json_object_get_string_member_with_default (params, "sessionId", NULL);
  DemoSession *session;

  session = session_id != NULL
                ? g_hash_table_lookup (agent.sessions, session_id)
                : NULL;
  if (session == NULL && id != NULL)
    {
      g_autofree char *text = g_strdup_printf (
          "unknown session \"%s\"", session_id != NULL ? session_id : "");
      send_error (id, ACP_RESOURCE_NOT_FOUND, text, NULL);
    }
  return session;
}
