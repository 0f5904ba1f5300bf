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
 *   title TEXT        a session_info_update with the title TEXT (the rest
 *                     of the prompt), then one chunk "title set"
 *   blocks            one chunk per content block of the prompt, saying
 *                     what arrived: "block I: text T", "block I: image
 *                     MIME N bytes sha256 HEX" (of the decoded data; the
 *                     same for audio), "block I: resource URI N bytes
 *                     sha256 HEX" (of its text or decoded blob), "block
 *                     I: resource_link URI NAME"
 *   env               one chunk: the environment as NAME=VALUE lines (sorted)
 *                     and cwd=<working directory>
 *   alloc N           allocate and touch N MiB (default 64), kept until exit
 *   fork-child        spawn `sleep 1000` in our process group and report its
 *                     pid in a chunk (teardown must kill the group)
 *   raw-update JSON   JSON (the rest of the prompt) as the "update" object
 *                     of one session/update, as it is; a chunk
 *                     "raw-update: not an object" if it is none
 *   opened            one chunk "opened by METHOD N": the request that
 *                     opened the session in this process (session/new,
 *                     session/load or session/resume) and the number of
 *                     earlier prompts it remembers
 *
 * session/new and session/load answer with the modes "ask" (current) and
 * "code" and the option "model" ("demo-small"); session/set_mode takes
 * those modes (and says so with a current_mode_update),
 * session/set_config_option the option "model" with the values
 * "demo-small" and "demo-large".
 *
 * AGENTBROKER_DEMO_MODE holds a comma-separated list.  A prompt mode in it
 * (e.g. "stream 100 64") applies to every prompt whatever its text; these
 * flags change the handshake and the process:
 *
 *   refuse-initialize  `initialize` fails, a reason goes to stderr, exit 1
 *   refuse-load        `session/load` fails with a JSON-RPC error
 *   resume             advertise sessionCapabilities.resume (session/resume
 *                      is served either way: the session's history is read
 *                      back from its transcript, nothing is replayed)
 *   refuse-resume      `session/resume` fails with a JSON-RPC error
 *   usage              a usage_update before the end of each turn: 1000
 *                      tokens used (of 200000) and 0.25 USD per prompt the
 *                      session remembers
 *   ignore-stdin-eof   keep running after stdin closes
 *   ignore-sigterm     ignore SIGTERM (only SIGKILL stops us)
 *
 * This file reads the requests, answers them or starts a turn, and runs
 * the main loop; demo-agent.h says where the rest is.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "demo-agent.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

#define DEMO_AUTH_METHOD "demo-key"

DemoAgent agent;

void
demo_log (const char *format, ...)
{
  va_list args;
  g_autofree char *line = NULL;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, DEMO_NAME "[%d]: %s\n", (int)getpid (), line);
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
  if (agent.resume)
    {
      JsonObject *session_caps = json_object_new ();

      json_object_set_object_member (session_caps, "resume",
                                     json_object_new ());
      json_object_set_object_member (caps, "sessionCapabilities", session_caps);
    }
  /* Every kind of block is taken: "blocks" describes each. */
  json_object_set_boolean_member (prompt_caps, "image", TRUE);
  json_object_set_boolean_member (prompt_caps, "audio", TRUE);
  json_object_set_boolean_member (prompt_caps, "embeddedContext", TRUE);
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

/* The option "model" with its values, @value current: what session/new,
 * session/load and session/set_config_option answer. */
static JsonArray *
config_options_new (const char *value)
{
  static const char *const values[] = { "demo-small", "demo-large" };
  JsonObject *model = json_object_new ();
  JsonArray *choices = json_array_new ();
  JsonArray *options = json_array_new ();

  for (guint i = 0; i < G_N_ELEMENTS (values); i++)
    {
      JsonObject *choice = json_object_new ();

      json_object_set_string_member (choice, "value", values[i]);
      json_object_set_string_member (choice, "name", values[i]);
      json_array_add_object_element (choices, choice);
    }
  json_object_set_string_member (model, "id", "model");
  json_object_set_string_member (model, "name", "Model");
  json_object_set_string_member (model, "type", "select");
  json_object_set_string_member (model, "currentValue", value);
  json_object_set_array_member (model, "options", choices);
  json_array_add_object_element (options, model);
  return options;
}

