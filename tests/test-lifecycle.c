/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the lifecycle on a private bus (agentbrokerd(8)):
 * durable session records, restart and crash-safe resume, corrupt
 * records, Drain/Resume (deadline, pending permissions), stop while a
 * turn runs, reload with an unchanged profile.
 *
 * Every wait is bounded: a predicate is re-checked while the main context
 * runs, until a deadline, and a timeout fails the test with what it waited
 * for. A SIGALRM per test turns a hang anywhere (a blocking call included)
 * into a failure that prints the daemon's log.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"

#define TURN_TIMEOUT_MS 20000
#define TEST_ALARM_SECONDS 180 /* a hang guard; valgrind runs these too */

/* ---- fixture ------------------------------------------------------------ */

typedef struct
{
  AbDaemonFixture d;
  AbCollector *c;  /* signals on the test's main connection */
  GArray *orphans; /* agent pids a killed daemon left behind */
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = ab_collector_new (fx->d.connection);
  fx->orphans = g_array_new (FALSE, FALSE, sizeof (pid_t));
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_collector_free (fx->c);
  ab_daemon_fixture_stop_checked (&fx->d);
  /* Agents of a daemon that was SIGKILLed: each leads its own group. */
  for (guint i = 0; i < fx->orphans->len; i++)
    {
      pid_t pid = g_array_index (fx->orphans, pid_t, i);

      if (pid > 1)
        kill (-pid, SIGKILL);
    }
  g_array_unref (fx->orphans);
  ab_daemon_fixture_teardown (&fx->d);
}

/* Starts the daemon on the config and state already in place (again,
 * after a stop or a kill): the previous instance's name must be gone
 * first, or the start would see it and the new daemon could not own it. */
static void
restart_daemon (Fixture *fx)
{
  g_autoptr (GError) error = NULL;

  g_assert_null (fx->d.daemon);
  AB_WAIT_FOR (!ab_broker_name_has_owner (fx->d.connection), 10000);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

/* Writes a config with the demo agent as default plus @agents (YAML lines
 * under agents:) and @timeouts (lines under timeouts:, NULL for drain and
 * kill of 2 s), and starts the daemon on it. */
static char *
config_yaml (const char *agents, const char *extra, const char *timeouts)
{
  GString *yaml = g_string_new (NULL);

  g_string_append (yaml, "default_agent: demo\n"
                         "agents:\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n");
  if (agents != NULL)
    g_string_append (yaml, agents);
  if (extra != NULL)
    g_string_append (yaml, extra);
  g_string_append (yaml, "timeouts:\n");
  g_string_append (yaml,
                   timeouts != NULL ? timeouts : "  drain: 2s\n  kill: 2s\n");
  return g_string_free (yaml, FALSE);
}

static void
start_daemon (Fixture *fx, const char *agents, const char *timeouts)
{
  g_autofree char *yaml = config_yaml (agents, NULL, timeouts);

  ab_daemon_fixture_write_config (&fx->d, yaml);
  restart_daemon (fx);
}

/* ---- calls ------------------------------------------------------------- */

static gboolean
session_exists (Fixture *fx, const char *thread)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = ab_get_session (&fx->d, thread, &error);

  if (dict != NULL)
    return TRUE;
  g_assert_error (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION);
  return FALSE;
}

/* The entry of @thread in ListSessions, or NULL. */
static GVariant *
list_entry (GVariant *list, const char *thread)
{
  for (gsize i = 0; i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (list, i);
      const char *t;

      if (g_variant_lookup (entry, "thread", "&s", &t)
          && g_str_equal (t, thread))
        return g_steal_pointer (&entry);
    }
  return NULL;
}

static char *
broker_state (Fixture *fx)
{
  g_autoptr (GVariant) value = ab_daemon_get_property (&fx->d, "State");

  return g_variant_dup_string (value, NULL);
}

static gboolean
broker_state_is (Fixture *fx, const char *want)
{
  g_autofree char *state = broker_state (fx);

  return g_str_equal (state, want);
}

static gboolean
broker_accepting (Fixture *fx)
{
  g_autoptr (GVariant) value = ab_daemon_get_property (&fx->d, "Accepting");

  return g_variant_get_boolean (value);
}

/* ---- prompts ------------------------------------------------------------ */

/* True once the daemon says @turn of @thread is over (whatever reached
 * us); asks at most every 100 ms. */
static gboolean
daemon_says_turn_over (Fixture *fx, const char *thread, guint64 turn,
                       gint64 *next_check)
{
  g_autoptr (GVariant) dict = NULL;
  const char *state = NULL;
  guint64 last_turn = 0;

  if (g_get_monotonic_time () < *next_check)
    return FALSE;
  *next_check = g_get_monotonic_time () + 100 * 1000;
  dict = ab_get_session (&fx->d, thread, NULL);
  return dict != NULL && g_variant_lookup (dict, "state", "&s", &state)
         && g_variant_lookup (dict, "last_turn", "t", &last_turn)
         && last_turn >= turn && !g_str_equal (state, "busy")
         && !g_str_equal (state, "starting");
}

/* Waits for TurnEnded of @turn on the main connection; when the daemon
 * says the turn is over but no TurnEnded came within 2 s more, fails at
 * once saying so instead of running into the long timeout. */
static AbTurn *
wait_turn_checked (Fixture *fx, AbCollector *c, const char *thread,
                   guint64 turn)
{
  gint64 next_check = 0;

  if (!AB_WAIT_UNTIL (
          ab_turn_ended (c, thread, turn)
              || daemon_says_turn_over (fx, thread, turn, &next_check),
          TURN_TIMEOUT_MS))
    return ab_wait_turn (c, thread, turn, 0);
  if (!AB_WAIT_UNTIL (ab_turn_ended (c, thread, turn), 2000))
    {
      AbTurn *rec = ab_collector_lookup (c, thread, turn);

      g_test_message ("%s turn %" G_GUINT64_FORMAT
                      " is over for the daemon (GetSession), but the prompter "
                      "got %u update(s) and no TurnEnded",
                      thread, turn, rec != NULL ? rec->updates->len : 0);
    }
  return ab_wait_turn (c, thread, turn, 0);
}

/* Prompts and asserts the turn ends with end_turn; returns the text. */
static char *
prompt_ok (Fixture *fx, const char *thread, const char *text)
{
  guint64 turn = ab_prompt (fx->d.connection, NULL, thread, text);
  AbTurn *rec = wait_turn_checked (fx, fx->c, thread, turn);

  if (g_strcmp0 (rec->reason, "end_turn") != 0)
    g_test_message ("turn of \"%s\" on %s ended %s: %s", text, thread,
                    rec->reason, rec->message);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  return g_strdup (rec->text->str);
}

