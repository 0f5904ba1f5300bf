/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — what the broker does with the agent side of ACP 1,
 * through the daemon on a private bus: a new agent process for an existing
 * session resumes its ACP session when the agent advertises
 * sessionCapabilities.resume (else loads it); what the agent's
 * usage_update says is kept as the session's ContextUsed, ContextSize,
 * Cost and CostCurrency.
 *
 * The agent is agentbroker-demo-agent; its "opened" mode says which
 * request opened the session in its process and how many earlier prompts
 * it remembers.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"

#define TURN_TIMEOUT_MS 20000
#define TEST_ALARM_SECONDS 90

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
  ab_daemon_fixture_stop_checked (&fx->d);
  ab_daemon_fixture_teardown (&fx->d);
}

/* The demo agent as the default profile, with AGENTBROKER_DEMO_MODE
 * @demo_mode (NULL: none). */
static void
start_daemon (Fixture *fx, const char *demo_mode)
{
  g_autoptr (GString) yaml = g_string_new (NULL);
  g_autoptr (GError) error = NULL;

  g_string_append (yaml, "default_agent: demo\n"
                         "agents:\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n");
  if (demo_mode != NULL)
    g_string_append_printf (yaml, "    env: {AGENTBROKER_DEMO_MODE: \"%s\"}\n",
                            demo_mode);
  g_string_append (yaml, "timeouts:\n  drain: 2s\n  kill: 2s\n");
  ab_daemon_fixture_write_config (&fx->d, yaml->str);
  AB_WAIT_FOR (!ab_broker_name_has_owner (fx->d.connection), 10000);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

/* Prompts @text on @thread, asserts the turn ends with end_turn, and
 * returns the turn as the collector saw it. */
static AbTurn *
prompt_ok (Fixture *fx, const char *thread, const char *text)
{
  guint64 turn = ab_prompt (fx->d.connection, fx->c, thread, text);
  AbTurn *rec = ab_wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);

  if (g_strcmp0 (rec->reason, "end_turn") != 0)
    g_test_message ("turn of \"%s\" ended %s: %s", text, rec->reason,
                    rec->message);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  return rec;
}

typedef struct
{
  const char *demo_mode;
  const char *method; /* what the new agent process is asked */
} ReopenCase;

static const ReopenCase resume_case = { "resume", "session/resume" };
static const ReopenCase load_case = { NULL, "session/load" };
static const ReopenCase resume_refused_case
    = { "resume,refuse-resume", "session/load" };

/* The agent is killed, then the daemon stopped and started: each time the
 * next prompt's new agent process goes on with the same ACP session,
 * through session/resume when the agent advertises it, and remembers the
 * conversation; nothing of the history reaches a watcher, and the turn
 * says nothing of a lost history. */
static void
test_reopen (Fixture *fx, gconstpointer data)
{
  const ReopenCase *rc = data;
  const char *thread = "cli:reopen";
  g_autoptr (GDBusConnection) watcher_conn = ab_second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *acp_session = NULL;
  g_autofree char *after_kill = NULL;
  g_autofree char *after_kill_session = NULL;
  g_autofree char *after_restart = NULL;
  g_autofree char *first_again = NULL;
  AbCollector *watcher;
  AbTurn *rec;
  guint32 pid;

  /* The agent's loss is logged as a warning: expected here. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  start_daemon (fx, rc->demo_mode);
  rec = prompt_ok (fx, thread, "echo the first words");
  g_assert_cmpstr (rec->text->str, ==, "echo the first words");
  rec = prompt_ok (fx, thread, "opened");
  g_assert_cmpstr (rec->text->str, ==, "opened by session/new 1");
  acp_session = ab_session_s (&fx->d, thread, "acp_session");
  pid = ab_session_u (&fx->d, thread, "pid");

  watcher = ab_collector_new (watcher_conn);
  reply = ab_call_on (watcher_conn, "Watch", g_variant_new ("(s)", "*"), "()",
                      &error);
  g_assert_no_error (error);

  g_assert_cmpint (kill ((pid_t)pid, SIGKILL), ==, 0);
  AB_WAIT_FOR (ab_state_is (&fx->d, thread, "failed"), 10000);
  rec = prompt_ok (fx, thread, "opened");
  after_kill = g_strdup_printf ("opened by %s 2", rc->method);
  g_assert_cmpstr (rec->text->str, ==, after_kill);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "pid"), !=, pid);
  after_kill_session = ab_session_s (&fx->d, thread, "acp_session");
  g_assert_cmpstr (after_kill_session, ==, acp_session);

  /* The watcher had the turn, and nothing of the first one again: not
   * as the new turn, not outside any turn. */
  AB_WAIT_FOR (ab_turn_ended (watcher, thread, 3), 5000);
  g_assert_cmpstr (ab_collector_lookup (watcher, thread, 3)->text->str, ==,
                   after_kill);
  g_assert_false (ab_turn_has_update_with (watcher, thread, 0, "first words"));
  g_assert_false (ab_turn_has_update_with (watcher, thread, 3, "first words"));
  g_assert_null (ab_collector_lookup (watcher, thread, 1));
  ab_collector_free (watcher);

  /* A stopped and started daemon: the record names the ACP session. */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  AB_WAIT_FOR (!ab_broker_name_has_owner (fx->d.connection), 10000);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  rec = prompt_ok (fx, thread, "opened");
  after_restart = g_strdup_printf ("opened by %s 3", rc->method);
  g_assert_cmpstr (rec->text->str, ==, after_restart);
  first_again = ab_session_s (&fx->d, thread, "acp_session");
  g_assert_cmpstr (first_again, ==, acp_session);
}

