/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the ACP front door driven by a real ACP client:
 * tests/acp-client/client.mjs, a client on the official TypeScript SDK
 * (@agentclientprotocol/sdk, pinned in its package-lock.json), which
 * validates every message `agentctl acp` sends it.  Against the daemon on
 * a private bus with the demo agent: a session made, streamed, prompted
 * with an image, asked for permissions and cancelled by one client
 * process; resumed by a second one in the same broker session (the same
 * agent process); loaded by a third, which gets the conversation
 * replayed and goes on; deleted by a fourth.  Then the same against the
 * agent on the same SDK (tests/sdk-agent/agent.mjs) as the profile's
 * agent: what that agent says it remembers is checked by the client, and
 * its own history file by the test, across a resume, a daemon restart
 * and a load.
 *
 * Needs node and `npm ci` run in tests/acp-client (of the build tree, or
 * of the source tree); without them the test skips, or fails under
 * AGENTBROKER_REQUIRE_ALL_TESTS=1.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "error.h"
#include "peer-common.h"

#define TEST_ALARM_SECONDS 180

typedef struct
{
  PeerFixture p;
  char *node;
  char *client;
  char *sdk_agent;
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  peer_fixture_up (&fx->p, TEST_ALARM_SECONDS);
  fx->node = g_find_program_in_path ("node");
  fx->client = peer_find_installed ("acp-client", "client.mjs",
                                    "@agentclientprotocol/sdk/package.json");
  fx->sdk_agent = peer_find_installed ("sdk-agent", "agent.mjs",
                                       "@agentclientprotocol/sdk/package.json");
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  peer_fixture_down (&fx->p);
  g_free (fx->node);
  g_free (fx->client);
  g_free (fx->sdk_agent);
}

static gboolean
have_client (Fixture *fx)
{
  if (fx->node == NULL)
    {
      peer_unavailable ("node is not installed (the ACP client runs on it)");
      return FALSE;
    }
  if (fx->client == NULL)
    {
      peer_unavailable ("tests/acp-client/node_modules is missing: run "
                        "`npm ci` in tests/acp-client");
      return FALSE;
    }
  return TRUE;
}

/* Runs one phase of the client against `agentctl --user acp`, asserts
 * that every check of it held, and returns the member @key of its
 * result. */
static char *
run_phase_with (Fixture *fx, const char *phase, const char *session,
                const char *extra)
{
  g_autofree char *agentctl = ab_test_program ("agentctl");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (JsonNode) result = NULL;
  const char *line;

  g_ptr_array_add (argv, fx->node);
  g_ptr_array_add (argv, fx->client);
  g_ptr_array_add (argv, (char *)phase);
  if (session != NULL)
    g_ptr_array_add (argv, (char *)session);
  if (extra != NULL)
    g_ptr_array_add (argv, (char *)extra);
  g_ptr_array_add (argv, "--");
  g_ptr_array_add (argv, agentctl);
  g_ptr_array_add (argv, "--user");
  g_ptr_array_add (argv, "acp");
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  ab_subprocess_communicate_bounded (proc, &out, &err);
  g_test_message ("client %s: stdout:\n%s\nstderr:\n%s", phase, out, err);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);

  line = strstr (out, "\nresult ");
  g_assert_nonnull (line);
  result = json_from_string (line + strlen ("\nresult "), &error);
  g_assert_no_error (error);
  return g_strdup (json_object_get_string_member (json_node_get_object (result),
                                                  "sessionId"));
}

static char *
run_phase (Fixture *fx, const char *phase, const char *session)
{
  return run_phase_with (fx, phase, session, NULL);
}

/* Where the daemon keeps the transcript of @thread. */
static char *
transcript_path (Fixture *fx, const char *thread)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".transcript", NULL);

  return g_build_filename (fx->p.d.state_dir, "sessions", name, NULL);
}

