/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — a small Agent Client Protocol agent for demos and
 * tests.
 *
 * It speaks ACP v1 (JSON-RPC 2.0, one JSON object per line) on stdin/stdout
 * and logs one line per request on stderr.  It has no model: the answer to a
 * prompt is canned, but it behaves like a real agent on the wire — streamed
 * `session/update` notifications, a tool call, an `available_commands_update`
 * outside any turn, cancellation, `session/load` replaying the history that it
 * keeps in `<cwd>/.demo-agent/<sessionId>.log` (JSON lines).
 *
 * Default answer: five `agent_message_chunk` updates ~50 ms apart that say
 * "I remember N earlier prompt(s) in this session" and quote the previous
 * prompt, with a `tool_call` and its `tool_call_update` (completed) between.
 *
 * Test modes, chosen by the first word of the prompt text:
 *
 *   stream N [BYTES]  N chunks as fast as possible, each BYTES (16) long,
 *                     chunk i's text starts with "i " (i counts from 1); with
 *                     the word "stamp" anywhere in the prompt each chunk also
 *                     carries "t=<CLOCK_MONOTONIC µs at write time> "
 *   pace R N [BYTES [DELAY]]
 *                     like "stream N BYTES stamp", but R chunks per second:
 *                     chunk i is due DELAY ms (0; fractions allowed) plus
 *                     (i-1)/R s after the prompt, however late the one
 *                     before was; for latency measurements, agents prompted
 *                     together and given different delays do not write in
 *                     step
 *   sleep S           one chunk, then wait S seconds (cancellable), end_turn
 *   gate PATH [MODE]  one chunk, then wait until the file PATH exists
 *                     (cancellable), then MODE if given, end_turn: a turn
 *                     that runs exactly as long as a test wants, however
 *                     loaded the machine is
 *   crash             one chunk, then _exit(3) in the middle of the turn
 *   hang              nothing at all until session/cancel → cancelled
 *   hang-hard         nothing at all, ever; session/cancel is ignored
 *   garbage           a line of invalid JSON, then one chunk, end_turn
 *   longline [N]      one session/update line of N bytes (default 9 MiB)
 *   permission        session/request_permission (allow_once, allow_always,
 *                     reject_once), then a chunk "permission: <optionId>" or
 *                     "permission: cancelled", end_turn
 *   permission-flood N [BYTES] [deaf]
 *                     N session/request_permission back to back, each with
 *                     a tool call title of BYTES (4096) bytes, without
 *                     waiting for the answers (which are ignored), then a
 *                     chunk "flooded N", end_turn; with "deaf" stdin is
 *                     never read again once the prompt arrived: a hostile
 *                     agent whose answers pile up in the client
 *   record PATH       one chunk "record: running_turn=N" with the
 *                     running_turn of the JSON file PATH (a session record
 *                     of agentbroker) as it is when the prompt arrives, or
 *                     "record: unreadable"
 *   error             JSON-RPC error -32603 "demo failure" to session/prompt
 *   stderr N          N lines on stderr, then the default answer
 *   echo              one chunk with exactly the prompt text
 *   env               one chunk: the environment as NAME=VALUE lines (sorted)
 *                     and cwd=<working directory>
 *   fork-child        spawn `sleep 1000` in our process group and report its
 *                     pid in a chunk (teardown must kill the group)
 *
 * AGENTBROKER_DEMO_MODE holds a comma-separated list.  A prompt mode in it
 * (e.g. "stream 100 64") applies to every prompt whatever its text; these
 * flags change the handshake and the process:
 *
 *   refuse-initialize  `initialize` fails, a reason goes to stderr, exit 1
 *   refuse-load        `session/load` fails with a JSON-RPC error
 *   ignore-stdin-eof   keep running after stdin closes
 *   ignore-sigterm     ignore SIGTERM (only SIGKILL stops us)
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

#define DEMO_NAME "agentbroker-demo-agent"
#define DEMO_AUTH_METHOD "demo-key"
#define DEMO_CHUNK_DELAY_MS 50
#define DEMO_STREAM_BYTES 16
#define DEMO_GATE_POLL_MS 20
#define DEMO_LONGLINE_BYTES (9 * 1024 * 1024)
#define DEMO_FLOOD_BYTES 4096
/* Steps without delay run in batches, so a fast stream still lets a
 * session/cancel on stdin in between batches. */
#define DEMO_STEPS_PER_DISPATCH 64

enum
{
  RPC_PARSE_ERROR = -32700,
  RPC_INVALID_REQUEST = -32600,
  RPC_METHOD_NOT_FOUND = -32601,
  RPC_INVALID_PARAMS = -32602,
  RPC_INTERNAL_ERROR = -32603,
  ACP_RESOURCE_NOT_FOUND = -32002,
};

typedef struct
{
  char *role; /* "user" or "agent" */
  char *text;
} DemoEntry;

typedef struct _DemoTurn DemoTurn;

typedef struct
{
  char *id;
  char *cwd;
  char *log_path;
  GPtrArray *history; /* of DemoEntry */
  DemoTurn *turn;     /* the running turn, or NULL */
} DemoSession;

