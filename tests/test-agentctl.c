/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — agentctl against the real daemon on a private bus:
 * list/show output, prompt streaming and its exit statuses, Ctrl+C,
 * kill, drain and resume (agentctl(1)).
 *
 * A SIGALRM per test turns a hang into a failure.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "daemon-fixture.h"
#include "error.h"

#define TEST_ALARM_SECONDS 60

typedef struct
{
  AbDaemonFixture d;
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  ab_daemon_fixture_setup (&fx->d, "default_agent: demo\n"
                                   "agents:\n"
                                   "  demo:\n"
                                   "    command: [agentbroker-demo-agent]\n"
                                   "timeouts:\n"
                                   "  drain: 2s\n"
                                   "  kill: 2s\n");
  alarm (TEST_ALARM_SECONDS);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_teardown (&fx->d);
  alarm (0);
}

static int
count_lines (const char *text)
{
  int n = 0;

  for (const char *p = text; *p != '\0'; p++)
    n += *p == '\n';
  return n;
}

/* Waits until the session of @thread is busy. */
static void
wait_busy (Fixture *fx, const char *thread)
{
  for (int i = 0; i < 400; i++)
    {
      g_autoptr (GVariant) reply = NULL;
      g_autoptr (GVariant) session = NULL;
      const char *state = NULL;

      reply = ab_daemon_call (&fx->d, "GetSession",
                              g_variant_new ("(s)", thread), "(a{sv})", NULL);
      if (reply != NULL)
        {
          session = g_variant_get_child_value (reply, 0);
          if (g_variant_lookup (session, "state", "&s", &state)
              && g_str_equal (state, "busy"))
            return;
        }
      g_usleep (25 * 1000);
    }
  g_assert_not_reached ();
}

static GSubprocess *spawn_agentctl (const char *first,
                                    ...) G_GNUC_NULL_TERMINATED;

static GSubprocess *
spawn_agentctl (const char *first, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  GSubprocess *proc;
  va_list ap;

  g_ptr_array_add (argv, ab_test_program ("agentctl"));
  g_ptr_array_add (argv, g_strdup ("--user"));
  va_start (ap, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  return proc;
}

static int
finish_agentctl (GSubprocess *proc, char **out, char **err)
{
  ab_subprocess_communicate_bounded (proc, out, err);
  g_assert_true (g_subprocess_get_if_exited (proc));
  return g_subprocess_get_exit_status (proc);
}

static void
test_list_and_show (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonArray *sessions;
  JsonObject *session;
  static const char *const keys[]
      = { "thread",    "agent",       "state",         "pid",   "owner",
          "cwd",       "created",     "last_activity", "turns", "queued",
          "last_turn", "last_reason", "switching",     "path",  "unit",
          "memory",    "cpu_nsec",    "tasks",         NULL };

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list", NULL), ==, 0);
  g_assert_cmpstr (
      out, ==,
      "No running sessions; --all lists suspended and failed ones too.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list", "-a", NULL), ==,
                   0);
  g_assert_cmpstr (out, ==, "No sessions.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:t/one",
                                    "hello", "there", NULL),
                   ==, 0);
  /* Standard output is the answer alone; the tool call goes to standard
   * error, named by its title in both of its updates. */
  g_assert_true (g_str_has_prefix (out, "Hello from the demo agent"));
  g_assert_null (strstr (out, "[tool]"));
  g_assert_cmpint (count_lines (out), ==, 1);
  g_assert_true (g_str_has_suffix (out, "\n"));
  g_assert_cmpstr (err, ==,
                   "[tool] Look at the working directory (in_progress)\n"
                   "[tool] Look at the working directory (completed)\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "THREAD "));
  g_assert_nonnull (strstr (out, "\ncli:t/one "));
  g_assert_true (g_str_has_suffix (out, "\n\n1 session listed.\n"));
  g_assert_cmpint (count_lines (out), ==, 4);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "--no-legend", "list",
                                    "--no-pager", NULL),
                   ==, 0);
  g_assert_true (g_str_has_prefix (out, "cli:t/one "));
  g_assert_cmpint (count_lines (out), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list", "--json", NULL),
                   ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  sessions = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpint (json_array_get_length (sessions), ==, 1);
  session = json_array_get_object_element (sessions, 0);
  for (gsize i = 0; keys[i] != NULL; i++)
    g_assert_true (json_object_has_member (session, keys[i]));
  g_assert_cmpstr (json_object_get_string_member (session, "thread"), ==,
                   "cli:t/one");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* systemctl's properties: Name=Value, -p (repeated or with commas, any
   * case), --value. */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "show", "cli:t/one", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "Thread=cli:t/one\n"));
  g_assert_nonnull (strstr (out, "\nTurns=1\n"));
  g_assert_nonnull (strstr (out, "\nLastReason=end_turn\n"));
  g_assert_nonnull (strstr (out, "\nAcpSession="));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "-p",
                                    "Turns,thread", "--property=lastreason",
                                    "cli:t/one", NULL),
                   ==, 0);
  g_assert_cmpstr (out, ==, "Thread=cli:t/one\nTurns=1\nLastReason=end_turn\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "-p", "State",
                                    "--value", "status", "cli:t/one", NULL),
                   ==, 0);
  g_assert_cmpstr (out, ==, "idle\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Without a thread: the broker's own properties. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "State=running\nAccepting=yes\n"));
  g_assert_nonnull (strstr (out, "\nSessionCount=1\n"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "status", "-p",
                                    "SessionCount", "--value", NULL),
                   ==, 0);
  g_assert_cmpstr (out, ==, "1\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* status THREAD is for a reader. */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "status", "cli:t/one", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "thread: cli:t/one\n"));
  g_assert_nonnull (strstr (out, "last_reason: end_turn\n"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* No such session: exit status 4, as systemctl's "no such unit". */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "show", "cli:none", NULL), ==, 4);
  g_assert_cmpstr (out, ==, "");
  g_assert_true (g_str_has_prefix (err, "agentctl: "));
  g_assert_cmpint (count_lines (err), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "cancel", "cli:none", NULL), ==, 4);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "remove", "cli:none", NULL), ==, 4);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* Other failures: 1. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "../bad", NULL),
                   ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "list", "-p", "State", NULL), ==, 1);
  g_assert_cmpint (count_lines (err), ==, 1);
}