/* Drain(timeout) sent without waiting for its reply. */
typedef struct
{
  gboolean done;
  guint32 finished;
  guint32 interrupted;
  gint64 sent;
  gint64 replied;
  GError *error;
} DrainCall;

static void
on_drain_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  DrainCall *d = user_data;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &d->error);

  if (reply != NULL)
    g_variant_get (reply, "(uu)", &d->finished, &d->interrupted);
  d->replied = g_get_monotonic_time ();
  d->done = TRUE;
}

static void
drain_send (Fixture *fx, DrainCall *d, guint32 timeout_seconds)
{
  memset (d, 0, sizeof *d);
  d->sent = g_get_monotonic_time ();
  g_dbus_connection_call (fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
                          AB_BROKER_IFACE, "Drain",
                          g_variant_new ("(u)", timeout_seconds),
                          G_VARIANT_TYPE ("(uu)"), G_DBUS_CALL_FLAGS_NONE,
                          AB_CALL_TIMEOUT_MS + 20000, NULL, on_drain_reply, d);
}

static double
drain_seconds (DrainCall *d)
{
  return (double)(d->replied - d->sent) / G_USEC_PER_SEC;
}

/* ---- durable records ---------------------------------------------------- */

static char *
store_dir (Fixture *fx)
{
  return g_build_filename (fx->d.state_dir, "sessions", NULL);
}

static char *
record_file (Fixture *fx, const char *thread)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".json", NULL);
  g_autofree char *dir = store_dir (fx);

  return g_build_filename (dir, name, NULL);
}

/* The record of @thread parsed as a JSON object. */
static JsonObject *
read_record (Fixture *fx, const char *thread)
{
  g_autofree char *path = record_file (fx, thread);
  g_autofree char *data = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;

  g_file_get_contents (path, &data, NULL, &error);
  g_assert_no_error (error);
  json_parser_load_from_data (parser, data, -1, &error);
  g_assert_no_error (error);
  root = json_parser_get_root (parser);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return json_object_ref (json_node_get_object (root));
}

static guint
count_files_with_suffix (const char *dir_path, const char *suffix)
{
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *name;
  guint n = 0;

  if (dir == NULL)
    return 0;
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, suffix))
      n++;
  return n;
}

static void
test_records (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:durable/records";
  g_autofree char *path = record_file (fx, thread);
  g_autofree char *dir = store_dir (fx);
  g_autofree char *answer = NULL, *acp = NULL;
  g_autoptr (JsonObject) rec1 = NULL;
  g_autoptr (JsonObject) running = NULL;
  g_autoptr (JsonObject) rec2 = NULL;
  g_autofree char *gate = NULL;
  struct stat st;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  answer = prompt_ok (fx, thread, "hello");

  /* Written by the first turn, 0600 in a 0700 directory. */
  g_assert_cmpint (stat (dir, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  rec1 = read_record (fx, thread);
  g_assert_cmpstr (json_object_get_string_member (rec1, "thread"), ==, thread);
  g_assert_cmpstr (json_object_get_string_member (rec1, "agent"), ==, "demo");
  acp = ab_session_s (&fx->d, thread, "acp_session");
  g_assert_cmpstr (json_object_get_string_member_with_default (
                       rec1, "acp_session", "(none)"),
                   ==, acp);
  g_assert_cmpint (json_object_get_int_member (rec1, "turns"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (rec1, "last_turn"), ==, 1);
  g_assert_cmpstr (json_object_get_string_member_with_default (
                       rec1, "last_reason", "(none)"),
                   ==, "end_turn");
  g_assert_cmpint (
      json_object_get_int_member_with_default (rec1, "running_turn", 0), ==, 0);

  /* At turn start the record names the turn in flight (a turn that runs
   * until the record has been read). */
  gate = ab_gate_prompt (&fx->d, "records");
  turn = ab_prompt (fx->d.connection, NULL, thread, gate);
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, turn), TURN_TIMEOUT_MS);
  running = read_record (fx, thread);
  g_assert_cmpint (json_object_get_int_member (running, "turns"), ==, 2);
  g_assert_cmpint (
      json_object_get_int_member_with_default (running, "running_turn", 0), ==,
      turn);
  ab_gate_open (&fx->d, "records");
  /* At turn end it no longer does. */
  g_assert_cmpstr (ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS)->reason,
                   ==, "end_turn");
  rec2 = read_record (fx, thread);
  g_assert_cmpint (
      json_object_get_int_member_with_default (rec2, "running_turn", 0), ==, 0);
  g_assert_cmpint (json_object_get_int_member (rec2, "last_turn"), ==, 2);
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  /* No temporary file left behind. */
  g_assert_cmpuint (count_files_with_suffix (dir, ".tmp"), ==, 0);

  /* RemoveSession deletes it. */
  ab_call_ok (&fx->d, "RemoveSession", g_variant_new ("(s)", thread));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_files_with_suffix (dir, ".json"), ==, 0);
}

/* ---- restart ------------------------------------------------------------ */

/* The session object of @thread answers Properties.Get(State). */
static void
assert_session_object (Fixture *fx, const char *thread, const char *state)
{
  g_autofree char *path = ab_session_path (thread);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) value = NULL;

  reply = g_dbus_connection_call_sync (
      fx->d.connection, AB_BUS_NAME, path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", AB_SESSION_IFACE, "State"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL,
      &error);
  if (error != NULL)
    g_test_message ("session object %s of a listed session: %s", path,
                    error->message);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, state);
}