typedef enum
{
  STEP_TEXT,       /* agent_message_chunk with step->text */
  STEP_UPDATE,     /* step->update as is */
  STEP_STREAM,     /* step->n generated chunks ("stream") */
  STEP_PAUSE,      /* only the delay ("sleep") */
  STEP_HANG,       /* stay here; only a cancel ends the turn */
  STEP_GATE,       /* stay here until the file step->text exists */
  STEP_CRASH,      /* _exit (3) */
  STEP_GARBAGE,    /* a line that is not JSON */
  STEP_LONGLINE,   /* one update line of step->n bytes */
  STEP_PERMISSION, /* ask the client, resume when it answers */
  STEP_FLOOD,      /* step->n permission requests, no waiting */
  STEP_FAIL,       /* answer session/prompt with a JSON-RPC error */
} DemoStepKind;

typedef struct
{
  DemoStepKind kind;
  guint delay_ms; /* waited before the step runs */
  char *text;
  JsonObject *update;
  guint64 n;
} DemoStep;

struct _DemoTurn
{
  DemoSession *session;
  JsonNode *request_id;
  GQueue steps; /* of DemoStep */
  guint source_id;
  gboolean ignore_cancel;
  gint64 permission_id; /* our pending request to the client, or 0 */
  char *tool_call_id;
  guint64 stream_next;
  guint stream_bytes;
  guint64 flood_sent;
  char *flood_title;
  gboolean stream_stamp;
  gint64 pace_interval_us; /* between chunks; 0 = as fast as possible */
  gint64 pace_due_us;      /* when the next paced chunk is due (monotonic) */
  int pace_timerfd;        /* -1 until a paced chunk is waited for */
  GString *reply;          /* what we said, for the transcript */
};

static struct
{
  GMainLoop *loop;
  GHashTable *sessions; /* id → DemoSession */
  gint64 next_request_id;
  guint tool_calls;
  char *forced_mode; /* prompt mode from the environment, or NULL */
  gboolean refuse_initialize;
  gboolean refuse_load;
  gboolean ignore_stdin_eof;
  guint stdin_source;
  /* ids of "permission-flood" requests, whose answers nobody waits for */
  gint64 flood_first_id;
  gint64 flood_last_id;
} agent;

static void turn_schedule (DemoTurn *turn);
static void demo_log (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
demo_log (const char *format, ...)
{
  va_list args;
  g_autofree char *line = NULL;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, DEMO_NAME "[%d]: %s\n", (int)getpid (), line);
}

/* ---- writing JSON-RPC ------------------------------------------------- */

static void
write_line (const char *data, gsize len)
{
  /* A client that went away is not worth a SIGPIPE death certificate in the
   * journal: say so and leave. */
  if (fwrite (data, 1, len, stdout) != len || fputc ('\n', stdout) == EOF
      || fflush (stdout) != 0)
    {
      demo_log ("cannot write to stdout: %s; exiting", g_strerror (errno));
      exit (1);
    }
}

static JsonObject *
message_new (void)
{
  JsonObject *message = json_object_new ();

  json_object_set_string_member (message, "jsonrpc", "2.0");
  return message;
}

/* Takes ownership of object. */
static JsonNode *
object_node (JsonObject *object)
{
  JsonNode *node = json_node_init (json_node_alloc (), JSON_NODE_OBJECT);

  json_node_take_object (node, object);
  return node;
}

static void
send_message (JsonObject *message)
{
  g_autoptr (JsonNode) node
      = json_node_init_object (json_node_alloc (), message);
  g_autofree char *text = json_to_string (node, FALSE);

  write_line (text, strlen (text));
}

static void
send_result (JsonNode *id, JsonNode *result)
{
  g_autoptr (JsonObject) message = message_new ();

  json_object_set_member (message, "id", json_node_copy (id));
  json_object_set_member (message, "result", result);
  send_message (message);
}

static void
send_empty_result (JsonNode *id)
{
  send_result (id, object_node (json_object_new ()));
}

/* id may be NULL for errors about unparseable input; data may be NULL */
static void
send_error (JsonNode *id, int code, const char *text, const char *data_text)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *error = json_object_new ();

  if (id != NULL)
    json_object_set_member (message, "id", json_node_copy (id));
  else
    json_object_set_null_member (message, "id");
  json_object_set_int_member (error, "code", code);
  json_object_set_string_member (error, "message", text);
  if (data_text != NULL)
    {
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "message", data_text);
      json_object_set_object_member (error, "data", data);
    }
  json_object_set_object_member (message, "error", error);
  send_message (message);
}

/* Takes ownership of update. */
static void
send_update (const char *session_id, JsonObject *update)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();

  json_object_set_string_member (message, "method", "session/update");
  json_object_set_string_member (params, "sessionId", session_id);
  json_object_set_object_member (params, "update", update);
  json_object_set_object_member (message, "params", params);
  send_message (message);
}

static JsonObject *
text_block_new (const char *text)
{
  JsonObject *block = json_object_new ();

  json_object_set_string_member (block, "type", "text");
  json_object_set_string_member (block, "text", text);
  return block;
}

/* kind: agent_message_chunk or user_message_chunk */
static JsonObject *
chunk_update_new (const char *kind, const char *text)
{
  JsonObject *update = json_object_new ();

  json_object_set_string_member (update, "sessionUpdate", kind);
  json_object_set_object_member (update, "content", text_block_new (text));
  return update;
}

