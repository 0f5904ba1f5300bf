/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — a real production agent: @zed-industries/codex-acp
 * (npm, a native binary; pinned in tests/codex-acp/package-lock.json)
 * behind the daemon on a private bus, offline.
 *
 * Offline, codex-acp gets through initialize, authenticate (method
 * openai-api-key, a dummy OPENAI_API_KEY), session/new and an
 * available_commands_update outside any turn; its session/prompt then
 * fails with a JSON-RPC error once its retries give up (about 30 s). The
 * broker must show that as: session created, `agentctl prompt` non-zero
 * with the agent's message, the session idle and usable, the daemon
 * unharmed. Without auth_method, session/new fails "Authentication
 * required" and the broker's AgentFailed names the agent's auth methods.
 *
 * Should the machine reach api.openai.com, the dummy key is refused
 * instead: still a JSON-RPC error, so the test holds either way.
 *
 * Needs node and `npm ci` run in tests/codex-acp (build or source tree);
 * without them the tests skip, or fail under AGENTBROKER_REQUIRE_ALL_TESTS=1.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "peer-common.h"

/* The failing turn takes ~30 s of retries; leave room on a slow machine. */
#define TEST_ALARM_SECONDS 150
#define FAILING_TURN_MS 120000

typedef struct
{
  PeerFixture p;
  char *codex;
  char *codex_home;
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  peer_fixture_up (&fx->p, TEST_ALARM_SECONDS);
  fx->codex = peer_find_installed ("codex-acp", "node_modules/.bin/codex-acp",
                                   "@zed-industries/codex-acp/package.json");
  /* codex keeps its config, sessions and logs here, not in $HOME. */
  fx->codex_home = g_build_filename (fx->p.d.tmpdir, "codex-home", NULL);
  g_assert_cmpint (g_mkdir_with_parents (fx->codex_home, 0700), ==, 0);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  peer_fixture_down (&fx->p);
  g_free (fx->codex);
  g_free (fx->codex_home);
}

static gboolean
have_peer (Fixture *fx)
{
  g_autofree char *node = g_find_program_in_path ("node");

  if (node == NULL)
    {
      peer_unavailable ("node is not installed (codex-acp's launcher runs "
                        "on it)");
      return FALSE;
    }
  if (fx->codex == NULL)
    {
      peer_unavailable ("tests/codex-acp/node_modules is missing: run "
                        "`npm ci` in tests/codex-acp");
      return FALSE;
    }
  return TRUE;
}

/* Profiles: codex (authenticates with openai-api-key), codex-noauth (no
 * auth_method), demo (to show the daemon unharmed). */
static void
start_daemon (Fixture *fx)
{
  g_autofree char *yaml
      = g_strdup_printf ("default_agent: codex\n"
                         "agents:\n"
                         "  codex:\n"
                         "    command: ['%s']\n"
                         "    auth_method: openai-api-key\n"
                         "    env:\n"
                         "      OPENAI_API_KEY: sk-agentbroker-test-dummy-key\n"
                         "      CODEX_HOME: '%s'\n"
                         "  codex-noauth:\n"
                         "    command: ['%s']\n"
                         "    env:\n"
                         "      CODEX_HOME: '%s'\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n"
                         "timeouts:\n"
                         "  drain: 2s\n"
                         "  kill: 3s\n",
                         fx->codex, fx->codex_home, fx->codex, fx->codex_home);

  peer_fixture_start (&fx->p, yaml);
}

typedef struct
{
  gboolean done;
  int status;
  char *out;
  char *err;
} Ctl;

static void
on_ctl_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Ctl *ctl = user_data;
  g_autoptr (GError) error = NULL;
  GSubprocess *proc = G_SUBPROCESS (source);

  g_subprocess_communicate_utf8_finish (proc, result, &ctl->out, &ctl->err,
                                        &error);
  g_assert_no_error (error);
  ctl->status = g_subprocess_get_if_exited (proc)
                    ? g_subprocess_get_exit_status (proc)
                    : -1;
  ctl->done = TRUE;
}

