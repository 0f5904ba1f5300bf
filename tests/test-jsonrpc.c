/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — JSON-RPC framing and dispatch, driven over a real socket
 *
 * The test plays the agent on the other end of a socketpair: it writes
 * lines as an agent would and reads what the client wrote.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bounded-wait.h"
#include "error.h"
#include "jsonrpc.h"
#include "line-reader.h"
#include "rpc-pair.h"

/* generous: the suite also runs under valgrind */
#define TEST_TIMEOUT_USEC (60 * G_USEC_PER_SEC)

typedef struct
{
  int agent_fd; /* the test's end: the "agent" */
  AbJsonRpc *rpc;
  GString *from_client;
  GPtrArray *notifications; /* "method params-json" */
  GPtrArray *requests;      /* "method id-json params-json" */
  gboolean answer_requests;
  gboolean close_in_notification;
  gboolean unref_in_notification;
  gboolean closed;
  GError *closed_error;
} Fixture;

typedef struct
{
  gboolean done;
  JsonNode *result;
  GError *error;
} CallResult;

static char *
node_to_text (JsonNode *node)
{
  if (node == NULL)
    return g_strdup ("-");
  return json_to_string (node, FALSE);
}

static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params,
                 Fixture *f)
{
  g_autofree char *text = node_to_text (params);

  g_ptr_array_add (f->notifications, g_strdup_printf ("%s %s", method, text));
  if (f->close_in_notification)
    ab_jsonrpc_close (rpc);
  if (f->unref_in_notification)
    g_clear_object (&f->rpc);
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            Fixture *f)
{
  g_autofree char *id_text = node_to_text (id);
  g_autofree char *params_text = node_to_text (params);
  g_autoptr (JsonNode) result = NULL;

  g_ptr_array_add (f->requests,
                   g_strdup_printf ("%s %s %s", method, id_text, params_text));
  if (!f->answer_requests)
    return FALSE;
  result = json_from_string ("{\"outcome\":\"allowed\"}", NULL);
  ab_jsonrpc_reply (rpc, id, g_steal_pointer (&result));
  return TRUE;
}

static void
on_closed (AbJsonRpc *rpc, const GError *error, Fixture *f)
{
  g_assert_false (f->closed);
  f->closed = TRUE;
  if (error != NULL)
    f->closed_error = g_error_copy (error);
}

static void
fixture_setup (Fixture *f, gsize max_line)
{
  f->rpc = ab_test_rpc_pair (max_line, &f->agent_fd);
  f->from_client = g_string_new (NULL);
  f->notifications = g_ptr_array_new_with_free_func (g_free);
  f->requests = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (f->rpc, "notification", G_CALLBACK (on_notification), f);
  g_signal_connect (f->rpc, "request", G_CALLBACK (on_request), f);
  g_signal_connect (f->rpc, "closed", G_CALLBACK (on_closed), f);
  ab_jsonrpc_start (f->rpc);
}

static void
fixture_teardown (Fixture *f)
{
  if (f->rpc != NULL)
    ab_jsonrpc_close (f->rpc);
  g_clear_object (&f->rpc);
  if (f->agent_fd >= 0)
    close (f->agent_fd);
  g_string_free (f->from_client, TRUE);
  g_ptr_array_unref (f->notifications);
  g_ptr_array_unref (f->requests);
  g_clear_error (&f->closed_error);
  /* let deferred completions run so nothing leaks into the next test */
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
iterate_until (gboolean *flag)
{
  AB_ITERATE_UNTIL (*flag, TEST_TIMEOUT_USEC / 1000);
}

/* Lets the loop run briefly, for asserting that something does NOT
 * happen. */
static void
spin (guint msec)
{
  gint64 end = g_get_monotonic_time () + msec * 1000;

  while (g_get_monotonic_time () < end)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (1000);
    }
}

static void
agent_send (Fixture *f, const char *text)
{
  gsize len = strlen (text);

  while (len > 0)
    {
      ssize_t n = write (f->agent_fd, text, len);

      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >, 0);
      text += n;
      len -= (gsize)n;
    }
}