static JsonObject *
tool_call_new (const char *update_kind, const char *id, const char *title,
               const char *kind, const char *status)
{
  JsonObject *update = json_object_new ();

  if (update_kind != NULL)
    json_object_set_string_member (update, "sessionUpdate", update_kind);
  json_object_set_string_member (update, "toolCallId", id);
  if (title != NULL)
    json_object_set_string_member (update, "title", title);
  if (kind != NULL)
    json_object_set_string_member (update, "kind", kind);
  json_object_set_string_member (update, "status", status);
  return update;
}

/* ---- sessions and their transcript ----------------------------------- */

static void
demo_entry_free (gpointer data)
{
  DemoEntry *entry = data;

  g_free (entry->role);
  g_free (entry->text);
  g_free (entry);
}

static void
demo_session_free (gpointer data)
{
  DemoSession *session = data;

  g_free (session->id);
  g_free (session->cwd);
  g_free (session->log_path);
  g_ptr_array_unref (session->history);
  g_free (session);
}

/* Session ids become file names, so only a tame alphabet is accepted. */
static gboolean
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

static DemoSession *
session_new (const char *id, const char *cwd)
{
  DemoSession *session = g_new0 (DemoSession, 1);

  session->id = g_strdup (id);
  session->cwd = g_strdup (cwd);
  session->log_path = session_log_path (cwd, id);
  session->history = g_ptr_array_new_with_free_func (demo_entry_free);
  return session;
}

static void
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

static gboolean
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

static guint
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

static DemoSession *
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

/* ---- turns ----------------------------------------------------------- */

static void
demo_step_free (gpointer data)
{
  DemoStep *step = data;

  g_free (step->text);
  if (step->update != NULL)
    json_object_unref (step->update);
  g_free (step);
}

static DemoStep *
turn_add_step (DemoTurn *turn, DemoStepKind kind, guint delay_ms)
{
  DemoStep *step = g_new0 (DemoStep, 1);

  step->kind = kind;
  step->delay_ms = delay_ms;
  g_queue_push_tail (&turn->steps, step);
  return step;
}

static void
turn_add_text (DemoTurn *turn, guint delay_ms, const char *text)
{
  turn_add_step (turn, STEP_TEXT, delay_ms)->text = g_strdup (text);
}

static void
turn_add_update (DemoTurn *turn, guint delay_ms, JsonObject *update)
{
  turn_add_step (turn, STEP_UPDATE, delay_ms)->update = update;
}

static void
turn_free (DemoTurn *turn)
{
  if (turn->source_id != 0)
    g_source_remove (turn->source_id);
  if (turn->session != NULL && turn->session->turn == turn)
    turn->session->turn = NULL;
  json_node_unref (turn->request_id);
  g_queue_clear_full (&turn->steps, demo_step_free);
  g_free (turn->tool_call_id);
  g_free (turn->flood_title);
  g_string_free (turn->reply, TRUE);
  if (turn->pace_timerfd >= 0)
    close (turn->pace_timerfd);
  g_free (turn);
}

static void
turn_finish (DemoTurn *turn, const char *stop_reason)
{
  JsonObject *result = json_object_new ();

  if (turn->reply->len > 0)
    session_remember (turn->session, "agent", turn->reply->str);
  json_object_set_string_member (result, "stopReason", stop_reason);
  send_result (turn->request_id, object_node (result));
  demo_log ("turn in session %s ended: %s", turn->session->id, stop_reason);
  turn_free (turn);
}

static void
turn_send_text (DemoTurn *turn, const char *text)
{
  g_string_append (turn->reply, text);
  send_update (turn->session->id,
               chunk_update_new ("agent_message_chunk", text));
}

/* Stream chunks are written without a JSON library: the session id has a
 * tame alphabet (session_id_is_valid) and the text is digits, "t=" and
 * 'x', so nothing needs escaping. A chunk costs one formatted write, so
 * the agent's own CPU stays small next to the daemon's in the benchmark
 * that measures the daemon. The members are in the order send_update()
 * gives them. */
static void
turn_send_stream_chunk (DemoTurn *turn)
{
  g_autoptr (GString) line = g_string_sized_new (192 + turn->stream_bytes);
  gsize text_start;

  g_string_append_printf (line,
                          "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                          "\"params\":{\"sessionId\":\"%s\",\"update\":{"
                          "\"sessionUpdate\":\"agent_message_chunk\","
                          "\"content\":{\"type\":\"text\",\"text\":\"",
                          turn->session->id);
  text_start = line->len;
  g_string_append_printf (line, "%" G_GUINT64_FORMAT " ", turn->stream_next);
  if (turn->stream_stamp)
    g_string_append_printf (line, "t=%" G_GINT64_FORMAT " ",
                            g_get_monotonic_time ());
  while (line->len - text_start < turn->stream_bytes)
    g_string_append_c (line, 'x');
  /* Not added to the reply: a stream of a million chunks is not history. */
  g_string_append (line, "\"}}}}");
  write_line (line->str, line->len);
}

