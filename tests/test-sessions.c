/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — sessions on a private bus: Prompt and its stream,
 * ListSessions/GetSession, queue, cancel, failures of the agent, idle
 * suspend and resume, eviction, removal, permissions, the agent's
 * environment (agentbrokerd(8), org.agentbroker.Broker1(5)).
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
#define TEST_ALARM_SECONDS 45

/* ---- fixture ------------------------------------------------------------ */

typedef struct
{
  AbDaemonFixture d;
  AbCollector *c; /* signals on the test's main connection */
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = ab_collector_new (fx->d.connection);
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_collector_free (fx->c);
  /* The daemon survived whatever the test did to it. */
  ab_daemon_fixture_stop_checked (&fx->d);
  ab_daemon_fixture_teardown (&fx->d);
}

/* Writes a config with the demo agent as default plus @agents (YAML lines
 * under agents:), @pool and @timeouts (lines under those keys, may be NULL),
 * and starts the daemon on it. Drain and kill are short so a teardown with a
 * turn still running stays quick. */
static void
start_daemon (Fixture *fx, const char *agents, const char *pool,
              const char *timeouts)
{
  g_autoptr (GString) yaml = g_string_new (NULL);
  g_autoptr (GError) error = NULL;

  g_string_append (yaml, "default_agent: demo\n"
                         "agents:\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n");
  if (agents != NULL)
    g_string_append (yaml, agents);
  if (pool != NULL)
    g_string_append_printf (yaml, "pool:\n%s", pool);
  g_string_append (yaml, "timeouts:\n  drain: 2s\n");
  if (timeouts == NULL || strstr (timeouts, "kill:") == NULL)
    g_string_append (yaml, "  kill: 2s\n");
  if (timeouts != NULL)
    g_string_append (yaml, timeouts);
  ab_daemon_fixture_write_config (&fx->d, yaml->str);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

/* ---- calls ------------------------------------------------------------- */

/* session_s() for a comparison in place: freed at the test's teardown. */
static const char *
session_tmp (Fixture *fx, const char *thread, const char *key)
{
  char *value = ab_session_s (&fx->d, thread, key);

  g_test_queue_free (value);
  return value;
}

static guint
count_sessions (Fixture *fx)
{
  g_autoptr (GVariant) list = ab_list_sessions (&fx->d);

  return g_variant_n_children (list);
}

/* ---- prompts ------------------------------------------------------------ */

/* Prompts @text on @thread and waits for the end of its turn; returns the
 * agent's text, and the reason and message when asked for. */
static char *
prompt_and_wait (Fixture *fx, const char *thread, const char *text,
                 char **reason, char **message)
{
  guint64 turn = ab_prompt (fx->d.connection, fx->c, thread, text);
  AbTurn *rec = ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);

  if (reason != NULL)
    *reason = g_strdup (rec->reason);
  if (message != NULL)
    *message = g_strdup (rec->message);
  return g_strdup (rec->text->str);
}

/* Prompts and asserts the turn ends with end_turn; returns the text. */
static char *
prompt_ok (Fixture *fx, const char *thread, const char *text)
{
  g_autofree char *reason = NULL, *message = NULL;
  char *answer = prompt_and_wait (fx, thread, text, &reason, &message);

  if (g_strcmp0 (reason, "end_turn") != 0)
    g_test_message ("turn of \"%s\" on %s ended %s: %s", text, thread, reason,
                    message);
  g_assert_cmpstr (reason, ==, "end_turn");
  return answer;
}

/* ---- tests: the basics -------------------------------------------------- */

static void
assert_session_dict (Fixture *fx, GVariant *dict, const char *thread,
                     const char *state, guint32 turns)
{
  g_autofree char *path = ab_session_path (thread);
  g_autofree char *escaped = g_dbus_escape_object_path (thread);
  g_autofree char *cwd
      = g_build_filename (fx->d.state_dir, "work", escaped, NULL);
  const char *s;
  guint32 u;
  guint64 created, last_activity, last_turn;
  guint64 now = g_get_real_time ();

  g_assert_true (g_variant_lookup (dict, "thread", "&s", &s));
  g_assert_cmpstr (s, ==, thread);
  g_assert_true (g_variant_lookup (dict, "agent", "&s", &s));
  g_assert_cmpstr (s, ==, "demo");
  g_assert_true (g_variant_lookup (dict, "state", "&s", &s));
  g_assert_cmpstr (s, ==, state);
  g_assert_true (g_variant_lookup (dict, "owner", "u", &u));
  g_assert_cmpuint (u, ==, getuid ());
  g_assert_true (g_variant_lookup (dict, "cwd", "&s", &s));
  g_assert_cmpstr (s, ==, cwd);
  g_assert_true (g_variant_lookup (dict, "pid", "u", &u));
  g_assert_cmpuint (u, >, 1);
  g_assert_false (ab_process_gone (u));
  g_assert_true (g_variant_lookup (dict, "created", "t", &created));
  g_assert_true (g_variant_lookup (dict, "last_activity", "t", &last_activity));
  g_assert_cmpuint (created, >, now - 60 * G_USEC_PER_SEC);
  g_assert_cmpuint (created, <=, last_activity);
  g_assert_cmpuint (last_activity, <=, now);
  g_assert_true (g_variant_lookup (dict, "turns", "u", &u));
  g_assert_cmpuint (u, ==, turns);
  g_assert_true (g_variant_lookup (dict, "queued", "u", &u));
  g_assert_cmpuint (u, ==, 0);
  g_assert_true (g_variant_lookup (dict, "last_turn", "t", &last_turn));
  g_assert_cmpuint (last_turn, ==, turns);
  g_assert_true (g_variant_lookup (dict, "last_reason", "&s", &s));
  g_assert_cmpstr (s, ==, "end_turn");
  g_assert_true (g_variant_lookup (dict, "path", "&o", &s));
  g_assert_cmpstr (s, ==, path);
}

static void
test_prompt_basic (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:alice/basic";
  g_autofree char *path = ab_session_path (thread);
  g_autofree char *added = g_strdup_printf ("%s %s", thread, path);
  g_autoptr (GVariant) list = NULL;
  g_autoptr (GVariant) entry = NULL;
  g_autoptr (GVariant) dict = NULL;
  g_autofree char *answer2 = NULL;
  const char *acp = NULL;
  guint32 pid = 0;
  guint64 turn;
  AbTurn *rec;

  start_daemon (fx, NULL, NULL, NULL);
  g_assert_cmpuint (count_sessions (fx), ==, 0);

  turn = ab_prompt (fx->d.connection, fx->c, thread, "hello there");
  g_assert_cmpuint (turn, ==, 1);
  rec = ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "Hello from the demo agent"));
  g_assert_nonnull (
      strstr (rec->text->str, "I remember 0 earlier prompts in this session"));
  g_assert_nonnull (strstr (rec->text->str, "You said: \"hello there\""));
  /* A tool call and its update came through as they are. */
  g_assert_cmpuint (rec->updates->len, >, rec->chunks->len);
  /* SessionAdded is broadcast, so the prompter sees it too. */
  AB_WAIT_FOR (ab_collector_has (fx->c->added, added), 5000);

  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, 1);
  entry = g_variant_get_child_value (list, 0);
  assert_session_dict (fx, entry, thread, "idle", 1);
  dict = ab_get_session (&fx->d, thread, NULL);
  g_assert_nonnull (dict);
  assert_session_dict (fx, dict, thread, "idle", 1);
  /* GetSession() has acp_session besides the listed fields. */
  g_assert_true (g_variant_lookup (dict, "acp_session", "&s", &acp));
  g_assert_true (g_str_has_prefix (acp, "demo-"));
  g_assert_true (g_variant_lookup (dict, "pid", "u", &pid));
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==, 1);
  g_assert_cmpuint (ab_broker_u (&fx->d, "RunningCount"), ==, 1);
  g_assert_cmpuint (ab_broker_u (&fx->d, "BusyCount"), ==, 0);

  /* The same process carries on the conversation. */
  answer2 = prompt_ok (fx, thread, "and again");
  g_assert_nonnull (
      strstr (answer2, "I remember 1 earlier prompt in this session"));
  g_assert_nonnull (strstr (answer2, "the last one was \"hello there\""));
  g_assert_nonnull (ab_collector_lookup (fx->c, thread, 2));
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 2);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), ==, pid);
}