/* Reads the next line the client wrote, running the loop meanwhile. */
static JsonNode *
agent_read_message (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;
  gsize searched = 0;
  char *nl;

  while ((nl = memchr (f->from_client->str + searched, '\n',
                       f->from_client->len - searched))
         == NULL)
    {
      char buf[65536];
      ssize_t n;

      searched = f->from_client->len;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      n = recv (f->agent_fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        g_string_append_len (f->from_client, buf, n);
      else
        g_usleep (1000);
    }

  {
    gsize len = (gsize)(nl - f->from_client->str);
    g_autofree char *line = g_strndup (f->from_client->str, len);
    g_autoptr (GError) error = NULL;
    JsonNode *node;

    g_string_erase (f->from_client, 0, (gssize)len + 1);
    node = json_from_string (line, &error);
    g_assert_no_error (error);
    g_assert_nonnull (node);
    g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
    g_assert_cmpstr (
        json_object_get_string_member (json_node_get_object (node), "jsonrpc"),
        ==, "2.0");
    return node;
  }
}

static void
on_call_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CallResult *r = user_data;

  r->result = ab_jsonrpc_call_finish (AB_JSONRPC (source), result, &r->error);
  r->done = TRUE;
}

static void
call_result_clear (CallResult *r)
{
  g_clear_pointer (&r->result, json_node_unref);
  g_clear_error (&r->error);
}

static gint64
message_id (JsonNode *message)
{
  return json_object_get_int_member (json_node_get_object (message), "id");
}

static const char *
message_method (JsonNode *message)
{
  return json_object_get_string_member (json_node_get_object (message),
                                        "method");
}

/* ------------------------------------------------------------------ */

static void
test_call_out_of_order (void)
{
  Fixture f = { 0 };
  CallResult a = { 0 }, b = { 0 };
  g_autoptr (JsonNode) ma = NULL;
  g_autoptr (JsonNode) mb = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *ra = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "initialize",
                   json_from_string ("{\"protocolVersion\":1}", NULL), NULL,
                   on_call_done, &a);
  ab_jsonrpc_call (f.rpc, "session/new", NULL, NULL, on_call_done, &b);

  ma = agent_read_message (&f);
  mb = agent_read_message (&f);
  g_assert_cmpstr (message_method (ma), ==, "initialize");
  g_assert_cmpstr (message_method (mb), ==, "session/new");
  g_assert_cmpint (message_id (mb), >, message_id (ma));
  g_assert_true (json_object_has_member (json_node_get_object (ma), "params"));
  g_assert_false (json_object_has_member (json_node_get_object (mb), "params"));

  /* answer the second first, in one write together with the first */
  reply = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                           ",\"result\":{\"sessionId\":\"s1\"}}\n"
                           "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                           ",\"result\":null}\n",
                           message_id (mb), message_id (ma));
  agent_send (&f, reply);
  iterate_until (&a.done);
  iterate_until (&b.done);

  g_assert_no_error (a.error);
  g_assert_no_error (b.error);
  g_assert_true (JSON_NODE_HOLDS_NULL (a.result));
  g_assert_cmpstr (json_object_get_string_member (
                       json_node_get_object (b.result), "sessionId"),
                   ==, "s1");
  ra = node_to_text (a.result);
  g_assert_cmpstr (ra, ==, "null");
  g_assert_false (f.closed);

  call_result_clear (&a);
  call_result_clear (&b);
  fixture_teardown (&f);
}

static void
test_notification (void)
{
  Fixture f = { 0 };

  fixture_setup (&f, 1024);
  agent_send (&f, "\n{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                  "\"params\":{\"sessionId\":\"s1\"}}\r\n  \n"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}\n");
  AB_ITERATE_UNTIL (f.notifications->len >= 2, TEST_TIMEOUT_USEC / 1000);
  g_assert_cmpstr (g_ptr_array_index (f.notifications, 0), ==,
                   "session/update {\"sessionId\":\"s1\"}");
  g_assert_cmpstr (g_ptr_array_index (f.notifications, 1), ==, "ping -");
  g_assert_false (f.closed);
  fixture_teardown (&f);
}

static void
test_request_reply (void)
{
  Fixture f = { 0 };
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (JsonNode) unhandled = NULL;
  JsonObject *o;

  fixture_setup (&f, 1024);
  f.answer_requests = TRUE;
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"id\":\"perm-1\",\"method\":"
                  "\"session/request_permission\",\"params\":{\"a\":1}}\n");
  reply = agent_read_message (&f);
  g_assert_cmpuint (f.requests->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f.requests, 0), ==,
                   "session/request_permission \"perm-1\" {\"a\":1}");
  o = json_node_get_object (reply);
  g_assert_cmpstr (json_object_get_string_member (o, "id"), ==, "perm-1");
  g_assert_cmpstr (json_object_get_string_member (
                       json_object_get_object_member (o, "result"), "outcome"),
                   ==, "allowed");

  /* nobody takes it: the client must still answer, with -32601 */
  f.answer_requests = FALSE;
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"fs/read\"}\n");
  unhandled = agent_read_message (&f);
  o = json_node_get_object (unhandled);
  g_assert_cmpint (json_object_get_int_member (o, "id"), ==, 7);
  g_assert_cmpint (json_object_get_int_member (
                       json_object_get_object_member (o, "error"), "code"),
                   ==, -32601);
  g_assert_false (f.closed);
  fixture_teardown (&f);
}