static void
turn_send_long_line (DemoTurn *turn, guint64 target)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();
  JsonObject *update = chunk_update_new ("agent_message_chunk", "");
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *empty = NULL;
  g_autofree char *padding = NULL;
  g_autofree char *text = NULL;
  gsize overhead;

  json_object_set_string_member (message, "method", "session/update");
  json_object_set_string_member (params, "sessionId", turn->session->id);
  json_object_set_object_member (params, "update", update);
  json_object_set_object_member (message, "params", params);
  node = json_node_init_object (json_node_alloc (), message);

  /* Measure the envelope, then pad the text so the line has target bytes
   * (not counting the newline). */
  empty = json_to_string (node, FALSE);
  overhead = strlen (empty);
  padding = g_strnfill (target > overhead ? target - overhead : 0, 'x');
  json_object_set_string_member (
      json_object_get_object_member (update, "content"), "text", padding);
  text = json_to_string (node, FALSE);
  write_line (text, strlen (text));
}

/* Asks for permission to run a tool call titled @title; returns the
 * request's id. */
static gint64
send_permission_request (DemoTurn *turn, const char *title)
{
  static const char *const options[][3] = {
    { "allow_once", "Allow once", "allow_once" },
    { "allow_always", "Always allow", "allow_always" },
    { "reject_once", "Reject", "reject_once" },
  };
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();
  JsonArray *array = json_array_new ();
  gint64 id = ++agent.next_request_id;

  json_object_set_int_member (message, "id", id);
  json_object_set_string_member (message, "method",
                                 "session/request_permission");
  json_object_set_string_member (params, "sessionId", turn->session->id);
  json_object_set_object_member (
      params, "toolCall",
      tool_call_new (NULL, turn->tool_call_id, title, "edit", "pending"));
  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    {
      JsonObject *option = json_object_new ();

      json_object_set_string_member (option, "optionId", options[i][0]);
      json_object_set_string_member (option, "name", options[i][1]);
      json_object_set_string_member (option, "kind", options[i][2]);
      json_array_add_object_element (array, option);
    }
  json_object_set_array_member (params, "options", array);
  json_object_set_object_member (message, "params", params);
  send_message (message);
  return id;
}

static void
turn_send_permission_request (DemoTurn *turn)
{
  turn->permission_id = send_permission_request (turn, "Write demo.txt");
}

static void
turn_send_flood_request (DemoTurn *turn)
{
  gint64 id = send_permission_request (turn, turn->flood_title);

  if (agent.flood_first_id == 0)
    agent.flood_first_id = id;
  agent.flood_last_id = id;
  turn->flood_sent++;
}

/* The client answered session/request_permission: finish the tool call and
 * say what was chosen. */
static void
turn_permission_answered (DemoTurn *turn, JsonObject *response)
{
  const char *chosen = "cancelled";
  JsonObject *result = NULL;
  JsonObject *outcome = NULL;
  g_autofree char *text = NULL;

  turn->permission_id = 0;
  if (json_object_has_member (response, "result")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (response, "result")))
    result = json_object_get_object_member (response, "result");
  if (result != NULL && json_object_has_member (result, "outcome")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (result, "outcome")))
    outcome = json_object_get_object_member (result, "outcome");
  if (outcome != NULL
      && g_strcmp0 (json_object_get_string_member_with_default (
                        outcome, "outcome", NULL),
                    "selected")
             == 0)
    chosen
        = json_object_get_string_member_with_default (outcome, "optionId", "?");
  else if (result == NULL)
    chosen = "error";

  text = g_strdup_printf ("permission: %s", chosen);
  turn_add_update (
      turn, 0,
      tool_call_new ("tool_call_update", turn->tool_call_id, NULL, NULL,
                     g_str_has_prefix (chosen, "allow") ? "completed"
                                                        : "failed"));
  turn_add_text (turn, 0, text);
  turn_schedule (turn);
}

static gboolean turn_run_cb (gpointer user_data);

