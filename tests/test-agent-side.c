/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — what the broker does with the agent side of ACP 1,
 * through the daemon on a private bus: a new agent process for an existing
 * session resumes its ACP session when the agent advertises
 * sessionCapabilities.resume (else loads it).
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
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