static void
test_restart_resume (Fixture *fx, gconstpointer data)
{
  const char *threads[] = { "cli:restart/a", "cli:restart/b", "cli:restart/c" };
  char *acp[G_N_ELEMENTS (threads)] = { NULL };
  guint32 pids[G_N_ELEMENTS (threads)];
  g_autoptr (GVariant) list = NULL;
  g_autofree char *answer = NULL;

  start_daemon (fx, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autofree char *text = g_strdup_printf ("first words of %s", threads[i]);
      g_autofree char *a = prompt_ok (fx, threads[i], text);

      acp[i] = ab_session_s (&fx->d, threads[i], "acp_session");
      pids[i] = ab_session_u (&fx->d, threads[i], "pid");
      g_assert_cmpuint (pids[i], >, 1);
    }

  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  /* The agents went with it. */
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    AB_WAIT_FOR (ab_process_gone (pids[i]), 5000);

  restart_daemon (fx);
  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, G_N_ELEMENTS (threads));
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==,
                    G_N_ELEMENTS (threads));
  g_assert_cmpuint (ab_broker_u (&fx->d, "RunningCount"), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autoptr (GVariant) entry = list_entry (list, threads[i]);
      g_autofree char *acp_kept = NULL;
      const char *s;
      guint32 u;
      guint64 t;

      g_assert_nonnull (entry);
      g_assert_true (g_variant_lookup (entry, "state", "&s", &s));
      g_assert_cmpstr (s, ==, "suspended");
      g_assert_true (g_variant_lookup (entry, "pid", "u", &u));
      g_assert_cmpuint (u, ==, 0);
      /* acp_session is GetSession()'s, not the listing's. */
      acp_kept = ab_session_s (&fx->d, threads[i], "acp_session");
      g_assert_cmpstr (acp_kept, ==, acp[i]);
      g_assert_true (g_variant_lookup (entry, "agent", "&s", &s));
      g_assert_cmpstr (s, ==, "demo");
      g_assert_true (g_variant_lookup (entry, "owner", "u", &u));
      g_assert_cmpuint (u, ==, getuid ());
      g_assert_true (g_variant_lookup (entry, "turns", "u", &u));
      g_assert_cmpuint (u, ==, 1);
      g_assert_true (g_variant_lookup (entry, "last_turn", "t", &t));
      g_assert_cmpuint (t, ==, 1);
      g_assert_true (g_variant_lookup (entry, "last_reason", "&s", &s));
      g_assert_cmpstr (s, ==, "end_turn");
    }

  /* Each restored session is on the bus as an object again. */
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    assert_session_object (fx, threads[i], "suspended");

  /* The next prompt resumes through session/load: history is back, and
   * the turn counter carries on. */
  answer = prompt_ok (fx, threads[1], "what do you remember");
  g_assert_nonnull (
      strstr (answer, "I remember 1 earlier prompt in this session"));
  g_assert_nonnull (strstr (answer, "first words of cli:restart/b"));
  {
    g_autofree char *acp_now = ab_session_s (&fx->d, threads[1], "acp_session");

    g_assert_cmpstr (acp_now, ==, acp[1]);
  }
  g_assert_cmpuint (ab_session_u (&fx->d, threads[1], "turns"), ==, 2);
  g_assert_cmpuint (ab_session_u (&fx->d, threads[1], "pid"), >, 1);
  /* The others were left alone. */
  g_assert_true (ab_state_is (&fx->d, threads[0], "suspended"));
  g_assert_true (ab_state_is (&fx->d, threads[2], "suspended"));

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_free (acp[i]);
}

/* ---- crash -------------------------------------------------------------- */

/* Starts "sleep 30" on @thread, waits until it streams, and SIGKILLs the
 * daemon (its agent is killed too, as systemd would with the cgroup).
 * Returns the turn. */
static guint64
crash_mid_turn (Fixture *fx, const char *thread)
{
  guint64 turn;
  pid_t pid;

  turn = ab_prompt (fx->d.connection, NULL, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, turn), TURN_TIMEOUT_MS);
  pid = (pid_t)ab_session_u (&fx->d, thread, "pid");
  g_assert_cmpint (pid, >, 1);
  g_array_append_val (fx->orphans, pid);

  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGKILL), ==, 128 + SIGKILL);
  kill (-pid, SIGKILL);
  AB_WAIT_FOR (ab_process_gone (pid), 5000);
  ab_drain_main_context ();
  g_assert_false (ab_turn_ended (fx->c, thread, turn));
  return turn;
}

static void
assert_interrupted_last_turn (Fixture *fx, const char *thread, guint64 turn)
{
  g_autofree char *reason = ab_session_s (&fx->d, thread, "last_reason");

  g_assert_true (ab_state_is (&fx->d, thread, "suspended"));
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), ==, 0);
  g_assert_cmpuint (ab_session_t (&fx->d, thread, "last_turn"), ==, turn);
  g_assert_cmpstr (reason, ==, "interrupted");
}

static void
test_crash (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:crash";
  g_autoptr (GDBusConnection) other_conn = ab_second_connection ();
  g_autoptr (GDBusConnection) third_conn = ab_second_connection ();
  g_autofree char *answer = NULL;
  AbCollector *other, *third;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  answer = prompt_ok (fx, thread, "remember the crash");
  turn = crash_mid_turn (fx, thread);
  g_assert_cmpuint (turn, ==, 2);
  /* Turn 1 ended before the crash. */
  g_assert_cmpuint (fx->c->turn_ended_count, ==, 1);

  restart_daemon (fx);
  assert_interrupted_last_turn (fx, thread, turn);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 2);
  /* Nobody asked yet: nothing was sent. */
  ab_sync_with_daemon (fx->d.connection);
  g_assert_false (ab_turn_ended (fx->c, thread, turn));

  /* The first connection that watches gets it, once. */
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", thread));
  rec = ab_wait_turn (fx->c, thread, turn, 5000);
  g_assert_cmpstr (rec->reason, ==, "interrupted");
  g_assert_cmpstr (rec->message, !=, "");
  ab_sync_with_daemon (fx->d.connection);
  g_assert_cmpuint (rec->ended_count, ==, 1);
  g_assert_cmpuint (fx->c->turn_ended_count, ==, 2);

  /* A second connection watching gets nothing: reported once. */
  other = ab_collector_new (other_conn);
  ab_sync_with_daemon (other_conn);
  ab_call_ok_on (other_conn, "Watch", g_variant_new ("(s)", thread));
  ab_sync_with_daemon (other_conn);
  g_assert_cmpuint (other->turn_ended_count, ==, 0);
  ab_collector_free (other);

  /* Persisted: not again after another restart either. */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  restart_daemon (fx);
  assert_interrupted_last_turn (fx, thread, turn);
  third = ab_collector_new (third_conn);
  ab_sync_with_daemon (third_conn);
  ab_call_ok_on (third_conn, "Watch", g_variant_new ("(s)", thread));
  ab_sync_with_daemon (third_conn);
  g_assert_cmpuint (third->turn_ended_count, ==, 0);
  ab_collector_free (third);
  ab_sync_with_daemon (fx->d.connection);
  g_assert_cmpuint (fx->c->turn_ended_count, ==, 2);

  /* The session carries on with its history. */
  g_clear_pointer (&answer, g_free);
  answer = prompt_ok (fx, thread, "after the crash");
  /* Both earlier prompts, the cut one included, are in its history. */
  g_assert_nonnull (
      strstr (answer, "I remember 2 earlier prompts in this session"));
  g_assert_nonnull (strstr (answer, "the last one was \"sleep 30\""));
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 3);
  g_assert_cmpuint (fx->c->turn_ended_count, ==, 3);
}

/* The first Prompt (rather than Watch) gets the report, before the
 * signals of its own turn. */