static gboolean
on_pace_due (int fd, GIOCondition condition, gpointer user_data)
{
  guint64 expirations;

  if (read (fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
    demo_log ("cannot read a timer: %s", g_strerror (errno));
  return turn_run_cb (user_data);
}

/* A paced stream's chunks are due at fixed times from its start, not a
 * fixed delay after the chunk before: timers re-armed after each chunk
 * drift, and agents started apart would drift into step.  A timerfd
 * rather than a GLib timeout, whose resolution is a millisecond. */
static void
pace_wait (DemoTurn *turn)
{
  struct itimerspec due = {
    .it_value = { .tv_sec = turn->pace_due_us / G_USEC_PER_SEC,
                  .tv_nsec = turn->pace_due_us % G_USEC_PER_SEC * 1000 },
  };

  if (turn->pace_timerfd < 0)
    turn->pace_timerfd
        = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (turn->pace_timerfd < 0
      || timerfd_settime (turn->pace_timerfd, TFD_TIMER_ABSTIME, &due, NULL)
             != 0)
    {
      demo_log ("cannot set a timer: %s; exiting", g_strerror (errno));
      exit (1);
    }
  turn->source_id
      = g_unix_fd_add (turn->pace_timerfd, G_IO_IN, on_pace_due, turn);
}

static gboolean
turn_run_cb (gpointer user_data)
{
  DemoTurn *turn = user_data;

  turn->source_id = 0;
  for (guint budget = DEMO_STEPS_PER_DISPATCH; budget > 0; budget--)
    {
      DemoStep *step = g_queue_peek_head (&turn->steps);

      if (step == NULL)
        {
          turn_finish (turn, "end_turn");
          return G_SOURCE_REMOVE;
        }
      if (step->delay_ms > 0)
        break;

      switch (step->kind)
        {
        case STEP_TEXT:
          turn_send_text (turn, step->text);
          break;
        case STEP_UPDATE:
          send_update (turn->session->id, g_steal_pointer (&step->update));
          break;
        case STEP_STREAM:
          if (turn->pace_interval_us > 0
              && g_get_monotonic_time () < turn->pace_due_us)
            {
              pace_wait (turn);
              return G_SOURCE_REMOVE;
            }
          turn_send_stream_chunk (turn);
          turn->pace_due_us += turn->pace_interval_us;
          if (turn->stream_next++ < step->n)
            continue; /* stay on this step */
          break;
        case STEP_PAUSE:
          break;
        case STEP_GATE:
          if (!g_file_test (step->text, G_FILE_TEST_EXISTS))
            {
              step->delay_ms = DEMO_GATE_POLL_MS;
              continue;
            }
          break;
        case STEP_HANG:
          demo_log ("hanging in session %s%s", turn->session->id,
                    turn->ignore_cancel ? " (ignoring cancel)" : "");
          return G_SOURCE_REMOVE;
        case STEP_CRASH:
          demo_log ("crashing on purpose in session %s", turn->session->id);
          _exit (3);
        case STEP_GARBAGE:
          write_line ("{this is not json", strlen ("{this is not json"));
          break;
        case STEP_LONGLINE:
          turn_send_long_line (turn, step->n);
          break;
        case STEP_PERMISSION:
          g_queue_pop_head (&turn->steps);
          demo_step_free (step);
          turn_send_permission_request (turn);
          return G_SOURCE_REMOVE; /* resumed by the client's answer */
        case STEP_FLOOD:
          if (step->n == 0)
            break;
          turn_send_flood_request (turn);
          if (turn->flood_sent < step->n)
            continue; /* stay on this step */
          break;
        case STEP_FAIL:
          send_error (turn->request_id, RPC_INTERNAL_ERROR, "demo failure",
                      "detailed demo failure");
          demo_log ("turn in session %s failed on purpose", turn->session->id);
          turn_free (turn);
          return G_SOURCE_REMOVE;
        }
      g_queue_pop_head (&turn->steps);
      demo_step_free (step);
    }
  turn_schedule (turn);
  return G_SOURCE_REMOVE;
}

static void
turn_schedule (DemoTurn *turn)
{
  DemoStep *step = g_queue_peek_head (&turn->steps);

  g_assert (turn->source_id == 0);
  if (step != NULL && step->delay_ms > 0)
    {
      turn->source_id = g_timeout_add (step->delay_ms, turn_run_cb, turn);
      step->delay_ms = 0; /* waited for once the timer fires */
    }
  else
    turn->source_id = g_idle_add (turn_run_cb, turn);
}

static void
turn_cancel (DemoTurn *turn)
{
  if (turn->ignore_cancel)
    {
      demo_log ("ignoring session/cancel for session %s", turn->session->id);
      return;
    }
  /* A late answer to a pending permission request is dropped: its turn is
   * over. */
  turn_finish (turn, "cancelled");
}

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

/* Chooses what the turn does from the mode text: the prompt, or the mode
 * forced through AGENTBROKER_DEMO_MODE. */
static void
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
  else if (g_str_equal (word, "env"))
    {
      g_autofree char *text = describe_environment ();

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

/* ---- requests -------------------------------------------------------- */

static void
handle_initialize (JsonNode *id, JsonObject *params)
{
  JsonObject *result, *caps, *prompt_caps, *method, *info;
  JsonArray *auth_methods;

  if (agent.refuse_initialize)
    {
      demo_log ("refusing initialize: AGENTBROKER_DEMO_MODE contains "
                "refuse-initialize");
      send_error (id, RPC_INTERNAL_ERROR, "demo agent refuses to initialize",
                  "AGENTBROKER_DEMO_MODE contains refuse-initialize");
      exit (1);
    }

  result = json_object_new ();
  caps = json_object_new ();
  prompt_caps = json_object_new ();
  auth_methods = json_array_new ();
  method = json_object_new ();
  info = json_object_new ();

  json_object_set_int_member (result, "protocolVersion", 1);
  json_object_set_boolean_member (caps, "loadSession", TRUE);
  json_object_set_boolean_member (prompt_caps, "image", FALSE);
  json_object_set_boolean_member (prompt_caps, "audio", FALSE);
  json_object_set_boolean_member (prompt_caps, "embeddedContext", FALSE);
  json_object_set_object_member (caps, "promptCapabilities", prompt_caps);
  json_object_set_object_member (result, "agentCapabilities", caps);

  json_object_set_string_member (method, "id", DEMO_AUTH_METHOD);
  json_object_set_string_member (method, "name", "Demo key");
  json_object_set_string_member (method, "description",
                                 "Accepted without any secret; shows how "
                                 "an authenticate step looks");
  json_array_add_object_element (auth_methods, method);
  json_object_set_array_member (result, "authMethods", auth_methods);

  json_object_set_string_member (info, "name", DEMO_NAME);
  json_object_set_string_member (info, "title", "agentbroker demo agent");
  json_object_set_string_member (info, "version", PACKAGE_VERSION);
  json_object_set_object_member (result, "agentInfo", info);

  send_result (id, object_node (result));
}

static void
handle_authenticate (JsonNode *id, JsonObject *params)
{
  const char *method
      = json_object_get_string_member_with_default (params, "methodId", NULL);
  g_autofree char *text = NULL;

  if (g_strcmp0 (method, DEMO_AUTH_METHOD) == 0)
    {
      send_empty_result (id);
      return;
    }
  text = g_strdup_printf (
      "unknown auth method \"%s\"; supported: " DEMO_AUTH_METHOD,
      method != NULL ? method : "");
  send_error (id, RPC_INVALID_PARAMS, text, NULL);
}

static void
send_available_commands (const char *session_id)
{
  JsonObject *update = json_object_new ();
  JsonArray *commands = json_array_new ();
  static const char *const names[][2] = {
    { "stream", "Stream N chunks of BYTES bytes as fast as possible" },
    { "sleep", "Answer, then wait S seconds" },
    { "permission", "Ask for permission before a pretend edit" },
    { "echo", "Repeat the prompt" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      JsonObject *command = json_object_new ();

      json_object_set_string_member (command, "name", names[i][0]);
      json_object_set_string_member (command, "description", names[i][1]);
      json_array_add_object_element (commands, command);
    }
  json_object_set_string_member (update, "sessionUpdate",
                                 "available_commands_update");
  json_object_set_array_member (update, "availableCommands", commands);
  send_update (session_id, update);
}

/* Checks cwd and makes the transcript directory; answers id on failure. */
static const char *
session_params_cwd (JsonNode *id, JsonObject *params)
{
  const char *cwd
      = json_object_get_string_member_with_default (params, "cwd", NULL);
  g_autofree char *dir = NULL;

  if (cwd == NULL || !g_path_is_absolute (cwd))
    {
      send_error (id, RPC_INVALID_PARAMS, "cwd must be an absolute path", NULL);
      return NULL;
    }
  dir = g_build_filename (cwd, ".demo-agent", NULL);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_autofree char *text
          = g_strdup_printf ("cannot create %s: %s", dir, g_strerror (errno));
      send_error (id, RPC_INTERNAL_ERROR, text, NULL);
      return NULL;
    }
  return cwd;
}

static void
handle_session_new (JsonNode *id, JsonObject *params)
{
  const char *cwd = session_params_cwd (id, params);
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *session_id = NULL;
  DemoSession *session;
  JsonObject *result;

  if (cwd == NULL)
    return;
  session_id = g_strconcat ("demo-", uuid, NULL);
  session = session_new (session_id, cwd);
  /* An empty transcript, so session/load finds the session even before the
   * first prompt. */
  if (!g_file_set_contents (session->log_path, "", 0, NULL))
    demo_log ("cannot create %s", session->log_path);
  g_hash_table_replace (agent.sessions, session->id, session);

  result = json_object_new ();
  json_object_set_string_member (result, "sessionId", session_id);
  send_result (id, object_node (result));
  demo_log ("new session %s in %s", session_id, cwd);
  send_available_commands (session_id);
}

static void
handle_session_load (JsonNode *id, JsonObject *params)
{
  const char *session_id
      = json_object_get_string_member_with_default (params, "sessionId", NULL);
  const char *cwd;
  g_autoptr (GError) error = NULL;
  DemoSession *session;

  if (agent.refuse_load)
    {
      send_error (id, RPC_INTERNAL_ERROR, "demo agent refuses session/load",
                  "AGENTBROKER_DEMO_MODE contains refuse-load");
      return;
    }
  if (!session_id_is_valid (session_id))
    {
      send_error (id, RPC_INVALID_PARAMS, "invalid sessionId", NULL);
      return;
    }
  cwd = session_params_cwd (id, params);
  if (cwd == NULL)
    return;

  session = session_new (session_id, cwd);
  if (!session_read_log (session, &error))
    {
      g_autofree char *text
          = g_strdup_printf ("unknown session \"%s\"", session_id);
      send_error (id, ACP_RESOURCE_NOT_FOUND, text, error->message);
      demo_session_free (session);
      return;
    }
  /* A session loaded twice in one process: the old turn (if any) loses its
   * session, so end it first. */
  {
    DemoSession *old = g_hash_table_lookup (agent.sessions, session_id);

    if (old != NULL && old->turn != NULL)
      turn_finish (old->turn, "cancelled");
  }
  g_hash_table_replace (agent.sessions, session->id, session);

  /* The spec replays the whole conversation before answering the load. */
  for (guint i = 0; i < session->history->len; i++)
    {
      DemoEntry *entry = g_ptr_array_index (session->history, i);

      send_update (session_id,
                   chunk_update_new (g_strcmp0 (entry->role, "agent") == 0
                                         ? "agent_message_chunk"
                                         : "user_message_chunk",
                                     entry->text));
    }
  send_empty_result (id);
  demo_log ("loaded session %s (%u entries) in %s", session_id,
            session->history->len, cwd);
  send_available_commands (session_id);
}

static char *
prompt_text (JsonObject *params)
{
  g_autoptr (GString) text = g_string_new (NULL);
  JsonArray *blocks;

  if (!json_object_has_member (params, "prompt")
      || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (params, "prompt")))
    return NULL;
  blocks = json_object_get_array_member (params, "prompt");
  for (guint i = 0; i < json_array_get_length (blocks); i++)
    {
      JsonNode *node = json_array_get_element (blocks, i);
      JsonObject *block;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      block = json_node_get_object (node);
      if (g_strcmp0 (
              json_object_get_string_member_with_default (block, "type", NULL),
              "text")
          == 0)
        g_string_append (text, json_object_get_string_member_with_default (
                                   block, "text", ""));
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
handle_session_prompt (JsonNode *id, JsonObject *params)
{
  DemoSession *session = lookup_session (params, id);
  g_autofree char *text = NULL;
  DemoTurn *turn;

  if (session == NULL)
    return;
  text = prompt_text (params);
  if (text == NULL)
    {
      send_error (id, RPC_INVALID_PARAMS, "prompt must be an array", NULL);
      return;
    }
  if (session->turn != NULL)
    {
      send_error (id, RPC_INVALID_REQUEST,
                  "a prompt is already running in this session", NULL);
      return;
    }

  turn = g_new0 (DemoTurn, 1);
  turn->pace_timerfd = -1;
  turn->session = session;
  turn->request_id = json_node_copy (id);
  turn->reply = g_string_new (NULL);
  g_queue_init (&turn->steps);
  session->turn = turn;

  /* Planned before the prompt is remembered, so "earlier prompts" excludes
   * this one. */
  turn_plan (turn, agent.forced_mode != NULL ? agent.forced_mode : text, text);
  session_remember (session, "user", text);
  turn_schedule (turn);
}

static void
handle_session_cancel (JsonObject *params)
{
  DemoSession *session = lookup_session (params, NULL);

  if (session != NULL && session->turn != NULL)
    turn_cancel (session->turn);
}

/* A response from the client: the answer to a permission request. */
static void
handle_response (JsonObject *message)
{
  JsonNode *id = json_object_get_member (message, "id");
  gint64 value;
  GHashTableIter iter;
  DemoSession *session;

  if (json_node_get_value_type (id) != G_TYPE_INT64)
    {
      demo_log ("response with an id we never used, ignored");
      return;
    }
  value = json_node_get_int (id);
  if (value >= agent.flood_first_id && value <= agent.flood_last_id)
    return; /* an answer to a flood: nobody waits for it */
  g_hash_table_iter_init (&iter, agent.sessions);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&session))
    if (session->turn != NULL && session->turn->permission_id == value)
      {
        turn_permission_answered (session->turn, message);
        return;
      }
  demo_log ("response to request %" G_GINT64_FORMAT
            " which no turn waits for, ignored",
            value);
}

static void
handle_line (const char *line, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *message;
  JsonObject *params;
  JsonNode *id;
  const char *method;

  if (len == 0)
    return;
  if (!json_parser_load_from_data (parser, line, len, &error))
    {
      demo_log ("parse error: %s", error->message);
      send_error (NULL, RPC_PARSE_ERROR, "Parse error", error->message);
      return;
    }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      send_error (NULL, RPC_INVALID_REQUEST, "Invalid Request",
                  "a message must be a JSON object");
      return;
    }
  message = json_node_get_object (json_parser_get_root (parser));
  id = json_object_get_member (message, "id");
  method = json_object_get_string_member_with_default (message, "method", NULL);
  if (method == NULL)
    {
      if (id != NULL)
        handle_response (message);
      else
        send_error (NULL, RPC_INVALID_REQUEST, "Invalid Request",
                    "no method and no id");
      return;
    }

  demo_log ("%s %s", id != NULL ? "request" : "notification", method);
  if (json_object_has_member (message, "params")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (message, "params")))
    params = json_object_get_object_member (message, "params");
  else
    params = NULL;

  if (id == NULL)
    {
      /* Notifications never get an answer, not even an error. */
      if (g_str_equal (method, "session/cancel") && params != NULL)
        handle_session_cancel (params);
      return;
    }

  if (params == NULL && !g_str_equal (method, "initialize"))
    {
      send_error (id, RPC_INVALID_PARAMS, "params must be an object", NULL);
      return;
    }
  if (g_str_equal (method, "initialize"))
    handle_initialize (id, params);
  else if (g_str_equal (method, "authenticate"))
    handle_authenticate (id, params);
  else if (g_str_equal (method, "session/new"))
    handle_session_new (id, params);
  else if (g_str_equal (method, "session/load"))
    handle_session_load (id, params);
  else if (g_str_equal (method, "session/prompt"))
    handle_session_prompt (id, params);
  else
    {
      g_autofree char *text = g_strdup_printf ("Method not found: %s", method);

      send_error (id, RPC_METHOD_NOT_FOUND, text, NULL);
    }
}

