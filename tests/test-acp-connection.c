/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — AbAcpConnection against a scripted agent: the handshake,
 * prompts, updates, permission requests and the agent's loss
 *
 * The test plays the agent on the other end of a socketpair: it reads
 * each request the connection writes, checks its method and parameters,
 * and answers as the script says.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "acp-connection.h"
#include "acp.h"
#include "rpc-pair.h"

/* generous: the suite also runs under valgrind */
#define TEST_TIMEOUT_USEC (60 * G_USEC_PER_SEC)

typedef struct
{
  int agent_fd; /* the test's end: the "agent" */
  AbJsonRpc *rpc;
  AbAcpConnection *conn;
  GString *from_client;
  gboolean done;
  AbAcpStarted *started;
  GError *error;
  GPtrArray *updates; /* "[session] JSON" per update, "|" after a batch */
  char *lost;         /* "reason: why" */
  JsonNode *permission_id;
  char *permission_params;
} Fixture;

static void
on_update (AbAcpConnection *conn, GArray *updates, Fixture *f)
{
  for (guint i = 0; i < updates->len; i++)
    {
      const AbAcpUpdate *u = &g_array_index (updates, AbAcpUpdate, i);

      g_ptr_array_add (
          f->updates,
          g_strconcat (u->session_level ? "session " : "", u->json, NULL));
    }
  g_ptr_array_add (f->updates, g_strdup ("|"));
}

static void
on_lost (AbAcpConnection *conn, const char *reason, const char *why, Fixture *f)
{
  g_assert_null (f->lost);
  f->lost = g_strdup_printf ("%s: %s", reason, why);
}

static void
on_permission_request (AbAcpConnection *conn, JsonNode *id, JsonNode *params,
                       Fixture *f)
{
  g_assert_null (f->permission_id);
  f->permission_id = json_node_ref (id);
  f->permission_params = json_to_string (params, FALSE);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->rpc = ab_test_rpc_pair (1024 * 1024, &f->agent_fd);
  f->conn = ab_acp_connection_new (f->rpc, NULL);
  f->from_client = g_string_new (NULL);
  f->updates = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (f->conn, "update", G_CALLBACK (on_update), f);
  g_signal_connect (f->conn, "lost", G_CALLBACK (on_lost), f);
  g_signal_connect (f->conn, "permission-request",
                    G_CALLBACK (on_permission_request), f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->conn);
  g_clear_object (&f->rpc);
  if (f->agent_fd >= 0)
    close (f->agent_fd);
  g_string_free (f->from_client, TRUE);
  g_ptr_array_unref (f->updates);
  g_free (f->lost);
  g_clear_pointer (&f->permission_id, json_node_unref);
  g_free (f->permission_params);
  g_clear_pointer (&f->started, ab_acp_started_free);
  g_clear_error (&f->error);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
on_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fixture *f = user_data;

  f->started = ab_acp_connection_start_finish (AB_ACP_CONNECTION (source),
                                               result, &f->error);
  f->done = TRUE;
}

static void
start (Fixture *f, const char *resume, const char *auth_method)
{
  AbAcpStartParams params = {
    .agent = "fake",
    .thread = "test:acp",
    .cwd = "/work/dir",
    .resume = resume,
    .auth_method = auth_method,
  };

  ab_acp_connection_start_async (f->conn, &params, on_started, f);
}

static void
wait_done (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

  while (!f->done)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* The next request the connection wrote: asserts its method, returns its
 * params as JSON text (for strstr) and its id. */
static char *
expect_request (Fixture *f, const char *method, gint64 *id)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *line = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *message;
  char *nl;

  while ((nl = memchr (f->from_client->str, '\n', f->from_client->len)) == NULL)
    {
      char buf[4096];
      ssize_t n;

      g_assert_false (f->done);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      n = recv (f->agent_fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        g_string_append_len (f->from_client, buf, n);
      else
        g_usleep (1000);
    }
  line = g_strndup (f->from_client->str, nl - f->from_client->str);
  g_string_erase (f->from_client, 0, nl - f->from_client->str + 1);
  node = json_from_string (line, &error);
  g_assert_no_error (error);
  message = json_node_get_object (node);
  g_assert_cmpstr (json_object_get_string_member (message, "method"), ==,
                   method);
  *id = json_object_get_int_member_with_default (message, "id", -1);
  return json_to_string (json_object_get_member (message, "params"), FALSE);
}

/* Writes @line as the agent. */
static void
send_line (Fixture *f, const char *line)
{
  gsize len = strlen (line);
  const char *p = line;

  while (len > 0)
    {
      ssize_t n = write (f->agent_fd, p, len);

      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >, 0);
      p += n;
      len -= (gsize)n;
    }
}