static void
test_client (Fixture *fx, gconstpointer data)
{
  g_autofree char *session = NULL, *resumed = NULL, *loaded = NULL;
  g_autofree char *deleted = NULL;
  g_autofree char *transcript = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) gone = NULL;
  guint32 pid;

  if (!have_client (fx))
    return;
  peer_fixture_start (&fx->p, "default_agent: demo\n"
                              "agents:\n"
                              "  demo:\n"
                              "    command: [agentbroker-demo-agent]\n"
                              "    permissions: ask\n"
                              "timeouts:\n"
                              "  drain: 2s\n"
                              "  kill: 2s\n");

  session = run_phase (fx, "first", NULL);
  g_assert_true (g_str_has_prefix (session, "acp:"));
  transcript = transcript_path (fx, session);
  g_assert_true (g_file_test (transcript, G_FILE_TEST_IS_REGULAR));
  /* The client has gone; its session lives on in the broker. */
  pid = ab_session_u (&fx->p.d, session, "pid");
  g_assert_cmpuint (pid, >, 0);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "owner"), ==, getuid ());
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "turns"), ==, 5);

  /* A new client goes on in the same broker session: the same agent. */
  resumed = run_phase (fx, "resume", session);
  g_assert_cmpstr (resumed, ==, session);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "pid"), ==, pid);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "turns"), ==, 7);
  {
    g_autofree char *title = ab_session_s (&fx->p.d, session, "title");

    g_assert_cmpstr (title, ==, "A refactor, titled");
  }

  loaded = run_phase (fx, "load", session);
  g_assert_cmpstr (loaded, ==, session);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "pid"), ==, pid);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "turns"), ==, 8);

  deleted = run_phase (fx, "delete", session);
  g_assert_cmpstr (deleted, ==, session);
  gone = ab_get_session (&fx->p.d, session, &error);
  g_assert_null (gone);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  AB_WAIT_FOR (ab_process_gone (pid), 10000);
  /* The transcript went with the session. */
  g_assert_false (g_file_test (transcript, G_FILE_TEST_EXISTS));
}

/* The prompts the SDK agent keeps in its own history file of the
 * session, joined with '|'. */
static char *
sdk_agent_prompts (Fixture *fx, const char *thread)
{
  g_autofree char *cwd = ab_session_s (&fx->p.d, thread, "cwd");
  g_autofree char *acp = ab_session_s (&fx->p.d, thread, "acp_session");
  g_autofree char *name = g_strconcat (acp, ".json", NULL);
  g_autofree char *file = g_build_filename (cwd, ".sdk-agent", name, NULL);
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) history = NULL;
  g_autoptr (GString) prompts = g_string_new (NULL);
  JsonArray *entries;

  g_assert_true (g_file_get_contents (file, &text, NULL, &error));
  g_assert_no_error (error);
  history = json_from_string (text, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (history));
  entries = json_node_get_array (history);
  for (guint i = 0; i < json_array_get_length (entries); i++)
    {
      JsonObject *entry = json_array_get_object_element (entries, i);

      if (g_str_equal (json_object_get_string_member (entry, "role"), "user"))
        g_string_append_printf (prompts, "%s%s", prompts->len > 0 ? "|" : "",
                                json_object_get_string_member (entry, "text"));
    }
  return g_strdup (prompts->str);
}