/* ---- main loop ------------------------------------------------------- */

static gboolean
stdin_ready_cb (GIOChannel *channel, GIOCondition condition, gpointer user_data)
{
  for (;;)
    {
      g_autofree char *line = NULL;
      g_autoptr (GError) error = NULL;
      gsize len = 0;
      gsize terminator = 0;
      GIOStatus status;

      status
          = g_io_channel_read_line (channel, &line, &len, &terminator, &error);
      if (status == G_IO_STATUS_NORMAL)
        {
          handle_line (line, terminator);
          if (agent.stdin_source == 0)
            return G_SOURCE_REMOVE; /* gone deaf */
          continue;
        }
      if (status == G_IO_STATUS_AGAIN)
        return G_SOURCE_CONTINUE;

      agent.stdin_source = 0;
      if (status == G_IO_STATUS_ERROR)
        demo_log ("cannot read stdin: %s", error->message);
      if (agent.ignore_stdin_eof)
        {
          demo_log ("stdin closed; staying alive (ignore-stdin-eof)");
          return G_SOURCE_REMOVE;
        }
      demo_log ("stdin closed; exiting");
      g_main_loop_quit (agent.loop);
      return G_SOURCE_REMOVE;
    }
}

static void
parse_mode_env (void)
{
  const char *env = g_getenv ("AGENTBROKER_DEMO_MODE");
  g_auto (GStrv) items = NULL;

  if (env == NULL)
    return;
  items = g_strsplit (env, ",", -1);
  for (guint i = 0; items[i] != NULL; i++)
    {
      const char *item = g_strstrip (items[i]);

      if (g_str_equal (item, "refuse-initialize"))
        agent.refuse_initialize = TRUE;
      else if (g_str_equal (item, "refuse-load"))
        agent.refuse_load = TRUE;
      else if (g_str_equal (item, "ignore-stdin-eof"))
        agent.ignore_stdin_eof = TRUE;
      else if (g_str_equal (item, "ignore-sigterm"))
        signal (SIGTERM, SIG_IGN);
      else if (*item != '\0')
        {
          g_free (agent.forced_mode);
          agent.forced_mode = g_strdup (item);
        }
    }
}