static void
test_object_manager (Fixture *fx, gconstpointer data)
{
  const char *thread = "slack:C123/1710000000.000001";
  g_autofree char *path = ab_session_path (thread);
  g_autofree char *answer = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) objects = NULL;
  g_autoptr (GVariant) ifaces = NULL;
  g_autoptr (GVariant) props = NULL;
  g_autoptr (GVariant) state = NULL;
  const char *s;
  guint32 u;
  guint64 t;

  start_daemon (fx, NULL, NULL, NULL);
  answer = prompt_ok (fx, thread, "echo hi");
  g_assert_cmpstr (answer, ==, "echo hi");

  reply = g_dbus_connection_call_sync (
      fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL,
      G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), G_DBUS_CALL_FLAGS_NONE,
      AB_CALL_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  objects = g_variant_get_child_value (reply, 0);
  ifaces = g_variant_lookup_value (objects, path, G_VARIANT_TYPE ("a{sa{sv}}"));
  g_assert_nonnull (ifaces);
  props = g_variant_lookup_value (ifaces, AB_SESSION_IFACE,
                                  G_VARIANT_TYPE ("a{sv}"));
  g_assert_nonnull (props);

  g_assert_true (g_variant_lookup (props, "Thread", "&s", &s));
  g_assert_cmpstr (s, ==, thread);
  g_assert_true (g_variant_lookup (props, "Agent", "&s", &s));
  g_assert_cmpstr (s, ==, "demo");
  g_assert_true (g_variant_lookup (props, "State", "&s", &s));
  g_assert_cmpstr (s, ==, "idle");
  g_assert_true (g_variant_lookup (props, "Owner", "u", &u));
  g_assert_cmpuint (u, ==, getuid ());
  g_assert_true (g_variant_lookup (props, "Cwd", "&s", &s));
  g_assert_true (g_str_has_prefix (s, fx->d.state_dir));
  g_assert_true (g_variant_lookup (props, "Pid", "u", &u));
  g_assert_cmpuint (u, ==, ab_session_u (&fx->d, thread, "pid"));
  g_assert_true (g_variant_lookup (props, "AcpSession", "&s", &s));
  g_assert_true (g_str_has_prefix (s, "demo-"));
  g_assert_true (g_variant_lookup (props, "Created", "t", &t));
  g_assert_cmpuint (t, >, 0);
  g_assert_true (g_variant_lookup (props, "LastActivity", "t", &t));
  g_assert_cmpuint (t, >, 0);
  g_assert_true (g_variant_lookup (props, "Turns", "u", &u));
  g_assert_cmpuint (u, ==, 1);
  g_assert_true (g_variant_lookup (props, "Queued", "u", &u));
  g_assert_cmpuint (u, ==, 0);

  /* The object answers Properties.Get directly too. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = g_dbus_connection_call_sync (
      fx->d.connection, AB_BUS_NAME, path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", AB_SESSION_IFACE, "State"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL,
      &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &state);
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "idle");
}

static void
test_unknown_session (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = NULL;
  g_autoptr (GVariant) reply = NULL;

  start_daemon (fx, NULL, NULL, NULL);
  dict = ab_get_session (&fx->d, "cli:nobody", &error);
  g_assert_null (dict);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);
  reply = ab_call_on (fx->d.connection, "RemoveSession",
                      g_variant_new ("(s)", "cli:nobody"), "()", &error);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  g_assert_cmpuint (count_sessions (fx), ==, 0);
}

static void
on_properties_changed (GDBusConnection *connection, const char *sender,
                       const char *path, const char *iface, const char *member,
                       GVariant *params, gpointer user_data)
{
  GPtrArray *states = user_data;
  g_autoptr (GVariant) changed = NULL;
  const char *iface_name, *state;

  g_variant_get (params, "(&s@a{sv}@as)", &iface_name, &changed, NULL);
  if (g_str_equal (iface_name, AB_SESSION_IFACE)
      && g_variant_lookup (changed, "State", "&s", &state))
    g_ptr_array_add (states, g_strdup (state));
}

static void
test_properties_changed (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:props";
  g_autofree char *path = ab_session_path (thread);
  g_autoptr (GPtrArray) states = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *answer = NULL;
  guint sub;

  start_daemon (fx, NULL, NULL, NULL);
  sub = g_dbus_connection_signal_subscribe (
      fx->d.connection, NULL, "org.freedesktop.DBus.Properties",
      "PropertiesChanged", path, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
      on_properties_changed, states, NULL);
  answer = prompt_ok (fx, thread, "echo hi");
  answer = (g_free (answer), prompt_ok (fx, thread, "sleep 0.3"));
  AB_WAIT_FOR (states->len > 0
                   && g_str_equal (states->pdata[states->len - 1], "idle"),
               5000);
  g_dbus_connection_signal_unsubscribe (fx->d.connection, sub);
  ab_drain_main_context ();
  /* The second turn went busy and back to idle, seen as it happened. */
  g_assert_true (ab_collector_has (states, "busy"));
  g_assert_true (ab_collector_has (states, "idle"));
}

/* What a client watching one session object sees. */
typedef struct
{
  const char *path;
  GPtrArray *added;   /* the Session1 a{sv} of each InterfacesAdded */
  GPtrArray *changes; /* the a{sv} of each Session1 PropertiesChanged */
} ObjectMonitor;

static void
on_object_signal (GDBusConnection *connection, const char *sender,
                  const char *path, const char *iface, const char *member,
                  GVariant *params, gpointer user_data)
{
  ObjectMonitor *m = user_data;
  GVariant *props = NULL;
  g_autoptr (GVariant) ifaces = NULL;
  const char *name;

  if (g_str_equal (member, "InterfacesAdded"))
    {
      g_variant_get (params, "(&o@a{sa{sv}})", &name, &ifaces);
      if (g_str_equal (name, m->path)
          && (props = g_variant_lookup_value (ifaces, AB_SESSION_IFACE,
                                              G_VARIANT_TYPE_VARDICT))
                 != NULL)
        g_ptr_array_add (m->added, props);
    }
  else if (g_str_equal (member, "PropertiesChanged")
           && g_str_equal (path, m->path))
    {
      g_variant_get (params, "(&s@a{sv}@as)", &name, &props, NULL);
      if (g_str_equal (name, AB_SESSION_IFACE))
        g_ptr_array_add (m->changes, props);
      else
        g_variant_unref (props);
    }
}

/* Whether a PropertiesChanged set @key to the value that prints as @text
 * (g_variant_print() without types). */
static gboolean
changed_to (ObjectMonitor *m, const char *key, const char *text)
{
  for (guint i = 0; i < m->changes->len; i++)
    {
      g_autoptr (GVariant) value
          = g_variant_lookup_value (m->changes->pdata[i], key, NULL);
      g_autofree char *printed
          = value != NULL ? g_variant_print (value, FALSE) : NULL;

      if (printed != NULL && g_str_equal (printed, text))
        return TRUE;
    }
  return FALSE;
}

static const char *
emits_changed (GDBusNodeInfo *node, const char *property)
{
  GDBusInterfaceInfo *iface
      = g_dbus_node_info_lookup_interface (node, AB_SESSION_IFACE);
  GDBusPropertyInfo *info
      = g_dbus_interface_info_lookup_property (iface, property);

  g_assert_nonnull (info);
  return g_dbus_annotation_info_lookup (
      info->annotations, "org.freedesktop.DBus.Property.EmitsChangedSignal");
}

/* What a GUI follows without calling GetSession: a new session appears
 * in the state its prompt gave it, the last turn's number and reason and
 * an exact LastActivity come as PropertiesChanged, and the properties
 * that never change say so. */
static void
test_gui_properties (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:gui";
  g_autofree char *path = ab_session_path (thread);
  g_autoptr (GPtrArray) added
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
  g_autoptr (GPtrArray) changes
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
  ObjectMonitor m = { path, added, changes };
  g_autoptr (GDBusNodeInfo) node = NULL;
  const char *state = NULL, *reason = NULL;
  guint64 last_turn = 1;
  guint sub_added, sub_changed;

  start_daemon (fx, NULL, NULL, NULL);
  sub_added = g_dbus_connection_signal_subscribe (
      fx->d.connection, NULL, "org.freedesktop.DBus.ObjectManager",
      "InterfacesAdded", AB_BUS_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
      on_object_signal, &m, NULL);
  sub_changed = g_dbus_connection_signal_subscribe (
      fx->d.connection, NULL, "org.freedesktop.DBus.Properties",
      "PropertiesChanged", path, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
      on_object_signal, &m, NULL);

  g_free (prompt_ok (fx, thread, "echo one"));
  AB_WAIT_FOR (added->len > 0, 5000);
  g_assert_cmpuint (added->len, ==, 1);
  g_assert_true (g_variant_lookup (added->pdata[0], "State", "&s", &state));
  g_assert_cmpstr (state, ==, "starting");
  g_assert_true (
      g_variant_lookup (added->pdata[0], "LastTurn", "t", &last_turn));
  g_assert_cmpuint (last_turn, ==, 0);
  g_assert_true (
      g_variant_lookup (added->pdata[0], "LastReason", "&s", &reason));
  g_assert_cmpstr (reason, ==, "");
  AB_WAIT_FOR (changed_to (&m, "LastTurn", "1")
                   && changed_to (&m, "LastReason", "'end_turn'"),
               5000);

  /* Quick turns, several in one second: each one's end is signalled with
   * the LastActivity GetSession() has, not one of a second earlier. */
  for (guint64 turn = 2; turn <= 6; turn++)
    {
      g_autofree char *expect = NULL;
      g_autofree char *expect_turn
          = g_strdup_printf ("%" G_GUINT64_FORMAT, turn);

      g_free (prompt_ok (fx, thread, "echo quick"));
      expect = g_strdup_printf ("%" G_GUINT64_FORMAT,
                                ab_session_t (&fx->d, thread, "last_activity"));
      AB_WAIT_FOR (changed_to (&m, "LastActivity", expect), 5000);
      AB_WAIT_FOR (changed_to (&m, "LastTurn", expect_turn), 5000);
    }
  g_dbus_connection_signal_unsubscribe (fx->d.connection, sub_added);
  g_dbus_connection_signal_unsubscribe (fx->d.connection, sub_changed);
  ab_drain_main_context ();

  node = ab_introspect (fx->d.connection, path);
  for (const char *const *p
       = (const char *const[]){ "Thread", "Agent", "Owner", "Created", NULL };
       *p != NULL; p++)
    g_assert_cmpstr (emits_changed (node, *p), ==, "const");
  for (const char *const *p
       = (const char *const[]){ "State", "Pid", "Cwd", "LastActivity", "Turns",
                                "Queued", "LastTurn", "LastReason", NULL };
       *p != NULL; p++)
    g_assert_cmpstr (emits_changed (node, *p), ==, "true");
}