static void
run_error_response (const char *error_json, int code, const char *message)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (JsonNode) m = NULL;
  g_autofree char *reply = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "session/new", NULL, NULL, on_call_done, &r);
  m = agent_read_message (&f);
  reply = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                           ",\"error\":%s}\n",
                           message_id (m), error_json);
  agent_send (&f, reply);
  iterate_until (&r.done);
  g_assert_error (r.error, AB_JSONRPC_ERROR, code);
  g_assert_cmpstr (r.error->message, ==, message);
  g_assert_null (r.result);
  g_assert_false (f.closed); /* an error answer is not a protocol error */
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_error_response (void)
{
  run_error_response ("{\"code\":-32000,\"message\":\"Authentication "
                      "required\"}",
                      -32000, "Authentication required");
  run_error_response (
      "{\"code\":-32603,\"message\":\"Internal error\",\"data\":{"
      "\"message\":\"model overloaded, try again\"}}",
      -32603, "Internal error: model overloaded, try again");
}

/* Expects the agent's @line to be fatal, failing a pending call with an
 * AgentFailed error whose message starts with @prefix. */
static void
run_fatal (gsize max_line, const char *line, const char *prefix)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (JsonNode) m = NULL;

  fixture_setup (&f, max_line);
  ab_jsonrpc_call (f.rpc, "session/prompt", NULL, NULL, on_call_done, &r);
  m = agent_read_message (&f);
  agent_send (&f, line);
  iterate_until (&f.closed);
  g_assert_true (r.done); /* pending calls complete before "closed" */
  g_assert_error (f.closed_error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_true (g_str_has_prefix (f.closed_error->message, prefix));
  g_assert_error (r.error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_cmpstr (r.error->message, ==, f.closed_error->message);
  g_assert_true (ab_jsonrpc_is_closed (f.rpc));

  /* nothing is read or dispatched after a fatal error */
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"late\"}\n");
  spin (20);
  g_assert_cmpuint (f.notifications->len, ==, 0);
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_fatal_errors (void)
{
  run_fatal (1024, "{\"jsonrpc\":\"2.0\",\"method\":\n",
             "agent sent invalid JSON: ");
  run_fatal (1024, "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{}}\n",
             "agent answered unknown request id 42");
  run_fatal (1024, "[1,2,3]\n",
             "agent sent a message that is not a JSON object");
  run_fatal (1024, "{\"jsonrpc\":\"1.0\",\"method\":\"x\"}\n",
             "agent sent a message with jsonrpc version \"1.0\"");
  run_fatal (1024, "{\"method\":\"x\"}\n",
             "agent sent a message without \"jsonrpc\"");
  run_fatal (1024,
             "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
             "-32700,\"message\":\"Parse error\"}}\n",
             "agent reported an error without an id: Parse error");
  run_fatal (1024, "{\"jsonrpc\":\"2.0\",\"foo\":1}\n",
             "agent sent a message that is neither");
}

static void
test_too_deep (void)
{
  g_autoptr (GString) line = g_string_new ("{\"jsonrpc\":\"2.0\",\"method\":"
                                           "\"x\",\"params\":");

  for (int i = 0; i < 10000; i++)
    g_string_append_c (line, '[');
  g_string_append_c (line, '\n');
  run_fatal (1 << 20, line->str, "agent sent JSON nested deeper than");
}

/* A notification line of exactly @len bytes. */
static char *
line_of_length (gsize len)
{
  const char *head = "{\"jsonrpc\":\"2.0\",\"method\":\"pad\",\"params\":\"";
  const char *tail = "\"}";
  gsize fixed = strlen (head) + strlen (tail);
  g_autoptr (GString) line = g_string_new (head);

  g_assert_cmpuint (len, >, fixed);
  for (gsize i = 0; i < len - fixed; i++)
    g_string_append_c (line, 'a');
  g_string_append (line, tail);
  g_assert_cmpuint (line->len, ==, len);
  return g_string_free (g_steal_pointer (&line), FALSE);
}

static void
test_line_limit (void)
{
  Fixture f = { 0 };
  g_autofree char *exact = line_of_length (1024);
  g_autofree char *exact_nl = g_strconcat (exact, "\n", NULL);
  g_autofree char *over = line_of_length (1025);

  fixture_setup (&f, 1024);
  agent_send (&f, exact_nl);
  AB_ITERATE_UNTIL (f.notifications->len >= 1 || f.closed,
                    TEST_TIMEOUT_USEC / 1000);
  g_assert_false (f.closed);
  g_assert_cmpuint (f.notifications->len, ==, 1);

  /* no '\n' is ever sent: the line is refused once it is too long, not
   * collected until its end */
  agent_send (&f, over);
  iterate_until (&f.closed);
  g_assert_error (f.closed_error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_cmpstr (f.closed_error->message, ==,
                   "agent sent a line of more than 1024 bytes");
  fixture_teardown (&f);
}

static gboolean
never_called (const char *line, gsize len, gpointer user_data)
{
  g_assert_not_reached ();
  return FALSE;
}

static void
test_line_reader_bounded (void)
{
  g_autoptr (AbLineReader) reader = ab_line_reader_new (100);
  g_autoptr (GError) error = NULL;
  char chunk[30];
  gboolean ok = TRUE;
  int i;

  memset (chunk, 'x', sizeof chunk);
  /* a never-ending line: memory held must stay within the limit */
  for (i = 0; i < 1000 && ok; i++)
    {
      ok = ab_line_reader_feed (reader, chunk, sizeof chunk, never_called, NULL,
                                &error);
      g_assert_cmpuint (ab_line_reader_get_buffered (reader), <=, 100);
    }
  g_assert_false (ok);
  g_assert_cmpint (i, ==, 4); /* 30, 60, 90, then 120 > 100 */
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
}

static void
test_split_writes (void)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (JsonNode) m = NULL;
  g_autofree char *reply = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "session/prompt", NULL, NULL, on_call_done, &r);
  m = agent_read_message (&f);
  reply = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{}}\n"
      "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
      ",\"result\":{\"stopReason\":\"end_turn\"}}\n",
      message_id (m));
  for (const char *p = reply; *p != '\0'; p++)
    {
      char one[2] = { *p, '\0' };

      agent_send (&f, one);
      /* let the client read each byte on its own */
      while (g_main_context_iteration (NULL, FALSE))
        ;
    }
  iterate_until (&r.done);
  g_assert_no_error (r.error);
  g_assert_cmpuint (f.notifications->len, ==, 1);
  g_assert_cmpstr (json_object_get_string_member (
                       json_node_get_object (r.result), "stopReason"),
                   ==, "end_turn");
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_eof (void)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (JsonNode) m = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "session/prompt", NULL, NULL, on_call_done, &r);
  m = agent_read_message (&f);
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"partial\"}");
  shutdown (f.agent_fd, SHUT_WR);
  iterate_until (&f.closed);
  g_assert_null (f.closed_error);
  g_assert_true (r.done);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpstr (r.error->message, ==, "agent exited");
  /* an unterminated last line is not a message */
  g_assert_cmpuint (f.notifications->len, ==, 0);

  /* calls after the end fail at once, from the loop */
  call_result_clear (&r);
  r.done = FALSE;
  ab_jsonrpc_call (f.rpc, "x", NULL, NULL, on_call_done, &r);
  g_assert_false (r.done);
  iterate_until (&r.done);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_close (void)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (JsonNode) m = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "session/prompt", NULL, NULL, on_call_done, &r);
  m = agent_read_message (&f);
  ab_jsonrpc_close (f.rpc);
  iterate_until (&r.done);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* after close: no signal of any kind */
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"late\"}\n"
                  "garbage\n");
  close (f.agent_fd);
  f.agent_fd = -1;
  spin (20);
  g_assert_cmpuint (f.notifications->len, ==, 0);
  g_assert_false (f.closed);
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_cancel_call (void)
{
  Fixture f = { 0 };
  CallResult r = { 0 };
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (JsonNode) m = NULL;
  g_autofree char *reply = NULL;

  fixture_setup (&f, 1024);
  ab_jsonrpc_call (f.rpc, "session/prompt", NULL, cancellable, on_call_done,
                   &r);
  m = agent_read_message (&f);
  g_cancellable_cancel (cancellable);
  iterate_until (&r.done);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* the late answer to the abandoned call is not an unknown id */
  reply = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                           ",\"result\":{}}\n"
                           "{\"jsonrpc\":\"2.0\",\"method\":\"after\"}\n",
                           message_id (m));
  agent_send (&f, reply);
  AB_ITERATE_UNTIL (f.notifications->len >= 1 || f.closed,
                    TEST_TIMEOUT_USEC / 1000);
  g_assert_false (f.closed);
  call_result_clear (&r);
  fixture_teardown (&f);
}