/* A JSON document of @kind (JSON_NODE_OBJECT, …) on @lines lines. */
static JsonNode *
parse_json_output (const char *out, JsonNodeType kind, int lines)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_node_get_node_type (json_parser_get_root (parser)), ==,
                   kind);
  if (lines > 0)
    g_assert_cmpint (count_lines (out), ==, lines);
  else
    g_assert_cmpint (count_lines (out), >, 1);
  return json_node_copy (json_parser_get_root (parser));
}

/* -o json (one line), -o json-pretty and --json=short|pretty|off, before
 * or after the verb; -q. */
static void
test_output_modes (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *object;

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:o", "hi", NULL), ==,
      0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "-o", "json", "list", NULL), ==, 0);
  node = parse_json_output (out, JSON_NODE_ARRAY, 1);
  g_clear_pointer (&node, json_node_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list",
                                    "--output=json-pretty", NULL),
                   ==, 0);
  node = parse_json_output (out, JSON_NODE_ARRAY, 0);
  g_clear_pointer (&node, json_node_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "cli:o",
                                    "--json=short", "-p", "thread,Turns", NULL),
                   ==, 0);
  node = parse_json_output (out, JSON_NODE_OBJECT, 1);
  object = json_node_get_object (node);
  g_assert_cmpuint (json_object_get_size (object), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (object, "thread"), ==,
                   "cli:o");
  g_assert_cmpint (json_object_get_int_member (object, "turns"), ==, 1);
  g_clear_pointer (&node, json_node_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "--json=pretty", "status", NULL), ==,
      0);
  node = parse_json_output (out, JSON_NODE_OBJECT, 0);
  g_assert_cmpstr (
      json_object_get_string_member (json_node_get_object (node), "state"), ==,
      "running");
  g_clear_pointer (&node, json_node_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* The last word wins, as in systemctl. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "--json", "list",
                                    "--json=off", "--no-legend", NULL),
                   ==, 0);
  g_assert_true (g_str_has_prefix (out, "cli:o "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "list", "-o", "yaml", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "unknown output mode 'yaml'"));
  g_assert_cmpint (count_lines (err), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* -q: no confirmation. */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "-q", "cancel", "cli:o", NULL), ==,
      0);
  g_assert_cmpstr (out, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "remove", "--quiet", "cli:o", NULL),
      ==, 0);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "");
}