/* ---- tests: bad input --------------------------------------------------- */

static guint
count_dir_entries (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static void
assert_nothing_created (Fixture *fx)
{
  g_autofree char *work = g_build_filename (fx->d.state_dir, "work", NULL);

  g_assert_cmpuint (count_sessions (fx), ==, 0);
  g_assert_cmpuint (count_dir_entries (work), ==, 0);
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==, 0);
  g_assert_cmpuint (fx->c->added->len, ==, 0);
}

static void
test_invalid_thread (Fixture *fx, gconstpointer data)
{
  g_autofree char *long_id = g_strnfill (201, 'a');
  const char *bad[] = { "",       long_id,   "../x",   "/abs", "a b",
                        "a\x01b", ".hidden", "a/../b", "a\nb" };
  g_autofree char *max_id = g_strnfill (200, 'b');
  g_autofree char *answer = NULL;

  start_daemon (fx, NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 turn = ab_prompt_on (fx->d.connection, fx->c, bad[i], "echo hi",
                                   NULL, &error);

      g_autofree char *shown = g_strescape (bad[i], NULL);

      g_test_message ("thread id \"%s\"", shown);
      g_assert_cmpuint (turn, ==, 0);
      ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                             "org.agentbroker.Error.InvalidArgument");
    }
  ab_drain_main_context ();
  assert_nothing_created (fx);

  /* 200 bytes is still a thread id. */
  answer = prompt_ok (fx, max_id, "echo edge");
  g_assert_cmpstr (answer, ==, "echo edge");
}

static void
test_invalid_text (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) big = g_string_new ("echo ");
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx, NULL, NULL, NULL);
  while (big->len <= 1024 * 1024)
    g_string_append (big, "0123456789abcdef");
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:big", big->str, NULL,
                       &error);
  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  ab_drain_main_context ();
  assert_nothing_created (fx);

  /* A large but allowed prompt goes through whole. */
  g_string_truncate (big, 100 * 1024);
  answer = prompt_ok (fx, "cli:big", big->str);
  g_assert_cmpuint (strlen (answer), ==, big->len);
  g_assert_cmpstr (answer, ==, big->str);
}

static void
test_unknown_agent (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guint64 turn;

  start_daemon (fx, NULL, NULL, NULL);
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:agentless", "echo hi",
                       "no-such-agent", &error);
  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_assert_nonnull (strstr (error->message, "no-such-agent"));
  ab_drain_main_context ();
  assert_nothing_created (fx);
}

static void
test_agent_missing (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx,
                "  missing:\n"
                "    command: [/nonexistent/agent]\n",
                NULL, NULL);
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:missing", "echo hi",
                       "missing", &error);
  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error, AB_ERROR_AGENT_FAILED,
                         "org.agentbroker.Error.AgentFailed");
  g_assert_nonnull (strstr (error->message, "/nonexistent/agent"));

  /* The daemon is unharmed and other threads work. */
  answer = prompt_ok (fx, "cli:fine", "echo still here");
  g_assert_cmpstr (answer, ==, "echo still here");
}

static void
test_refuse_initialize (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) error2 = NULL;
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx,
                "  refuser:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    env: {AGENTBROKER_DEMO_MODE: refuse-initialize}\n",
                NULL, NULL);
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:refused", "echo hi",
                       "refuser", &error);
  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error, AB_ERROR_AGENT_FAILED,
                         "org.agentbroker.Error.AgentFailed");
  /* The agent's last stderr line. */
  g_assert_nonnull (strstr (error->message, "refusing initialize"));

  /* A second try is tried again (and fails the same way), not stuck. */
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:refused", "echo hi",
                       "refuser", &error2);
  g_assert_cmpuint (turn, ==, 0);
  ab_assert_error_named (error2, AB_ERROR_AGENT_FAILED,
                         "org.agentbroker.Error.AgentFailed");
  g_assert_nonnull (strstr (error2->message, "refusing initialize"));

  /* A session that never got an agent can be listed and removed. */
  if (count_sessions (fx) > 0)
    {
      AB_WAIT_FOR (ab_state_is (&fx->d, "cli:refused", "failed"), 5000);
      g_assert_cmpuint (ab_session_u (&fx->d, "cli:refused", "pid"), ==, 0);
      ab_call_ok (&fx->d, "RemoveSession",
                  g_variant_new ("(s)", "cli:refused"));
      g_assert_cmpuint (count_sessions (fx), ==, 0);
    }

  answer = prompt_ok (fx, "cli:fine", "echo still here");
  g_assert_cmpstr (answer, ==, "echo still here");
}

/* ---- tests: the agent fails mid-turn ------------------------------------ */

typedef struct
{
  const char *prompt;
  const char *reason;
  const char *state; /* after the turn */
  const char *pool;
  const char *timeouts;
  gboolean retry_at_once; /* prompt again as soon as the turn ended */
} FailureCase;

static const FailureCase crash_case
    = { "crash", "agent-exited", "failed", NULL, NULL };
static const FailureCase garbage_case
    = { "garbage", "agent-error", "failed", NULL, NULL };
static const FailureCase longline_case
    = { "longline 100000", "agent-error", "failed",
        "  max_message_bytes: 64KiB\n", NULL };
static const FailureCase hang_case
    = { "hang", "timeout", "idle", NULL, "  turn_inactivity: 2s\n" };
/* An agent that ignores session/cancel is stopped after timeouts.kill;
 * whether that leaves the session failed or suspended is the daemon's
 * choice. */
static const FailureCase hanghard_case
    = { "hang-hard", "timeout", "failed|suspended", NULL,
        "  turn_inactivity: 2s\n" };
static const FailureCase garbage_retry_case
    = { "garbage", "agent-error", "failed", NULL, NULL, TRUE };

