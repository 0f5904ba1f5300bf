/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — who may act on and see a session, on a private bus
 * without root: ordinary users are connections the daemon takes for
 * another uid with user access (ab_user_connection()), beside the test's
 * own connection, which is the admin.
 *
 * Every wait is bounded (AB_WAIT_FOR, ab_wait_turn) and a SIGALRM per
 * test turns a hang into a failure that prints the daemon's log.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"

#define TURN_TIMEOUT_MS 20000
#define TEST_ALARM_SECONDS 45
#define ACCESS_DENIED "org.agentbroker.Error.AccessDenied"

typedef struct
{
  AbDaemonFixture d;
  uid_t uid_a, uid_b; /* two ordinary users, neither the test's own uid */
  GDBusConnection *alice, *bob; /* a connection of each, once started */
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
  fx->uid_a = getuid () == 60001 ? 60003 : 60001;
  fx->uid_b = getuid () == 60002 ? 60004 : 60002;
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  g_clear_object (&fx->alice);
  g_clear_object (&fx->bob);
  ab_daemon_fixture_stop_checked (&fx->d);
  ab_daemon_fixture_teardown (&fx->d);
}

/* The demo agent, asking for permissions; @pool: lines under pool: or
 * NULL. Then a connection of Alice and one of Bob. */
static void
start_daemon_with (Fixture *fx, const char *pool)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *yaml
      = g_strdup_printf ("default_agent: demo\n"
                         "agents:\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n"
                         "    permissions: ask\n"
                         "%s%s"
                         "timeouts:\n"
                         "  drain: 2s\n"
                         "  kill: 2s\n",
                         pool != NULL ? "pool:\n" : "", pool ?: "");

  ab_daemon_fixture_write_config (&fx->d, yaml);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  fx->alice = ab_user_connection (&fx->d, fx->uid_a);
  fx->bob = ab_user_connection (&fx->d, fx->uid_b);
}

static void
start_daemon (Fixture *fx)
{
  start_daemon_with (fx, NULL);
}

/* @method(@params) from @connection fails with AccessDenied. */
static void
assert_denied (GDBusConnection *connection, const char *method,
               GVariant *params)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = ab_call_on (connection, method, params, NULL, &error);

  g_test_message ("%s: %s", method, error != NULL ? error->message : "ok");
  g_assert_null (reply);
  ab_assert_error_named (error, AB_ERROR_ACCESS_DENIED, ACCESS_DENIED);
}

/* A refusal for want of access says what the caller lacks and which
 * groups grant it. */
static void
test_refusal_names_groups (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *expected = NULL;

  start_daemon (fx);
  reply = ab_call_on (fx->bob, "Drain", g_variant_new ("(u)", 0), NULL, &error);
  g_assert_null (reply);
  ab_assert_error_named (error, AB_ERROR_ACCESS_DENIED, ACCESS_DENIED);
  expected = g_strdup_printf (
      "Drain needs administrator access, granted by the groups: "
      "agentbroker-admin; uid %u has user",
      (guint)fx->uid_b);
  g_assert_nonnull (strstr (error->message, expected));
}

/* A non-owner with user access is refused each call on another user's
 * session, with AccessDenied, and the session is left as it was. */
static void
test_owner_checks (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:alice/secret";
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  AbCollector *alice_c;
  AbPermission *perm;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx);
  alice_c = ab_collector_new (fx->alice);

  /* Alice's turn waits for her answer to the agent's permission request. */
  turn = ab_prompt (fx->alice, alice_c, thread, "permission");
  AB_WAIT_FOR (alice_c->perms->len > 0, TURN_TIMEOUT_MS);
  perm = alice_c->perms->pdata[0];
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "owner"), ==, fx->uid_a);

  assert_denied (fx->bob, "Prompt",
                 g_variant_new ("(ssa{sv})", thread, "echo from bob", NULL));
  assert_denied (fx->bob, "Cancel", g_variant_new ("(s)", thread));
  assert_denied (fx->bob, "RemoveSession", g_variant_new ("(s)", thread));
  assert_denied (fx->bob, "AnswerPermission",
                 g_variant_new ("(sss)", thread, perm->request, "allow_once"));
  assert_denied (fx->bob, "Watch", g_variant_new ("(s)", thread));
  assert_denied (fx->bob, "Watch", g_variant_new ("(s)", "*"));

  /* None of it reached the session: the turn still waits for Alice, who
   * may answer. */
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "owner"), ==, fx->uid_a);
  g_assert_false (ab_turn_ended (alice_c, thread, turn));
  reply = ab_call_on (
      fx->alice, "AnswerPermission",
      g_variant_new ("(sss)", thread, perm->request, "allow_once"), "()",
      &error);
  g_assert_no_error (error);
  rec = ab_wait_turn (alice_c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "permission: allow_once"));
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "turns"), ==, 1);

  /* The owner herself may do all of it. */
  ab_call_ok_on (fx->alice, "Watch", g_variant_new ("(s)", thread));
  ab_call_ok_on (fx->alice, "Cancel", g_variant_new ("(s)", thread));
  ab_call_ok_on (fx->alice, "RemoveSession", g_variant_new ("(s)", thread));
  ab_collector_free (alice_c);
}