static void
test_crash_report_on_prompt (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:crash/prompt";
  g_autoptr (GDBusConnection) other_conn = ab_second_connection ();
  AbCollector *other;
  AbTurn *rec, *next;
  guint64 turn, turn2;
  GError *error = NULL;

  start_daemon (fx, NULL, NULL);
  turn = crash_mid_turn (fx, thread);
  restart_daemon (fx);
  assert_interrupted_last_turn (fx, thread, turn);

  other = ab_collector_new (other_conn);
  ab_sync_with_daemon (other_conn);
  turn2 = ab_prompt_on (other_conn, NULL, thread, "echo again", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (turn2, ==, turn + 1);
  next = wait_turn_checked (fx, other, thread, turn2);
  g_assert_cmpstr (next->reason, ==, "end_turn");
  rec = ab_collector_lookup (other, thread, turn);
  g_assert_nonnull (rec);
  g_assert_true (rec->ended);
  g_assert_cmpstr (rec->reason, ==, "interrupted");
  g_assert_cmpuint (other->turn_ended_count, ==, 2);
  ab_collector_free (other);

  /* The main connection, which prompted the cut turn, watches later and
   * gets nothing: it was reported. */
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", thread));
  ab_sync_with_daemon (fx->d.connection);
  g_assert_false (ab_turn_ended (fx->c, thread, turn));
}

/* A report nobody has collected yet survives a further restart: the
 * first connection that watches after it still gets it. */
static void
test_crash_report_survives_restart (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:crash/twice";
  g_autofree char *record = NULL;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  turn = crash_mid_turn (fx, thread);
  restart_daemon (fx);
  assert_interrupted_last_turn (fx, thread, turn);
  /* Restarted again before anyone prompted or watched. */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  restart_daemon (fx);
  assert_interrupted_last_turn (fx, thread, turn);

  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", thread));
  if (!AB_WAIT_UNTIL (ab_turn_ended (fx->c, thread, turn), 3000))
    {
      g_autofree char *path = record_file (fx, thread);

      g_file_get_contents (path, &record, NULL, NULL);
      g_test_message ("no TurnEnded(%" G_GUINT64_FORMAT
                      ", interrupted) after a second restart; record: %s",
                      turn, record);
    }
  rec = ab_wait_turn (fx->c, thread, turn, 100);
  g_assert_cmpstr (rec->reason, ==, "interrupted");
}

/* ---- corrupt records ---------------------------------------------------- */

static void
write_file (const char *path, const char *contents)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (chmod (path, 0600), ==, 0);
}

