/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — AbSession and AbPool against scripted agents
 *
 * No daemon, no bus, no process: the sessions' agents are fake-agent.c's,
 * in this process, each behind a real AbAcpConnection on a socketpair.
 * The tests drive the agent and watch the session's signals.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bounded-wait.h"
#include "broker.h"
#include "error.h"
#include "fake-agent.h"
#include "metrics.h"
#include "pool.h"
#include "scratch-dir.h"
#include "session-list.h"
#include "session.h"

/* generous: the suite also runs under valgrind */
#define WAIT_MS 30000

#define THREAD "test:thread"

typedef struct
{
  char *state_dir;
  AbConfig *config;
  AbFakeLauncher *launcher;
  AbSession *session;
  GString *events; /* "update T text", "ended T reason", "ask T id" lines */
  guint ended;
  char *request;    /* the last permission request's id */
  guint64 last_seq; /* the stream number of the last signal */
  GArray *seqs;     /* every signal's stream number, in order */
} Fixture;

static AbConfig *
config_with (const char *agent_yaml, const char *timeouts_yaml)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *yaml = g_strdup_printf ("default_agent: fake\n"
                                           "agents:\n"
                                           "  fake:\n"
                                           "    command: [unused]\n"
                                           "%s"
                                           "timeouts: {kill: 1s%s}\n",
                                           agent_yaml, timeouts_yaml);
  AbConfig *config
      = ab_config_load_from_data (yaml, strlen (yaml), "test.yaml", &error);

  g_assert_no_error (error);
  return config;
}

/* The text of an agent_message_chunk update. */
static char *
update_text (const char *json)
{
  const char *start = strstr (json, "\"text\":\"");

  g_assert_nonnull (start);
  start += strlen ("\"text\":\"");
  return g_strndup (start, strchr (start, '"') - start);
}

/* Every streaming signal is numbered above the one before. */
static void
take_seq (Fixture *f, guint64 seq)
{
  g_assert_cmpuint (seq, >, f->last_seq);
  f->last_seq = seq;
  g_array_append_val (f->seqs, seq);
}

static void
on_update (AbSession *session, guint64 turn, const char *const *updates,
           const char *recipient, guint64 seq, Fixture *f)
{
  take_seq (f, seq);
  for (guint i = 0; updates[i] != NULL; i++)
    {
      g_autofree char *text = update_text (updates[i]);

      g_string_append_printf (f->events, "update %" G_GUINT64_FORMAT " %s\n",
                              turn, text);
    }
}

static void
on_turn_ended (AbSession *session, guint64 turn, const char *reason,
               const char *message, const char *recipient, gint64 duration_usec,
               guint64 seq, Fixture *f)
{
  take_seq (f, seq);
  g_string_append_printf (f->events, "ended %" G_GUINT64_FORMAT " %s%s\n", turn,
                          reason, duration_usec < 0 ? " (dropped)" : "");
  f->ended++;
}

static void
on_permission (AbSession *session, guint64 turn, const char *request,
               const char *json, const char *recipient, guint64 seq, Fixture *f)
{
  take_seq (f, seq);
  g_string_append_printf (f->events, "ask %" G_GUINT64_FORMAT "\n", turn);
  g_free (f->request);
  f->request = g_strdup (request);
}

static void
watch (Fixture *f, AbSession *session)
{
  g_signal_connect (session, "update", G_CALLBACK (on_update), f);
  g_signal_connect (session, "turn-ended", G_CALLBACK (on_turn_ended), f);
  g_signal_connect (session, "permission-requested", G_CALLBACK (on_permission),
                    f);
}

static void
setup_with (Fixture *f, const char *agent_yaml, const char *timeouts_yaml)
{
  g_autoptr (GError) error = NULL;

  f->state_dir = g_dir_make_tmp ("ab-session-XXXXXX", &error);
  g_assert_no_error (error);
  f->config = config_with (agent_yaml, timeouts_yaml);
  f->launcher = ab_fake_launcher_new ();
  f->session
      = ab_session_new (THREAD, "fake", getuid (), f->config, f->state_dir);
  ab_session_set_launcher (f->session, AB_AGENT_LAUNCHER (f->launcher));
  f->events = g_string_new (NULL);
  f->seqs = g_array_new (FALSE, FALSE, sizeof (guint64));
  watch (f, f->session);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  setup_with (f, data != NULL ? data : "", "");
}

static void
inactivity_setup (Fixture *f, gconstpointer data)
{
  setup_with (f, "", ", turn_inactivity: 300ms");
}

static void on_suspended (GObject *source, GAsyncResult *result,
                          gpointer user_data);

/* The session's agent is stopped before the session goes, as the pool
 * does: nothing of one test reaches the next. */
static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  gboolean suspended = FALSE;

  ab_session_suspend_async (f->session, "test over", on_suspended, &suspended);
  AB_ITERATE_UNTIL (suspended, WAIT_MS);
  g_assert_finalize_object (g_steal_pointer (&f->session));
  g_clear_object (&f->launcher);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  ab_store_flush ();
  ab_config_unref (f->config);
  ab_remove_tree (f->state_dir);
  g_free (f->state_dir);
  g_string_free (f->events, TRUE);
  g_array_unref (f->seqs);
  g_free (f->request);
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL
                          | G_LOG_LEVEL_WARNING);
}

/* ---- helpers ----------------------------------------------------------- */

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError **error = user_data;
  guint64 turn = 0;

  if (!ab_session_prompt_finish (AB_SESSION (source), result, &turn, error))
    g_assert_nonnull (*error);
}

static void
prompt (Fixture *f, const char *text)
{
  ab_session_prompt_async (f->session, text, ":1.1", on_prompted, NULL);
}

