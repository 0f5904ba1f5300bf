/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — streamed answers as text: an agent's ACP session updates
 * (message chunks, tool calls, plans) and permission requests, for
 * prompt and watch
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "agentctl.h"

/* ---- JSON members -------------------------------------------------- */

static const char *
member_string (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static JsonObject *
member_object (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

static JsonArray *
member_array (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
}

/* ---- streaming output ---------------------------------------------- */

/* Tool calls remembered per stream: an agent naming ever new ids cannot
 * make agentctl grow without bound. */
#define AB_STREAM_MAX_TITLES 1024
/* Bytes of an agent's tool title shown */
#define AB_STREAM_MAX_TITLE 200

void
stream_end_line (AbStream *stream)
{
  if (stream->mid_line)
    {
      putchar ('\n');
      stream->mid_line = FALSE;
    }
  fflush (stdout);
}

/* Before a line on @events: the unfinished answer line ends on the
 * terminal, but the answer on a redirected standard output stays as the
 * agent wrote it. */
void
stream_break (AbStream *stream)
{
  if (stream->events == NULL || stream->events == stdout)
    {
      stream_end_line (stream);
      return;
    }
  fflush (stdout);
  if (stream->mid_line && isatty (STDOUT_FILENO))
    fputc ('\n', stream->events);
}

void
stream_clear (AbStream *stream)
{
  g_clear_pointer (&stream->prefix, g_free);
  g_clear_pointer (&stream->titles, g_hash_table_unref);
}

static void
stream_text (AbStream *stream, const char *prefix, const char *text)
{
  if (stream->mid_line && g_strcmp0 (stream->prefix, prefix) != 0)
    stream_end_line (stream);

  while (*text != '\0')
    {
      const char *newline = strchr (text, '\n');
      gsize length = newline != NULL ? (gsize)(newline - text) : strlen (text);

      if (!stream->mid_line)
        {
          fputs (prefix, stdout);
          g_free (stream->prefix);
          stream->prefix = g_strdup (prefix);
          stream->mid_line = TRUE;
        }
      fwrite (text, 1, length, stdout);
      if (newline == NULL)
        break;
      putchar ('\n');
      stream->mid_line = FALSE;
      text = newline + 1;
    }
  fflush (stdout);
}

void
stream_line (AbStream *stream, const char *prefix, const char *line)
{
  FILE *out = stream->events != NULL ? stream->events : stdout;

  stream_break (stream);
  fprintf (out, "%s%s\n", prefix, line);
  fflush (out);
}

/* The title an agent gave a tool call: remembered from its tool_call (or
 * a later tool_call_update that retitles it), since updates name the call
 * by its opaque id only.  Falls back to the id. */
static const char *
stream_tool_title (AbStream *stream, const char *prefix, JsonObject *update)
{
  const char *id = member_string (update, "toolCallId");
  const char *title = member_string (update, "title");
  g_autofree char *key = NULL;
  const char *known;

  if (id == NULL)
    return title != NULL ? title : "?";
  key = g_strdup_printf ("%s\n%s", prefix, id);
  if (title != NULL && *title != '\0')
    {
      if (stream->titles == NULL)
        stream->titles
            = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      if (g_hash_table_size (stream->titles) >= AB_STREAM_MAX_TITLES)
        g_hash_table_remove_all (stream->titles);
      g_hash_table_replace (stream->titles, g_steal_pointer (&key),
                            g_utf8_make_valid (title, -1));
      return title;
    }
  known = stream->titles != NULL ? g_hash_table_lookup (stream->titles, key)
                                 : NULL;
  return known != NULL ? known : id;
}

/* @title cut to AB_STREAM_MAX_TITLE bytes at a character boundary, with
 * control characters (an agent's escape sequences) replaced. */
static char *
printable_title (const char *title)
{
  g_autofree char *valid = g_utf8_make_valid (title, -1);
  GString *out = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (out->len >= AB_STREAM_MAX_TITLE)
        {
          g_string_append (out, "…");
          break;
        }
      if (g_unichar_iscntrl (c))
        g_string_append_c (out, ' ');
      else
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/* One ACP SessionUpdate as text: message chunks verbatim, tool calls and
 * plans as one line each, everything else (thoughts, the user's own
 * message, command lists) left out. */
void
stream_update (AbStream *stream, const char *prefix, const char *update_json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *line = NULL;
  JsonNode *root;
  JsonObject *update;
  const char *kind;

  if (!json_parser_load_from_data (parser, update_json, -1, NULL))
    return;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  update = json_node_get_object (root);
  kind = member_string (update, "sessionUpdate");
  if (kind == NULL)
    return;

  if (g_str_equal (kind, "agent_message_chunk"))
    {
      JsonObject *content = member_object (update, "content");
      const char *text = member_string (content, "text");

      if (g_strcmp0 (member_string (content, "type"), "text") == 0
          && text != NULL)
        stream_text (stream, prefix, text);
    }
  else if (g_str_equal (kind, "tool_call")
           || g_str_equal (kind, "tool_call_update"))
    {
      g_autofree char *title
          = printable_title (stream_tool_title (stream, prefix, update));
      const char *status = member_string (update, "status");

      if (g_str_equal (kind, "tool_call"))
        line = g_strdup_printf ("[tool] %s (%s)", title,
                                status != NULL ? status : "pending");
      else if (status != NULL)
        line = g_strdup_printf ("[tool] %s (%s)", title, status);
    }
  else if (g_str_equal (kind, "plan"))
    {
      JsonArray *entries = member_array (update, "entries");
      guint n = entries != NULL ? json_array_get_length (entries) : 0;

      line = g_strdup_printf (
          ngettext ("[plan] %u entry", "[plan] %u entries", n), n);
    }

  if (line != NULL)
    stream_line (stream, prefix, line);
}

/* The title of a session/request_permission and its option ids. */
void
describe_permission (const char *request_json, char **out_title,
                     char **out_options)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GString) options = g_string_new (NULL);
  JsonObject *params = NULL;
  JsonObject *tool_call;
  JsonArray *choices;
  const char *title;

  if (json_parser_load_from_data (parser, request_json, -1, NULL)
      && json_parser_get_root (parser) != NULL
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    params = json_node_get_object (json_parser_get_root (parser));

  tool_call = member_object (params, "toolCall");
  title = member_string (tool_call, "title");
  if (title == NULL)
    title = member_string (tool_call, "toolCallId");
  *out_title = g_strdup (title != NULL ? title : _ ("(untitled)"));

  choices = member_array (params, "options");
  for (guint i = 0; choices != NULL && i < json_array_get_length (choices); i++)
    {
      JsonNode *choice = json_array_get_element (choices, i);
      const char *id
          = JSON_NODE_HOLDS_OBJECT (choice)
                ? member_string (json_node_get_object (choice), "optionId")
                : NULL;

      if (id == NULL)
        continue;
      if (options->len > 0)
        g_string_append (options, ", ");
      g_string_append (options, id);
    }
  *out_options = g_strdup (options->len > 0 ? options->str : _ ("none"));
}