static void
test_prompt_json (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  g_auto (GStrv) lines = NULL;
  guint n, chunks = 0;

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "--json", "prompt",
                                    "cli:j", "stream", "3", NULL),
                   ==, 0);
  /* One JSON object per line; the last one says how the turn ended.  A
   * new session's first turn may also carry available_commands_update. */
  g_assert_true (g_str_has_suffix (out, "\n"));
  lines = g_strsplit (out, "\n", -1);
  n = g_strv_length (lines);
  g_assert_cmpuint (n, >=, 5);
  for (guint i = 0; i + 2 < n; i++)
    {
      g_assert_true (g_str_has_prefix (lines[i], "{\"sessionUpdate\":"));
      if (g_str_has_prefix (lines[i],
                            "{\"sessionUpdate\":\"agent_message_chunk\""))
        chunks++;
    }
  g_assert_cmpuint (chunks, ==, 3);
  g_assert_true (g_str_has_prefix (lines[n - 2], "{\"turn\":1,"));
  g_assert_nonnull (strstr (lines[n - 2], "\"reason\":\"end_turn\""));
}

static void
test_prompt_failures (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:e", "error", NULL),
      ==, 1);
  g_assert_true (g_str_has_prefix (err, "agentctl: turn ended: agent-error"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Refused by the daemon: one line. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "prompt", "--agent",
                                    "nope", "cli:f", "hi", NULL),
                   ==, 1);
  g_assert_true (g_str_has_prefix (err, "agentctl: "));
  g_assert_cmpint (count_lines (err), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:f", NULL), ==, 1);
  g_assert_true (g_str_has_prefix (err, "agentctl: usage: "));
}

static void
test_prompt_sigint (Fixture *fx, gconstpointer data)
{
  g_autoptr (GSubprocess) proc = NULL;
  g_autofree char *out = NULL, *err = NULL;

  proc = spawn_agentctl ("prompt", "cli:s", "sleep", "30", NULL);
  wait_busy (fx, "cli:s");
  g_subprocess_send_signal (proc, SIGINT);
  g_assert_cmpint (finish_agentctl (proc, &out, &err), ==, 3);
  g_assert_nonnull (strstr (err, "turn ended: cancelled"));
}

static void
test_cancel_and_remove (Fixture *fx, gconstpointer data)
{
  g_autoptr (GSubprocess) proc = NULL;
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *pout = NULL, *perr = NULL;

  proc = spawn_agentctl ("prompt", "cli:c", "sleep", "30", NULL);
  wait_busy (fx, "cli:c");
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "cancel", "cli:c", NULL), ==, 0);
  g_assert_cmpstr (out, ==,
                   "Cancelled the turn and the queued prompts of cli:c.\n");
  g_assert_cmpint (finish_agentctl (proc, &pout, &perr), ==, 3);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Nothing runs now: cancel says so rather than claim it cancelled. */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "cancel", "cli:c", NULL), ==, 0);
  g_assert_cmpstr (out, ==,
                   "Nothing to cancel: cli:c has no running turn and no queued "
                   "prompt (it is idle).\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "remove", "cli:c", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "Removed cli:c.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "cli:c", NULL),
                   ==, 4);
}

/* The state letter of /proc/@pid/stat: 'T' when stopped. */
static char
process_state (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int)pid);
  g_autofree char *stat = NULL;
  const char *end;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return '?';
  end = strrchr (stat, ')');
  return end != NULL && end[1] == ' ' ? end[2] : '?';
}

/* kill signals the agent's processes and keeps the session; remove
 * removes it. */
/* The threads of a "list --json" output, joined by ",". */
static char *
json_threads (const char *out)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) threads = g_string_new (NULL);
  JsonArray *array;

  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  array = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *session = json_array_get_object_element (array, i);

      g_string_append_printf (
          threads, "%s%s", i > 0 ? "," : "",
          json_object_get_string_member (session, "thread"));
    }
  return g_string_free (g_steal_pointer (&threads), FALSE);
}

/* As systemctl list-units: the sessions with a process, --all the
 * others too; the JSON lists what the text does. */