static void
test_corrupt_records (Fixture *fx, gconstpointer data)
{
  const char *good[] = { "cli:good/1", "cli:good/2" };
  const char *victim = "cli:victim";
  const char *missing = "cli:missing-field";
  const char *wrong = "cli:wrong-type";
  g_autofree char *victim_path = record_file (fx, victim);
  g_autofree char *missing_path = record_file (fx, missing);
  g_autofree char *wrong_path = record_file (fx, wrong);
  g_autofree char *victim_aside = g_strconcat (victim_path, ".corrupt", NULL);
  g_autofree char *missing_aside = g_strconcat (missing_path, ".corrupt", NULL);
  g_autofree char *wrong_aside = g_strconcat (wrong_path, ".corrupt", NULL);
  g_autofree char *aside_data = NULL;
  g_autofree char *wrong_json = NULL;
  g_autofree char *log = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *cwd = NULL;
  g_autoptr (GVariant) list = NULL;

  start_daemon (fx, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    g_free (prompt_ok (fx, good[i], "keep me"));
  g_free (prompt_ok (fx, victim, "break me"));
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);

  /* Garbage over a real record; valid JSON without a required field; a
   * field of the wrong type. */
  write_file (victim_path, "{\"version\": 1, \"thread\": \x01garbage");
  write_file (missing_path,
              "{\"version\":1,\"thread\":\"cli:missing-field\",\"owner\":0}");
  escaped = g_dbus_escape_object_path (wrong);
  cwd = g_build_filename (fx->d.state_dir, "work", escaped, NULL);
  wrong_json = g_strdup_printf (
      "{\"version\":1,\"thread\":\"%s\",\"agent\":\"demo\",\"owner\":%u,"
      "\"cwd\":\"%s\",\"created\":1,\"last_activity\":1,\"turns\":\"many\","
      "\"last_turn\":0,\"interrupted_reported\":false}",
      wrong, (guint)getuid (), cwd);
  write_file (wrong_path, wrong_json);

  restart_daemon (fx);
  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, G_N_ELEMENTS (good));
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GVariant) entry = list_entry (list, good[i]);

      g_assert_nonnull (entry);
    }
  g_assert_false (session_exists (fx, victim));
  g_assert_false (session_exists (fx, missing));
  g_assert_false (session_exists (fx, wrong));

  /* Each bad file is set aside, unchanged. */
  g_assert_false (g_file_test (victim_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (missing_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (wrong_path, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_get_contents (victim_aside, &aside_data, NULL, NULL));
  g_assert_cmpstr (aside_data, ==, "{\"version\": 1, \"thread\": \x01garbage");
  g_assert_true (g_file_test (missing_aside, G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (wrong_aside, G_FILE_TEST_IS_REGULAR));
  /* ... and logged. */
  g_assert_true (g_file_get_contents (fx->d.log_path, &log, NULL, NULL));
  g_assert_nonnull (strstr (log, victim_path));
  g_assert_nonnull (strstr (log, missing_path));
  g_assert_nonnull (strstr (log, wrong_path));

  /* The good ones resume. */
  answer = prompt_ok (fx, good[0], "still there?");
  g_assert_nonnull (
      strstr (answer, "I remember 1 earlier prompt in this session"));
  /* The thread of a set-aside record starts afresh when prompted. */
  g_clear_pointer (&answer, g_free);
  answer = prompt_ok (fx, victim, "again");
  g_assert_nonnull (
      strstr (answer, "I remember 0 earlier prompts in this session"));
}

/* ---- drain -------------------------------------------------------------- */

/* A prompt refused with Draining: while the drain runs the message asks
 * to retry; once drained it says that only a resume opens the gate. */
static void
assert_prompt_refused (Fixture *fx, const char *thread)
{
  g_autoptr (GError) error = NULL;
  gboolean drained = broker_state_is (fx, "drained");
  guint64 turn
      = ab_prompt_on (fx->d.connection, NULL, thread, "refused", NULL, &error);
  const char *expected = drained ? "is drained" : "is draining";

  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error, AB_ERROR_DRAINING,
                         "org.agentbroker.Error.Draining");
  if (strstr (error->message, expected) == NULL)
    g_test_message ("Draining error without '%s': %s", expected,
                    error->message);
  g_assert_nonnull (strstr (error->message, expected));
  if (drained)
    g_assert_nonnull (strstr (error->message, "agentctl resume"));
  else
    g_assert_nonnull (strstr (error->message, "retry in a moment"));
}

static void
test_drain (Fixture *fx, gconstpointer data)
{
  const char *busy = "cli:drain/busy";
  const char *idle = "cli:drain/idle";
  const char *late = "cli:drain/late";
  g_autofree char *answer = NULL;
  g_autoptr (GVariant) list = NULL;
  g_autofree char *gate = NULL;
  DrainCall d;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  g_assert_true (broker_state_is (fx, "running"));
  g_assert_true (broker_accepting (fx));
  answer = prompt_ok (fx, idle, "echo idle");
  gate = ab_gate_prompt (&fx->d, "drain");
  turn = ab_prompt (fx->d.connection, NULL, busy, gate);
  AB_WAIT_FOR (ab_turn_has_update (fx->c, busy, turn), TURN_TIMEOUT_MS);

  drain_send (fx, &d, 10);
  AB_WAIT_FOR (d.done || broker_state_is (fx, "draining"), 5000);
  g_assert_false (d.done);
  g_assert_false (broker_accepting (fx));

  /* Refused, not queued: neither a new thread nor a known one. */
  assert_prompt_refused (fx, late);
  assert_prompt_refused (fx, idle);
  assert_prompt_refused (fx, busy);
  g_assert_false (session_exists (fx, late));
  g_assert_cmpuint (ab_session_u (&fx->d, busy, "queued"), ==, 0);
  /* Reading keeps working. */
  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, 2);
  g_assert_true (ab_state_is (&fx->d, busy, "busy"));
  g_assert_false (d.done);

  /* The running turn finishes, then the drain returns. */
  ab_gate_open (&fx->d, "drain");
  rec = ab_wait_turn (fx->c, busy, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  AB_WAIT_FOR (d.done, 10000);
  g_assert_no_error (d.error);
  g_assert_cmpuint (d.finished, ==, 1);
  g_assert_cmpuint (d.interrupted, ==, 0);
  g_assert_true (broker_state_is (fx, "drained"));
  g_assert_false (broker_accepting (fx));
  assert_prompt_refused (fx, late);
  g_clear_pointer (&list, g_variant_unref);
  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, 2);
  g_assert_cmpuint (ab_session_u (&fx->d, busy, "turns"), ==, 1);

  /* Resume reopens ingress. */
  ab_call_ok (&fx->d, "Resume", NULL);
  g_assert_true (broker_state_is (fx, "running"));
  g_assert_true (broker_accepting (fx));
  g_clear_pointer (&answer, g_free);
  answer = prompt_ok (fx, late, "echo back in business");
  g_assert_cmpstr (answer, ==, "echo back in business");

  /* A drain with nothing running returns at once, and Resume again. */
  drain_send (fx, &d, 10);
  AB_WAIT_FOR (d.done, 5000);
  g_assert_no_error (d.error);
  g_assert_cmpuint (d.finished, ==, 0);
  g_assert_cmpuint (d.interrupted, ==, 0);
  g_assert_true (broker_state_is (fx, "drained"));
  ab_call_ok (&fx->d, "Resume", NULL);
  g_assert_true (broker_accepting (fx));
}

static void
test_drain_deadline (Fixture *fx, gconstpointer data)
{
  const char *mode = data;
  const char *thread = "cli:drain/deadline";
  g_autofree char *reason = NULL;
  DrainCall d;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  turn = ab_prompt (fx->d.connection, NULL, thread, mode);
  /* "hang" sends nothing: the session's state says the turn runs. */
  AB_WAIT_FOR (ab_state_is (&fx->d, thread, "busy"), TURN_TIMEOUT_MS);

  drain_send (fx, &d, 1);
  /* 1 s deadline, then at most timeouts.kill (2 s) for an agent that
   * ignores session/cancel; an order of magnitude below would be tight. */
  AB_WAIT_FOR (d.done, 10000);
  g_assert_no_error (d.error);
  g_test_message ("Drain(1) with \"%s\" returned after %.2f s", mode,
                  drain_seconds (&d));
  g_assert_cmpuint (d.finished, ==, 0);
  g_assert_cmpuint (d.interrupted, ==, 1);
  /* It waited for the deadline (g_timeout_add_seconds may fire a little
   * early on its first round, so not a strict 1 s). */
  g_assert_cmpfloat (drain_seconds (&d), >=, 0.5);

  rec = ab_wait_turn (fx->c, thread, turn, 5000);
  g_assert_cmpstr (rec->reason, ==, "interrupted");
  g_assert_true (broker_state_is (fx, "drained"));
  reason = ab_session_s (&fx->d, thread, "last_reason");
  g_assert_cmpstr (reason, ==, "interrupted");
  g_assert_cmpuint (ab_session_t (&fx->d, thread, "last_turn"), ==, turn);

  ab_call_ok (&fx->d, "Resume", NULL);
  g_free (prompt_ok (fx, thread, "echo still usable"));
}

/* A turn queued behind the running one is in flight too: the drain waits
 * for both, and the moment the second starts does not end it; at the
 * deadline both are interrupted. */
static void
test_drain_queued (Fixture *fx, gconstpointer data)
{
  const gboolean deadline = GPOINTER_TO_INT (data);
  const char *thread = "cli:drain/queued";
  g_autofree char *gate = NULL;
  DrainCall d;
  guint64 first, second;

  start_daemon (fx, NULL, NULL);
  gate = ab_gate_prompt (&fx->d, "queued");
  first = ab_prompt (fx->d.connection, NULL, thread, gate);
  second = ab_prompt (fx->d.connection, NULL, thread, "echo queued");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, first), TURN_TIMEOUT_MS);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "queued"), ==, 1);

  drain_send (fx, &d, deadline ? 1 : 60);
  AB_WAIT_FOR (broker_state_is (fx, "draining"), 5000);
  if (!deadline)
    ab_gate_open (&fx->d, "queued");
  AB_WAIT_FOR (d.done, TURN_TIMEOUT_MS);
  g_assert_no_error (d.error);
  /* Both ended before the drain's reply, which follows their signals. */
  g_assert_true (ab_turn_ended (fx->c, thread, first));
  g_assert_true (ab_turn_ended (fx->c, thread, second));
  g_assert_cmpstr (ab_collector_lookup (fx->c, thread, first)->reason, ==,
                   deadline ? "interrupted" : "end_turn");
  g_assert_cmpstr (ab_collector_lookup (fx->c, thread, second)->reason, ==,
                   deadline ? "interrupted" : "end_turn");
  g_assert_cmpuint (ab_collector_lookup (fx->c, thread, first)->ended_seq, <,
                    ab_collector_lookup (fx->c, thread, second)->ended_seq);
  g_assert_cmpuint (d.finished, ==, deadline ? 0 : 2);
  g_assert_cmpuint (d.interrupted, ==, deadline ? 2 : 0);
  g_assert_true (broker_state_is (fx, "drained"));
  g_assert_cmpuint (ab_broker_u (&fx->d, "BusyCount"), ==, 0);
}

/* A prompt that came in before the drain and waits for its agent to start
 * holds the drain; at the deadline it is refused, as if it came after. */