static void
test_agent_failure (Fixture *fx, gconstpointer data)
{
  const FailureCase *fc = data;
  const char *victim = "cli:victim", *bystander = "cli:bystander";
  g_autofree char *answer = NULL, *first = NULL;
  guint32 old_pid;
  guint64 bystander_turn, turn;
  AbTurn *rec, *brec;
  gint64 started;

  start_daemon (fx, NULL, fc->pool, fc->timeouts);
  /* The victim has a process already; the bystander is mid-turn when the
   * victim's agent fails. */
  first = prompt_ok (fx, victim, "echo warm-up");
  old_pid = ab_session_u (&fx->d, victim, "pid");
  bystander_turn = ab_prompt (fx->d.connection, fx->c, bystander, "sleep 1.5");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, bystander, bystander_turn), 10000);

  started = g_get_monotonic_time ();
  turn = ab_prompt (fx->d.connection, fx->c, victim, fc->prompt);
  rec = ab_wait_turn (fx->c, victim, turn, TURN_TIMEOUT_MS);
  if (fc->retry_at_once)
    {
      /* A client that retries as soon as it hears of the failure, while
       * the old agent may still be being stopped: the prompt is accepted
       * and runs on a new agent. */
      g_assert_cmpstr (rec->reason, ==, fc->reason);
      answer = prompt_ok (fx, victim, "echo back again");
      g_assert_cmpstr (answer, ==, "echo back again");
      g_assert_cmpuint (ab_session_u (&fx->d, victim, "pid"), !=, old_pid);
      AB_WAIT_FOR (ab_process_gone (old_pid), 5000);
      brec = ab_wait_turn (fx->c, bystander, bystander_turn, TURN_TIMEOUT_MS);
      g_assert_cmpstr (brec->reason, ==, "end_turn");
      return;
    }
  if (g_strcmp0 (rec->reason, fc->reason) != 0)
    g_test_message ("\"%s\" ended %s (%s), expected %s", fc->prompt,
                    rec->reason, rec->message, fc->reason);
  g_assert_cmpstr (rec->reason, ==, fc->reason);
  /* A cause for the failures (a timeout may say nothing more). */
  if (!g_str_equal (fc->reason, "timeout"))
    g_assert_cmpstr (rec->message, !=, "");
  if (g_str_equal (fc->reason, "timeout"))
    /* turn_inactivity is 2 s: not sooner. */
    g_assert_cmpint (g_get_monotonic_time () - started, >=,
                     1500 * G_TIME_SPAN_MILLISECOND);
  AB_WAIT_FOR (ab_state_is (&fx->d, victim, fc->state), 10000);
  if (!g_str_equal (fc->state, "idle"))
    {
      AB_WAIT_FOR (ab_process_gone (old_pid), 10000);
      g_assert_cmpuint (ab_session_u (&fx->d, victim, "pid"), ==, 0);
    }
  g_assert_cmpstr (session_tmp (fx, victim, "last_reason"), ==, fc->reason);

  /* The bystander did not notice. */
  brec = ab_wait_turn (fx->c, bystander, bystander_turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (brec->reason, ==, "end_turn");
  g_assert_cmpstr (brec->text->str, ==, "sleeping 1.5 s");
  g_assert_cmpstr (session_tmp (fx, bystander, "state"), ==, "idle");

  /* The next prompt on the victim works (on a new process if it failed). */
  answer = prompt_ok (fx, victim, "echo back again");
  g_assert_cmpstr (answer, ==, "echo back again");
  g_assert_cmpstr (session_tmp (fx, victim, "state"), ==, "idle");
  if (!g_str_equal (fc->state, "idle"))
    g_assert_cmpuint (ab_session_u (&fx->d, victim, "pid"), !=, old_pid);
}

static void
test_agent_error (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:error";
  g_autofree char *reason = NULL, *message = NULL, *answer = NULL, *w = NULL;
  guint32 pid;

  start_daemon (fx, NULL, NULL, NULL);
  w = prompt_ok (fx, thread, "echo warm-up");
  pid = ab_session_u (&fx->d, thread, "pid");
  g_free (prompt_and_wait (fx, thread, "error", &reason, &message));
  g_assert_cmpstr (reason, ==, "agent-error");
  g_assert_nonnull (strstr (message, "demo failure"));
  g_assert_nonnull (strstr (message, "detailed demo failure"));
  g_assert_true (ab_state_is (&fx->d, thread, "idle"));
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), ==, pid);
  answer = prompt_ok (fx, thread, "echo usable");
  g_assert_cmpstr (answer, ==, "echo usable");
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), ==, pid);
}

/* ---- tests: queue and cancel -------------------------------------------- */

/* Prompts sent back to back run in the order they were sent. With @data,
 * they come from a connection the daemon has not seen: the first waits
 * for the bus to name the caller's uid, and the others must wait behind
 * it, not overtake it once the uid is known. */
static void
test_queue_order (Fixture *fx, gconstpointer data)
{
  const gboolean fresh = GPOINTER_TO_INT (data);
  const char *thread = "cli:queue";
  g_autoptr (GDBusConnection) other = fresh ? ab_second_connection () : NULL;
  GDBusConnection *connection = fresh ? other : fx->d.connection;
  AbCollector *c = fresh ? ab_collector_new (other) : fx->c;
  g_autoptr (AbPromptCall) p1 = NULL;
  g_autoptr (AbPromptCall) p2 = NULL;
  g_autoptr (AbPromptCall) p3 = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *w = NULL, *gate = NULL;
  guint64 t1, t2, t3;
  AbTurn *r1, *r2, *r3;

  start_daemon (fx, NULL, NULL, NULL);
  w = prompt_ok (fx, thread, "echo warm-up");
  gate = ab_gate_prompt (&fx->d, "first");

  /* Back to back, without waiting for the replies; the first runs until
   * the queue has been looked at. */
  p1 = ab_prompt_send (connection, c, thread, gate, NULL);
  p2 = ab_prompt_send (connection, c, thread, "echo second", NULL);
  p3 = ab_prompt_send (connection, c, thread, "echo third", NULL);
  t1 = ab_prompt_finish (p1, &error);
  g_assert_no_error (error);
  t2 = ab_prompt_finish (p2, &error);
  g_assert_no_error (error);
  t3 = ab_prompt_finish (p3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (t1, ==, 2);
  g_assert_cmpuint (t2, ==, t1 + 1);
  g_assert_cmpuint (t3, ==, t2 + 1);

  AB_WAIT_FOR (ab_state_is (&fx->d, thread, "busy"), 5000);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "queued"), ==, 2);
  g_assert_cmpuint (ab_broker_u (&fx->d, "BusyCount"), ==, 1);

  ab_gate_open (&fx->d, "first");
  r3 = ab_wait_turn (c, thread, t3, TURN_TIMEOUT_MS);
  r1 = ab_collector_lookup (c, thread, t1);
  r2 = ab_collector_lookup (c, thread, t2);
  g_assert_true (r1->ended && r2->ended && r3->ended);
  g_assert_cmpstr (r1->reason, ==, "end_turn");
  g_assert_cmpstr (r2->reason, ==, "end_turn");
  g_assert_cmpstr (r3->reason, ==, "end_turn");
  g_assert_true (g_str_has_prefix (r1->text->str, "waiting for "));
  g_assert_cmpstr (r1->text->str + strlen ("waiting for "), ==,
                   gate + strlen ("gate "));
  g_assert_cmpstr (r2->text->str, ==, "echo second");
  g_assert_cmpstr (r3->text->str, ==, "echo third");
  /* One after the other: nothing of a turn before the previous ended. */
  g_assert_cmpuint (r1->ended_seq, <, r2->first_seq);
  g_assert_cmpuint (r2->ended_seq, <, r3->first_seq);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "queued"), ==, 0);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 4);
  if (fresh)
    ab_collector_free (c);
}

static void
test_queue_full (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:full";
  g_autoptr (GError) error = NULL;
  guint64 running, q1, q2, refused;

  start_daemon (fx, NULL, "  max_queued_prompts: 2\n", NULL);
  running = ab_prompt (fx->d.connection, fx->c, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, running), 10000);
  q1 = ab_prompt (fx->d.connection, fx->c, thread, "echo q1");
  q2 = ab_prompt (fx->d.connection, fx->c, thread, "echo q2");
  g_assert_cmpuint (q2, ==, q1 + 1);
  refused
      = ab_prompt_on (fx->d.connection, fx->c, thread, "echo q3", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  ab_assert_error_named (error, AB_ERROR_BUSY, "org.agentbroker.Error.Busy");
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "queued"), ==, 2);

  ab_call_ok (&fx->d, "Cancel", g_variant_new ("(s)", thread));
  AB_WAIT_FOR (ab_turn_ended (fx->c, thread, running), 5000);
}

static void
test_cancel (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:cancel";
  g_autofree char *answer = NULL;
  guint64 running, queued;
  gint64 cancelled_at;
  AbTurn *rec, *qrec;

  start_daemon (fx, NULL, NULL, NULL);
  running = ab_prompt (fx->d.connection, fx->c, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, running), 10000);
  queued = ab_prompt (fx->d.connection, fx->c, thread, "echo never");

  cancelled_at = g_get_monotonic_time ();
  ab_call_ok (&fx->d, "Cancel", g_variant_new ("(s)", thread));
  rec = ab_wait_turn (fx->c, thread, running, 5000);
  g_assert_cmpstr (rec->reason, ==, "cancelled");
  g_assert_cmpint (g_get_monotonic_time () - cancelled_at, <,
                   5 * G_USEC_PER_SEC);

  /* The dropped prompt ends cancelled without running, and its end is told
   * after the end of the turn that was running: turns end in order. */
  qrec = ab_wait_turn (fx->c, thread, queued, 5000);
  g_assert_cmpstr (qrec->reason, ==, "cancelled");
  g_assert_cmpuint (qrec->updates->len, ==, 0);
  g_assert_cmpuint (rec->ended_seq, <, qrec->ended_seq);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "queued"), ==, 0);
  AB_WAIT_FOR (ab_state_is (&fx->d, thread, "idle"), 5000);

  answer = prompt_ok (fx, thread, "echo after cancel");
  g_assert_cmpstr (answer, ==, "echo after cancel");
}

/* ---- tests: streams ----------------------------------------------------- */