static void
test_reentrancy (void)
{
  Fixture f = { 0 };

  /* close from a handler: the rest of the same read is dropped */
  fixture_setup (&f, 1024);
  f.close_in_notification = TRUE;
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"one\"}\n"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"two\"}\n");
  AB_ITERATE_UNTIL (f.notifications->len >= 1, TEST_TIMEOUT_USEC / 1000);
  spin (20);
  g_assert_cmpuint (f.notifications->len, ==, 1);
  g_assert_false (f.closed);
  fixture_teardown (&f);

  /* drop the last reference from a handler */
  memset (&f, 0, sizeof f);
  fixture_setup (&f, 1024);
  f.unref_in_notification = TRUE;
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"one\"}\n"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"two\"}\n");
  AB_ITERATE_UNTIL (f.notifications->len >= 1, TEST_TIMEOUT_USEC / 1000);
  spin (20);
  g_assert_null (f.rpc);
  fixture_teardown (&f);
}

/* Sends the notification "big" with a string of @len letters as params;
 * returns the string. */
static char *
notify_big (Fixture *f, gsize len)
{
  GString *big = g_string_new (NULL);
  JsonNode *params;

  for (gsize i = 0; i < len; i++)
    g_string_append_c (big, 'a' + i % 26);
  params = json_node_new (JSON_NODE_VALUE);
  json_node_set_string (params, big->str);
  ab_jsonrpc_notify (f->rpc, "big", params);
  return g_string_free (big, FALSE);
}