static AbFakeAgent *
agent (Fixture *f, guint i)
{
  AB_ITERATE_UNTIL (ab_fake_launcher_get_launches (f->launcher) > i, WAIT_MS);
  return ab_fake_launcher_get_agent (f->launcher, i);
}

static void
wait_logged (AbFakeAgent *a, const char *line)
{
  AB_ITERATE_UNTIL (ab_fake_agent_has_logged (a, line), WAIT_MS);
}

static void
wait_ended (Fixture *f, guint n)
{
  AB_ITERATE_UNTIL (f->ended >= n, WAIT_MS);
}

static void
assert_events (Fixture *f, const char *expected)
{
  g_assert_cmpstr (f->events->str, ==, expected);
}

static void
assert_log (AbFakeAgent *a, const char *expected)
{
  g_autofree char *log = ab_fake_agent_get_log (a);

  g_assert_cmpstr (log, ==, expected);
}

/* ---- turns ------------------------------------------------------------- */

/* Prompts run one at a time in the order they came; each turn's updates
 * come before its end, and the record names a turn running before the
 * agent sees its prompt. */
static void
test_queue_order (Fixture *f, gconstpointer data)
{
  AbFakeAgent *a;

  prompt (f, "one");
  prompt (f, "two");
  prompt (f, "three");
  a = agent (f, 0);
  wait_logged (a, "session/prompt one (record: running 1)");
  g_assert_cmpuint (ab_session_get_queued (f->session), ==, 2);
  ab_fake_agent_send_text (a, "a1");
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_logged (a, "session/prompt two (record: running 2)");
  ab_fake_agent_send_text (a, "a2");
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_logged (a, "session/prompt three (record: running 3)");
  ab_fake_agent_finish_prompt (a, "max_tokens");
  wait_ended (f, 3);
  assert_events (f, "update 1 a1\n"
                    "ended 1 end_turn\n"
                    "update 2 a2\n"
                    "ended 2 end_turn\n"
                    "ended 3 max_tokens\n");
  assert_log (a, "initialize\n"
                 "session/new\n"
                 "session/prompt one (record: running 1)\n"
                 "session/prompt two (record: running 2)\n"
                 "session/prompt three (record: running 3)");
  g_assert_cmpuint (ab_fake_launcher_get_launches (f->launcher), ==, 1);
  g_assert_cmpstr (
      ab_session_state_to_string (ab_session_get_state (f->session)), ==,
      "idle");
}

/* ---- the stream's numbers and replay ------------------------------------ */

static void
on_replayed (const AbStreamEvent *event, gpointer user_data)
{
  GString *out = user_data;

  g_string_append_printf (out, "%" G_GUINT64_FORMAT " ", event->seq);
  switch (event->kind)
    {
    case AB_STREAM_UPDATE:
      for (guint i = 0; event->updates[i] != NULL; i++)
        {
          g_autofree char *text = update_text (event->updates[i]);

          g_string_append_printf (out, "update %s\n", text);
        }
      break;
    case AB_STREAM_TURN_ENDED:
      g_string_append_printf (out, "ended %s\n", event->first);
      break;
    case AB_STREAM_PERMISSION_REQUESTED:
      g_string_append_printf (out, "ask %s\n", event->first);
      break;
    }
}

static guint
count_lines (const char *text)
{
  guint n = 0;

  for (const char *p = text; *p != '\0'; p++)
    n += *p == '\n';
  return n;
}

/* Sends @text and waits until it is signalled: one Update each. */
static void
send_one (Fixture *f, AbFakeAgent *a, const char *text)
{
  guint before = f->seqs->len;

  ab_fake_agent_send_text (a, text);
  AB_ITERATE_UNTIL (f->seqs->len > before, WAIT_MS);
}

/* The session's only record, as on disk. */
static AbSessionRecord *
load_record (Fixture *f)
{
  g_autofree char *dir = ab_store_dir (f->state_dir);
  g_autoptr (GPtrArray) records = NULL;

  ab_store_flush ();
  records = ab_store_load_all (dir);
  g_assert_cmpuint (records->len, ==, 1);
  return g_ptr_array_steal_index (records, 0);
}

/* Every streaming signal is numbered; ab_session_replay() gives those
 * above a number, in order, and says whether any is missing; a record
 * keeps numbers ahead of those given, and a session made from it numbers
 * above them. */