static void
test_streams_do_not_mix (Fixture *fx, gconstpointer data)
{
  g_autoptr (AbPromptCall) pa = NULL;
  g_autoptr (AbPromptCall) pb = NULL;
  g_autoptr (GError) error = NULL;
  guint64 ta, tb;
  AbTurn *ra, *rb;

  start_daemon (fx, NULL, NULL, NULL);
  /* Different chunk sizes tell the two streams apart. */
  pa = ab_prompt_send (fx->d.connection, fx->c, "cli:stream/a", "stream 200 20",
                       NULL);
  pb = ab_prompt_send (fx->d.connection, fx->c, "cli:stream/b", "stream 200 40",
                       NULL);
  ta = ab_prompt_finish (pa, &error);
  g_assert_no_error (error);
  tb = ab_prompt_finish (pb, &error);
  g_assert_no_error (error);
  ra = ab_wait_turn (fx->c, "cli:stream/a", ta, TURN_TIMEOUT_MS);
  rb = ab_wait_turn (fx->c, "cli:stream/b", tb, TURN_TIMEOUT_MS);
  ab_assert_stream (ra, 200, 20);
  ab_assert_stream (rb, 200, 40);
  /* Nothing went to a turn that does not exist. */
  for (guint i = 0; i < fx->c->turns->len; i++)
    {
      AbTurn *rec = fx->c->turns->pdata[i];

      g_assert_true (rec == ra || rec == rb || rec->turn == 0);
    }

  /* A big fast stream arrives whole and in order (batched or not). */
  ta = ab_prompt (fx->d.connection, fx->c, "cli:stream/a", "stream 5000 24");
  ra = ab_wait_turn (fx->c, "cli:stream/a", ta, TURN_TIMEOUT_MS);
  ab_assert_stream (ra, 5000, 24);
  g_test_message ("5000 updates came in %u signals", ra->update_signals);
}

/* The demo agent's paced stream, which the bench's latency figures rest
 * on: stamped chunks, none written before its time on the fixed schedule
 * (chunk i at DELAY + (i-1)/R after the prompt; load can only make them
 * later). */
static void
test_stream_paced (Fixture *fx, gconstpointer data)
{
  gint64 sent;
  guint64 turn;
  AbTurn *rec;

  start_daemon (fx, NULL, NULL, NULL);
  sent = g_get_monotonic_time ();
  turn = ab_prompt (fx->d.connection, fx->c, "cli:paced", "pace 50 6 40 12.5");
  rec = ab_wait_turn (fx->c, "cli:paced", turn, TURN_TIMEOUT_MS);
  ab_assert_stream (rec, 6, 40);
  for (guint i = 0; i < 6; i++)
    {
      const char *stamp = strstr (rec->chunks->pdata[i], " t=");
      gint64 due = sent + 12500 + i * (G_USEC_PER_SEC / 50);

      g_assert_nonnull (stamp);
      g_assert_cmpint (g_ascii_strtoll (stamp + 3, NULL, 10), >=, due);
    }
}

static void
test_unicast_and_watch (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:unicast";
  g_autofree char *path = ab_session_path (thread);
  g_autofree char *added = g_strdup_printf ("%s %s", thread, path);
  g_autoptr (GDBusConnection) other_conn = ab_second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *a1 = NULL, *a2 = NULL, *a3 = NULL;
  AbCollector *other;
  AbTurn *rec;

  start_daemon (fx, NULL, NULL, NULL);
  other = ab_collector_new (other_conn);
  ab_sync_with_daemon (other_conn); /* its match rules are in place */

  a1 = prompt_ok (fx, thread, "stream 5");
  ab_sync_with_daemon (other_conn);
  /* Broadcast: everyone sees the session appear. */
  AB_WAIT_FOR (ab_collector_has (other->added, added), 5000);
  /* Unicast: not a single streaming signal for the bystander. */
  g_assert_cmpuint (other->session_signals, ==, 0);
  g_assert_cmpuint (other->turns->len, ==, 0);

  /* Watching, it gets the stream of the next turn, whole. */
  reply = ab_call_on (other_conn, "Watch", g_variant_new ("(s)", thread), "()",
                      &error);
  g_assert_no_error (error);
  a2 = prompt_ok (fx, thread, "stream 7");
  AB_WAIT_FOR (ab_turn_ended (other, thread, 2), 5000);
  rec = ab_collector_lookup (other, thread, 2);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_cmpstr (rec->text->str, ==, a2);
  ab_assert_stream (rec, 7, 16);

  /* After Unwatch, nothing again. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_call_on (other_conn, "Unwatch", g_variant_new ("(s)", thread),
                      "()", &error);
  g_assert_no_error (error);
  a3 = prompt_ok (fx, thread, "stream 3");
  ab_sync_with_daemon (other_conn);
  g_assert_null (ab_collector_lookup (other, thread, 3));

  ab_collector_free (other);
}

static void
test_watch_all_turn0 (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:turn0";
  g_autoptr (GDBusConnection) watcher_conn = ab_second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *answer = NULL;
  AbCollector *watcher;
  AbTurn *rec;

  start_daemon (fx, NULL, NULL, NULL);
  watcher = ab_collector_new (watcher_conn);
  /* Watch everything before any session exists. */
  reply = ab_call_on (watcher_conn, "Watch", g_variant_new ("(s)", "*"), "()",
                      &error);
  g_assert_no_error (error);

  answer = prompt_ok (fx, thread, "echo hi");
  /* The agent's update outside any turn, right after session/new. */
  AB_WAIT_FOR (ab_turn_ended (watcher, thread, 1), 5000);
  rec = ab_collector_lookup (watcher, thread, 1);
  for (guint i = 0; i < rec->updates->len; i++)
    if (strstr (rec->updates->pdata[i], "available_commands_update") != NULL)
      g_test_message ("available_commands_update came as turn 1: %s",
                      (char *)rec->updates->pdata[i]);
  AB_WAIT_FOR (
      ab_turn_has_update_with (watcher, thread, 0, "available_commands_update"),
      5000);
  /* The watcher also has the turn. */
  AB_WAIT_FOR (ab_turn_ended (watcher, thread, 1), 5000);
  rec = ab_collector_lookup (watcher, thread, 1);
  g_assert_cmpstr (rec->text->str, ==, "echo hi");
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  /* Turn 0 never ends. */
  g_assert_false (ab_turn_ended (watcher, thread, 0));
  ab_collector_free (watcher);
}

/* WatchFrom() of @thread after @after on @connection: whether nothing
 * is missing.  What it resends has been dispatched when it returns. */
static gboolean
watch_from (GDBusConnection *connection, const char *thread, guint64 after)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  gboolean complete = FALSE;

  reply = ab_call_on (connection, "WatchFrom",
                      g_variant_new ("(st)", thread, after), "(b)", &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(b)", &complete);
  ab_sync_with_daemon (connection);
  return complete;
}

static guint64
last_seq (AbCollector *c, const char *thread)
{
  g_autofree char *path = ab_session_path (thread);
  const guint64 *last = g_hash_table_lookup (c->stream_seq, path);

  g_assert_nonnull (last);
  return *last;
}

/* Streaming signals are numbered (the collectors check each is above
 * the one before, also across the restarts here); WatchFrom() sends a
 * watcher what it missed, in order and once, before its reply, and says
 * whether anything is missing: nothing across a stop and start, but a
 * crash leaves the next instance unable to vouch. */
static void
test_watch_from (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:watchfrom";
  g_autoptr (GDBusConnection) late_conn = ab_second_connection ();
  g_autoptr (GDBusConnection) tail_conn = ab_second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *a1 = NULL, *a2 = NULL, *a3 = NULL, *a4 = NULL;
  AbCollector *late, *tail;
  AbTurn *rec;
  guint64 last;

  start_daemon (fx, NULL, NULL, NULL);
  a1 = prompt_ok (fx, thread, "stream 20");
  last = last_seq (fx->c, thread);

  /* A watcher that saw nothing gets the whole turn. */
  late = ab_collector_new (late_conn);
  g_assert_true (watch_from (late_conn, thread, 0));
  rec = ab_collector_lookup (late, thread, 1);
  g_assert_nonnull (rec);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_cmpstr (rec->text->str, ==, a1);
  ab_assert_stream (rec, 20, 16);
  g_assert_cmpuint (last_seq (late, thread), ==, last);

  /* One that saw all but the end gets the end alone. */
  tail = ab_collector_new (tail_conn);
  g_assert_true (watch_from (tail_conn, thread, last - 1));
  rec = ab_collector_lookup (tail, thread, 1);
  g_assert_nonnull (rec);
  g_assert_true (rec->ended);
  g_assert_cmpuint (rec->updates->len, ==, 0);

  /* The live stream follows, once. */
  a2 = prompt_ok (fx, thread, "stream 3");
  AB_WAIT_FOR (ab_turn_ended (late, thread, 2), 5000);
  rec = ab_collector_lookup (late, thread, 2);
  g_assert_cmpstr (rec->text->str, ==, a2);
  ab_assert_stream (rec, 3, 16);

  /* All sessions at once have no one number to go on from. */
  reply = ab_call_on (late_conn, "WatchFrom",
                      g_variant_new ("(st)", "*", (guint64)0), "(b)", &error);
  g_assert_null (reply);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_clear_error (&error);

  /* A stop and start: the next instance numbers right after the last,
   * and can vouch for everything since. */
  last = last_seq (fx->c, thread);
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  g_assert_true (watch_from (late_conn, thread, last));
  g_assert_false (watch_from (tail_conn, thread, last - 1));
  a3 = prompt_ok (fx, thread, "stream 2");
  g_assert_cmpuint (last_seq (fx->c, thread), >, last);

  /* A crash: numbers still only grow, but what the dead instance sent
   * last is not known. */
  last = last_seq (fx->c, thread);
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGKILL), ==, 128 + SIGKILL);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  g_assert_false (watch_from (late_conn, thread, last));
  a4 = prompt_ok (fx, thread, "stream 2");
  g_assert_cmpuint (last_seq (fx->c, thread), >, last);
  AB_WAIT_FOR (ab_turn_ended (late, thread, 4), 5000);

  ab_collector_free (tail);
  ab_collector_free (late);
}