static void
test_writes_large (void)
{
  Fixture f = { 0 };
  g_autoptr (JsonNode) m = NULL;
  g_autofree char *big = NULL;

  /* larger than any socket buffer: needs partial non-blocking writes */
  fixture_setup (&f, 1024);
  big = notify_big (&f, 1024 * 1024);
  m = agent_read_message (&f);
  g_assert_cmpstr (message_method (m), ==, "big");
  g_assert_cmpstr (
      json_object_get_string_member (json_node_get_object (m), "params"), ==,
      big);
  fixture_teardown (&f);
}

/* While more than AB_JSONRPC_READ_PAUSE_BYTES wait to be written to an
 * agent that does not read, nothing is read from it; once it has read
 * them, reading resumes and what it sent meanwhile arrives. */
static void
test_read_pause (void)
{
  Fixture f = { 0 };
  g_autoptr (JsonNode) m = NULL;

  fixture_setup (&f, 4096);
  /* far more than a socket buffer: most of it stays queued */
  g_free (notify_big (&f, 4 * AB_JSONRPC_READ_PAUSE_BYTES));
  agent_send (&f, "{\"jsonrpc\":\"2.0\",\"method\":\"n1\",\"params\":{}}\n");
  spin (200);
  g_assert_cmpuint (f.notifications->len, ==, 0);

  m = agent_read_message (&f);
  g_assert_cmpstr (message_method (m), ==, "big");
  {
    gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

    while (f.notifications->len == 0)
      {
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
        g_main_context_iteration (NULL, FALSE);
        g_usleep (1000);
      }
  }
  g_assert_cmpstr (f.notifications->pdata[0], ==, "n1 {}");
  fixture_teardown (&f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* as in the daemon: a write to a peer that went away is an error */
  signal (SIGPIPE, SIG_IGN);

  g_test_add_func ("/jsonrpc/call-out-of-order", test_call_out_of_order);
  g_test_add_func ("/jsonrpc/notification", test_notification);
  g_test_add_func ("/jsonrpc/request-reply", test_request_reply);
  g_test_add_func ("/jsonrpc/error-response", test_error_response);
  g_test_add_func ("/jsonrpc/fatal-errors", test_fatal_errors);
  g_test_add_func ("/jsonrpc/too-deep", test_too_deep);
  g_test_add_func ("/jsonrpc/line-limit", test_line_limit);
  g_test_add_func ("/jsonrpc/line-reader-bounded", test_line_reader_bounded);
  g_test_add_func ("/jsonrpc/split-writes", test_split_writes);
  g_test_add_func ("/jsonrpc/eof", test_eof);
  g_test_add_func ("/jsonrpc/close", test_close);
  g_test_add_func ("/jsonrpc/cancel-call", test_cancel_call);
  g_test_add_func ("/jsonrpc/reentrancy", test_reentrancy);
  g_test_add_func ("/jsonrpc/writes-large", test_writes_large);
  g_test_add_func ("/jsonrpc/read-pause", test_read_pause);

  return g_test_run ();
}