static void
test_stream (Fixture *f, gconstpointer data)
{
  g_autoptr (GString) replayed = g_string_new (NULL);
  g_autoptr (AbSessionRecord) record = NULL;
  g_autoptr (AbSessionRecord) later = NULL;
  g_autoptr (AbSession) next = NULL;
  g_autofree char *expected = NULL;
  guint64 s[4], last;
  AbFakeAgent *a;

  prompt (f, "one");
  a = agent (f, 0);
  wait_logged (a, "session/prompt one (record: running 1)");
  send_one (f, a, "a1");
  send_one (f, a, "a2");
  send_one (f, a, "a3");
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_ended (f, 1);
  g_assert_cmpuint (f->seqs->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    s[i] = g_array_index (f->seqs, guint64, i);
  /* A new session numbers from its creation time, in microseconds. */
  g_assert_cmpuint (s[0], >, (guint64)ab_session_get_created (f->session));
  g_assert_cmpuint (ab_session_get_stream_seq (f->session), ==, s[3]);

  g_assert_true (ab_session_replay (f->session, s[0], on_replayed, replayed));
  expected = g_strdup_printf ("%" G_GUINT64_FORMAT " update a2\n"
                              "%" G_GUINT64_FORMAT " update a3\n"
                              "%" G_GUINT64_FORMAT " ended end_turn\n",
                              s[1], s[2], s[3]);
  g_assert_cmpstr (replayed->str, ==, expected);
  g_string_truncate (replayed, 0);
  /* Nothing after the last; everything of a session that lost nothing. */
  g_assert_true (ab_session_replay (f->session, s[3], on_replayed, replayed));
  g_assert_cmpstr (replayed->str, ==, "");
  g_assert_true (ab_session_replay (f->session, 0, on_replayed, replayed));
  g_assert_cmpuint (count_lines (replayed->str), ==, 4);

  /* The record reserves numbers ahead of the last one given. */
  record = load_record (f);
  g_assert_cmpuint (record->stream_seq, >, s[3]);

  /* A session made from it (the next instance, after a crash) numbers
   * above the reservation, and cannot vouch for what came before. */
  next = ab_session_new_from_record (record, f->config, f->state_dir);
  g_assert_cmpuint (ab_session_get_stream_seq (next), ==, record->stream_seq);
  g_assert_false (ab_session_replay (next, s[3], on_replayed, replayed));
  g_assert_true (
      ab_session_replay (next, record->stream_seq, on_replayed, replayed));

  /* At most AB_SESSION_REPLAY_SIGNALS are kept: older ones are missing. */
  prompt (f, "two");
  wait_logged (a, "session/prompt two (record: running 2)");
  for (guint i = 0; i < AB_SESSION_REPLAY_SIGNALS + 10; i++)
    send_one (f, a, "x");
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_ended (f, 2);
  last = ab_session_get_stream_seq (f->session);
  g_assert_cmpuint (last, ==, f->last_seq);
  g_string_truncate (replayed, 0);
  g_assert_false (ab_session_replay (f->session, s[3], on_replayed, replayed));
  g_assert_cmpuint (count_lines (replayed->str), ==, AB_SESSION_REPLAY_SIGNALS);
  g_assert_true (
      ab_session_replay (f->session, last - 5, on_replayed, replayed));
  /* The record of the turn's end reserves above its numbers too. */
  later = load_record (f);
  g_assert_cmpuint (later->stream_seq, >, last);
}

/* A restart hands the queued prompts over in the record, with their
 * callers; a session made from it runs them in order, once the daemon
 * owns its name, and the turn whose agent did not survive ends
 * interrupted. */
static void
test_queue_handover (Fixture *f, gconstpointer data)
{
  g_autoptr (AbSessionRecord) record = NULL;
  g_autoptr (AbSession) next = NULL;
  gboolean suspended = FALSE;
  JsonArray *queued;
  AbFakeAgent *a, *b;

  prompt (f, "one");
  a = agent (f, 0);
  wait_logged (a, "session/prompt one (record: running 1)");
  prompt (f, "two");
  prompt (f, "three");
  AB_ITERATE_UNTIL (ab_session_get_queued (f->session) == 2, WAIT_MS);
  ab_session_detach_agent (f->session);

  record = load_record (f);
  g_assert_true (record->handed_over);
  g_assert_cmpuint (record->running_turn, ==, 1);
  g_assert_cmpuint (record->turns, ==, 3);
  g_assert_nonnull (record->queued);
  queued = json_node_get_array (record->queued);
  g_assert_cmpuint (json_array_get_length (queued), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (
                       json_array_get_object_element (queued, 1), "sender"),
                   ==, ":1.1");

  next = ab_session_new_from_record (record, f->config, f->state_dir);
  ab_session_set_launcher (next, AB_AGENT_LAUNCHER (f->launcher));
  g_string_truncate (f->events, 0);
  f->ended = 0;
  watch (f, next);
  g_assert_cmpuint (ab_session_get_queued (next), ==, 2);
  /* Nothing runs before the daemon owns its name. */
  for (guint i = 0; i < 10; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpuint (ab_fake_launcher_get_launches (f->launcher), ==, 1);

  ab_session_forget_handover (next);
  ab_session_go_on (next);
  b = agent (f, 1);
  wait_logged (b, "session/prompt two (record: running 2)");
  ab_fake_agent_finish_prompt (b, "end_turn");
  wait_logged (b, "session/prompt three (record: running 3)");
  ab_fake_agent_finish_prompt (b, "end_turn");
  wait_ended (f, 2);
  assert_events (f, "ended 2 end_turn\n"
                    "ended 3 end_turn\n");
  g_assert_cmpuint (ab_session_get_last_turn (next), ==, 3);

  ab_session_suspend_async (next, "test over", on_suspended, &suspended);
  AB_ITERATE_UNTIL (suspended, WAIT_MS);
}

/* A queue too big for the record: what does not fit ends interrupted at
 * the restart, and the rest goes over. */
static void
test_queue_handover_bounded (Fixture *f, gconstpointer data)
{
  g_autoptr (AbSessionRecord) record = NULL;
  g_autofree char *big = g_strnfill (AB_SESSION_MAX_PROMPT_BYTES - 64, 'q');
  AbFakeAgent *a;

  prompt (f, "one");
  a = agent (f, 0);
  wait_logged (a, "session/prompt one (record: running 1)");
  for (guint i = 0; i < 4; i++)
    prompt (f, big);
  AB_ITERATE_UNTIL (ab_session_get_queued (f->session) == 4, WAIT_MS);
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  ab_session_detach_agent (f->session);
  /* 3 MiB hold three prompts of almost 1 MiB each. */
  AB_ITERATE_UNTIL (f->ended == 1, WAIT_MS);
  assert_events (f, "ended 5 interrupted (dropped)\n");
  record = load_record (f);
  g_assert_nonnull (record->queued);
  g_assert_cmpuint (
      json_array_get_length (json_node_get_array (record->queued)), ==, 3);
}

/* A restart hands over every request waiting for an answer, in the
 * order they came, unanswered: the agent still waits for them. */
static void
test_permission_handover (Fixture *f, gconstpointer data)
{
  g_autoptr (AbSessionRecord) record = NULL;
  JsonArray *handed;
  AbFakeAgent *a;

  prompt (f, "edit");
  a = agent (f, 0);
  wait_logged (a, "session/prompt edit (record: running 1)");
  ab_fake_agent_ask_permission (a);
  AB_ITERATE_UNTIL (f->request != NULL, WAIT_MS);
  g_clear_pointer (&f->request, g_free);
  ab_fake_agent_ask_permission (a);
  AB_ITERATE_UNTIL (f->request != NULL, WAIT_MS);
  ab_session_detach_agent (f->session);
  for (guint i = 0; i < 10; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_false (ab_fake_agent_has_logged (a, "permission selected no"));
  g_assert_false (ab_fake_agent_has_logged (a, "permission cancelled"));

  record = load_record (f);
  g_assert_true (record->handed_over);
  g_assert_nonnull (record->permissions);
  handed = json_node_get_array (record->permissions);
  g_assert_cmpuint (json_array_get_length (handed), ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      JsonObject *o = json_array_get_object_element (handed, i);

      g_assert_nonnull (strstr (json_object_get_string_member (o, "params"),
                                "\"optionId\":\"yes\""));
      g_assert_nonnull (json_object_get_string_member (o, "rpc_id"));
    }
  /* In the order the agent asked: its request ids grow. */
  g_assert_cmpint (
      g_ascii_strtoll (json_object_get_string_member (
                           json_array_get_object_element (handed, 0), "rpc_id"),
                       NULL, 10),
      <,
      g_ascii_strtoll (json_object_get_string_member (
                           json_array_get_object_element (handed, 1), "rpc_id"),
                       NULL, 10));
}

/* Cancel: the queued turns end at once without running, the turn in
 * flight once the agent answers the session/cancel sent to it. */
static void
test_cancel (Fixture *f, gconstpointer data)
{
  AbFakeAgent *a;

  prompt (f, "long");
  prompt (f, "queued");
  a = agent (f, 0);
  wait_logged (a, "session/prompt long (record: running 1)");
  ab_session_cancel (f->session);
  wait_logged (a, "session/cancel");
  g_assert_cmpuint (f->ended, ==, 0);
  ab_fake_agent_finish_prompt (a, "cancelled");
  wait_ended (f, 2);
  assert_events (f, "ended 1 cancelled\n"
                    "ended 2 cancelled (dropped)\n");
  g_assert_false (ab_fake_agent_has_logged (
      a, "session/prompt queued (record: running 2)"));
}

/* No update for timeouts.turn_inactivity: the turn is cancelled and ends
 * as "timeout"; an agent that then stays silent for timeouts.kill is
 * stopped. */
static void
test_inactivity (Fixture *f, gconstpointer data)
{
  AbFakeAgent *a;

  prompt (f, "slow");
  a = agent (f, 0);
  wait_logged (a, "session/prompt slow (record: running 1)");
  /* an update is progress: the clock starts again */
  ab_fake_agent_send_text (a, "still here");
  wait_logged (a, "session/cancel");
  ab_fake_agent_finish_prompt (a, "cancelled");
  wait_ended (f, 1);
  assert_events (f, "update 1 still here\n"
                    "ended 1 timeout\n");
  g_assert_false (ab_fake_agent_is_closed (a));

  prompt (f, "silent");
  wait_logged (a, "session/prompt silent (record: running 2)");
  wait_ended (f, 2);
  g_assert_true (g_str_has_suffix (f->events->str, "ended 2 timeout\n"));
  AB_ITERATE_UNTIL (ab_fake_agent_is_closed (a), WAIT_MS);
}

/* ---- permissions ------------------------------------------------------- */

/* "ask": the question reaches the session's listeners and the answer the
 * agent; an option the agent did not offer is refused. */
static void
test_permission_ask (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  AbFakeAgent *a;

  prompt (f, "edit");
  a = agent (f, 0);
  wait_logged (a, "session/prompt edit (record: running 1)");
  ab_fake_agent_send_text (a, "thinking");
  ab_fake_agent_ask_permission (a);
  AB_ITERATE_UNTIL (f->request != NULL, WAIT_MS);
  assert_events (f, "update 1 thinking\n"
                    "ask 1\n");
  g_assert_false (
      ab_session_answer_permission (f->session, f->request, "maybe", &error));
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT);
  g_assert_true (
      ab_session_answer_permission (f->session, f->request, "yes", NULL));
  wait_logged (a, "permission selected yes");
  g_assert_false (
      ab_session_answer_permission (f->session, f->request, "yes", NULL));
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_ended (f, 1);
}

/* "allow" and "deny" answer by themselves, nobody is asked; outside a
 * turn every question is cancelled. */
static void
test_permission_policy (Fixture *f, gconstpointer data)
{
  const char *policy = strstr (data, "allow") != NULL ? "yes" : "no";
  g_autofree char *answer = g_strdup_printf ("permission selected %s", policy);
  AbFakeAgent *a;

  prompt (f, "edit");
  a = agent (f, 0);
  wait_logged (a, "session/prompt edit (record: running 1)");
  ab_fake_agent_ask_permission (a);
  wait_logged (a, answer);
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_ended (f, 1);
  ab_fake_agent_ask_permission (a);
  wait_logged (a, "permission cancelled");
  g_assert_null (f->request);
}

/* ---- the agent's loss -------------------------------------------------- */

/* The agent goes mid-turn: the turn ends "agent-exited", the session is
 * failed; the next prompt starts a new agent, which loads the same ACP
 * session. */
static void
test_lost_then_respawn (Fixture *f, gconstpointer data)
{
  AbFakeAgent *a, *b;

  /* The loss is logged as a warning: expected here. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

  prompt (f, "first");
  a = agent (f, 0);
  wait_logged (a, "session/prompt first (record: running 1)");
  ab_fake_agent_exit (a);
  wait_ended (f, 1);
  assert_events (f, "ended 1 agent-exited\n");
  AB_ITERATE_UNTIL (
      ab_session_get_state (f->session) == AB_SESSION_STATE_FAILED, WAIT_MS);

  prompt (f, "second");
  b = agent (f, 1);
  wait_logged (b, "session/prompt second (record: running 2)");
  assert_log (b, "initialize\n"
                 "session/load fake-1\n"
                 "session/prompt second (record: running 2)");
  ab_fake_agent_finish_prompt (b, "end_turn");
  wait_ended (f, 2);
}

/* The same with an agent that advertises sessionCapabilities.resume: the
 * new agent resumes the ACP session (nothing replayed, nothing lost) and
 * the watchers hear only the new turn. */
static void
test_lost_then_resume (Fixture *f, gconstpointer data)
{
  AbFakeAgent *a, *b;

  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

  ab_fake_launcher_set_resume (f->launcher, TRUE);
  prompt (f, "first");
  a = agent (f, 0);
  wait_logged (a, "session/prompt first (record: running 1)");
  ab_fake_agent_send_text (a, "one");
  AB_ITERATE_UNTIL (strstr (f->events->str, "update 1 one") != NULL, WAIT_MS);
  ab_fake_agent_exit (a);
  wait_ended (f, 1);
  assert_events (f, "update 1 one\n"
                    "ended 1 agent-exited\n");
  AB_ITERATE_UNTIL (
      ab_session_get_state (f->session) == AB_SESSION_STATE_FAILED, WAIT_MS);

  prompt (f, "second");
  b = agent (f, 1);
  wait_logged (b, "session/prompt second (record: running 2)");
  assert_log (b, "initialize\n"
                 "session/resume fake-1\n"
                 "session/prompt second (record: running 2)");
  g_assert_cmpstr (ab_session_get_acp_session (f->session), ==, "fake-1");
  ab_fake_agent_send_text (b, "two");
  ab_fake_agent_finish_prompt (b, "end_turn");
  wait_ended (f, 2);
  assert_events (f, "update 1 one\n"
                    "ended 1 agent-exited\n"
                    "update 2 two\n"
                    "ended 2 end_turn\n");
}

/* A launch that fails refuses the prompt waiting for it, naming why. */
static void
test_launch_fails (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  /* The failure is logged as a warning: expected here. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

  ab_fake_launcher_fail_next (f->launcher, "no such agent");
  ab_session_prompt_async (f->session, "hi", ":1.1", on_prompted, &error);
  AB_ITERATE_UNTIL (error != NULL, WAIT_MS);
  g_assert_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_cmpstr (error->message, ==, "no such agent");
  g_assert_cmpint (ab_session_get_state (f->session), ==,
                   AB_SESSION_STATE_FAILED);
  g_assert_cmpuint (f->ended, ==, 0);
}

/* A changed profile: the busy agent finishes its turn, then goes; the
 * next prompt runs on a new one, through session/load. */
static void
test_profile_change (Fixture *f, gconstpointer data)
{
  g_autoptr (AbConfig) changed = config_with ("    permissions: allow\n", "");
  AbFakeAgent *a, *b;

  prompt (f, "before");
  a = agent (f, 0);
  wait_logged (a, "session/prompt before (record: running 1)");
  ab_session_set_config (f->session, changed);
  g_assert_false (ab_fake_agent_is_closed (a));
  ab_fake_agent_finish_prompt (a, "end_turn");
  wait_ended (f, 1);
  AB_ITERATE_UNTIL (ab_fake_agent_is_closed (a), WAIT_MS);
  assert_events (f, "ended 1 end_turn\n");

  prompt (f, "after");
  b = agent (f, 1);
  wait_logged (b, "session/prompt after (record: running 2)");
  g_assert_true (ab_fake_agent_has_logged (b, "session/load fake-1"));
  ab_fake_agent_ask_permission (b);
  wait_logged (b, "permission selected yes");
  ab_fake_agent_finish_prompt (b, "end_turn");
  wait_ended (f, 2);
}

static void
on_suspended (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_assert_true (ab_session_suspend_finish (AB_SESSION (source), result, NULL));
  *(gboolean *)user_data = TRUE;
}

/* Suspend: the turn in flight ends "cancelled" and the agent is stopped;
 * the suspend completes once it is gone. */
static void
test_suspend (Fixture *f, gconstpointer data)
{
  gboolean done = FALSE;
  AbFakeAgent *a;

  prompt (f, "work");
  a = agent (f, 0);
  wait_logged (a, "session/prompt work (record: running 1)");
  ab_session_suspend_async (f->session, "drained", on_suspended, &done);
  AB_ITERATE_UNTIL (done, WAIT_MS);
  AB_ITERATE_UNTIL (ab_fake_agent_is_closed (a), WAIT_MS);
  wait_ended (f, 1);
  assert_events (f, "ended 1 cancelled\n");
  g_assert_cmpint (ab_session_get_state (f->session), ==,
                   AB_SESSION_STATE_SUSPENDED);
}

/* ---- the pool ---------------------------------------------------------- */

typedef struct
{
  gboolean done;
  guint64 turn;
  GError *error;
} Call;

static void
on_pool_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Call *c = user_data;

  ab_pool_prompt_finish (AB_POOL (source), result, &c->turn, &c->error);
  c->done = TRUE;
}

static void
on_pool_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Call *c = user_data;

  ab_pool_remove_finish (AB_POOL (source), result, &c->error);
  c->done = TRUE;
}

/* A prompt makes the session and starts its agent with the pool's
 * launcher; a user over pool.max_sessions_per_user is refused; remove
 * stops the agent and forgets the session, record and all. */
static void
test_pool (Fixture *f, gconstpointer data)
{
  g_autoptr (AbConfig) config = NULL;
  g_autoptr (AbPool) pool = NULL;
  g_autofree char *store = ab_store_dir (f->state_dir);
  Call first = { 0 }, second = { 0 }, removed = { 0 };
  AbFakeAgent *a;
  const char *yaml = "default_agent: fake\n"
                     "agents: {fake: {command: [unused]}}\n"
                     "pool: {max_sessions_per_user: 1}\n";
  g_autoptr (GError) error = NULL;

  config = ab_config_load_from_data (yaml, strlen (yaml), "t.yaml", &error);
  g_assert_no_error (error);
  pool = ab_pool_new (config, f->state_dir);
  ab_pool_set_launcher (pool, AB_AGENT_LAUNCHER (f->launcher));
  ab_pool_prompt_async (pool, "test:a", "hi", "fake", 1000, ":1.1",
                        on_pool_prompted, &first);
  AB_ITERATE_UNTIL (first.done, WAIT_MS);
  g_assert_no_error (first.error);
  g_assert_cmpuint (first.turn, ==, 1);
  a = agent (f, 0);
  wait_logged (a, "session/prompt hi (record: running 1)");
  g_assert_cmpuint (ab_pool_get_running_count (pool), ==, 1);

  ab_pool_prompt_async (pool, "test:b", "hi", "fake", 1000, ":1.1",
                        on_pool_prompted, &second);
  AB_ITERATE_UNTIL (second.done, WAIT_MS);
  g_assert_error (second.error, AB_ERROR, AB_ERROR_POOL_EXHAUSTED);
  g_clear_error (&second.error);
  g_assert_null (ab_pool_lookup (pool, "test:b"));

  ab_fake_agent_finish_prompt (a, "end_turn");
  ab_pool_remove_async (pool, "test:a", "removed", on_pool_removed, &removed);
  AB_ITERATE_UNTIL (removed.done, WAIT_MS);
  g_assert_no_error (removed.error);
  g_assert_true (ab_fake_agent_is_closed (a));
  g_assert_null (ab_pool_lookup (pool, "test:a"));
  g_assert_cmpuint (ab_pool_get_session_count (pool), ==, 0);
  ab_store_flush ();
  g_assert_cmpuint (ab_count_suffix (store, ".json"), ==, 0);
}

/* What an agent's unit uses reaches the session, its ListSessions entry
 * and the per-profile sums of /metrics; an agent that is no unit has an
 * unknown usage and adds nothing. */
static void
test_usage (Fixture *f, gconstpointer data)
{
  g_autoptr (AbBroker) broker = ab_broker_new (NULL, f->config, f->state_dir);
  AbPool *pool = ab_broker_get_pool (broker);
  const AbAgentUsage one = { 100, G_GUINT64_CONSTANT (1500000000), 2 };
  const AbAgentUsage two = { 50, AB_USAGE_UNKNOWN, 3 };
  const char *const threads[] = { "test:u1", "test:u2", "test:plain" };
  g_autoptr (AbMetrics) metrics = NULL;
  g_autoptr (GVariant) entry = NULL;
  g_autofree char *text = NULL;
  const char *unit;
  guint64 memory, cpu, tasks;
  AbAgentUsage usage;

  ab_broker_set_launcher (broker, AB_AGENT_LAUNCHER (f->launcher), "systemd");
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      Call call = { 0 };

      ab_fake_launcher_set_usage (f->launcher, i == 0   ? &one
                                               : i == 1 ? &two
                                                        : NULL);
      ab_pool_prompt_async (pool, threads[i], "hi", "fake", 1000, ":1.1",
                            on_pool_prompted, &call);
      AB_ITERATE_UNTIL (call.done, WAIT_MS);
      g_assert_no_error (call.error);
      wait_logged (agent (f, i), "session/prompt hi (record: running 1)");
    }

  g_assert_cmpstr (ab_session_get_unit (ab_pool_lookup (pool, "test:u1")), ==,
                   "fake-test:u1.service");
  g_assert_null (ab_session_get_unit (ab_pool_lookup (pool, "test:plain")));
  ab_session_get_usage (ab_pool_lookup (pool, "test:plain"), &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);

  entry = g_variant_ref_sink (
      ab_session_list_entry (ab_pool_lookup (pool, "test:u2")));
  g_variant_get_child (entry, 14, "&s", &unit);
  g_variant_get_child (entry, 15, "t", &memory);
  g_variant_get_child (entry, 16, "t", &cpu);
  g_variant_get_child (entry, 17, "t", &tasks);
  g_assert_cmpstr (unit, ==, "fake-test:u2.service");
  g_assert_cmpuint (memory, ==, 50);
  g_assert_cmpuint (cpu, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (tasks, ==, 3);

  metrics = ab_metrics_new (broker);
  text = ab_metrics_render (metrics);
  g_assert_nonnull (strstr (
      text, "\nagentbroker_profile_memory_bytes{profile=\"fake\"} 150\n"));
  g_assert_nonnull (strstr (
      text, "\nagentbroker_profile_cpu_seconds{profile=\"fake\"} 1.5\n"));
  g_assert_nonnull (
      strstr (text, "\nagentbroker_profile_tasks{profile=\"fake\"} 5\n"));

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      Call removed = { 0 };

      ab_fake_agent_finish_prompt (agent (f, i), "end_turn");
      ab_pool_remove_async (pool, threads[i], "removed", on_pool_removed,
                            &removed);
      AB_ITERATE_UNTIL (removed.done, WAIT_MS);
      g_assert_no_error (removed.error);
    }
}

/* ---- usage_update ------------------------------------------------------- */

/* ab_acp_read_usage() on what an agent may send: each field taken when
 * valid, left as it was otherwise. */
static void
test_usage_update_parse (Fixture *f, gconstpointer data)
{
  static const struct
  {
    const char *json;
    gboolean changed;
    guint64 used, size;
    double cost;
    const char *currency;
  } cases[] = {
    { "{\"sessionUpdate\":\"usage_update\",\"used\":10,\"size\":100,"
      "\"cost\":{\"amount\":0.5,\"currency\":\"USD\"}}",
      TRUE, 10, 100, 0.5, "USD" },
    /* missing fields and a null cost: the rest stays */
    { "{\"used\":20}", TRUE, 20, 100, 0.5, "USD" },
    { "{\"size\":200,\"cost\":null}", TRUE, 20, 200, 0.5, "USD" },
    /* wrong types, negative, wrapped-around and fractional counts */
    { "{\"used\":\"30\",\"size\":true}", FALSE, 20, 200, 0.5, "USD" },
    { "{\"used\":-1,\"size\":99999999999999999999}", FALSE, 20, 200, 0.5,
      "USD" },
    { "{\"used\":1.5,\"size\":[1]}", FALSE, 20, 200, 0.5, "USD" },
    { "{\"used\":{\"n\":1},\"size\":null}", FALSE, 20, 200, 0.5, "USD" },
    /* a count written as a double, and the largest integer */
    { "{\"used\":1e6}", TRUE, 1000000, 200, 0.5, "USD" },
    { "{\"size\":9223372036854775807}", TRUE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"used\":1e300}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    /* a cost must come whole and sane */
    { "{\"cost\":{\"amount\":-1,\"currency\":\"USD\"}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":1e16,\"currency\":\"USD\"}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":2}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":2,\"currency\":\"\"}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":2,\"currency\":\"US D\\n\"}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":2,\"currency\":\"12345678901234567\"}}", FALSE,
      1000000, G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":\"2\",\"currency\":\"USD\"}}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":\"free\"}", FALSE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 0.5, "USD" },
    { "{\"cost\":{\"amount\":3,\"currency\":\"credits\"}}", TRUE, 1000000,
      G_GUINT64_CONSTANT (9223372036854775807), 3, "credits" },
    /* not an object at all, or not JSON */
    { "[1,2]", FALSE, 1000000, G_GUINT64_CONSTANT (9223372036854775807), 3,
      "credits" },
    { "{\"used\":", FALSE, 1000000, G_GUINT64_CONSTANT (9223372036854775807), 3,
      "credits" },
  };
  AbAcpUsage usage;

  ab_acp_usage_init (&usage);
  g_assert_cmpuint (usage.used, ==, AB_ACP_TOKENS_UNKNOWN);
  g_assert_cmpuint (usage.size, ==, AB_ACP_TOKENS_UNKNOWN);
  g_assert_cmpfloat (usage.cost, ==, AB_ACP_COST_UNKNOWN);
  g_assert_cmpstr (usage.currency, ==, "");
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("%s", cases[i].json);
      g_assert_cmpint (
          ab_acp_read_usage (cases[i].json, strlen (cases[i].json), &usage), ==,
          cases[i].changed);
      g_assert_cmpuint (usage.used, ==, cases[i].used);
      g_assert_cmpuint (usage.size, ==, cases[i].size);
      g_assert_cmpfloat (usage.cost, ==, cases[i].cost);
      g_assert_cmpstr (usage.currency, ==, cases[i].currency);
    }
}