static void
test_drain_starting (Fixture *fx, gconstpointer data)
{
  const gboolean deadline = GPOINTER_TO_INT (data);
  const char *thread = "cli:drain/starting";
  g_autofree char *gate = ab_gate_path (&fx->d, "start");
  g_autofree char *agents = NULL;
  g_autoptr (AbPromptCall) p = NULL;
  g_autoptr (GError) error = NULL;
  DrainCall d;
  guint64 turn;

  /* An agent that starts when the test says so. */
  agents = g_strdup_printf (
      "  slow:\n"
      "    command: [sh, -c, \"while [ ! -e $0 ]; do sleep 0.05; done; "
      "exec agentbroker-demo-agent\", %s]\n",
      gate);
  start_daemon (fx, agents, NULL);
  p = ab_prompt_send (fx->d.connection, NULL, thread, "echo late", "slow");
  AB_WAIT_FOR (session_exists (fx, thread)
                   && ab_state_is (&fx->d, thread, "starting"),
               TURN_TIMEOUT_MS);
  g_assert_cmpuint (ab_broker_u (&fx->d, "BusyCount"), ==, 1);

  drain_send (fx, &d, deadline ? 1 : 60);
  if (deadline)
    {
      AB_WAIT_FOR (d.done, 10000);
      g_assert_no_error (d.error);
      g_assert_cmpuint (d.finished, ==, 0);
      g_assert_cmpuint (d.interrupted, ==, 0);
      g_assert_cmpuint (ab_prompt_finish (p, &error), ==, 0);
      ab_assert_error_named (error, AB_ERROR_DRAINING,
                             "org.agentbroker.Error.Draining");
      ab_gate_open (&fx->d, "start");
      g_assert_true (broker_state_is (fx, "drained"));
      ab_call_ok (&fx->d, "Resume", NULL);
      g_free (prompt_ok (fx, thread, "echo after the drain"));
      return;
    }

  /* Whatever the drain had answered by now has arrived. */
  ab_sync_with_daemon (fx->d.connection);
  g_assert_false (d.done);
  g_assert_true (broker_state_is (fx, "draining"));
  ab_gate_open (&fx->d, "start");
  turn = ab_prompt_finish (p, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS)->reason,
                   ==, "end_turn");
  AB_WAIT_FOR (d.done, TURN_TIMEOUT_MS);
  g_assert_no_error (d.error);
  g_assert_cmpuint (d.finished, ==, 1);
  g_assert_cmpuint (d.interrupted, ==, 0);
}

static void
test_drain_denies_permission (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:drain/permission";
  g_autoptr (GError) error = NULL;
  DrainCall d;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx,
                "  asking:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    permissions: ask\n",
                "  drain: 2s\n  kill: 2s\n  permission: 60s\n");
  turn = ab_prompt_on (fx->d.connection, NULL, thread, "permission", "asking",
                       &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (fx->c->perms->len > 0, 10000);
  g_assert_false (ab_turn_ended (fx->c, thread, turn));

  drain_send (fx, &d, 10);
  rec = ab_wait_turn (fx->c, thread, turn, 8000);
  AB_WAIT_FOR (d.done, 8000);
  g_assert_no_error (d.error);
  g_test_message ("Drain(10) with a pending permission returned after %.2f s",
                  drain_seconds (&d));
  /* Denied at once: far from the 10 s deadline. */
  g_assert_cmpfloat (drain_seconds (&d), <, 5.0);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  if (strstr (rec->text->str, "permission: cancelled") == NULL
      && strstr (rec->text->str, "permission: reject") == NULL)
    g_test_message ("answer after the drain: %s", rec->text->str);
  g_assert_true (strstr (rec->text->str, "permission: cancelled") != NULL
                 || strstr (rec->text->str, "permission: reject") != NULL);
  g_assert_cmpuint (d.finished, ==, 1);
  g_assert_cmpuint (d.interrupted, ==, 0);
  g_assert_true (broker_state_is (fx, "drained"));
  ab_call_ok (&fx->d, "Resume", NULL);
}

/* ---- stop --------------------------------------------------------------- */

static void
test_stop_while_streaming (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:stop/streaming";
  g_autofree char *record = NULL;
  AbTurn *rec;
  guint64 turn;
  pid_t pid;
  gint64 started;

  start_daemon (fx, NULL, "  drain: 10s\n  kill: 2s\n");
  turn = ab_prompt (fx->d.connection, NULL, thread, "sleep 2");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, turn), TURN_TIMEOUT_MS);
  pid = (pid_t)ab_session_u (&fx->d, thread, "pid");
  g_assert_cmpint (pid, >, 1);

  started = g_get_monotonic_time ();
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  g_test_message ("stop with a 2 s turn running took %.2f s",
                  (double)(g_get_monotonic_time () - started) / G_USEC_PER_SEC);
  /* The turn finished before the daemon left; its end reached us. */
  rec = ab_wait_turn (fx->c, thread, turn, 3000);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "sleep"));
  /* Agents are stopped before the exit. */
  AB_WAIT_FOR (ab_process_gone (pid), 3000);

  /* And the record says so: nothing was in flight. */
  restart_daemon (fx);
  g_assert_true (ab_state_is (&fx->d, thread, "suspended"));
  g_assert_cmpuint (ab_session_t (&fx->d, thread, "last_turn"), ==, turn);
  record = ab_session_s (&fx->d, thread, "last_reason");
  g_assert_cmpstr (record, ==, "end_turn");
}

/* A stop deadline shorter than the turn: the turn ends interrupted, the
 * stop completes, and the next instance does not report it again. */
static void
test_stop_deadline (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:stop/deadline";
  g_autofree char *reason = NULL;
  AbTurn *rec;
  guint64 turn;
  pid_t pid;

  start_daemon (fx, NULL, "  drain: 1s\n  kill: 2s\n");
  turn = ab_prompt (fx->d.connection, NULL, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, turn), TURN_TIMEOUT_MS);
  pid = (pid_t)ab_session_u (&fx->d, thread, "pid");

  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  rec = ab_wait_turn (fx->c, thread, turn, 3000);
  g_assert_cmpstr (rec->reason, ==, "interrupted");
  AB_WAIT_FOR (ab_process_gone (pid), 3000);

  restart_daemon (fx);
  reason = ab_session_s (&fx->d, thread, "last_reason");
  g_assert_cmpstr (reason, ==, "interrupted");
  g_assert_cmpuint (ab_session_t (&fx->d, thread, "last_turn"), ==, turn);
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", thread));
  ab_sync_with_daemon (fx->d.connection);
  g_assert_cmpuint (fx->c->turn_ended_count, ==, 1);
}

/* ---- reload ------------------------------------------------------------- */

