/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — a real ACP peer: tests/sdk-agent/agent.mjs, an agent
 * on the official TypeScript SDK (@agentclientprotocol/sdk, pinned in its
 * package-lock.json), which validates every message the broker sends it
 * against the ACP schema. Driven through the daemon on a private bus:
 * new session, prompt with streaming, cancel, and session/load after an
 * idle suspend and after a daemon restart (HACKING.md).
 *
 * Needs node and `npm ci` run in tests/sdk-agent (of the build tree, or of
 * the source tree); without them the tests skip, or fail under
 * AGENTBROKER_REQUIRE_ALL_TESTS=1.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "peer-common.h"

#define TEST_ALARM_SECONDS 60
#define TURN_MS 20000

typedef struct
{
  PeerFixture p;
  char *node;
  char *agent;
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  peer_fixture_up (&fx->p, TEST_ALARM_SECONDS);
  fx->node = g_find_program_in_path ("node");
  fx->agent = peer_find_installed ("sdk-agent", "agent.mjs",
                                   "@agentclientprotocol/sdk/package.json");
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  peer_fixture_down (&fx->p);
  g_free (fx->node);
  g_free (fx->agent);
}

/* FALSE (and the test skipped or failed) when node or the SDK is missing. */
static gboolean
have_peer (Fixture *fx)
{
  if (fx->node == NULL)
    {
      peer_unavailable ("node is not installed (the SDK agent runs on it)");
      return FALSE;
    }
  if (fx->agent == NULL)
    {
      peer_unavailable ("tests/sdk-agent/node_modules is missing: run "
                        "`npm ci` in tests/sdk-agent");
      return FALSE;
    }
  return TRUE;
}

/* The daemon with the SDK agent as its default profile; @pool: lines
 * under pool:, may be NULL. */
static void
start_daemon (Fixture *fx, const char *pool)
{
  g_autofree char *yaml = g_strdup_printf (
      "default_agent: sdk\n"
      "agents:\n"
      "  sdk:\n"
      "    command: ['%s', '%s']\n"
      "%s%s"
      "timeouts:\n"
      "  drain: 2s\n"
      "  kill: 2s\n",
      fx->node, fx->agent, pool != NULL ? "pool:\n" : "", pool ?: "");

  peer_fixture_start (&fx->p, yaml);
}

/* Prompts on the test's connection and waits for the turn; asserts it
 * ended with end_turn and returns it. */
static AbTurn *
prompt_ok (Fixture *fx, const char *thread, const char *text)
{
  guint64 turn = ab_prompt (fx->p.d.connection, NULL, thread, text);
  AbTurn *t = ab_wait_turn (fx->p.c, thread, turn, TURN_MS);

  g_test_message ("%s turn %" G_GUINT64_FORMAT ": %s (%u Update signals, "
                  "%u chunks): %s",
                  thread, turn, t->reason, t->update_signals, t->chunks->len,
                  t->text->str);
  g_assert_cmpstr (t->reason, ==, "end_turn");
  g_assert_cmpuint (t->chunks->len, >, 0);
  g_assert_cmpstr (t->chunks->pdata[0], ==, "sdk-agent: ");
  return t;
}

static void
test_new_prompt_stream (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sdk-stream";
  g_autofree char *acp = NULL, *state = NULL;
  g_autofree char *out = NULL, *err = NULL;
  AbTurn *t;
  guint32 pid;
  int status;

  if (!have_peer (fx))
    return;
  start_daemon (fx, NULL);

  t = prompt_ok (fx, thread, "hello sdk");
  /* Streamed: the agent writes its chunks 20 ms apart, and each goes out
   * at once. */
  g_assert_cmpuint (t->update_signals, >=, 3);
  g_assert_cmpuint (t->chunks->len, ==, 4);
  g_assert_nonnull (
      strstr (t->text->str, "I remember 0 earlier prompts in this session"));
  g_assert_nonnull (strstr (t->text->str, "You said: \"hello sdk\"."));

  acp = ab_session_s (&fx->p.d, thread, "acp_session");
  g_assert_true (g_str_has_prefix (acp, "sdk-"));
  pid = ab_session_u (&fx->p.d, thread, "pid");
  g_assert_cmpuint (pid, >, 0);
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "idle"), 5000);

  /* Same process, same ACP session: the agent counts the first prompt. */
  t = prompt_ok (fx, thread, "and again");
  g_assert_nonnull (strstr (t->text->str,
                            "I remember 1 earlier prompt in this session; "
                            "the last one was \"hello sdk\""));
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), ==, pid);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "turns"), ==, 2);

  /* agentctl prints the stream and exits 0 on end_turn. */
  status = ab_run_agentctl (&fx->p.d, &out, &err, "prompt", thread,
                            "third time", NULL);
  g_test_message ("agentctl prompt: status %d, stdout %s, stderr %s", status,
                  out, err);
  g_assert_cmpint (status, ==, 0);
  g_assert_true (g_str_has_prefix (out, "sdk-agent: I remember 2 earlier"));
  g_assert_nonnull (strstr (out, "You said: \"third time\"."));

  /* Removal stops the agent. */
  ab_call_ok (&fx->p.d, "RemoveSession", g_variant_new ("(s)", thread));
  AB_WAIT_FOR (ab_process_gone (pid), 5000);
}