/* A watch registered before the thread exists sees nothing of another
 * user's session on that thread; an admin's does. */
static void
test_watch_before_create (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:bob/later";
  g_autoptr (GDBusConnection) admin = ab_second_connection ();
  AbCollector *alice_c, *bob_c, *admin_c;
  AbTurn *rec;
  guint64 turn;

  start_daemon (fx);
  alice_c = ab_collector_new (fx->alice);
  bob_c = ab_collector_new (fx->bob);
  admin_c = ab_collector_new (admin);
  ab_call_ok_on (fx->alice, "Watch", g_variant_new ("(s)", thread));
  ab_call_ok_on (admin, "Watch", g_variant_new ("(s)", thread));

  turn = ab_prompt (fx->bob, bob_c, thread, "stream 5");
  rec = ab_wait_turn (bob_c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  /* The stream went out to the watchers allowed to see it... */
  rec = ab_wait_turn (admin_c, thread, turn, TURN_TIMEOUT_MS);
  ab_assert_stream (rec, 5, 16);
  /* ...and not to Alice: whatever was sent to her before this round
   * trip's reply has been dispatched after it. */
  ab_sync_with_daemon (fx->alice);
  g_assert_cmpuint (alice_c->session_signals, ==, 0);
  g_assert_cmpuint (alice_c->turns->len, ==, 0);

  ab_collector_free (alice_c);
  ab_collector_free (bob_c);
  ab_collector_free (admin_c);
}

/* A watch of one's own session does not carry over to another user's
 * session once the thread id is removed and taken again. */
static void
test_watch_reused_thread (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:shared/name";
  g_autoptr (GDBusConnection) alice_watch = NULL;
  AbCollector *alice_c, *watch_c, *bob_c;
  AbTurn *rec;
  guint64 turn;
  guint seen;

  start_daemon (fx);
  alice_watch = ab_user_connection (&fx->d, fx->uid_a);
  alice_c = ab_collector_new (fx->alice);
  watch_c = ab_collector_new (alice_watch);
  bob_c = ab_collector_new (fx->bob);

  /* Alice's own session: her second connection watches it and gets its
   * stream. */
  turn = ab_prompt (fx->alice, alice_c, thread, "echo mine");
  ab_call_ok_on (alice_watch, "Watch", g_variant_new ("(s)", thread));
  turn = ab_prompt (fx->alice, alice_c, thread, "stream 3");
  rec = ab_wait_turn (watch_c, thread, turn, TURN_TIMEOUT_MS);
  ab_assert_stream (rec, 3, 16);
  ab_call_ok_on (fx->alice, "RemoveSession", g_variant_new ("(s)", thread));
  g_assert_true (ab_state_is (&fx->d, thread, "(none)"));

  /* Bob takes the thread id: the old watch sees nothing of it. */
  ab_sync_with_daemon (alice_watch);
  seen = watch_c->session_signals;
  turn = ab_prompt (fx->bob, bob_c, thread, "stream 4");
  rec = ab_wait_turn (bob_c, thread, turn, TURN_TIMEOUT_MS);
  ab_assert_stream (rec, 4, 16);
  g_assert_cmpuint (ab_session_u (&fx->d, thread, "owner"), ==, fx->uid_b);
  ab_sync_with_daemon (alice_watch);
  g_assert_cmpuint (watch_c->session_signals, ==, seen);

  ab_collector_free (alice_c);
  ab_collector_free (watch_c);
  ab_collector_free (bob_c);
}

/* Prompts @text on @thread from @connection and waits for its end_turn. */
static void
prompt_done (GDBusConnection *connection, const char *thread, const char *text)
{
  AbCollector *c = ab_collector_new (connection);
  guint64 turn = ab_prompt (connection, c, thread, text);
  AbTurn *rec = ab_wait_turn (c, thread, turn, TURN_TIMEOUT_MS);

  g_assert_cmpstr (rec->reason, ==, "end_turn");
  ab_collector_free (c);
}

/* At pool.max_sessions, a user's new session suspends that user's own
 * idle session, not another user's less recently active one. */
static void
test_eviction_own_first (Fixture *fx, gconstpointer data)
{

  start_daemon_with (fx, "  max_sessions: 2\n");

  prompt_done (fx->bob, "cli:bob/1", "echo b1");
  prompt_done (fx->alice, "cli:alice/1", "echo a1");
  prompt_done (fx->alice, "cli:alice/2", "echo a2");

  g_assert_true (ab_state_is (&fx->d, "cli:alice/1", "suspended"));
  g_assert_true (ab_state_is (&fx->d, "cli:bob/1", "idle"));
  g_assert_cmpuint (ab_session_u (&fx->d, "cli:bob/1", "pid"), !=, 0);
  g_assert_true (ab_state_is (&fx->d, "cli:alice/2", "idle"));

  /* The same for Bob, though Alice's session is the less recently
   * active one now. */
  prompt_done (fx->bob, "cli:bob/2", "echo b2");
  g_assert_true (ab_state_is (&fx->d, "cli:bob/1", "suspended"));
  g_assert_true (ab_state_is (&fx->d, "cli:alice/2", "idle"));
  g_assert_true (ab_state_is (&fx->d, "cli:bob/2", "idle"));
}

/* A user with no idle session of their own may suspend one of a user who
 * runs more agents. */
static void
test_eviction_fair_share (Fixture *fx, gconstpointer data)
{

  start_daemon_with (fx, "  max_sessions: 2\n");

  prompt_done (fx->alice, "cli:alice/1", "echo a1");
  prompt_done (fx->alice, "cli:alice/2", "echo a2");
  prompt_done (fx->bob, "cli:bob/1", "echo b1");
  g_assert_true (ab_state_is (&fx->d, "cli:alice/1", "suspended"));
  g_assert_true (ab_state_is (&fx->d, "cli:alice/2", "idle"));
  g_assert_true (ab_state_is (&fx->d, "cli:bob/1", "idle"));
}

/* A user with no idle session of their own is refused rather than push
 * out the idle session of a user running no more agents; the refusal
 * names the limit. */
static void
test_eviction_refused (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *gate = NULL;
  AbCollector *alice_c;
  guint64 turn;

  start_daemon_with (fx, "  max_sessions: 2\n");
  alice_c = ab_collector_new (fx->alice);

  prompt_done (fx->bob, "cli:bob/1", "echo b1");
  gate = ab_gate_prompt (&fx->d, "alice");
  turn = ab_prompt (fx->alice, alice_c, "cli:alice/1", gate);
  AB_WAIT_FOR (ab_state_is (&fx->d, "cli:alice/1", "busy"), TURN_TIMEOUT_MS);

  g_assert_cmpuint (
      ab_prompt_on (fx->alice, alice_c, "cli:alice/2", "echo a2", NULL, &error),
      ==, 0);
  ab_assert_error_named (error, AB_ERROR_POOL_EXHAUSTED,
                         "org.agentbroker.Error.PoolExhausted");
  g_assert_nonnull (strstr (error->message, "pool.max_sessions"));
  g_assert_true (ab_state_is (&fx->d, "cli:bob/1", "idle"));
  g_assert_true (ab_state_is (&fx->d, "cli:alice/2", "(none)"));

  ab_gate_open (&fx->d, "alice");
  ab_wait_turn (alice_c, "cli:alice/1", turn, TURN_TIMEOUT_MS);
  ab_collector_free (alice_c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/access/" name, Fixture, NULL, fixture_up, func, fixture_down)
  ADD ("owner-checks", test_owner_checks);
  ADD ("refusal-names-groups", test_refusal_names_groups);
  ADD ("watch-before-create", test_watch_before_create);
  ADD ("watch-reused-thread", test_watch_reused_thread);
  ADD ("eviction-own-first", test_eviction_own_first);
  ADD ("eviction-fair-share", test_eviction_fair_share);
  ADD ("eviction-refused", test_eviction_refused);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