static void
test_reload_unchanged_profile (Fixture *fx, gconstpointer data)
{
  const char *slow = "cli:reload/slow";
  const char *fast = "cli:reload/fast";
  g_autofree char *yaml = NULL, *gate = NULL;
  guint32 generation, pid_slow, pid_fast;
  guint64 turn_slow, turn_fast;
  AbTurn *rec;

  start_daemon (fx, NULL, NULL);
  g_free (prompt_ok (fx, fast, "echo warm up"));
  pid_fast = ab_session_u (&fx->d, fast, "pid");
  generation = ab_broker_u (&fx->d, "Generation");
  g_assert_cmpuint (ab_broker_u (&fx->d, "MaxSessions"), !=, 7);

  gate = ab_gate_prompt (&fx->d, "slow");
  turn_slow = ab_prompt (fx->d.connection, NULL, slow, gate);
  AB_WAIT_FOR (ab_turn_has_update (fx->c, slow, turn_slow), TURN_TIMEOUT_MS);
  pid_slow = ab_session_u (&fx->d, slow, "pid");
  turn_fast = ab_prompt (fx->d.connection, NULL, fast, "stream 2000");

  /* Same profile, one setting changed: applied in place. */
  yaml = config_yaml (NULL, "pool:\n  max_sessions: 7\n", NULL);
  ab_daemon_fixture_write_config (&fx->d, yaml);
  ab_call_ok (&fx->d, "Reload", NULL);
  g_assert_false (ab_turn_ended (fx->c, slow, turn_slow));
  g_assert_cmpuint (ab_broker_u (&fx->d, "Generation"), ==, generation + 1);
  g_assert_cmpuint (ab_broker_u (&fx->d, "MaxSessions"), ==, 7);
  g_assert_true (broker_state_is (fx, "running"));
  g_assert_true (broker_accepting (fx));

  ab_gate_open (&fx->d, "slow");
  rec = ab_wait_turn (fx->c, slow, turn_slow, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  /* "gate PATH" sends one chunk, then ends. */
  g_assert_cmpuint (rec->chunks->len, ==, 1);
  rec = ab_wait_turn (fx->c, fast, turn_fast, TURN_TIMEOUT_MS);
  ab_assert_stream (rec, 2000, 16);

  /* Untouched: the same processes carry on. */
  g_assert_cmpuint (ab_session_u (&fx->d, slow, "pid"), ==, pid_slow);
  g_assert_cmpuint (ab_session_u (&fx->d, fast, "pid"), ==, pid_fast);
  g_free (prompt_ok (fx, slow, "echo after reload"));
  g_assert_cmpuint (ab_session_u (&fx->d, slow, "pid"), ==, pid_slow);
}

static void
test_reload_changed_profile (Fixture *fx, gconstpointer data)
{
  const char *busy = "cli:switch/busy";
  const char *idle = "cli:switch/idle";
  const char *other = "cli:switch/other";
  const char *agents = "  other:\n    command: [agentbroker-demo-agent]\n";
  g_autofree char *yaml = NULL;
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *answer = NULL;
  guint32 pid_busy, pid_other;
  guint64 turn;
  AbTurn *rec;

  start_daemon (fx, agents, NULL);
  g_free (prompt_ok (fx, idle, "echo one"));
  {
    g_autoptr (GError) error = NULL;
    guint64 t = ab_prompt_on (fx->d.connection, NULL, other, "echo one",
                              "other", &error);

    g_assert_no_error (error);
    g_assert_cmpstr (wait_turn_checked (fx, fx->c, other, t)->reason, ==,
                     "end_turn");
  }
  pid_other = ab_session_u (&fx->d, other, "pid");
  turn = ab_prompt (fx->d.connection, NULL, busy, "sleep 2");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, busy, turn), TURN_TIMEOUT_MS);
  pid_busy = ab_session_u (&fx->d, busy, "pid");

  /* Only the demo profile changes. */
  yaml = config_yaml (agents, NULL, NULL);
  {
    g_autoptr (GString) changed = g_string_new (yaml);
    g_string_replace (changed, "    command: [agentbroker-demo-agent]\n",
                      "    command: [agentbroker-demo-agent]\n"
                      "    env: {AB_SWITCHED: \"1\"}\n",
                      1);
    ab_daemon_fixture_write_config (&fx->d, changed->str);
  }
  g_assert_cmpint (
      ab_run_agentctl (&fx->d, &out, &err, "reload", "--wait", NULL), ==, 0);

  /* reload --wait returned once the busy session had switched: its turn
   * finished on the old agent first. */
  rec = ab_wait_turn (fx->c, busy, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_cmpuint (ab_session_u (&fx->d, busy, "pid"), !=, pid_busy);
  {
    g_autoptr (GVariant) dict = ab_get_session (&fx->d, busy, NULL);
    gboolean switching = TRUE;

    g_assert_true (g_variant_lookup (dict, "switching", "b", &switching));
    g_assert_false (switching);
  }
  g_assert_cmpuint (ab_session_u (&fx->d, idle, "pid"), ==, 0);
  /* The unchanged profile's agent carries on. */
  g_assert_cmpuint (ab_session_u (&fx->d, other, "pid"), ==, pid_other);

  /* The next turn runs on a new agent that loaded the history. */
  answer = prompt_ok (fx, busy, "env");
  g_assert_nonnull (strstr (answer, "AB_SWITCHED=1"));
}

/* ---- agentctl ----------------------------------------------------------- */

static void
test_agentctl_drain_resume (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:agentctl/drain";
  g_autofree char *out = NULL, *err = NULL;
  AbTurn *rec;
  guint64 turn;
  int status;

  start_daemon (fx, NULL, NULL);
  turn = ab_prompt (fx->d.connection, NULL, thread, "sleep 1");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, turn), TURN_TIMEOUT_MS);

  /* Waits for the running turn, which finishes. */
  status
      = ab_run_agentctl (&fx->d, &out, &err, "drain", "--timeout", "5", NULL);
  if (status != 0)
    g_test_message ("agentctl drain: %s%s", out, err);
  g_assert_cmpint (status, ==, 0);
  rec = ab_wait_turn (fx->c, thread, turn, 5000);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_true (broker_state_is (fx, "drained"));
  g_assert_false (broker_accepting (fx));
  assert_prompt_refused (fx, thread);

  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  status = ab_run_agentctl (&fx->d, &out, &err, "resume", NULL);
  if (status != 0)
    g_test_message ("agentctl resume: %s%s", out, err);
  g_assert_cmpint (status, ==, 0);
  g_assert_true (broker_state_is (fx, "running"));
  g_assert_true (broker_accepting (fx));
  g_free (prompt_ok (fx, thread, "echo resumed"));
}

/* A reload that drops a profile removes its sessions once their work is
 * done, each once: the idle one at once, the busy one after its turn. */