typedef struct
{
  guint notified;
  guint64 last_notified; /* the tokens used when last notified */
  GPtrArray *relayed;    /* the usage_updates the session signalled */
} UsageWatch;

static void
on_token_usage (AbSession *session, GParamSpec *pspec, UsageWatch *w)
{
  AbAcpUsage usage;

  ab_session_get_token_usage (session, &usage);
  w->notified++;
  w->last_notified = usage.used;
}

static void
on_raw_update (AbSession *session, guint64 turn, const char *const *updates,
               const char *recipient, guint64 seq, UsageWatch *w)
{
  for (guint i = 0; updates[i] != NULL; i++)
    if (strstr (updates[i], "usage_update") != NULL)
      g_ptr_array_add (w->relayed, g_strdup (updates[i]));
}

static guint64
tokens_used (AbSession *session)
{
  AbAcpUsage usage;

  ab_session_get_token_usage (session, &usage);
  return usage.used;
}

/* The agents' usage_update reaches the session (its hostile fields
 * ignored), is notified, relayed as it is, and summed by profile and
 * currency in /metrics. */
static void
test_token_usage (Fixture *f, gconstpointer data)
{
  g_autoptr (AbBroker) broker = ab_broker_new (NULL, f->config, f->state_dir);
  AbPool *pool = ab_broker_get_pool (broker);
  const char *const threads[] = { "test:t1", "test:t2" };
  g_autoptr (GPtrArray) relayed = g_ptr_array_new_with_free_func (g_free);
  UsageWatch w = { 0, 0, relayed };
  g_autoptr (AbMetrics) metrics = NULL;
  g_autofree char *text = NULL;
  AbSession *s1;
  AbAcpUsage usage;

  ab_broker_set_launcher (broker, AB_AGENT_LAUNCHER (f->launcher), "direct");
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      Call call = { 0 };

      ab_pool_prompt_async (pool, threads[i], "hi", "fake", 1000, ":1.1",
                            on_pool_prompted, &call);
      AB_ITERATE_UNTIL (call.done, WAIT_MS);
      g_assert_no_error (call.error);
      wait_logged (agent (f, i), "session/prompt hi (record: running 1)");
    }
  s1 = ab_pool_lookup (pool, threads[0]);
  ab_session_get_token_usage (s1, &usage);
  g_assert_cmpuint (usage.used, ==, AB_ACP_TOKENS_UNKNOWN);
  g_signal_connect (s1, "notify::token-usage", G_CALLBACK (on_token_usage), &w);
  g_signal_connect (s1, "update", G_CALLBACK (on_raw_update), &w);

  ab_fake_agent_send_update (
      agent (f, 0), "{\"sessionUpdate\":\"usage_update\",\"used\":5000,"
                    "\"size\":200000,\"cost\":{\"amount\":1.5,"
                    "\"currency\":\"USD\"}}");
  ab_fake_agent_send_update (agent (f, 1),
                             "{\"sessionUpdate\":\"usage_update\",\"used\":100,"
                             "\"size\":1000,\"cost\":{\"amount\":2,"
                             "\"currency\":\"credits\"}}");
  ab_fake_agent_send_update (
      agent (f, 0), "{\"sessionUpdate\":\"usage_update\",\"used\":\"lots\","
                    "\"size\":-1,\"cost\":{\"amount\":-3,\"currency\":"
                    "\"USD\"}}");
  ab_fake_agent_send_update (agent (f, 0), "{\"sessionUpdate\":"
                                           "\"usage_update\",\"used\":6000}");
  AB_ITERATE_UNTIL (relayed->len == 3, WAIT_MS);
  g_assert_cmpstr (relayed->pdata[1], ==,
                   "{\"sessionUpdate\":\"usage_update\",\"used\":\"lots\","
                   "\"size\":-1,\"cost\":{\"amount\":-3,\"currency\":"
                   "\"USD\"}}");
  ab_session_get_token_usage (s1, &usage);
  g_assert_cmpuint (usage.used, ==, 6000);
  g_assert_cmpuint (usage.size, ==, 200000);
  g_assert_cmpfloat (usage.cost, ==, 1.5);
  g_assert_cmpstr (usage.currency, ==, "USD");
  /* Whatever was held back, the last change is notified. */
  AB_ITERATE_UNTIL (w.last_notified == 6000, WAIT_MS);
  g_assert_cmpuint (w.notified, >=, 1);
  g_assert_cmpuint (w.notified, <=, 3);

  AB_ITERATE_UNTIL (tokens_used (ab_pool_lookup (pool, threads[1])) == 100,
                    WAIT_MS);
  metrics = ab_metrics_new (broker);
  text = ab_metrics_render (metrics);
  g_assert_nonnull (strstr (
      text, "\nagentbroker_profile_context_tokens{profile=\"fake\"} 6100\n"));
  g_assert_nonnull (strstr (
      text,
      "\nagentbroker_profile_context_size_tokens{profile=\"fake\"} 201000\n"));
  g_assert_nonnull (strstr (text, "\nagentbroker_profile_cost{profile="
                                  "\"fake\",currency=\"USD\"} 1.5\n"));
  g_assert_nonnull (strstr (text, "\nagentbroker_profile_cost{profile="
                                  "\"fake\",currency=\"credits\"} 2\n"));

  g_signal_handlers_disconnect_by_data (s1, &w);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      Call removed = { 0 };

      ab_fake_agent_finish_prompt (agent (f, i), "end_turn");
      ab_pool_remove_async (pool, threads[i], "removed", on_pool_removed,
                            &removed);
      AB_ITERATE_UNTIL (removed.done, WAIT_MS);
      g_assert_no_error (removed.error);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, data, func)                                                  \
  g_test_add ("/session/" name, Fixture, data, fixture_setup, func,            \
              fixture_teardown)
  ADD ("queue-order", NULL, test_queue_order);
  ADD ("stream", NULL, test_stream);
  ADD ("queue-handover", NULL, test_queue_handover);
  ADD ("queue-handover-bounded", NULL, test_queue_handover_bounded);
  ADD ("cancel", NULL, test_cancel);
  ADD ("permission/ask", "    permissions: ask\n", test_permission_ask);
  ADD ("permission/handover", "    permissions: ask\n",
       test_permission_handover);
  ADD ("permission/allow", "    permissions: allow\n", test_permission_policy);
  ADD ("permission/deny", "    permissions: deny\n", test_permission_policy);
  ADD ("lost-then-respawn", NULL, test_lost_then_respawn);
  ADD ("lost-then-resume", NULL, test_lost_then_resume);
  ADD ("launch-fails", NULL, test_launch_fails);
  ADD ("profile-change", NULL, test_profile_change);
  ADD ("suspend", NULL, test_suspend);
  ADD ("pool", NULL, test_pool);
  ADD ("usage", NULL, test_usage);
  ADD ("usage-update/parse", NULL, test_usage_update_parse);
  ADD ("usage-update/session", NULL, test_token_usage);
#undef ADD
  g_test_add ("/session/inactivity", Fixture, NULL, inactivity_setup,
              test_inactivity, fixture_teardown);

  return g_test_run ();
}