/* ---- tests: pool -------------------------------------------------------- */

static void
test_idle_suspend_resume (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sleepy";
  g_autofree char *a1 = NULL, *a2 = NULL, *acp1 = NULL, *acp2 = NULL;
  guint32 pid;

  start_daemon (fx, NULL, "  idle_timeout: 2s\n", NULL);
  a1 = prompt_ok (fx, thread, "remember this");
  pid = ab_session_u (&fx->d, thread, "pid");
  acp1 = ab_session_s (&fx->d, thread, "acp_session");

  AB_WAIT_FOR (ab_state_is (&fx->d, thread, "suspended"), 8000);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), ==, 0);
  AB_WAIT_FOR (ab_process_gone (pid), 5000);
  /* The agent counts as running until the daemon has seen it stop, a
   * moment after the process is gone. */
  AB_WAIT_FOR (ab_broker_u (&fx->d, "RunningCount") == 0, 5000);
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==, 1);
  ab_drain_main_context ();
  g_assert_cmpuint (fx->c->removed->len, ==, 0);

  /* Resumed through session/load: the agent has its history back. */
  a2 = prompt_ok (fx, thread, "what do you remember");
  g_assert_nonnull (strstr (a2, "I remember 1 earlier prompt in this session"));
  g_assert_nonnull (strstr (a2, "the last one was \"remember this\""));
  acp2 = ab_session_s (&fx->d, thread, "acp_session");
  g_assert_cmpstr (acp2, ==, acp1);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), !=, 0);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 2);
}

static void
test_eviction (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = NULL, *b = NULL, *c = NULL, *again = NULL;
  guint32 pid_a;
  guint64 tb, tc, refused;

  start_daemon (fx, NULL, "  max_sessions: 2\n", NULL);
  a = prompt_ok (fx, "cli:a", "echo a");
  pid_a = ab_session_u (&fx->d, "cli:a", "pid");
  b = prompt_ok (fx, "cli:b", "echo b");
  c = prompt_ok (fx, "cli:c", "echo c");

  /* The least recently active idle session made room. */
  g_assert_cmpstr (session_tmp (fx, "cli:a", "state"), ==, "suspended");
  g_assert_cmpuint (ab_session_u (&fx->d, "cli:a", "pid"), ==, 0);
  AB_WAIT_FOR (ab_process_gone (pid_a), 5000);
  g_assert_cmpstr (session_tmp (fx, "cli:b", "state"), ==, "idle");
  g_assert_cmpstr (session_tmp (fx, "cli:c", "state"), ==, "idle");
  AB_WAIT_FOR (ab_broker_u (&fx->d, "RunningCount") == 2, 5000);
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==, 3);

  /* Both running sessions busy: no room for a new one, nor a resume. */
  tb = ab_prompt (fx->d.connection, fx->c, "cli:b", "sleep 10");
  tc = ab_prompt (fx->d.connection, fx->c, "cli:c", "sleep 10");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, "cli:b", tb), 10000);
  AB_WAIT_FOR (ab_turn_has_update (fx->c, "cli:c", tc), 10000);
  refused
      = ab_prompt_on (fx->d.connection, fx->c, "cli:d", "echo d", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  ab_assert_error_named (error, AB_ERROR_POOL_EXHAUSTED,
                         "org.agentbroker.Error.PoolExhausted");
  g_clear_error (&error);
  /* Refused, so nothing was accepted: no session for d. */
  g_assert_cmpuint (count_sessions (fx), ==, 3);
  refused
      = ab_prompt_on (fx->d.connection, fx->c, "cli:a", "echo a", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  ab_assert_error_named (error, AB_ERROR_POOL_EXHAUSTED,
                         "org.agentbroker.Error.PoolExhausted");

  /* Room again once one is idle: a resumes and evicts the other. */
  ab_call_ok (&fx->d, "Cancel", g_variant_new ("(s)", "cli:b"));
  AB_WAIT_FOR (ab_turn_ended (fx->c, "cli:b", tb), 5000);
  AB_WAIT_FOR (ab_state_is (&fx->d, "cli:b", "idle"), 5000);
  again = prompt_ok (fx, "cli:a", "echo a again");
  g_assert_cmpstr (again, ==, "echo a again");
  g_assert_cmpstr (session_tmp (fx, "cli:b", "state"), ==, "suspended");
  ab_call_ok (&fx->d, "Cancel", g_variant_new ("(s)", "cli:c"));
  AB_WAIT_FOR (ab_turn_ended (fx->c, "cli:c", tc), 5000);
}

/* ---- tests: the listing ------------------------------------------------- */

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The threads ListSessions(@options) lists, sorted, joined by ",". */
static char *
listed (Fixture *fx, GVariant *options)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) list = ab_list_sessions_with (&fx->d, options, &error);
  g_autoptr (GPtrArray) threads = g_ptr_array_new_with_free_func (g_free);

  g_assert_no_error (error);
  for (gsize i = 0; i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) dict = g_variant_get_child_value (list, i);
      const char *thread = NULL;

      g_assert_true (g_variant_lookup (dict, "thread", "&s", &thread));
      g_ptr_array_add (threads, g_strdup (thread));
    }
  g_ptr_array_sort (threads, compare_strings);
  g_ptr_array_add (threads, NULL);
  return g_strjoinv (",", (char **)threads->pdata);
}

static const char *
listed_tmp (Fixture *fx, const char *options)
{
  char *threads = listed (fx, g_variant_new_parsed (options));

  g_test_queue_free (threads);
  return threads;
}

static void
assert_list_refused (Fixture *fx, const char *options)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) list
      = ab_list_sessions_with (&fx->d, g_variant_new_parsed (options), &error);

  g_assert_null (list);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
}

/* The reply's structs have their fields where the interface says. */
static void
test_list_fields (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *cwd = NULL;
  g_autofree char *path = ab_session_path ("cli:f");
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) entry = NULL;
  const char *thread, *agent, *state, *cwd_listed, *reason, *obj, *unit;
  guint32 pid, owner, turns, queued;
  guint64 created, active, last_turn, memory, cpu, tasks;
  gboolean switching;

  start_daemon (fx, NULL, NULL, NULL);
  answer = prompt_ok (fx, "cli:f", "echo listed");
  cwd = ab_session_s (&fx->d, "cli:f", "cwd");
  reply = ab_call_on (fx->d.connection, "ListSessions",
                      g_variant_new ("(a{sv})", NULL),
                      "(a(sssuusttuutsbosttt))", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (g_variant_get_child_value (reply, 0)),
                    ==, 1);
  g_variant_get_child (reply, 0, "@a(sssuusttuutsbosttt)", &entry);
  g_variant_get_child (entry, 0, "(&s&s&suu&sttuut&sb&o&sttt)", &thread, &agent,
                       &state, &pid, &owner, &cwd_listed, &created, &active,
                       &turns, &queued, &last_turn, &reason, &switching, &obj,
                       &unit, &memory, &cpu, &tasks);
  g_assert_cmpstr (thread, ==, "cli:f");
  g_assert_cmpstr (agent, ==, "demo");
  g_assert_cmpstr (state, ==, "idle");
  g_assert_cmpuint (pid, ==, ab_session_u (&fx->d, "cli:f", "pid"));
  g_assert_cmpuint (pid, >, 1);
  g_assert_cmpuint (owner, ==, getuid ());
  g_assert_cmpstr (cwd_listed, ==, cwd);
  g_assert_cmpuint (created, ==, ab_session_t (&fx->d, "cli:f", "created"));
  g_assert_cmpuint (created, >, 0);
  g_assert_cmpuint (active, >=, created);
  g_assert_cmpuint (turns, ==, 1);
  g_assert_cmpuint (queued, ==, 0);
  g_assert_cmpuint (last_turn, ==, 1);
  g_assert_cmpstr (reason, ==, "end_turn");
  g_assert_false (switching);
  g_assert_cmpstr (obj, ==, path);
  /* The direct launcher: no unit, so nothing is known of its usage. */
  g_assert_cmpstr (unit, ==, "");
  g_assert_cmpuint (memory, ==, G_MAXUINT64);
  g_assert_cmpuint (cpu, ==, G_MAXUINT64);
  g_assert_cmpuint (tasks, ==, G_MAXUINT64);
  g_assert_cmpuint (ab_session_t (&fx->d, "cli:f", "tasks"), ==, G_MAXUINT64);
}