static void
test_reload_removed_profile (Fixture *fx, gconstpointer data)
{
  const char *busy = "cli:dropped/busy";
  const char *idle = "cli:dropped/idle";
  const char *agents = "  other:\n    command: [agentbroker-demo-agent]\n";
  g_autofree char *yaml = NULL;
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *gate = NULL;
  g_autofree char *busy_removed = g_strdup_printf ("%s profile-removed", busy);
  g_autofree char *idle_removed = g_strdup_printf ("%s profile-removed", idle);
  g_autoptr (GError) error = NULL;
  guint64 turn;
  guint n = 0;

  start_daemon (fx, agents, NULL);
  turn = ab_prompt_on (fx->d.connection, NULL, idle, "echo one", "other",
                       &error);
  g_assert_no_error (error);
  g_assert_cmpstr (wait_turn_checked (fx, fx->c, idle, turn)->reason, ==,
                   "end_turn");
  gate = ab_gate_prompt (&fx->d, "dropped");
  turn = ab_prompt_on (fx->d.connection, NULL, busy, gate, "other", &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (ab_turn_has_update (fx->c, busy, turn), TURN_TIMEOUT_MS);

  yaml = config_yaml (NULL, NULL, NULL);
  ab_daemon_fixture_write_config (&fx->d, yaml);
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "reload", NULL), ==, 0);
  AB_WAIT_FOR (ab_collector_has (fx->c->removed, idle_removed),
               TURN_TIMEOUT_MS);
  g_assert_true (session_exists (fx, busy));
  ab_gate_open (&fx->d, "dropped");
  g_assert_cmpstr (wait_turn_checked (fx, fx->c, busy, turn)->reason, ==,
                   "end_turn");
  AB_WAIT_FOR (ab_collector_has (fx->c->removed, busy_removed),
               TURN_TIMEOUT_MS);
  g_assert_false (session_exists (fx, busy));
  g_assert_false (session_exists (fx, idle));
  ab_sync_with_daemon (fx->d.connection);
  ab_drain_main_context ();
  for (guint i = 0; i < fx->c->removed->len; i++)
    if (g_str_has_prefix (fx->c->removed->pdata[i], "cli:dropped/"))
      n++;
  g_assert_cmpuint (n, ==, 2);
}

/* ---- the record before the prompt ---------------------------------------- */

static gboolean
log_contains (Fixture *fx, const char *text)
{
  g_autofree char *log = NULL;

  return g_file_get_contents (fx->d.log_path, &log, NULL, NULL)
         && strstr (log, text) != NULL;
}

/* The prompt reaches the agent only once the record naming its turn
 * running is on disk.  Shown without timing: the daemon's record writes
 * are held back (AGENTBROKER_TEST_HOLD_RECORDS) until the daemon says
 * the prompt waits for its record, and the demo agent reports the record
 * as it finds it the moment the prompt arrives.  A prompt sent early
 * reaches the agent while the writes are held, and the agent reports
 * the record without the turn.  With @data, the agent is already running
 * (the turn-start record); without, it starts with the prompt (the
 * record of the prompt waiting for the agent). */
static void
test_record_before_prompt (Fixture *fx, gconstpointer data)
{
  gboolean warm = GPOINTER_TO_INT (data);
  const char *thread = "cli:durable/before-prompt";
  g_autofree char *hold = g_build_filename (fx->d.tmpdir, "hold", NULL);
  g_autofree char *path = record_file (fx, thread);
  g_autofree char *text = g_strdup_printf ("record %s", path);
  g_autofree char *waits = NULL;
  g_autofree char *want = NULL;
  g_autoptr (GError) error = NULL;
  guint64 turn;
  AbTurn *rec;

  ab_daemon_fixture_setenv (&fx->d, "AGENTBROKER_TEST_HOLD_RECORDS", hold);
  start_daemon (fx, NULL, NULL);
  if (warm)
    g_free (prompt_ok (fx, thread, "echo warm"));

  g_file_set_contents (hold, "", 0, &error);
  g_assert_no_error (error);
  turn = ab_prompt (fx->d.connection, NULL, thread, text);
  waits = g_strdup_printf ("session %s: turn %" G_GUINT64_FORMAT
                           " waits for its record",
                           thread, turn);
  /* The daemon holds the prompt back, or (wrongly) the agent answered. */
  AB_WAIT_FOR (log_contains (fx, waits)
                   || ab_turn_has_update (fx->c, thread, turn),
               TURN_TIMEOUT_MS);
  /* The hold holds: nothing on disk names the turn yet. */
  if (warm)
    {
      g_autoptr (JsonObject) held = read_record (fx, thread);

      g_assert_cmpint (
          json_object_get_int_member_with_default (held, "running_turn", 0), ==,
          0);
    }
  else
    g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  g_assert_cmpint (unlink (hold), ==, 0);
  rec = wait_turn_checked (fx, fx->c, thread, turn);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  want = g_strdup_printf ("record: running_turn=%" G_GUINT64_FORMAT, turn);
  g_assert_cmpstr (rec->text->str, ==, want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/lifecycle/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("records", test_records, NULL);
  ADD ("records/before-prompt", test_record_before_prompt,
       GINT_TO_POINTER (TRUE));
  ADD ("records/before-first-prompt", test_record_before_prompt,
       GINT_TO_POINTER (FALSE));
  ADD ("restart/resume", test_restart_resume, NULL);
  ADD ("crash/interrupted-once", test_crash, NULL);
  ADD ("crash/reported-on-prompt", test_crash_report_on_prompt, NULL);
  ADD ("crash/report-survives-restart", test_crash_report_survives_restart,
       NULL);
  ADD ("corrupt-records", test_corrupt_records, NULL);
  ADD ("drain/resume", test_drain, NULL);
  ADD ("drain/deadline", test_drain_deadline, "hang");
  ADD ("drain/deadline-hang-hard", test_drain_deadline, "hang-hard");
  ADD ("drain/queued", test_drain_queued, GINT_TO_POINTER (FALSE));
  ADD ("drain/queued-deadline", test_drain_queued, GINT_TO_POINTER (TRUE));
  ADD ("drain/starting", test_drain_starting, GINT_TO_POINTER (FALSE));
  ADD ("drain/starting-deadline", test_drain_starting, GINT_TO_POINTER (TRUE));
  ADD ("drain/denies-permission", test_drain_denies_permission, NULL);
  ADD ("stop/while-streaming", test_stop_while_streaming, NULL);
  ADD ("stop/deadline", test_stop_deadline, NULL);
  ADD ("reload/unchanged-profile", test_reload_unchanged_profile, NULL);
  ADD ("reload/changed-profile", test_reload_changed_profile, NULL);
  ADD ("reload/removed-profile", test_reload_removed_profile, NULL);
  ADD ("agentctl/drain-resume", test_agentctl_drain_resume, NULL);
#undef ADD

  /* Remote errors map back to AB_ERROR once the domain is registered. */
  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