int
main (int argc, char **argv)
{
  gboolean version = FALSE;
  const GOptionEntry entries[] = {
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GIOChannel) channel = NULL;

  context = g_option_context_new (NULL);
  g_option_context_set_summary (
      context, "A small Agent Client Protocol agent for agentbroker demos and "
               "tests.\nSpeaks ACP (JSON-RPC 2.0, one object per line) on "
               "stdin/stdout;\nkeeps a transcript per session in "
               "<cwd>/.demo-agent/<sessionId>.log.");
  g_option_context_set_description (
      context,
      "Prompt modes (first word of the prompt):\n"
      "  stream N [BYTES]  N chunks at full speed, chunk i starts with \"i "
      "\";\n"
      "                    \"stamp\" in the prompt adds t=<monotonic usec>\n"
      "  pace R N [BYTES [DELAY]]\n"
      "                    N stamped chunks, R per second on a fixed\n"
      "                    schedule, the first after DELAY ms\n"
      "  sleep S           one chunk, wait S seconds (cancellable)\n"
      "  gate PATH [MODE]  one chunk, wait until PATH exists (cancellable),\n"
      "                    then MODE\n"
      "  crash             one chunk, then exit 3 mid-turn\n"
      "  hang | hang-hard  never answer (hang-hard also ignores cancel)\n"
      "  garbage           write a line of invalid JSON\n"
      "  longline [N]      one update line of N bytes (default 9 MiB)\n"
      "  permission        ask session/request_permission, report the answer\n"
      "  permission-flood N [BYTES] [deaf]\n"
      "                    N permission requests without waiting\n"
      "  record PATH       report running_turn of the session record PATH\n"
      "  error             answer with JSON-RPC error -32603\n"
      "  stderr N          N lines on stderr, then the normal answer\n"
      "  echo              the prompt text back\n"
      "  env               environment and cwd\n"
      "  fork-child        leave `sleep 1000` behind in the process group\n"
      "  anything else     a short streamed answer with a tool call\n"
      "\n"
      "AGENTBROKER_DEMO_MODE (comma-separated): a prompt mode for every\n"
      "prompt, and/or refuse-initialize, refuse-load, ignore-stdin-eof,\n"
      "ignore-sigterm.\n");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "%s: %s\n", DEMO_NAME, error->message);
      return 2;
    }
  if (version)
    {
      printf ("%s %s\n", DEMO_NAME, PACKAGE_VERSION);
      return 0;
    }

  signal (SIGPIPE, SIG_IGN);
  parse_mode_env ();
  agent.sessions = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                          demo_session_free);
  agent.loop = g_main_loop_new (NULL, FALSE);

  /* Binary, non-blocking reads: the main loop must stay free for timers so
   * a session/cancel can overtake a turn that is still streaming. */
  channel = g_io_channel_unix_new (STDIN_FILENO);
  g_io_channel_set_encoding (channel, NULL, NULL);
  g_io_channel_set_flags (channel, G_IO_FLAG_NONBLOCK, NULL);
  agent.stdin_source = g_io_add_watch (channel, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                       stdin_ready_cb, NULL);

  demo_log ("started (version %s)", PACKAGE_VERSION);
  g_main_loop_run (agent.loop);

  g_hash_table_unref (agent.sessions);
  g_main_loop_unref (agent.loop);
  g_free (agent.forced_mode);
  return 0;
}