static void
test_sdk_agent (Fixture *fx, gconstpointer data)
{
  g_autofree char *yaml = NULL, *session = NULL, *resumed = NULL;
  g_autofree char *loaded = NULL, *acp = NULL, *prompts = NULL;
  guint32 pid;

  if (!have_client (fx))
    return;
  if (fx->sdk_agent == NULL)
    {
      peer_unavailable ("tests/sdk-agent/node_modules is missing: run "
                        "`npm ci` in tests/sdk-agent");
      return;
    }
  yaml = g_strdup_printf ("default_agent: sdk\n"
                          "agents:\n"
                          "  sdk:\n"
                          "    command: ['%s', '%s']\n"
                          "timeouts:\n"
                          "  drain: 2s\n"
                          "  kill: 2s\n",
                          fx->node, fx->sdk_agent);
  peer_fixture_start (&fx->p, yaml);

  session = run_phase (fx, "sdk-first", NULL);
  pid = ab_session_u (&fx->p.d, session, "pid");
  g_assert_cmpuint (pid, >, 0);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "turns"), ==, 3);
  acp = ab_session_s (&fx->p.d, session, "acp_session");
  g_assert_true (g_str_has_prefix (acp, "sdk-"));
  prompts = sdk_agent_prompts (fx, session);
  g_assert_cmpstr (prompts, ==, "hello sdk|stream 500|sleep 30");

  /* A new client resumes: the same agent process goes on. */
  resumed = run_phase (fx, "sdk-resume", session);
  g_assert_cmpstr (resumed, ==, session);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "pid"), ==, pid);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "turns"), ==, 4);

  /* The daemon restarts between two clients: the front door's load
   * replays the broker's transcript, and the agent, started anew, got
   * its own session back (session/load on the agent's side). */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->p.d, SIGTERM), ==, 0);
  AB_WAIT_FOR (ab_process_gone (pid), 10000);
  peer_fixture_start (&fx->p, NULL);
  loaded = run_phase (fx, "sdk-load", session);
  g_assert_cmpstr (loaded, ==, session);
  g_assert_cmpuint (ab_session_u (&fx->p.d, session, "pid"), !=, pid);
  g_clear_pointer (&prompts, g_free);
  prompts = sdk_agent_prompts (fx, session);
  g_assert_cmpstr (prompts, ==,
                   "hello sdk|stream 500|sleep 30|after the resume|after the "
                   "load");
  g_clear_pointer (&acp, g_free);
  acp = ab_session_s (&fx->p.d, session, "acp_session");
  g_assert_true (g_str_has_prefix (acp, "sdk-"));
}

/* session/load while a turn streams: the replay, then that turn's live
 * updates, none missed and none twice (the gate holds the turn until the
 * loading client is there, however slow the machine). */
static void
test_load_running_turn (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:live";
  g_autofree char *gate = NULL, *waiting = NULL, *prompt = NULL;
  g_autofree char *loaded = NULL;
  guint64 turn;
  AbTurn *t;

  if (!have_client (fx))
    return;
  peer_fixture_start (&fx->p, "default_agent: demo\n"
                              "agents:\n"
                              "  demo:\n"
                              "    command: [agentbroker-demo-agent]\n");
  gate = ab_gate_path (&fx->p.d, "live");
  waiting = ab_gate_prompt (&fx->p.d, "live");
  prompt = g_strconcat (waiting, " pace 2000 3000", NULL);
  turn = ab_prompt (fx->p.d.connection, fx->p.c, thread, prompt);
  AB_WAIT_FOR (ab_turn_has_update (fx->p.c, thread, turn), 20000);

  loaded = run_phase_with (fx, "load-live", thread, gate);
  g_assert_cmpstr (loaded, ==, thread);
  t = ab_wait_turn (fx->p.c, thread, turn, 20000);
  g_assert_cmpstr (t->reason, ==, "end_turn");
  /* the prompter saw the same turn: its first chunk, then the 3000 */
  g_assert_cmpuint (t->chunks->len, ==, 3001);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  (void)ab_error_quark ();
  ab_test_bus_up ();
  g_test_add ("/acp-client/first-resume-load-delete", Fixture, NULL, fixture_up,
              test_client, fixture_down);
  g_test_add ("/acp-client/load-running-turn", Fixture, NULL, fixture_up,
              test_load_running_turn, fixture_down);
  g_test_add ("/acp-client/sdk-agent", Fixture, NULL, fixture_up,
              test_sdk_agent, fixture_down);
  return ab_test_run ();
}