/* A property of the thread's Session1, read with Properties.Get. */
static GVariant *
session_property (Fixture *fx, const char *thread, const char *name)
{
  g_autofree char *path = ab_session_path (thread);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      fx->d.connection, AB_BUS_NAME, path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", AB_SESSION_IFACE, name),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL,
      &error);
  GVariant *value;

  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return value;
}

static guint64
session_property_t (Fixture *fx, const char *thread, const char *name)
{
  g_autoptr (GVariant) value = session_property (fx, thread, name);

  return g_variant_get_uint64 (value);
}

/* GetSession's and the properties' usage of @thread are these. */
static void
assert_usage (Fixture *fx, const char *thread, guint64 used, guint64 size,
              double cost, const char *currency)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = ab_get_session (&fx->d, thread, &error);
  g_autoptr (GVariant) cost_value = NULL;
  g_autoptr (GVariant) currency_value = NULL;
  guint64 t;
  double d;
  const char *s;

  g_assert_no_error (error);
  g_assert_true (g_variant_lookup (dict, "context_used", "t", &t));
  g_assert_cmpuint (t, ==, used);
  g_assert_true (g_variant_lookup (dict, "context_size", "t", &t));
  g_assert_cmpuint (t, ==, size);
  g_assert_true (g_variant_lookup (dict, "cost", "d", &d));
  g_assert_cmpfloat (d, ==, cost);
  g_assert_true (g_variant_lookup (dict, "cost_currency", "&s", &s));
  g_assert_cmpstr (s, ==, currency);

  /* The properties follow within a second (changes are signalled at most
   * once a second); all four change together. */
  AB_WAIT_FOR (session_property_t (fx, thread, "ContextUsed") == used, 5000);
  g_assert_cmpuint (session_property_t (fx, thread, "ContextSize"), ==, size);
  cost_value = session_property (fx, thread, "Cost");
  g_assert_cmpfloat (g_variant_get_double (cost_value), ==, cost);
  currency_value = session_property (fx, thread, "CostCurrency");
  g_assert_cmpstr (g_variant_get_string (currency_value, NULL), ==, currency);
}

/* The demo agent's usage_update at each turn's end: kept, shown by
 * GetSession and the properties, and relayed as it is. */
static void
test_usage (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:usage";
  g_autofree char *out = NULL, *err = NULL;
  AbTurn *rec;
  gboolean relayed = FALSE;

  start_daemon (fx, "usage");
  rec = prompt_ok (fx, thread, "echo one");
  g_assert_cmpstr (rec->text->str, ==, "echo one");
  for (guint i = 0; i < rec->updates->len; i++)
    relayed |= g_str_equal (rec->updates->pdata[i],
                            "{\"sessionUpdate\":\"usage_update\",\"used\":1000,"
                            "\"size\":200000,\"cost\":{\"amount\":0.25,"
                            "\"currency\":\"USD\"}}");
  g_assert_true (relayed);
  assert_usage (fx, thread, 1000, 200000, 0.25, "USD");
  prompt_ok (fx, thread, "echo two");
  assert_usage (fx, thread, 2000, 200000, 0.5, "USD");

  /* agentctl shows them as systemctl would, unknown as [not set] */
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "-p",
                                    "ContextUsed,ContextSize,Cost,CostCurrency",
                                    thread, NULL),
                   ==, 0);
  g_assert_cmpstr (out, ==,
                   "ContextUsed=2000\nContextSize=200000\nCost=0.5\n"
                   "CostCurrency=USD\n");
}

/* An agent's usage_update with wrong values changes nothing; a session
 * without one says unknown. */
static void
test_usage_hostile (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:usage-hostile";
  g_autofree char *out = NULL, *err = NULL;
  AbTurn *rec;

  start_daemon (fx, NULL);
  prompt_ok (fx, thread, "echo none yet");
  assert_usage (fx, thread, G_MAXUINT64, G_MAXUINT64, -1, "");
  g_assert_cmpint (ab_run_agentctl (&fx->d, &out, &err, "show", "-p",
                                    "ContextUsed,ContextSize,Cost,CostCurrency",
                                    thread, NULL),
                   ==, 0);
  g_assert_cmpstr (out, ==,
                   "ContextUsed=[not set]\nContextSize=[not set]\n"
                   "Cost=[not set]\nCostCurrency=\n");
  rec = prompt_ok (fx, thread,
                   "raw-update {\"sessionUpdate\":\"usage_update\","
                   "\"used\":7,\"size\":70,\"cost\":{\"amount\":1,"
                   "\"currency\":\"EUR\"}}");
  g_assert_cmpuint (rec->updates->len, ==, 1);
  assert_usage (fx, thread, 7, 70, 1, "EUR");
  prompt_ok (fx, thread,
             "raw-update {\"sessionUpdate\":\"usage_update\",\"used\":-7,"
             "\"size\":\"70\",\"cost\":{\"amount\":1e300,\"currency\":"
             "\"EUR\"}}");
  prompt_ok (fx, thread,
             "raw-update {\"sessionUpdate\":\"usage_update\",\"used\":"
             "99999999999999999999,\"size\":[],\"cost\":{\"amount\":2,"
             "\"currency\":\"<script>\"}}");
  prompt_ok (fx, thread, "raw-update {\"sessionUpdate\":\"usage_update\"}");
  assert_usage (fx, thread, 7, 70, 1, "EUR");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/agent-side/" name, Fixture, data, fixture_up, func,            \
              fixture_down)
  ADD ("reopen/resume", test_reopen, &resume_case);
  ADD ("reopen/load", test_reopen, &load_case);
  ADD ("reopen/resume-refused", test_reopen, &resume_refused_case);
  ADD ("usage", test_usage, NULL);
  ADD ("usage/hostile", test_usage_hostile, NULL);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