/* A session's setup as session/new and session/load answer it: the
 * modes "ask" (current) and "code", and the option "model". */
static void
add_session_setup (JsonObject *result)
{
  static const char *const modes[][2]
      = { { "ask", "Ask" }, { "code", "Code" } };
  JsonObject *state = json_object_new ();
  JsonArray *available = json_array_new ();

  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      JsonObject *mode = json_object_new ();

      json_object_set_string_member (mode, "id", modes[i][0]);
      json_object_set_string_member (mode, "name", modes[i][1]);
      json_array_add_object_element (available, mode);
    }
  json_object_set_string_member (state, "currentModeId", "ask");
  json_object_set_array_member (state, "availableModes", available);
  json_object_set_object_member (result, "modes", state);
  json_object_set_array_member (result, "configOptions",
                                config_options_new ("demo-small"));
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
  session->opened_by = "session/new";
  /* An empty transcript, so session/load finds the session even before the
   * first prompt. */
  if (!g_file_set_contents (session->log_path, "", 0, NULL))
    demo_log ("cannot create %s", session->log_path);
  g_hash_table_replace (agent.sessions, session->id, session);

  result = json_object_new ();
  json_object_set_string_member (result, "sessionId", session_id);
  add_session_setup (result);
  send_result (id, object_node (result));
  demo_log ("new session %s in %s", session_id, cwd);
  send_available_commands (session_id);
}

/* The session of a session/load or session/resume with its history read
 * from the transcript, in place of any open one; NULL when @id was
 * answered with an error. */
static DemoSession *
open_existing (JsonNode *id, JsonObject *params, const char *method)
{
  const char *session_id
      = json_object_get_string_member_with_default (params, "sessionId", NULL);
  const char *cwd;
  g_autoptr (GError) error = NULL;
  DemoSession *session, *old;

  if (!session_id_is_valid (session_id))
    {
      send_error (id, RPC_INVALID_PARAMS, "invalid sessionId", NULL);
      return NULL;
    }
  cwd = session_params_cwd (id, params);
  if (cwd == NULL)
    return NULL;

  session = session_new (session_id, cwd);
  session->opened_by = method;
  if (!session_read_log (session, &error))
    {
      g_autofree char *text
          = g_strdup_printf ("unknown session \"%s\"", session_id);
      send_error (id, ACP_RESOURCE_NOT_FOUND, text, error->message);
      demo_session_free (session);
      return NULL;
    }
  /* A session opened twice in one process: the old turn (if any) loses
   * its session, so end it first. */
  old = g_hash_table_lookup (agent.sessions, session_id);
  if (old != NULL && old->turn != NULL)
    turn_finish (old->turn, "cancelled");
  g_hash_table_replace (agent.sessions, session->id, session);
  return session;
}

static void
handle_session_load (JsonNode *id, JsonObject *params)
{
  DemoSession *session;

  if (agent.refuse_load)
    {
      send_error (id, RPC_INTERNAL_ERROR, "demo agent refuses session/load",
                  "AGENTBROKER_DEMO_MODE contains refuse-load");
      return;
    }
  session = open_existing (id, params, "session/load");
  if (session == NULL)
    return;

  /* The spec replays the whole conversation before answering the load. */
  for (guint i = 0; i < session->history->len; i++)
    {
      DemoEntry *entry = g_ptr_array_index (session->history, i);

      send_update (session->id,
                   chunk_update_new (g_strcmp0 (entry->role, "agent") == 0
                                         ? "agent_message_chunk"
                                         : "user_message_chunk",
                                     entry->text));
    }
  {
    JsonObject *result = json_object_new ();

    add_session_setup (result);
    send_result (id, object_node (result));
  }
  demo_log ("loaded session %s (%u entries) in %s", session->id,
            session->history->len, session->cwd);
  send_available_commands (session->id);
}