static void
answer (Fixture *f, gint64 id, const char *member_json)
{
  g_autofree char *line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT ",%s}\n", id,
      member_json);

  send_line (f, line);
}

/* A session/update of ACP session @session about @kind, as one line. */
static char *
update_line (const char *session, const char *kind, const char *text)
{
  return g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":"
      "{\"sessionId\":\"%s\",\"update\":{\"sessionUpdate\":\"%s\","
      "\"content\":{\"type\":\"text\",\"text\":\"%s\"}}}}\n",
      session, kind, text);
}

static void
iterate_until (gboolean *flag)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

  while (!*flag)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* The updates signalled so far, joined by spaces. */
static char *
updates_seen (Fixture *f)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_auto (GStrv) all = NULL;

  for (guint i = 0; i < f->updates->len; i++)
    g_strv_builder_add (b, g_ptr_array_index (f->updates, i));
  all = g_strv_builder_end (b);
  return g_strjoinv (" ", all);
}

static gboolean
has_batches (Fixture *f, guint n)
{
  guint seen = 0;

  for (guint i = 0; i < f->updates->len; i++)
    seen += g_str_equal (g_ptr_array_index (f->updates, i), "|");
  return seen >= n;
}

static void
wait_batches (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

  while (!has_batches (f, n))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

#define INIT_PLAIN "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{}}"
#define INIT_LOADS                                                             \
  "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":"                   \
  "{\"loadSession\":true}}"
#define INIT_RESUMES                                                           \
  "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":"                   \
  "{\"loadSession\":true,\"sessionCapabilities\":{\"resume\":{}}}}"
#define AGENT_ERROR "\"error\":{\"code\":-32603,\"message\":\"no\"}"

/* initialize, session/new: the new session's id, nothing lost. */
static void
test_new (Fixture *f, gconstpointer data)
{
  g_autofree char *params = NULL;
  gint64 id;

  start (f, NULL, NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_PLAIN);
  params = expect_request (f, "session/new", &id);
  g_assert_nonnull (strstr (params, "\"cwd\":\"/work/dir\""));
  answer (f, id, "\"result\":{\"sessionId\":\"s1\"}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_cmpstr (f->started->session_id, ==, "s1");
  g_assert_false (f->started->history_lost);
  g_assert_false (f->started->can_load);
}

/* A conversation to resume, and an agent that loads: session/load, during
 * which the connection says it is loading; the same id, nothing lost. */
static void
test_load (Fixture *f, gconstpointer data)
{
  g_autofree char *params = NULL;
  gint64 id;

  start (f, "old", "key");
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_LOADS);
  g_free (params);
  params = expect_request (f, "authenticate", &id);
  g_assert_nonnull (strstr (params, "\"methodId\":\"key\""));
  answer (f, id, "\"result\":{}");
  g_free (params);
  params = expect_request (f, "session/load", &id);
  g_assert_nonnull (strstr (params, "\"sessionId\":\"old\""));
  g_free (params);
  params = update_line ("old", "agent_message_chunk", "history");
  send_line (f, params);
  answer (f, id, "\"result\":{}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_free (params);
  params = update_line ("old", "agent_message_chunk", "news");
  send_line (f, params);
  wait_batches (f, 1);
  g_free (params);
  params = updates_seen (f);
  g_assert_cmpstr (params, ==,
                   "{\"sessionUpdate\":\"agent_message_chunk\",\"content\":"
                   "{\"type\":\"text\",\"text\":\"news\"}} |");
  g_assert_cmpstr (f->started->session_id, ==, "old");
  g_assert_false (f->started->history_lost);
  g_assert_true (f->started->can_load);
}

/* session/load refused: a new session, and the history is lost; an agent
 * that cannot load at all loses it too, without trying. */
static void
test_load_refused (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_LOADS);
  g_free (expect_request (f, "session/load", &id));
  answer (f, id, AGENT_ERROR);
  g_free (expect_request (f, "session/new", &id));
  answer (f, id, "\"result\":{\"sessionId\":\"s2\"}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_cmpstr (f->started->session_id, ==, "s2");
  g_assert_true (f->started->history_lost);
}

static void
test_cannot_load (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_PLAIN);
  g_free (expect_request (f, "session/new", &id));
  answer (f, id, "\"result\":{\"sessionId\":\"s3\"}");
  wait_done (f);
  g_assert_cmpstr (f->started->session_id, ==, "s3");
  g_assert_true (f->started->history_lost);
}

/* An agent that advertises sessionCapabilities.resume (and can load too):
 * session/resume with the session, the cwd and no MCP servers, never
 * session/load; the same id, nothing lost, and only what comes after the
 * answer is news. */
static void
test_resume (Fixture *f, gconstpointer data)
{
  g_autofree char *params = NULL;
  g_autofree char *line = NULL;
  g_autofree char *seen = NULL;
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_RESUMES);
  params = expect_request (f, "session/resume", &id);
  g_assert_cmpstr (params, ==,
                   "{\"sessionId\":\"old\",\"cwd\":\"/work/dir\","
                   "\"mcpServers\":[]}");
  /* an agent that replays anyway: not repeated to anyone */
  line = update_line ("old", "agent_message_chunk", "history");
  send_line (f, line);
  answer (f, id, "\"result\":{}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_cmpstr (f->started->session_id, ==, "old");
  g_assert_true (f->started->resumed);
  g_assert_true (f->started->can_resume);
  g_assert_false (f->started->history_lost);
  g_free (line);
  line = update_line ("old", "agent_message_chunk", "news");
  send_line (f, line);
  wait_batches (f, 1);
  seen = updates_seen (f);
  g_assert_cmpstr (seen, ==,
                   "{\"sessionUpdate\":\"agent_message_chunk\",\"content\":"
                   "{\"type\":\"text\",\"text\":\"news\"}} |");
  /* nothing else was asked of the agent */
  g_assert_cmpuint (f->from_client->len, ==, 0);
}

/* session/resume refused: session/load next when the agent can load,
 * else a new session and the history lost. */
static void
test_resume_refused (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_RESUMES);
  g_free (expect_request (f, "session/resume", &id));
  answer (f, id, AGENT_ERROR);
  g_free (expect_request (f, "session/load", &id));
  answer (f, id, "\"result\":{}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_cmpstr (f->started->session_id, ==, "old");
  g_assert_false (f->started->resumed);
  g_assert_false (f->started->history_lost);
}

static void
test_resume_refused_no_load (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id,
          "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":"
          "{\"sessionCapabilities\":{\"resume\":{}}}}");
  g_free (expect_request (f, "session/resume", &id));
  answer (f, id, AGENT_ERROR);
  g_free (expect_request (f, "session/new", &id));
  answer (f, id, "\"result\":{\"sessionId\":\"s4\"}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_cmpstr (f->started->session_id, ==, "s4");
  g_assert_true (f->started->history_lost);
}

/* "resume": null, false or a string is no resume capability. */
static void
test_resume_not_advertised (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, "old", NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id,
          "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":"
          "{\"loadSession\":true,\"sessionCapabilities\":{\"resume\":"
          "true}}}");
  g_free (expect_request (f, "session/load", &id));
  answer (f, id, "\"result\":{}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_false (f->started->can_resume);
  g_assert_cmpstr (f->started->session_id, ==, "old");
}

/* A refusal names the step and the agent's reason; session/new refused by
 * an agent offering auth methods the profile names none of says so. */
static void
test_refused (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, NULL, NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id,
          "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{},"
          "\"authMethods\":[{\"id\":\"api-key\",\"name\":\"API key\"}]}");
  g_free (expect_request (f, "session/new", &id));
  answer (f, id, AGENT_ERROR);
  wait_done (f);
  g_assert_null (f->started);
  g_assert_error (f->error, AB_ACP_CONNECTION_ERROR,
                  AB_ACP_CONNECTION_ERROR_REFUSED);
  g_assert_nonnull (strstr (f->error->message,
                            "agent 'fake' failed session/new: no (the agent "
                            "offers the auth methods"));
  g_assert_nonnull (strstr (f->error->message, "api-key"));
}

static void
test_initialize_refused (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, NULL, NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, AGENT_ERROR);
  wait_done (f);
  g_assert_error (f->error, AB_ACP_CONNECTION_ERROR,
                  AB_ACP_CONNECTION_ERROR_REFUSED);
  g_assert_cmpstr (f->error->message, ==, "agent 'fake' failed initialize: no");
}

/* The connection failing is not a refusal: it is the connection's error,
 * for the caller to report once as the agent lost. */
static void
test_connection_lost (Fixture *f, gconstpointer data)
{
  gint64 id;

  start (f, NULL, NULL);
  g_free (expect_request (f, "initialize", &id));
  close (f->agent_fd);
  f->agent_fd = -1;
  wait_done (f);
  g_assert_null (f->started);
  g_assert_nonnull (f->error);
  g_assert_false (g_error_matches (f->error, AB_ACP_CONNECTION_ERROR,
                                   AB_ACP_CONNECTION_ERROR_REFUSED));
  while (f->lost == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (f->lost, ==, "agent-exited: the agent closed its output");
}

/* A new session "s1", its handshake done. */
static void
open_session (Fixture *f)
{
  gint64 id;

  start (f, NULL, NULL);
  g_free (expect_request (f, "initialize", &id));
  answer (f, id, INIT_PLAIN);
  g_free (expect_request (f, "session/new", &id));
  answer (f, id, "\"result\":{\"sessionId\":\"s1\"}");
  wait_done (f);
  g_assert_no_error (f->error);
  f->done = FALSE;
}

typedef struct
{
  Fixture *f;
  gboolean done;
  char *reason;
  GError *error;
  guint updates_before; /* updates signalled when the answer came */
} Prompt;

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Prompt *p = user_data;

  p->reason = ab_acp_connection_prompt_finish (AB_ACP_CONNECTION (source),
                                               result, &p->error);
  p->updates_before = p->f->updates->len;
  p->done = TRUE;
}

/* A prompt's content blocks go out as they are; the updates sent before
 * its answer, by either parser, reach the session before the stop
 * reason, those about the session marked so, those of another ACP
 * session dropped. */
static void
test_prompt (Fixture *f, gconstpointer data)
{
  Prompt p = { f };
  g_autofree char *params = NULL;
  g_autoptr (GString) lines = g_string_new (NULL);
  g_autofree char *seen = NULL;
  char *line;
  gint64 id;

  open_session (f);
  ab_acp_connection_prompt_async (f->conn, ab_acp_text_prompt ("hi"),
                                  on_prompted, &p);
  params = expect_request (f, "session/prompt", &id);
  g_assert_cmpstr (params, ==,
                   "{\"sessionId\":\"s1\",\"prompt\":[{\"type\":\"text\","
                   "\"text\":\"hi\"}]}");
  line = update_line ("s1", "agent_message_chunk", "a");
  g_string_append (lines, line);
  g_free (line);
  line = update_line ("other", "agent_message_chunk", "x");
  g_string_append (lines, line);
  g_free (line);
  line = update_line ("s1", "current_mode_update", "m");
  g_string_append (lines, line);
  g_free (line);
  /* an escaped session id: the text scanner leaves it to the tree */
  g_string_append (lines, "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                          "\"params\":{\"update\":{\"sessionUpdate\":"
                          "\"agent_message_chunk\",\"n\":1.5e0},"
                          "\"sessionId\":\"s\\u0031\"}}\n");
  g_string_append_printf (lines,
                          "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                          ",\"result\":{\"stopReason\":\"end_turn\"}}\n",
                          id);
  send_line (f, lines->str);
  iterate_until (&p.done);
  g_assert_no_error (p.error);
  g_assert_cmpstr (p.reason, ==, "end_turn");
  seen = updates_seen (f);
  g_assert_cmpstr (
      seen, ==,
      "{\"sessionUpdate\":\"agent_message_chunk\",\"content\":{\"type\":"
      "\"text\",\"text\":\"a\"}} session {\"sessionUpdate\":"
      "\"current_mode_update\",\"content\":{\"type\":\"text\",\"text\":"
      "\"m\"}} {\"sessionUpdate\":\"agent_message_chunk\",\"n\":1.5} |");
  g_assert_cmpuint (p.updates_before, ==, f->updates->len);
  g_free (p.reason);
}

/* An error answer to a prompt is the agent's refusal, with its message;
 * cancel sends session/cancel of the open session. */
static void
test_prompt_refused (Fixture *f, gconstpointer data)
{
  Prompt p = { f };
  g_autofree char *params = NULL;
  gint64 id;

  open_session (f);
  ab_acp_connection_prompt_async (f->conn, ab_acp_text_prompt ("hi"),
                                  on_prompted, &p);
  g_free (expect_request (f, "session/prompt", &id));
  ab_acp_connection_cancel (f->conn);
  {
    gint64 none;

    params = expect_request (f, "session/cancel", &none);
  }
  g_assert_cmpstr (params, ==, "{\"sessionId\":\"s1\"}");
  answer (f, id, AGENT_ERROR);
  iterate_until (&p.done);
  g_assert_null (p.reason);
  g_assert_error (p.error, AB_ACP_CONNECTION_ERROR,
                  AB_ACP_CONNECTION_ERROR_REFUSED);
  g_assert_cmpstr (p.error->message, ==, "no");
  g_clear_error (&p.error);
}

/* A permission request reaches the session after the updates sent before
 * it, and its answer goes back with the request's id; other requests are
 * not the session's (-32601). */
static void
test_permission (Fixture *f, gconstpointer data)
{
  g_autofree char *line = update_line ("s1", "tool_call", "t");

  open_session (f);
  send_line (f, line);
  send_line (f, "{\"jsonrpc\":\"2.0\",\"id\":\"q1\",\"method\":"
                "\"session/request_permission\",\"params\":{\"sessionId\":"
                "\"s1\",\"options\":[{\"optionId\":\"ok\",\"kind\":"
                "\"allow_once\"}]}}\n");
  while (f->permission_id == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (has_batches (f, 1));
  g_assert_nonnull (strstr (f->permission_params, "\"optionId\":\"ok\""));
  ab_acp_connection_answer_permission (f->conn, f->permission_id, "ok");
  send_line (f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"fs/read\"}\n");
  {
    g_autoptr (GString) all = g_string_new (NULL);
    gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

    while (strstr (f->from_client->str, "-32601") == NULL)
      {
        char buf[4096];
        ssize_t n = recv (f->agent_fd, buf, sizeof buf, MSG_DONTWAIT);

        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
        g_main_context_iteration (NULL, FALSE);
        if (n > 0)
          g_string_append_len (f->from_client, buf, n);
        else
          g_usleep (1000);
      }
  }
  g_assert_nonnull (strstr (f->from_client->str,
                            "{\"jsonrpc\":\"2.0\",\"id\":\"q1\",\"result\":"
                            "{\"outcome\":{\"outcome\":\"selected\","
                            "\"optionId\":\"ok\"}}}"));
}

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ab_acp_connection_close_finish (AB_ACP_CONNECTION (source), result);
  *(gboolean *)user_data = TRUE;
}

/* After close nothing more is signalled, even what was already sent;
 * closing again completes too; a prompt then fails without a word to the
 * agent. */
static void
test_close (Fixture *f, gconstpointer data)
{
  g_autofree char *line = update_line ("s1", "agent_message_chunk", "late");
  gboolean closed = FALSE, again = FALSE;
  Prompt p = { f };

  open_session (f);
  send_line (f, line);
  ab_acp_connection_close_async (f->conn, G_USEC_PER_SEC, on_closed, &closed);
  iterate_until (&closed);
  ab_acp_connection_close_async (f->conn, G_USEC_PER_SEC, on_closed, &again);
  iterate_until (&again);
  ab_acp_connection_prompt_async (f->conn, ab_acp_text_prompt ("hi"),
                                  on_prompted, &p);
  iterate_until (&p.done);
  g_assert_error (p.error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_clear_error (&p.error);
  close (f->agent_fd);
  f->agent_fd = -1;
  for (int i = 0; i < 50; i++)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  g_assert_cmpuint (f->updates->len, ==, 0);
  g_assert_null (f->lost);
  g_assert_cmpuint (ab_acp_connection_get_pid (f->conn), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/acp-connection/" name, Fixture, NULL, fixture_setup, func,     \
              fixture_teardown)
  ADD ("new", test_new);
  ADD ("load", test_load);
  ADD ("load-refused", test_load_refused);
  ADD ("cannot-load", test_cannot_load);
  ADD ("resume", test_resume);
  ADD ("resume-refused", test_resume_refused);
  ADD ("resume-refused-no-load", test_resume_refused_no_load);
  ADD ("resume-not-advertised", test_resume_not_advertised);
  ADD ("refused", test_refused);
  ADD ("initialize-refused", test_initialize_refused);
  ADD ("connection-lost", test_connection_lost);
  ADD ("prompt", test_prompt);
  ADD ("prompt-refused", test_prompt_refused);
  ADD ("permission", test_permission);
  ADD ("close", test_close);
#undef ADD

  return g_test_run ();
}
