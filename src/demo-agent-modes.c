/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — the prompt modes: what a turn does, planned as
 * steps from the first word of the prompt (or from the mode forced through
 * AGENTBROKER_DEMO_MODE), as the top of demo-agent.c lists them; anything
 * else gets the default answer
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "demo-agent.h"

#define DEMO_CHUNK_DELAY_MS 50
#define DEMO_STREAM_BYTES 16
#define DEMO_LONGLINE_BYTES (9 * 1024 * 1024)
#define DEMO_FLOOD_BYTES 4096

static guint64
parse_count (char **words, guint index, guint64 fallback)
{
  guint64 value;

  if (g_strv_length (words) <= index
      || !g_ascii_string_to_unsigned (words[index], 10, 0, G_MAXUINT32, &value,
                                      NULL))
    return fallback;
  return value;
}

static void
turn_plan_default (DemoTurn *turn, const char *prompt)
{
  const char *last = NULL;
  guint earlier = session_count_prompts (turn->session, &last);
  g_autofree char *memory = NULL;
  g_autofree char *quote = NULL;
  g_autofree char *said = NULL;
  g_autofree char *tool_id
      = g_strdup_printf ("demo-tool-%u", ++agent.tool_calls);
  JsonObject *done;
  JsonArray *content = json_array_new ();
  JsonObject *item = json_object_new ();
  g_autofree char *listing = g_strdup_printf ("cwd: %s", turn->session->cwd);

  memory = g_strdup_printf ("I remember %u earlier prompt%s in this session",
                            earlier, earlier == 1 ? "" : "s");
  quote = last != NULL ? g_strdup_printf ("; the last one was \"%s\". ", last)
                       : g_strdup (". ");
  said = g_strdup_printf ("You said: \"%s\". ", prompt);

  turn_add_text (turn, 0, "Hello from the demo agent. ");
  turn_add_text (turn, DEMO_CHUNK_DELAY_MS, memory);
  turn_add_text (turn, DEMO_CHUNK_DELAY_MS, quote);
  turn_add_update (turn, DEMO_CHUNK_DELAY_MS,
                   tool_call_new ("tool_call", tool_id,
                                  "Look at the working directory", "read",
                                  "in_progress"));
  done = tool_call_new ("tool_call_update", tool_id, NULL, NULL, "completed");
  json_object_set_string_member (item, "type", "content");
  json_object_set_object_member (item, "content", text_block_new (listing));
  json_array_add_object_element (content, item);
  json_object_set_array_member (done, "content", content);
  turn_add_update (turn, DEMO_CHUNK_DELAY_MS, done);
  turn_add_text (turn, DEMO_CHUNK_DELAY_MS, said);
  turn_add_text (turn, DEMO_CHUNK_DELAY_MS, "That is all for now.");
}

static int
compare_strings (gconstpointer a, gconstpointer b, gpointer user_data)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