/* As a load, but nothing is replayed: the history is only remembered. */
static void
handle_session_resume (JsonNode *id, JsonObject *params)
{
  DemoSession *session;

  if (agent.refuse_resume)
    {
      send_error (id, RPC_INTERNAL_ERROR, "demo agent refuses session/resume",
                  "AGENTBROKER_DEMO_MODE contains refuse-resume");
      return;
    }
  session = open_existing (id, params, "session/resume");
  if (session == NULL)
    return;
  send_empty_result (id);
  demo_log ("resumed session %s (%u entries) in %s", session->id,
            session->history->len, session->cwd);
  send_available_commands (session->id);
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
  if (g_str_has_prefix (text, "blocks"))
    turn_plan_blocks (turn, json_object_get_array_member (params, "prompt"));
  session_remember (session, "user", text);
  turn_schedule (turn);
}

/* Modes "ask" and "code": the new one is told as current_mode_update. */
static void
handle_set_mode (JsonNode *id, JsonObject *params)
{
  DemoSession *session = lookup_session (params, id);
  const char *mode
      = json_object_get_string_member_with_default (params, "modeId", "");
  JsonObject *update;

  if (session == NULL)
    return;
  if (!g_str_equal (mode, "ask") && !g_str_equal (mode, "code"))
    {
      send_error (id, RPC_INVALID_PARAMS, "unknown mode (ask, code)", NULL);
      return;
    }
  update = json_object_new ();
  json_object_set_string_member (update, "sessionUpdate",
                                 "current_mode_update");
  json_object_set_string_member (update, "currentModeId", mode);
  send_update (session->id, update);
  send_empty_result (id);
}

/* One option, "model": "demo-small" or "demo-large". */
static void
handle_set_config_option (JsonNode *id, JsonObject *params)
{
  DemoSession *session = lookup_session (params, id);
  const char *option
      = json_object_get_string_member_with_default (params, "configId", "");
  const char *value
      = json_object_get_string_member_with_default (params, "value", "");
  static const char *const values[] = { "demo-small", "demo-large", NULL };
  JsonObject *result;

  if (session == NULL)
    return;
  if (!g_str_equal (option, "model") || !g_strv_contains (values, value))
    {
      send_error (id, RPC_INVALID_PARAMS,
                  "unknown option or value (model: demo-small, demo-large)",
                  NULL);
      return;
    }
  result = json_object_new ();
  json_object_set_array_member (result, "configOptions",
                                config_options_new (value));
  send_result (id, object_node (result));
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
  else if (g_str_equal (method, "session/resume"))
    handle_session_resume (id, params);
  else if (g_str_equal (method, "session/prompt"))
    handle_session_prompt (id, params);
  else if (g_str_equal (method, "session/set_mode"))
    handle_set_mode (id, params);
  else if (g_str_equal (method, "session/set_config_option"))
    handle_set_config_option (id, params);
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
      else if (g_str_equal (item, "resume"))
        agent.resume = TRUE;
      else if (g_str_equal (item, "refuse-resume"))
        agent.refuse_resume = TRUE;
      else if (g_str_equal (item, "usage"))
        agent.usage = TRUE;
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
      "  blocks            what each content block of the prompt holds\n"
      "  env               environment and cwd\n"
      "  alloc N           allocate and touch N MiB, kept until exit\n"
      "  fork-child        leave `sleep 1000` behind in the process group\n"
      "  raw-update JSON   send JSON as a session/update's update object\n"
      "  opened            which request opened the session, and the\n"
      "                    earlier prompts remembered\n"
      "  anything else     a short streamed answer with a tool call\n"
      "\n"
      "AGENTBROKER_DEMO_MODE (comma-separated): a prompt mode for every\n"
      "prompt, and/or refuse-initialize, refuse-load, resume (advertise\n"
      "session/resume), refuse-resume, usage (a usage_update ending each\n"
      "turn), ignore-stdin-eof, ignore-sigterm.\n");
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