/* States, profile and owner are filtered in the daemon; a filter it
 * does not know is refused rather than ignored. */
static void
test_list_filters (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = NULL, *c = NULL;
  guint64 turn;
  g_autofree char *mine = g_strdup_printf ("{'owner': <uint32 %u>}", getuid ());
  g_autofree char *other
      = g_strdup_printf ("{'owner': <uint32 %u>}", getuid () + 1);

  start_daemon (fx,
                "  other:\n"
                "    command: [agentbroker-demo-agent]\n",
                "  max_sessions: 2\n", NULL);
  a = prompt_ok (fx, "cli:a", "echo a");
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:b", "echo b", "other",
                       &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ab_wait_turn (fx->c, "cli:b", turn, TURN_TIMEOUT_MS)->reason,
                   ==, "end_turn");
  c = prompt_ok (fx, "cli:c", "echo c");
  g_assert_cmpstr (session_tmp (fx, "cli:a", "state"), ==, "suspended");

  g_assert_cmpstr (listed_tmp (fx, "@a{sv} {}"), ==, "cli:a,cli:b,cli:c");
  g_assert_cmpstr (
      listed_tmp (fx, "{'states': <['starting', 'idle', 'busy']>}"), ==,
      "cli:b,cli:c");
  g_assert_cmpstr (listed_tmp (fx, "{'states': <['suspended', 'failed']>}"), ==,
                   "cli:a");
  g_assert_cmpstr (listed_tmp (fx, "{'states': <['busy']>}"), ==, "");
  g_assert_cmpstr (listed_tmp (fx, "{'profile': <'other'>}"), ==, "cli:b");
  g_assert_cmpstr (
      listed_tmp (fx, "{'profile': <'demo'>, 'states': <['idle']>}"), ==,
      "cli:c");
  g_assert_cmpstr (listed_tmp (fx, "{'profile': <'nobody'>}"), ==, "");
  g_assert_cmpstr (listed_tmp (fx, mine), ==, "cli:a,cli:b,cli:c");
  g_assert_cmpstr (listed_tmp (fx, other), ==, "");

  assert_list_refused (fx, "{'colour': <'red'>}");
  assert_list_refused (fx, "{'states': <['sleeping']>}");
  assert_list_refused (fx, "{'states': <'idle'>}");
  assert_list_refused (fx, "{'owner': <'root'>}");
  assert_list_refused (fx, "{'profile': <''>}");
  assert_list_refused (
      fx, "{'states': <['idle', 'idle', 'idle', 'idle', 'idle', 'idle', "
          "'idle', 'idle', 'idle', 'idle', 'idle', 'idle', 'idle', 'idle', "
          "'idle', 'idle', 'idle']>}");
}

/* ---- tests: removal ----------------------------------------------------- */

static void
test_remove (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:remove";
  const char *demo_mode = data;
  g_autofree char *path = ab_session_path (thread);
  g_autofree char *removed = g_strdup_printf ("%s removed", thread);
  g_autofree char *agents = NULL;
  g_autofree char *answer = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) objects = NULL;
  g_autoptr (GVariant) dict = NULL;
  guint32 pid;
  int child = 0, pgid = 0;
  guint64 busy, queued;
  gint64 started;

  if (demo_mode != NULL)
    agents = g_strdup_printf ("  stubborn:\n"
                              "    command: [agentbroker-demo-agent]\n"
                              "    env: {AGENTBROKER_DEMO_MODE: \"%s\"}\n",
                              demo_mode);
  start_daemon (fx, agents, NULL, "  kill: 1s\n");
  {
    g_autoptr (GError) perr = NULL;
    guint64 t = ab_prompt_on (fx->d.connection, fx->c, thread, "fork-child",
                              demo_mode != NULL ? "stubborn" : NULL, &perr);
    AbTurn *rec;

    g_assert_no_error (perr);
    rec = ab_wait_turn (fx->c, thread, t, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    answer = g_strdup (rec->text->str);
  }
  g_assert_cmpint (sscanf (answer, "fork-child: pid=%d pgid=%d", &child, &pgid),
                   ==, 2);
  pid = ab_session_u (&fx->d, thread, "pid");
  /* The agent leads its own process group; the grandchild is in it. */
  g_assert_cmpint (pgid, ==, (int)pid);
  g_assert_cmpint (getpgid (child), ==, pgid);
  g_assert_false (ab_process_gone (child));

  /* Removed in the middle of a turn. */
  busy = ab_prompt (fx->d.connection, fx->c, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->c, thread, busy), 10000);
  queued = ab_prompt (fx->d.connection, fx->c, thread, "echo queued");
  started = g_get_monotonic_time ();
  reply = ab_call_on (fx->d.connection, "RemoveSession",
                      g_variant_new ("(s)", thread), "()", &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_get_monotonic_time () - started, <, 10 * G_USEC_PER_SEC);

  /* Returned when the process was gone: no member of the group is left. */
  if (!ab_process_gone (pid) || !ab_process_gone (child))
    g_test_message ("after RemoveSession: agent %u %s, grandchild %d %s", pid,
                    ab_process_gone (pid) ? "gone" : "ALIVE", child,
                    ab_process_gone (child) ? "gone" : "ALIVE");
  g_assert_true (ab_process_gone (pid));
  g_assert_true (ab_process_gone (child));

  g_assert_cmpuint (count_sessions (fx), ==, 0);
  dict = ab_get_session (&fx->d, thread, &error);
  g_assert_null (dict);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);
  AB_WAIT_FOR (ab_collector_has (fx->c->removed, removed), 5000);
  g_clear_pointer (&reply, g_variant_unref);
  reply = g_dbus_connection_call_sync (
      fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL,
      G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), G_DBUS_CALL_FLAGS_NONE,
      AB_CALL_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  objects = g_variant_get_child_value (reply, 0);
  g_assert_false (g_variant_lookup (objects, path, "*", NULL));
  /* The turn in flight was ended for its prompter, then the queued one:
   * in order. */
  AB_WAIT_FOR (ab_turn_ended (fx->c, thread, busy), 5000);
  AB_WAIT_FOR (ab_turn_ended (fx->c, thread, queued), 5000);
  g_assert_cmpuint (ab_collector_lookup (fx->c, thread, busy)->ended_seq, <,
                    ab_collector_lookup (fx->c, thread, queued)->ended_seq);
  g_assert_cmpstr (ab_collector_lookup (fx->c, thread, queued)->reason, ==,
                   "cancelled");
  g_assert_cmpuint (ab_broker_u (&fx->d, "SessionCount"), ==, 0);
  g_assert_cmpuint (ab_broker_u (&fx->d, "RunningCount"), ==, 0);
}

/* ---- tests: permissions ------------------------------------------------- */