static void
test_offline_turn_fails (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:codex";
  g_autoptr (GDBusConnection) watcher_conn = NULL;
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *agentctl = ab_test_program ("agentctl");
  g_autofree char *acp = NULL, *last_reason = NULL;
  g_autofree char *list_out = NULL, *list_err = NULL;
  g_autofree char *demo_out = NULL;
  g_auto (GStrv) lines = NULL;
  gboolean listed = FALSE;
  AbCollector *watcher;
  AbTurn *t;
  Ctl ctl = { 0 };
  guint32 pid;
  guint64 turn;
  gint64 start;

  if (!have_peer (fx))
    return;
  start_daemon (fx);

  /* A second connection watches everything: it gets turn 0. */
  watcher_conn = ab_second_connection ();
  watcher = ab_collector_new (watcher_conn);
  reply = g_dbus_connection_call_sync (
      watcher_conn, "org.agentbroker.Broker1", "/org/agentbroker/Broker1",
      "org.agentbroker.Broker1", "Watch", g_variant_new ("(s)", "*"), NULL,
      G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
  g_assert_no_error (error);

  start = g_get_monotonic_time ();
  proc = g_subprocess_new (
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
      agentctl, "--user", "prompt", thread, "Say hello.", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, on_ctl_done, &ctl);

  /* The handshake went through: a session with codex's own session id,
   * busy with the turn, and its available_commands_update as turn 0. */
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "busy") || ctl.done, 30000);
  g_assert_false (ctl.done);
  acp = ab_session_s (&fx->p.d, thread, "acp_session");
  g_assert_cmpstr (acp, !=, "");
  pid = ab_session_u (&fx->p.d, thread, "pid");
  g_assert_cmpuint (pid, >, 0);
  AB_WAIT_FOR (ab_turn_has_update_with (watcher, thread, 0,
                                        "\"available_commands_update\"")
                   || ctl.done,
               30000);
  g_assert_true (ab_turn_has_update_with (watcher, thread, 0,
                                          "\"available_commands_update\""));
  g_test_message ("session %s (codex pid %u) created in %.1f s", acp, pid,
                  (g_get_monotonic_time () - start) / 1e6);

  /* Its retries give up: the prompt fails with the agent's message. */
  AB_WAIT_FOR (ctl.done, FAILING_TURN_MS);
  g_test_message ("agentctl prompt after %.1f s: status %d\nstdout: %s\n"
                  "stderr: %s",
                  (g_get_monotonic_time () - start) / 1e6, ctl.status, ctl.out,
                  ctl.err);
  g_assert_cmpint (ctl.status, !=, 0);
  t = ab_wait_turn (watcher, thread, 1, 5000);
  g_test_message ("TurnEnded: %s: %s", t->reason, t->message);
  g_assert_cmpstr (t->reason, ==, "agent-error");
  g_assert_cmpstr (t->message, !=, "");
  /* agentctl printed the agent's message verbatim. */
  g_assert_nonnull (strstr (ctl.err, "agent-error"));
  g_assert_nonnull (strstr (ctl.err, t->message));

  /* The session is idle on the same process, and usable. */
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "idle"), 5000);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), ==, pid);
  g_assert_false (ab_process_gone (pid));
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "turns"), ==, 1);
  last_reason = ab_session_s (&fx->p.d, thread, "last_reason");
  g_assert_cmpstr (last_reason, ==, "agent-error");
  g_assert_cmpint (
      ab_run_agentctl (&fx->p.d, &list_out, &list_err, "list", NULL), ==, 0);
  g_test_message ("agentctl list:\n%s", list_out);
  lines = g_strsplit (list_out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], thread) && strstr (lines[i], " idle ")
        && strstr (lines[i], " codex "))
      listed = TRUE;
  g_assert_true (listed);

  /* Usable: a second turn is accepted, reaches the agent, and ends on
   * Cancel without waiting out the retries. */
  turn = ab_prompt (fx->p.d.connection, NULL, thread, "Another try.");
  g_assert_cmpuint (turn, ==, 2);
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "busy"), 5000);
  start = g_get_monotonic_time ();
  ab_call_ok (&fx->p.d, "Cancel", g_variant_new ("(s)", thread));
  t = ab_wait_turn (fx->p.c, thread, turn, 20000);
  g_test_message ("cancelled turn ended after %.1f s: %s: %s",
                  (g_get_monotonic_time () - start) / 1e6, t->reason,
                  t->message);
  g_assert_cmpstr (t->reason, ==, "cancelled");
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "idle"), 10000);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), ==, pid);

  /* The daemon is unharmed: another agent still answers. */
  g_assert_cmpint (ab_run_agentctl (&fx->p.d, &demo_out, NULL, "prompt",
                                    "--agent", "demo", "cli:demo",
                                    "echo still here", NULL),
                   ==, 0);
  g_assert_nonnull (strstr (demo_out, "still here"));

  /* And removal takes codex's whole process group down. */
  ab_call_ok (&fx->p.d, "RemoveSession", g_variant_new ("(s)", thread));
  AB_WAIT_FOR (ab_process_gone (pid), 10000);
  ab_collector_free (watcher);
  g_free (ctl.out);
  g_free (ctl.err);
}

static void
test_no_auth_method (Fixture *fx, gconstpointer data)
{
  static const char *const named[]
      = { "openai-api-key", "codex-api-key", "chatgpt", NULL };
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL, *remote = NULL;
  guint64 turn;
  int status;

  if (!have_peer (fx))
    return;
  start_daemon (fx);

  turn = ab_prompt_on (fx->p.d.connection, NULL, "cli:noauth", "Say hello.",
                       "codex-noauth", &error);
  g_assert_cmpuint (turn, ==, 0);
  g_assert_nonnull (error);
  remote = g_dbus_error_get_remote_error (error);
  g_assert_cmpstr (remote, ==, "org.agentbroker.Error.AgentFailed");
  g_test_message ("Prompt without auth_method: %s", error->message);
  g_assert_nonnull (strstr (error->message, "Authentication required"));
  for (guint i = 0; named[i] != NULL; i++)
    g_assert_nonnull (strstr (error->message, named[i]));

  /* agentctl says the same and exits non-zero. */
  status = ab_run_agentctl (&fx->p.d, &out, &err, "prompt", "--agent",
                            "codex-noauth", "cli:noauth2", "Say hello.", NULL);
  g_test_message ("agentctl prompt: status %d, stderr: %s", status, err);
  g_assert_cmpint (status, !=, 0);
  g_assert_nonnull (strstr (err, "openai-api-key"));

  /* The daemon is unharmed. */
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (ab_run_agentctl (&fx->p.d, &out, NULL, "prompt", "--agent",
                                    "demo", "cli:demo", "echo fine", NULL),
                   ==, 0);
  g_assert_nonnull (strstr (out, "fine"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  ab_test_bus_up ();
#define ADD(name, fn)                                                          \
  g_test_add ("/codex-acp/" name, Fixture, NULL, fixture_up, fn, fixture_down)
  ADD ("no-auth-method", test_no_auth_method);
  ADD ("offline-turn-fails", test_offline_turn_fails);
#undef ADD
  return ab_test_run ();
}