static void
test_list_all (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL, *threads = NULL;
  pid_t pid;

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:gone", "hi", NULL),
      ==, 0);
  pid = (pid_t)ab_session_u (&fx->d, "cli:gone", "pid");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:here", "hi", NULL),
      ==, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "-s", "KILL",
                                    "cli:gone", NULL),
                   ==, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  AB_WAIT_FOR (ab_process_gone (pid), 10000);
  AB_WAIT_FOR (ab_state_is (&fx->d, "cli:gone", "suspended|failed"), 10000);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "--no-legend", "list", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "cli:here "));
  g_assert_cmpint (count_lines (out), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "list", "--json", NULL),
                   ==, 0);
  threads = json_threads (out);
  g_assert_cmpstr (threads, ==, "cli:here");
  g_clear_pointer (&threads, g_free);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "--no-legend", "list",
                                    "--all", NULL),
                   ==, 0);
  g_assert_true (g_str_has_prefix (out, "cli:gone "));
  g_assert_nonnull (strstr (out, "\ncli:here "));
  g_assert_cmpint (count_lines (out), ==, 2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "list", "-a", "--json", NULL), ==,
      0);
  threads = json_threads (out);
  g_assert_cmpstr (threads, ==, "cli:gone,cli:here");
}

static void
test_kill_keeps_session (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  pid_t pid;

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:k", "hi", NULL), ==,
      0);
  pid = (pid_t)ab_session_u (&fx->d, "cli:k", "pid");
  g_assert_cmpint (pid, >, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "kill", "-s", "STOP", "cli:k", NULL),
      ==, 0);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "");
  AB_WAIT_FOR (process_state (pid) == 'T', 10000);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "--signal",
                                    "SIGCONT", "cli:k", NULL),
                   ==, 0);
  AB_WAIT_FOR (process_state (pid) != 'T', 10000);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "-s", "BOGUS",
                                    "cli:k", NULL),
                   ==, 1);
  g_assert_true (g_str_has_prefix (err, "agentctl: 'BOGUS' is not a signal"));
  g_assert_cmpint (count_lines (err), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* SIGTERM by default: the agent goes, the session stays. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "cli:k", NULL),
                   ==, 0);
  AB_WAIT_FOR (ab_process_gone (pid), 10000);
  AB_WAIT_FOR (ab_session_u (&fx->d, "cli:k", "pid") == 0, 10000);
  g_assert_cmpuint (ab_session_u (&fx->d, "cli:k", "turns"), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Nothing left to signal. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "cli:k", NULL),
                   ==, 1);
  g_assert_nonnull (strstr (err, "no agent process"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:k", "again", NULL),
      ==, 0);
  g_assert_nonnull (strstr (out, "1 earlier prompt"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "remove", "cli:k", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "Removed cli:k.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "kill", "cli:k", NULL),
                   ==, 4);
}

static void
test_drain_resume (Fixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "drain", "--timeout", "1", NULL), ==,
      0);
  g_assert_cmpstr (out, ==, "Drained: 0 finished, 0 interrupted.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Drained is no passing state: the refusal says what ends it. */
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:d", "hi", NULL), ==,
      1);
  g_assert_nonnull (strstr (err, "is drained"));
  g_assert_nonnull (strstr (err, "agentctl resume"));
  g_assert_null (strstr (err, "retry"));
  g_assert_cmpint (count_lines (err), ==, 1);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "resume", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "Resumed; accepting prompts.\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Resuming a running broker is no error. */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "resume", NULL), ==, 0);
  g_assert_cmpstr (err, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "prompt", "cli:d", "hi", NULL), ==,
      0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/agentctl/" name, Fixture, NULL, fixture_up, func, fixture_down)
  ADD ("list-and-show", test_list_and_show);
  ADD ("output-modes", test_output_modes);
  ADD ("prompt/json", test_prompt_json);
  ADD ("prompt/failures", test_prompt_failures);
  ADD ("prompt/sigint", test_prompt_sigint);
  ADD ("cancel-and-remove", test_cancel_and_remove);
  ADD ("kill-keeps-session", test_kill_keeps_session);
  ADD ("list-all", test_list_all);
  ADD ("drain-resume", test_drain_resume);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