static void
test_permission_policy (Fixture *fx, gconstpointer data)
{
  const char *policy = data;
  g_autofree char *agents = NULL;
  g_autofree char *reason = NULL;
  g_autoptr (GError) error = NULL;
  guint64 turn;
  AbTurn *rec;

  agents = g_strdup_printf ("  guarded:\n"
                            "    command: [agentbroker-demo-agent]\n"
                            "    permissions: %s\n",
                            policy);
  start_daemon (fx, agents, NULL, NULL);
  turn = ab_prompt_on (fx->d.connection, fx->c, "cli:perm", "permission",
                       "guarded", &error);
  g_assert_no_error (error);
  rec = ab_wait_turn (fx->c, "cli:perm", turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  if (g_str_equal (policy, "allow"))
    g_assert_nonnull (strstr (rec->text->str, "permission: allow_always"));
  else
    g_assert_nonnull (strstr (rec->text->str, "permission: reject_once"));
  /* Decided by policy: nobody was asked. */
  g_assert_cmpuint (fx->c->perms->len, ==, 0);
}

static void
test_permission_ask (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:ask";
  g_autofree char *path = ab_session_path (thread);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  guint64 turn;
  AbPermission *perm;
  AbTurn *rec;

  start_daemon (fx,
                "  asking:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    permissions: ask\n",
                NULL, NULL);
  turn = ab_prompt_on (fx->d.connection, fx->c, thread, "permission", "asking",
                       &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (fx->c->perms->len > 0, 10000);
  perm = fx->c->perms->pdata[0];
  g_assert_cmpstr (perm->path, ==, path);
  g_assert_cmpuint (perm->turn, ==, turn);
  g_assert_cmpstr (perm->request, !=, "");
  g_assert_nonnull (strstr (perm->request_json, "allow_once"));
  g_assert_nonnull (strstr (perm->request_json, "reject_once"));
  g_assert_false (ab_turn_ended (fx->c, thread, turn));

  reply = ab_call_on (
      fx->d.connection, "AnswerPermission",
      g_variant_new ("(sss)", thread, perm->request, "allow_once"), "()",
      &error);
  g_assert_no_error (error);
  rec = ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "permission: allow_once"));
  g_assert_cmpuint (fx->c->perms->len, ==, 1);

  /* The request is answered: a second answer is refused with a named
   * error, not silently taken. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_call_on (
      fx->d.connection, "AnswerPermission",
      g_variant_new ("(sss)", thread, perm->request, "allow_once"), "()",
      &error);
  g_assert_null (reply);
  g_assert_nonnull (error);
  g_assert_true (g_dbus_error_is_remote_error (error));
}

static void
test_permission_ask_timeout (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:ask-timeout";
  g_autoptr (GError) error = NULL;
  guint64 turn;
  gint64 started;
  AbTurn *rec;

  start_daemon (fx,
                "  asking:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    permissions: ask\n",
                NULL, "  permission: 1s\n");
  started = g_get_monotonic_time ();
  turn = ab_prompt_on (fx->d.connection, fx->c, thread, "permission", "asking",
                       &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (fx->c->perms->len > 0, 10000);
  rec = ab_wait_turn (fx->c, thread, turn, 10000);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  if (strstr (rec->text->str, "permission: reject_once") == NULL)
    g_assert_nonnull (strstr (rec->text->str, "permission: cancelled"));
  g_assert_cmpint (g_get_monotonic_time () - started, >=,
                   800 * G_TIME_SPAN_MILLISECOND);
}

/* ---- tests: the agent's environment ------------------------------------- */

static char *
env_value (const char *listing, const char *name)
{
  g_auto (GStrv) lines = g_strsplit (listing, "\n", -1);
  g_autofree char *prefix = g_strconcat (name, "=", NULL);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix))
      return g_strdup (lines[i] + strlen (prefix));
  return NULL;
}

static void
test_environment (Fixture *fx, gconstpointer data)
{
  g_autofree char *creds = g_build_filename (fx->d.tmpdir, "creds", NULL);
  g_autofree char *key = g_build_filename (creds, "key", NULL);
  g_autofree char *env1 = NULL, *env2 = NULL;
  g_autofree char *cwd1 = NULL, *cwd2 = NULL;
  g_autofree char *work = g_build_filename (fx->d.state_dir, "work", NULL);
  g_autofree char *v = NULL;
  const char *allowed[] = { "HOME",
                            "PATH",
                            "USER",
                            "LANG",
                            "FOO",
                            "TOKEN",
                            "AB_TEST_INHERIT",
                            "AGENTBROKER_THREAD",
                            NULL };
  g_auto (GStrv) lines = NULL;
  struct stat st;

  g_assert_cmpint (g_mkdir_with_parents (creds, 0700), ==, 0);
  g_assert_true (g_file_set_contents (key, "s3cret", -1, NULL));
  ab_daemon_fixture_setenv (&fx->d, "AB_TEST_INHERIT", "yes");
  ab_daemon_fixture_setenv (&fx->d, "AB_TEST_SECRET", "leak");
  ab_daemon_fixture_setenv (&fx->d, "CREDENTIALS_DIRECTORY", creds);
  start_daemon (fx,
                "  envy:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    env:\n"
                "      FOO: bar\n"
                "      TOKEN: {credential: key}\n"
                "    inherit_env: [AB_TEST_INHERIT]\n",
                NULL, NULL);

  {
    g_autoptr (GError) error = NULL;
    guint64 turn
        = ab_prompt_on (fx->d.connection, fx->c, "a/b", "env", "envy", &error);
    AbTurn *rec;

    g_assert_no_error (error);
    rec = ab_wait_turn (fx->c, "a/b", turn, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    env1 = g_strdup (rec->text->str);
    turn = ab_prompt_on (fx->d.connection, fx->c, "a_b", "env", "envy", &error);
    g_assert_no_error (error);
    rec = ab_wait_turn (fx->c, "a_b", turn, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    env2 = g_strdup (rec->text->str);
  }
  g_test_message ("agent environment:\n%s", env1);

  v = env_value (env1, "FOO");
  g_assert_cmpstr (v, ==, "bar");
  g_free (v);
  v = env_value (env1, "TOKEN");
  g_assert_cmpstr (v, ==, "s3cret");
  g_free (v);
  v = env_value (env1, "AB_TEST_INHERIT");
  g_assert_cmpstr (v, ==, "yes");
  g_free (v);
  v = env_value (env1, "AGENTBROKER_THREAD");
  g_assert_cmpstr (v, ==, "a/b");
  g_free (v);
  v = env_value (env2, "AGENTBROKER_THREAD");
  g_assert_cmpstr (v, ==, "a_b");
  g_free (v);
  v = env_value (env1, "AB_TEST_SECRET");
  g_assert_null (v);

  /* Nothing else of the daemon's environment got through. */
  lines = g_strsplit (env1, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autofree char *name = NULL;
      const char *eq = strchr (lines[i], '=');

      if (g_str_has_prefix (lines[i], "cwd=") || eq == NULL)
        continue;
      name = g_strndup (lines[i], eq - lines[i]);
      if (!g_strv_contains (allowed, name))
        g_test_message ("unexpected variable in the agent's environment: %s",
                        lines[i]);
      g_assert_true (g_strv_contains (allowed, name));
    }

  /* Each thread its own directory under {state}/work, 0700. */
  cwd1 = env_value (env1, "cwd");
  cwd2 = env_value (env2, "cwd");
  g_assert_nonnull (cwd1);
  g_assert_nonnull (cwd2);
  g_assert_cmpstr (cwd1, !=, cwd2);
  g_assert_true (g_str_has_prefix (cwd1, work));
  g_assert_true (g_str_has_prefix (cwd2, work));
  g_assert_cmpstr (session_tmp (fx, "a/b", "cwd"), ==, cwd1);
  g_assert_cmpstr (session_tmp (fx, "a_b", "cwd"), ==, cwd2);
  g_assert_cmpint (stat (cwd1, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/sessions/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("prompt/basic", test_prompt_basic, NULL);
  ADD ("object-manager", test_object_manager, NULL);
  ADD ("properties-changed", test_properties_changed, NULL);
  ADD ("unknown-session", test_unknown_session, NULL);
  ADD ("gui-properties", test_gui_properties, NULL);
  ADD ("bad-input/thread-id", test_invalid_thread, NULL);
  ADD ("bad-input/text-size", test_invalid_text, NULL);
  ADD ("bad-input/unknown-agent", test_unknown_agent, NULL);
  ADD ("bad-input/agent-missing", test_agent_missing, NULL);
  ADD ("bad-input/refuse-initialize", test_refuse_initialize, NULL);
  ADD ("failure/crash", test_agent_failure, &crash_case);
  ADD ("failure/garbage", test_agent_failure, &garbage_case);
  ADD ("failure/longline", test_agent_failure, &longline_case);
  ADD ("failure/hang-timeout", test_agent_failure, &hang_case);
  ADD ("failure/hang-hard", test_agent_failure, &hanghard_case);
  ADD ("failure/garbage-retry-at-once", test_agent_failure,
       &garbage_retry_case);
  ADD ("failure/error-response", test_agent_error, NULL);
  ADD ("queue/order", test_queue_order, NULL);
  ADD ("queue/order-new-caller", test_queue_order, GINT_TO_POINTER (TRUE));
  ADD ("queue/full", test_queue_full, NULL);
  ADD ("cancel", test_cancel, NULL);
  ADD ("stream/no-mixing", test_streams_do_not_mix, NULL);
  ADD ("stream/paced", test_stream_paced, NULL);
  ADD ("stream/unicast-and-watch", test_unicast_and_watch, NULL);
  ADD ("stream/turn0-to-watchers", test_watch_all_turn0, NULL);
  ADD ("stream/watch-from", test_watch_from, NULL);
  ADD ("pool/idle-suspend-resume", test_idle_suspend_resume, NULL);
  ADD ("pool/eviction", test_eviction, NULL);
  ADD ("list/fields", test_list_fields, NULL);
  ADD ("list/filters", test_list_filters, NULL);
  ADD ("remove/process-group", test_remove, NULL);
  ADD ("remove/ignores-sigterm", test_remove,
       "ignore-sigterm,ignore-stdin-eof");
  ADD ("permission/allow", test_permission_policy, "allow");
  ADD ("permission/deny", test_permission_policy, "deny");
  ADD ("permission/ask", test_permission_ask, NULL);
  ADD ("permission/ask-timeout", test_permission_ask_timeout, NULL);
  ADD ("environment", test_environment, NULL);
#undef ADD

  /* Remote errors map back to AB_ERROR once the domain is registered. */
  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