static char *
describe_environment (void)
{
  g_auto (GStrv) env = g_get_environ ();
  g_autofree char *cwd = g_get_current_dir ();
  g_autoptr (GString) text = g_string_new (NULL);

  g_qsort_with_data (env, g_strv_length (env), sizeof (char *), compare_strings,
                     NULL);
  for (guint i = 0; env[i] != NULL; i++)
    g_string_append_printf (text, "%s\n", env[i]);
  g_string_append_printf (text, "cwd=%s", cwd);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
grandchild_exited_cb (GPid pid, gint status, gpointer user_data)
{
  demo_log ("grandchild %d exited (status %d)", (int)pid, status);
  g_spawn_close_pid (pid);
}

/* Allocates @mib MiB (at most 64 GiB) and touches every page, so that
 * the memory is really used: a unit's memory limit kills the agent
 * first.  Never freed: the agent keeps what it took. */
static char *
allocate_mib (guint64 mib)
{
  gsize page = 4096;

  mib = MIN (mib, 64 * 1024);
  for (guint64 i = 0; i < mib; i++)
    {
      char *block = g_malloc (1024 * 1024);

      for (gsize at = 0; at < 1024 * 1024; at += page)
        block[at] = 1;
    }
  return g_strdup_printf ("allocated %" G_GUINT64_FORMAT " MiB", mib);
}

static char *
fork_grandchild (void)
{
  const char *argv[] = { "sleep", "1000", NULL };
  g_autoptr (GError) error = NULL;
  GPid pid;

  /* No setsid/setpgid: the grandchild stays in our process group, like the
   * helpers real agents leave behind. Its stdio is /dev/null so only the
   * process group ties it to us. */
  if (!g_spawn_async (NULL, (char **)argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD
                          | G_SPAWN_STDIN_FROM_DEV_NULL
                          | G_SPAWN_STDOUT_TO_DEV_NULL
                          | G_SPAWN_STDERR_TO_DEV_NULL,
                      NULL, NULL, &pid, &error))
    return g_strdup_printf ("fork-child: failed: %s", error->message);
  g_child_watch_add (pid, grandchild_exited_cb, NULL);
  return g_strdup_printf ("fork-child: pid=%d pgid=%d", (int)pid,
                          (int)getpgrp ());
}

/* What the session record at @path says of the turn in flight, read the
 * moment the prompt arrives. */
static char *
describe_record (const char *path)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  if (!json_parser_load_from_mapped_file (parser, path, NULL)
      || (root = json_parser_get_root (parser)) == NULL
      || !JSON_NODE_HOLDS_OBJECT (root))
    return g_strdup ("record: unreadable");
  return g_strdup_printf ("record: running_turn=%" G_GINT64_FORMAT,
                          json_object_get_int_member_with_default (
                              json_node_get_object (root), "running_turn", 0));
}

/* "N bytes sha256 HEX" of @data, base64-decoded when @base64. */
static char *
describe_bytes (const char *data, gboolean base64)
{
  g_autofree guchar *decoded = NULL;
  gsize len = strlen (data);
  g_autofree char *sum = NULL;

  if (base64)
    decoded = g_base64_decode (data, &len);
  sum = g_compute_checksum_for_data (
      G_CHECKSUM_SHA256, base64 ? decoded : (const guchar *)data, len);
  return g_strdup_printf ("%zu bytes sha256 %s", len, sum);
}

static char *
describe_block (JsonObject *block, guint index)
{
  const char *type
      = json_object_get_string_member_with_default (block, "type", "");
  const char *data
      = json_object_get_string_member_with_default (block, "data", "");
  JsonObject *resource = json_object_has_member (block, "resource")
                                 && JSON_NODE_HOLDS_OBJECT (
                                     json_object_get_member (block, "resource"))
                             ? json_object_get_object_member (block, "resource")
                             : NULL;
  g_autofree char *bytes = NULL;

  if (g_str_equal (type, "text"))
    return g_strdup_printf (
        "block %u: text %s\n", index,
        json_object_get_string_member_with_default (block, "text", ""));
  if (g_str_equal (type, "image") || g_str_equal (type, "audio"))
    {
      bytes = describe_bytes (data, TRUE);
      return g_strdup_printf (
          "block %u: %s %s %s\n", index, type,
          json_object_get_string_member_with_default (block, "mimeType", ""),
          bytes);
    }
  if (g_str_equal (type, "resource") && resource != NULL)
    {
      const char *blob
          = json_object_get_string_member_with_default (resource, "blob", NULL);

      bytes = blob != NULL
                  ? describe_bytes (blob, TRUE)
                  : describe_bytes (json_object_get_string_member_with_default (
                                        resource, "text", ""),
                                    FALSE);
      return g_strdup_printf (
          "block %u: resource %s %s\n", index,
          json_object_get_string_member_with_default (resource, "uri", ""),
          bytes);
    }
  if (g_str_equal (type, "resource_link"))
    return g_strdup_printf (
        "block %u: resource_link %s %s\n", index,
        json_object_get_string_member_with_default (block, "uri", ""),
        json_object_get_string_member_with_default (block, "name", ""));
  return g_strdup_printf ("block %u: %s\n", index, type);
}

