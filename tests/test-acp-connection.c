/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the ACP handshake of AbAcpConnection, against a scripted
 * agent
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
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->rpc = ab_test_rpc_pair (1024 * 1024, &f->agent_fd);
  ab_jsonrpc_start (f->rpc);
  f->conn = ab_acp_connection_new (f->rpc);
  f->from_client = g_string_new (NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  ab_jsonrpc_close (f->rpc);
  g_clear_object (&f->conn);
  g_clear_object (&f->rpc);
  close (f->agent_fd);
  g_string_free (f->from_client, TRUE);
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
  *id = json_object_get_int_member (message, "id");
  return json_to_string (json_object_get_member (message, "params"), FALSE);
}

static void
answer (Fixture *f, gint64 id, const char *member_json)
{
  g_autofree char *line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT ",%s}\n", id,
      member_json);
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

#define INIT_PLAIN "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":{}}"
#define INIT_LOADS                                                             \
  "\"result\":{\"protocolVersion\":1,\"agentCapabilities\":"                   \
  "{\"loadSession\":true}}"
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
  g_assert_false (ab_acp_connection_is_loading (f->conn));
  answer (f, id, "\"result\":{}");
  g_free (params);
  params = expect_request (f, "session/load", &id);
  g_assert_nonnull (strstr (params, "\"sessionId\":\"old\""));
  g_assert_true (ab_acp_connection_is_loading (f->conn));
  answer (f, id, "\"result\":{}");
  wait_done (f);
  g_assert_no_error (f->error);
  g_assert_false (ab_acp_connection_is_loading (f->conn));
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
  g_assert_false (ab_acp_connection_is_loading (f->conn));
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
  ab_jsonrpc_close (f->rpc);
  wait_done (f);
  g_assert_null (f->started);
  g_assert_nonnull (f->error);
  g_assert_false (g_error_matches (f->error, AB_ACP_CONNECTION_ERROR,
                                   AB_ACP_CONNECTION_ERROR_REFUSED));
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
  ADD ("refused", test_refused);
  ADD ("initialize-refused", test_initialize_refused);
  ADD ("connection-lost", test_connection_lost);
#undef ADD

  return g_test_run ();
}