static void
test_cancel (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sdk-cancel";
  AbTurn *t;
  guint64 turn;
  gint64 start;

  if (!have_peer (fx))
    return;
  start_daemon (fx, NULL);

  turn = ab_prompt (fx->p.d.connection, NULL, thread, "sleep 30");
  AB_WAIT_FOR (ab_turn_has_update (fx->p.c, thread, turn), TURN_MS);
  t = ab_collector_lookup (fx->p.c, thread, turn);
  g_assert_false (t->ended);
  g_assert_cmpuint (t->chunks->len, ==, 1);
  g_assert_cmpstr (t->chunks->pdata[0], ==, "sdk-agent: sleeping 30 s");

  start = g_get_monotonic_time ();
  ab_call_ok (&fx->p.d, "Cancel", g_variant_new ("(s)", thread));
  t = ab_wait_turn (fx->p.c, thread, turn, 10000);
  g_assert_cmpstr (t->reason, ==, "cancelled");
  /* Ended by the cancel, far from the 30 s sleep. */
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);

  /* The session goes on: the cancelled prompt is in the agent's history. */
  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "idle"), 5000);
  t = prompt_ok (fx, thread, "after the cancel");
  g_assert_nonnull (strstr (t->text->str,
                            "I remember 1 earlier prompt in this session; "
                            "the last one was \"sleep 30\""));
}

/* After a resume: the agent got its history back through session/load,
 * and the broker did not pass the replay on as news. */
static void
assert_resumed (Fixture *fx, const char *thread, const char *acp_before,
                guint32 pid_before, const char *first)
{
  g_autofree char *acp = NULL;
  g_autofree char *expect = g_strdup_printf (
      "sdk-agent: I remember 1 earlier prompt in this session; the last one "
      "was \"%s\". You said: \"what do you remember\".",
      first);
  AbTurn *t = prompt_ok (fx, thread, "what do you remember");

  g_assert_cmpstr (t->text->str, ==, expect);
  acp = ab_session_s (&fx->p.d, thread, "acp_session");
  g_assert_cmpstr (acp, ==, acp_before);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), !=, 0);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), !=, pid_before);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "turns"), ==, 2);
}

static void
test_load_after_idle_suspend (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sdk-idle";
  g_autofree char *acp = NULL;
  guint32 pid;

  if (!have_peer (fx))
    return;
  start_daemon (fx, "  idle_timeout: 1s\n");

  prompt_ok (fx, thread, "remember this");
  acp = ab_session_s (&fx->p.d, thread, "acp_session");
  pid = ab_session_u (&fx->p.d, thread, "pid");

  AB_WAIT_FOR (ab_state_is (&fx->p.d, thread, "suspended"), 10000);
  g_assert_cmpuint (ab_session_u (&fx->p.d, thread, "pid"), ==, 0);
  AB_WAIT_FOR (ab_process_gone (pid), 5000);

  assert_resumed (fx, thread, acp, pid, "remember this");
}

static void
test_load_after_restart (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sdk-restart";
  g_autofree char *acp = NULL;
  guint32 pid;

  if (!have_peer (fx))
    return;
  start_daemon (fx, NULL);

  prompt_ok (fx, thread, "before the restart");
  acp = ab_session_s (&fx->p.d, thread, "acp_session");
  pid = ab_session_u (&fx->p.d, thread, "pid");

  /* A clean stop: no RemoveSession, the record stays in the state dir. */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->p.d, SIGTERM), ==, 0);
  g_assert_true (ab_process_gone (pid));
  peer_fixture_start (&fx->p, NULL);
  g_assert_true (ab_state_is (&fx->p.d, thread, "suspended"));

  assert_resumed (fx, thread, acp, pid, "before the restart");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  ab_test_bus_up ();
#define ADD(name, fn)                                                          \
  g_test_add ("/sdk-agent/" name, Fixture, NULL, fixture_up, fn, fixture_down)
  ADD ("new-prompt-stream", test_new_prompt_stream);
  ADD ("cancel", test_cancel);
  ADD ("load-after-idle-suspend", test_load_after_idle_suspend);
  ADD ("load-after-restart", test_load_after_restart);
#undef ADD
  return ab_test_run ();
}