void
turn_plan_blocks (DemoTurn *turn, JsonArray *blocks)
{
  g_queue_clear_full (&turn->steps, demo_step_free);
  for (guint i = 0; i < json_array_get_length (blocks); i++)
    {
      JsonNode *node = json_array_get_element (blocks, i);
      g_autofree char *text
          = JSON_NODE_HOLDS_OBJECT (node)
                ? describe_block (json_node_get_object (node), i)
                : g_strdup_printf ("block %u: not an object\n", i);

      turn_add_text (turn, 0, text);
    }
}

void
turn_plan (DemoTurn *turn, const char *mode_text, const char *prompt)
{
  g_auto (GStrv) split = g_strsplit_set (mode_text, " \t\r\n", -1);
  g_autoptr (GPtrArray) nonempty = g_ptr_array_new ();
  char **words;
  const char *word;

  /* Collapse runs of blanks so "stream  10" works too. */
  for (guint i = 0; split[i] != NULL; i++)
    if (*split[i] != '\0')
      g_ptr_array_add (nonempty, split[i]);
  g_ptr_array_add (nonempty, NULL);
  words = (char **)nonempty->pdata;
  word = words[0] != NULL ? words[0] : "";

  if (g_str_equal (word, "stream") || g_str_equal (word, "pace"))
    {
      DemoStep *step = turn_add_step (turn, STEP_STREAM, 0);
      guint first = 1;

      if (g_str_equal (word, "pace"))
        {
          guint64 rate = parse_count (words, first++, 10);
          /* DELAY, after N and BYTES: ms, fractions allowed */
          double delay_ms = g_strv_length (words) > first + 2
                                ? g_ascii_strtod (words[first + 2], NULL)
                                : 0;

          turn->pace_interval_us = (gint64)CLAMP (
              G_USEC_PER_SEC / MAX (rate, 1), 1, G_USEC_PER_SEC);
          turn->pace_due_us = g_get_monotonic_time ()
                              + (gint64)(isfinite (delay_ms)
                                             ? CLAMP (delay_ms, 0, 60000) * 1000
                                             : 0);
          turn->stream_stamp = TRUE;
        }
      else
        turn->stream_stamp = strstr (mode_text, "stamp") != NULL;
      step->n = parse_count (words, first, 10);
      turn->stream_bytes = parse_count (words, first + 1, DEMO_STREAM_BYTES);
      turn->stream_next = 1;
      if (step->n == 0)
        g_queue_clear_full (&turn->steps, demo_step_free);
    }
  else if (g_str_equal (word, "sleep"))
    {
      double seconds = words[1] != NULL ? g_ascii_strtod (words[1], NULL) : 1;
      g_autofree char *text = NULL;

      seconds = CLAMP (seconds, 0, 24 * 3600);
      text = g_strdup_printf ("sleeping %g s", seconds);
      turn_add_text (turn, 0, text);
      turn_add_step (turn, STEP_PAUSE, (guint)(seconds * 1000));
    }
  else if (g_str_equal (word, "gate") && words[1] != NULL)
    {
      g_autofree char *text = g_strdup_printf ("waiting for %s", words[1]);

      turn_add_text (turn, 0, text);
      turn_add_step (turn, STEP_GATE, 0)->text = g_strdup (words[1]);
      if (words[2] != NULL)
        {
          g_autofree char *rest = g_strjoinv (" ", words + 2);

          turn_plan (turn, rest, rest);
        }
    }
  else if (g_str_equal (word, "crash"))
    {
      turn_add_text (turn, 0, "about to crash");
      turn_add_step (turn, STEP_CRASH, 0);
    }
  else if (g_str_equal (word, "hang") || g_str_equal (word, "hang-hard"))
    {
      turn->ignore_cancel = g_str_equal (word, "hang-hard");
      turn_add_step (turn, STEP_HANG, 0);
    }
  else if (g_str_equal (word, "garbage"))
    {
      turn_add_step (turn, STEP_GARBAGE, 0);
      turn_add_text (turn, 0, "wrote a line of garbage");
    }
  else if (g_str_equal (word, "longline"))
    {
      turn_add_step (turn, STEP_LONGLINE, 0)->n
          = parse_count (words, 1, DEMO_LONGLINE_BYTES);
    }
  else if (g_str_equal (word, "permission"))
    {
      turn->tool_call_id = g_strdup_printf ("demo-tool-%u", ++agent.tool_calls);
      turn_add_update (turn, 0,
                       tool_call_new ("tool_call", turn->tool_call_id,
                                      "Write demo.txt", "edit", "pending"));
      turn_add_step (turn, STEP_PERMISSION, 0);
    }
  else if (g_str_equal (word, "permission-flood"))
    {
      guint64 n = parse_count (words, 1, 1);
      g_autofree char *text = g_strdup_printf ("flooded %" G_GUINT64_FORMAT, n);

      turn->tool_call_id = g_strdup_printf ("demo-tool-%u", ++agent.tool_calls);
      turn->flood_title = g_strnfill (
          MIN (parse_count (words, 2, DEMO_FLOOD_BYTES), DEMO_LONGLINE_BYTES),
          'x');
      turn_add_step (turn, STEP_FLOOD, 0)->n = n;
      turn_add_text (turn, 0, text);
      if (strstr (mode_text, "deaf") != NULL && agent.stdin_source != 0)
        {
          demo_log ("not reading stdin any more (deaf)");
          g_clear_handle_id (&agent.stdin_source, g_source_remove);
        }
    }
  else if (g_str_equal (word, "record") && words[1] != NULL)
    {
      g_autofree char *text = describe_record (words[1]);

      turn_add_text (turn, 0, text);
    }
  else if (g_str_equal (word, "error"))
    {
      turn_add_step (turn, STEP_FAIL, 0);
    }
  else if (g_str_equal (word, "stderr"))
    {
      guint64 lines = parse_count (words, 1, 1);

      for (guint64 i = 1; i <= lines; i++)
        fprintf (stderr,
                 "demo stderr line %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                 "\n",
                 i, lines);
      fflush (stderr);
      turn_plan_default (turn, prompt);
    }
  else if (g_str_equal (word, "echo"))
    {
      turn_add_text (turn, 0, prompt);
    }
  else if (g_str_equal (word, "title"))
    {
      JsonObject *update = json_object_new ();
      const char *title = prompt + strspn (prompt, " \t\r\n") + strlen (word);

      json_object_set_string_member (update, "sessionUpdate",
                                     "session_info_update");
      json_object_set_string_member (update, "title",
                                     title + strspn (title, " \t\r\n"));
      turn_add_update (turn, 0, update);
      turn_add_text (turn, 0, "title set");
    }
  else if (g_str_equal (word, "env"))
    {
      g_autofree char *text = describe_environment ();

      turn_add_text (turn, 0, text);
    }
  else if (g_str_equal (word, "alloc"))
    {
      g_autofree char *text = allocate_mib (parse_count (words, 1, 64));

      turn_add_text (turn, 0, text);
    }
  else if (g_str_equal (word, "raw-update"))
    {
      const char *rest
          = strstr (mode_text, "raw-update") + strlen ("raw-update");
      g_autoptr (JsonNode) node = json_from_string (rest, NULL);

      if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
        turn_add_update (turn, 0,
                         json_object_ref (json_node_get_object (node)));
      else
        turn_add_text (turn, 0, "raw-update: not an object");
    }
  else if (g_str_equal (word, "opened"))
    {
      const char *last;
      guint earlier = session_count_prompts (turn->session, &last);
      g_autofree char *text = g_strdup_printf (
          "opened by %s %u",
          turn->session->opened_by != NULL ? turn->session->opened_by : "?",
          earlier);

      turn_add_text (turn, 0, text);
    }
  else if (g_str_equal (word, "fork-child"))
    {
      g_autofree char *text = fork_grandchild ();

      turn_add_text (turn, 0, text);
    }
  else
    {
      turn_plan_default (turn, prompt);
    }
}
