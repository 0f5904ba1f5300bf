/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — newline-delimited JSON-RPC 2.0 over an agent's pipes */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib-unix.h>

#include "error.h"
#include "fd-watch.h"
#include "json-text.h"
#include "jsonrpc.h"
#include "line-reader.h"

#define READ_CHUNK_BYTES 65536

G_DEFINE_QUARK (ab - jsonrpc - error - quark, ab_jsonrpc_error)

typedef enum
{
  STATE_OPEN,
  STATE_FAILED, /* fatal error or EOF: "closed" is being / was emitted */
  STATE_CLOSED, /* ab_jsonrpc_close(): silent from now on */
} State;

typedef struct
{
  AbJsonRpc *self; /* unowned: the table entry dies before self */
  gint64 id;
  GTask *task;            /* NULL once the caller gave up (cancelled) */
  GSource *cancel_source; /* fires in the loop when the call is cancelled */
} PendingCall;

struct _AbJsonRpc
{
  GObject parent_instance;

  GInputStream *input;
  GOutputStream *output;
  AbLineReader *reader;
  JsonParser *parser;
  guint8 *read_buf;

  State state;
  gint64 next_id;
  gint64 first_id;     /* answers to lower ids were asked by someone else */
  GHashTable *pending; /* gint64 *id -> PendingCall * */

  AbFdWatch *read_watch; /* on the input stream's descriptor, while read */
  gboolean started;      /* ab_jsonrpc_start() was called */
  GSource *write_source;
  GQueue out_queue; /* GBytes, each one serialised message + '\n' */
  gsize out_offset; /* bytes of the head already written */
  gsize out_bytes;  /* bytes queued, with the overhead of each message */

  /* a failure noticed inside an API call, reported from the loop so no
   * signal fires from within the caller's call */
  GError *deferred_error;
  GSource *deferred_source;

  /* the fast path (ab_jsonrpc_set_text_handlers) */
  AbJsonRpcTextFunc text_func;
  AbJsonRpcReadDoneFunc read_done_func;
  gpointer text_data;
  gboolean reading; /* inside the dispatch of one read's lines */
};

G_DEFINE_TYPE (AbJsonRpc, ab_jsonrpc, G_TYPE_OBJECT)

enum
{
  SIGNAL_NOTIFICATION,
  SIGNAL_REQUEST,
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void ab_jsonrpc_fail (AbJsonRpc *self, const GError *error);

static void
pending_call_free (PendingCall *call)
{
  if (call->cancel_source != NULL)
    {
      g_source_destroy (call->cancel_source);
      g_source_unref (call->cancel_source);
    }
  g_clear_object (&call->task);
  g_free (call);
}

static void
stop_io (AbJsonRpc *self)
{
  g_clear_pointer (&self->read_watch, ab_fd_watch_free);
  if (self->write_source != NULL)
    {
      g_source_destroy (self->write_source);
      g_clear_pointer (&self->write_source, g_source_unref);
    }
  if (self->deferred_source != NULL)
    {
      g_source_destroy (self->deferred_source);
      g_clear_pointer (&self->deferred_source, g_source_unref);
    }
  g_clear_error (&self->deferred_error);
  g_queue_clear_full (&self->out_queue, (GDestroyNotify)g_bytes_unref);
  self->out_offset = 0;
  self->out_bytes = 0;
}

/* Completes every call still waiting with @error.  The table is emptied
 * first so callbacks that run synchronously see a consistent object. */
static void
fail_pending (AbJsonRpc *self, const GError *error)
{
  g_autoptr (GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  PendingCall *call;

  g_hash_table_iter_init (&iter, self->pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&call))
    {
      if (call->task != NULL)
        g_ptr_array_add (tasks, g_steal_pointer (&call->task));
      g_hash_table_iter_remove (&iter);
    }

  for (guint i = 0; i < tasks->len; i++)
    g_task_return_error (g_ptr_array_index (tasks, i), g_error_copy (error));
}

static void
ab_jsonrpc_fail (AbJsonRpc *self, const GError *error)
{
  g_autoptr (AbJsonRpc) hold G_GNUC_UNUSED = g_object_ref (self);
  g_autoptr (GError) pending_error = NULL;

  if (self->state != STATE_OPEN)
    return;

  self->state = STATE_FAILED;
  stop_io (self);

  if (error != NULL)
    pending_error = g_error_copy (error);
  else
    pending_error = g_error_new_literal (
        G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "agent exited");
  fail_pending (self, pending_error);

  /* a call callback may have closed us meanwhile: then stay silent */
  if (self->state == STATE_FAILED)
    g_signal_emit (self, signals[SIGNAL_CLOSED], 0, error);
}

static void fail_protocol (AbJsonRpc *self, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
fail_protocol (AbJsonRpc *self, const char *format, ...)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  error = g_error_new_literal (AB_ERROR, AB_ERROR_AGENT_FAILED, message);
  ab_jsonrpc_fail (self, error);
}

static gboolean
on_deferred_failure (gpointer user_data)
{
  AbJsonRpc *self = AB_JSONRPC (user_data);
  g_autoptr (GError) error = g_steal_pointer (&self->deferred_error);

  g_clear_pointer (&self->deferred_source, g_source_unref);
  ab_jsonrpc_fail (self, error);
  return G_SOURCE_REMOVE;
}

static void
fail_later (AbJsonRpc *self, GError *error /* transfer full */)
{
  if (self->deferred_source != NULL || self->state != STATE_OPEN)
    {
      g_error_free (error);
      return;
    }
  self->deferred_error = error;
  self->deferred_source = g_idle_source_new ();
  g_source_set_callback (self->deferred_source, on_deferred_failure, self,
                         NULL);
  g_source_attach (self->deferred_source, NULL);
}

/* ------------------------------------------------------------------ */
/* Reading and dispatching                                             */
/* ------------------------------------------------------------------ */

static gboolean
is_blank (const char *line, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isspace (line[i]))
      return FALSE;
  return TRUE;
}

static const char *
get_string_member (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static GError *
error_from_response (JsonNode *error_node)
{
  JsonObject *error_object;
  JsonNode *code_node, *data_node;
  const char *message = NULL;
  const char *data_message = NULL;
  gint64 code = AB_JSONRPC_ERROR_INTERNAL_ERROR;

  if (!JSON_NODE_HOLDS_OBJECT (error_node))
    return g_error_new (AB_JSONRPC_ERROR, AB_JSONRPC_ERROR_INTERNAL_ERROR,
                        "agent sent a malformed error response");

  error_object = json_node_get_object (error_node);
  code_node = json_object_get_member (error_object, "code");
  if (code_node != NULL && JSON_NODE_HOLDS_VALUE (code_node)
      && json_node_get_value_type (code_node) == G_TYPE_INT64)
    code = json_node_get_int (code_node);
  code = CLAMP (code, G_MININT, G_MAXINT);
  message = get_string_member (error_object, "message");

  data_node = json_object_get_member (error_object, "data");
  if (data_node != NULL && JSON_NODE_HOLDS_OBJECT (data_node))
    data_message
        = get_string_member (json_node_get_object (data_node), "message");

  if (message == NULL || *message == '\0')
    message = "agent reported an error without a message";
  if (data_message != NULL && *data_message != '\0')
    return g_error_new (AB_JSONRPC_ERROR, (int)code, "%s: %s", message,
                        data_message);
  return g_error_new_literal (AB_JSONRPC_ERROR, (int)code, message);
}

static void
dispatch_response (AbJsonRpc *self, JsonObject *message, JsonNode *id)
{
  JsonNode *error_node = json_object_get_member (message, "error");
  JsonNode *result_node = json_object_get_member (message, "result");
  PendingCall *call = NULL;
  g_autoptr (GTask) task = NULL;
  gint64 id_value;

  if (JSON_NODE_HOLDS_VALUE (id)
      && json_node_get_value_type (id) == G_TYPE_INT64)
    {
      id_value = json_node_get_int (id);
      call = g_hash_table_lookup (self->pending, &id_value);
    }

  if (call == NULL)
    {
      g_autofree char *id_text = json_to_string (id, FALSE);

      if (JSON_NODE_HOLDS_NULL (id) && error_node != NULL)
        {
          g_autoptr (GError) error = error_from_response (error_node);

          /* JSON-RPC's way of saying "I could not read your request" */
          fail_protocol (self, "agent reported an error without an id: %s",
                         error->message);
          return;
        }
      /* A request of the daemon instance before this one, whose
       * connection this one continues. */
      if (JSON_NODE_HOLDS_VALUE (id)
          && json_node_get_value_type (id) == G_TYPE_INT64
          && json_node_get_int (id) < self->first_id)
        {
          g_debug ("dropping the answer to request %s of an earlier "
                   "connection",
                   id_text);
          return;
        }
      fail_protocol (self, "agent answered unknown request id %s", id_text);
      return;
    }

  task = g_steal_pointer (&call->task);
  g_hash_table_remove (self->pending, &id_value);

  if (task == NULL)
    return; /* the caller cancelled; the answer is no longer wanted */

  if (error_node != NULL)
    g_task_return_error (task, error_from_response (error_node));
  else
    g_task_return_pointer (task, json_node_copy (result_node),
                           (GDestroyNotify)json_node_unref);
}

static void
dispatch_request (AbJsonRpc *self, const char *method, JsonNode *id,
                  JsonNode *params)
{
  gboolean handled = FALSE;

  g_signal_emit (self, signals[SIGNAL_REQUEST], 0, method, id, params,
                 &handled);
  if (!handled && self->state == STATE_OPEN)
    ab_jsonrpc_reply_error (self, id, AB_JSONRPC_ERROR_METHOD_NOT_FOUND,
                            "Method not found");
}

static void
dispatch_message (AbJsonRpc *self, JsonNode *root)
{
  JsonObject *message;
  JsonNode *method_node, *id, *params;
  const char *version;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      fail_protocol (self, "agent sent a message that is not a JSON object");
      return;
    }
  message = json_node_get_object (root);

  version = get_string_member (message, "jsonrpc");
  if (g_strcmp0 (version, "2.0") != 0)
    {
      if (version == NULL)
        fail_protocol (self, "agent sent a message without \"jsonrpc\": "
                             "\"2.0\"");
      else
        fail_protocol (self,
                       "agent sent a message with jsonrpc version \"%s\", "
                       "expected \"2.0\"",
                       version);
      return;
    }

  method_node = json_object_get_member (message, "method");
  id = json_object_get_member (message, "id");
  params = json_object_get_member (message, "params");

  if (method_node != NULL)
    {
      const char *method = get_string_member (message, "method");

      if (method == NULL)
        {
          fail_protocol (self, "agent sent a message whose \"method\" is "
                               "not a string");
          return;
        }
      if (id != NULL)
        dispatch_request (self, method, id, params);
      else
        g_signal_emit (self, signals[SIGNAL_NOTIFICATION], 0, method, params);
      return;
    }

  if (id != NULL
      && (json_object_has_member (message, "result")
          || json_object_has_member (message, "error")))
    {
      dispatch_response (self, message, id);
      return;
    }

  fail_protocol (self, "agent sent a message that is neither a request, a "
                       "notification nor a response");
}

/* ---- the fast path: notifications without a JSON tree ----------------
 *
 * An agent streaming a turn sends thousands of notifications a second;
 * those valid by src/json-text.c's strict check go to the text handler
 * without json-glib building a tree for each.
 */

/* A notification handed to the fast handler, or FALSE: json-glib then. */
static gboolean
dispatch_text (AbJsonRpc *self, const char *line, gsize len)
{
  static const char *const names[] = { "jsonrpc", "method", "id", "params" };
  AbJsonSpan m[G_N_ELEMENTS (names)];
  const char *text;
  gsize text_len;
  char method[64];

  if (self->text_func == NULL
      || !ab_json_is_valid (line, len, AB_JSON_MAX_DEPTH)
      || !ab_json_object_get_members (line, len, names, m, G_N_ELEMENTS (m)))
    return FALSE;
  if (!ab_json_span_get_plain_string (&m[0], &text, &text_len) || text_len != 3
      || memcmp (text, "2.0", 3) != 0)
    return FALSE;
  if (m[2].data != NULL || m[3].data == NULL || m[3].data[0] != '{'
      || !ab_json_span_get_plain_string (&m[1], &text, &text_len)
      || text_len >= sizeof method)
    return FALSE;
  memcpy (method, text, text_len);
  method[text_len] = '\0';
  return self->text_func (self, method, m[3].data, m[3].len, self->text_data);
}

static gboolean
on_line (const char *line, gsize len, gpointer user_data)
{
  AbJsonRpc *self = AB_JSONRPC (user_data);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) root = NULL;

  if (is_blank (line, len))
    return TRUE;
  if (dispatch_text (self, line, len))
    return self->state == STATE_OPEN;

  if (ab_json_too_deep (line, len, AB_JSON_MAX_DEPTH))
    {
      fail_protocol (self, "agent sent JSON nested deeper than %u levels",
                     AB_JSON_MAX_DEPTH);
      return FALSE;
    }

  if (!json_parser_load_from_data (self->parser, line, (gssize)len, &error))
    {
      fail_protocol (self, "agent sent invalid JSON: %s", error->message);
      return FALSE;
    }
  root = json_parser_steal_root (self->parser);
  if (root != NULL && !ab_json_node_is_utf8 (root))
    {
      fail_protocol (self, "agent sent JSON whose string escapes decode to "
                           "invalid UTF-8");
      return FALSE;
    }
  dispatch_message (self, root);

  return self->state == STATE_OPEN;
}

static void
handle_bytes (AbJsonRpc *self, const char *data, gsize len)
{
  g_autoptr (AbJsonRpc) hold G_GNUC_UNUSED = g_object_ref (self);
  g_autoptr (GError) error = NULL;

  if (self->state != STATE_OPEN)
    return;

  self->reading = TRUE;
  if (!ab_line_reader_feed (self->reader, data, len, on_line, self, &error))
    fail_protocol (self,
                   "agent sent a line of more than %" G_GSIZE_FORMAT " bytes",
                   ab_line_reader_get_max_line_bytes (self->reader));
  self->reading = FALSE;
  if (self->state == STATE_OPEN && self->read_done_func != NULL)
    self->read_done_func (self, self->text_data);
}

void
ab_jsonrpc_set_text_handlers (AbJsonRpc *self, AbJsonRpcTextFunc func,
                              AbJsonRpcReadDoneFunc read_done,
                              gpointer user_data)
{
  g_return_if_fail (AB_IS_JSONRPC (self));

  self->text_func = func;
  self->read_done_func = read_done;
  self->text_data = user_data;
}

gboolean
ab_jsonrpc_is_reading (AbJsonRpc *self)
{
  return self->reading;
}

void
ab_jsonrpc_feed_for_testing (AbJsonRpc *self, const char *data, gsize len)
{
  g_return_if_fail (AB_IS_JSONRPC (self));

  handle_bytes (self, data, len);
}

/* Straight from the descriptor: the stream's own non-blocking read would
 * poll it twice more first. */
static void
on_readable (gpointer user_data)
{
  AbJsonRpc *self = AB_JSONRPC (user_data);
  g_autoptr (AbJsonRpc) hold G_GNUC_UNUSED = g_object_ref (self);
  int fd = g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (self->input));
  gssize n;

  do
    n = read (fd, self->read_buf, READ_CHUNK_BYTES);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      int saved = errno;
      g_autoptr (GError) error = NULL;

      if (saved == EAGAIN)
        return;
      error = g_error_new (G_IO_ERROR, g_io_error_from_errno (saved),
                           "cannot read from agent: %s", g_strerror (saved));
      ab_jsonrpc_fail (self, error);
      return;
    }
  if (n == 0)
    {
      ab_jsonrpc_fail (self, NULL);
      return;
    }

  handle_bytes (self, (const char *)self->read_buf, (gsize)n);
}

/* Reads while started, open and not held back by what waits to be
 * written (AB_JSONRPC_READ_PAUSE_BYTES).  The watch may go from within
 * its own callback: the lines of the chunk already read are still
 * dispatched, so one chunk's answers are the most the pause lets past. */
static void
update_reading (AbJsonRpc *self)
{
  gboolean want = self->started && self->state == STATE_OPEN
                  && self->out_bytes <= AB_JSONRPC_READ_PAUSE_BYTES;
  g_autoptr (GError) error = NULL;

  if (!want)
    {
      g_clear_pointer (&self->read_watch, ab_fd_watch_free);
      return;
    }
  if (self->read_watch != NULL)
    return;

  self->read_watch = ab_fd_watch_new (
      g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (self->input)),
      on_readable, self, &error);
  if (self->read_watch == NULL)
    {
      g_prefix_error (&error, "cannot read from agent: ");
      fail_later (self, g_steal_pointer (&error));
    }
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static gboolean
on_writable (GObject *stream, gpointer user_data)
{
  AbJsonRpc *self = AB_JSONRPC (user_data);
  g_autoptr (AbJsonRpc) hold G_GNUC_UNUSED = g_object_ref (self);

  while (!g_queue_is_empty (&self->out_queue))
    {
      GBytes *head = g_queue_peek_head (&self->out_queue);
      gsize size;
      const guint8 *data = g_bytes_get_data (head, &size);
      g_autoptr (GError) error = NULL;
      gssize n;

      n = g_pollable_output_stream_write_nonblocking (
          G_POLLABLE_OUTPUT_STREAM (self->output), data + self->out_offset,
          size - self->out_offset, NULL, &error);
      if (n < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            return G_SOURCE_CONTINUE;
          g_prefix_error (&error, "cannot write to agent: ");
          ab_jsonrpc_fail (self, error);
          return G_SOURCE_REMOVE;
        }

      self->out_offset += (gsize)n;
      self->out_bytes -= (gsize)n;
      if (self->out_offset == size)
        {
          g_bytes_unref (g_queue_pop_head (&self->out_queue));
          self->out_offset = 0;
          self->out_bytes -= AB_JSONRPC_MESSAGE_OVERHEAD_BYTES;
          update_reading (self);
        }
    }

  g_clear_pointer (&self->write_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

/* Queues @message (transfer full).  Writing always starts from the loop,
 * so a write error never surfaces inside the caller's call. */
static void
send_message (AbJsonRpc *self, JsonNode *message)
{
  g_autoptr (JsonNode) owned = message;
  g_autoptr (JsonGenerator) generator = NULL;
  g_autoptr (GString) text = NULL;
  gsize cost;

  if (self->state != STATE_OPEN)
    return;

  generator = json_generator_new ();
  json_generator_set_root (generator, owned);
  /* json-glib escapes control characters in strings, so one message is
   * always exactly one line */
  text = g_string_new (NULL);
  json_generator_to_gstring (generator, text);
  g_string_append_c (text, '\n');
  cost = text->len + AB_JSONRPC_MESSAGE_OVERHEAD_BYTES;

  if (cost > AB_JSONRPC_MAX_PENDING_WRITE_BYTES - self->out_bytes)
    {
      fail_later (self,
                  g_error_new (AB_ERROR, AB_ERROR_AGENT_FAILED,
                               "agent is not reading its input: more than "
                               "%" G_GSIZE_FORMAT " bytes pending",
                               AB_JSONRPC_MAX_PENDING_WRITE_BYTES));
      return;
    }

  /* A copy of exactly the line: the string's buffer may be twice as
   * large, and the queue would hold that slack too. */
  self->out_bytes += cost;
  g_queue_push_tail (&self->out_queue, g_bytes_new (text->str, text->len));
  update_reading (self);

  if (self->write_source == NULL)
    {
      self->write_source = g_pollable_output_stream_create_source (
          G_POLLABLE_OUTPUT_STREAM (self->output), NULL);
      g_source_set_callback (self->write_source, G_SOURCE_FUNC (on_writable),
                             self, NULL);
      g_source_attach (self->write_source, NULL);
    }
}

static JsonObject *
new_message (void)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "jsonrpc", "2.0");
  return object;
}

static JsonNode *
node_from_object (JsonObject *object /* transfer full */)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_node_take_object (node, object);
  return node;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

static gboolean
on_call_cancelled (GCancellable *cancellable, gpointer user_data)
{
  PendingCall *call = user_data;
  g_autoptr (GTask) task = g_steal_pointer (&call->task);

  /* The entry stays so a late answer is recognised and dropped instead of
   * failing the connection as an unknown id. */
  g_clear_pointer (&call->cancel_source, g_source_unref);
  if (task != NULL)
    g_task_return_error_if_cancelled (task);
  return G_SOURCE_REMOVE;
}

void
ab_jsonrpc_call (AbJsonRpc *self, const char *method, JsonNode *params,
                 GCancellable *cancellable, GAsyncReadyCallback callback,
                 gpointer user_data)
{
  g_autoptr (JsonNode) owned_params = params;
  g_autoptr (GTask) task = NULL;
  JsonObject *message;
  PendingCall *call;

  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (method != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, ab_jsonrpc_call);
  g_task_set_task_data (task, g_strdup (method), g_free);

  if (self->state != STATE_OPEN)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CLOSED,
                               "connection to the agent is closed");
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    return;

  call = g_new0 (PendingCall, 1);
  call->self = self;
  call->id = self->next_id++;
  call->task = g_steal_pointer (&task);
  if (cancellable != NULL)
    {
      call->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (call->cancel_source,
                             G_SOURCE_FUNC (on_call_cancelled), call, NULL);
      g_source_attach (call->cancel_source, NULL);
    }
  g_hash_table_insert (self->pending, &call->id, call);

  message = new_message ();
  json_object_set_int_member (message, "id", call->id);
  json_object_set_string_member (message, "method", method);
  if (owned_params != NULL)
    json_object_set_member (message, "params", g_steal_pointer (&owned_params));
  send_message (self, node_from_object (message));
}

JsonNode *
ab_jsonrpc_call_finish (AbJsonRpc *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (
      g_task_get_source_tag (G_TASK (result)) == ab_jsonrpc_call, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
ab_jsonrpc_notify (AbJsonRpc *self, const char *method, JsonNode *params)
{
  g_autoptr (JsonNode) owned_params = params;
  JsonObject *message;

  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (method != NULL);

  if (self->state != STATE_OPEN)
    return;

  message = new_message ();
  json_object_set_string_member (message, "method", method);
  if (owned_params != NULL)
    json_object_set_member (message, "params", g_steal_pointer (&owned_params));
  send_message (self, node_from_object (message));
}

void
ab_jsonrpc_reply (AbJsonRpc *self, JsonNode *id, JsonNode *result)
{
  g_autoptr (JsonNode) owned_result = result;
  JsonObject *message;

  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (id != NULL);

  if (self->state != STATE_OPEN)
    return;

  message = new_message ();
  json_object_set_member (message, "id", json_node_copy (id));
  if (owned_result != NULL)
    json_object_set_member (message, "result", g_steal_pointer (&owned_result));
  else
    json_object_set_null_member (message, "result");
  send_message (self, node_from_object (message));
}

void
ab_jsonrpc_reply_error (AbJsonRpc *self, JsonNode *id, int code,
                        const char *text)
{
  JsonObject *message, *error_object;

  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (id != NULL);
  g_return_if_fail (text != NULL);

  if (self->state != STATE_OPEN)
    return;

  error_object = json_object_new ();
  json_object_set_int_member (error_object, "code", code);
  json_object_set_string_member (error_object, "message", text);

  message = new_message ();
  json_object_set_member (message, "id", json_node_copy (id));
  json_object_set_object_member (message, "error", error_object);
  send_message (self, node_from_object (message));
}

void
ab_jsonrpc_close (AbJsonRpc *self)
{
  g_autoptr (AbJsonRpc) hold = NULL;
  g_autoptr (GError) error = NULL;

  g_return_if_fail (AB_IS_JSONRPC (self));

  if (self->state == STATE_CLOSED)
    return;

  hold = g_object_ref (self);
  self->state = STATE_CLOSED;
  stop_io (self);
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               "connection to the agent was closed");
  fail_pending (self, error);
}

gboolean
ab_jsonrpc_is_closed (AbJsonRpc *self)
{
  g_return_val_if_fail (AB_IS_JSONRPC (self), TRUE);

  return self->state != STATE_OPEN;
}

void
ab_jsonrpc_start (AbJsonRpc *self)
{
  g_return_if_fail (AB_IS_JSONRPC (self));

  self->started = TRUE;
  update_reading (self);
}

gint64
ab_jsonrpc_get_last_call_id (AbJsonRpc *self)
{
  g_return_val_if_fail (AB_IS_JSONRPC (self), 0);

  return self->next_id - 1;
}

void
ab_jsonrpc_expect (AbJsonRpc *self, gint64 id, const char *method,
                   GAsyncReadyCallback callback, gpointer user_data)
{
  PendingCall *call;
  GTask *task;

  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (id > 0 && id < self->first_id);

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, ab_jsonrpc_call);
  g_task_set_task_data (task, g_strdup (method), g_free);
  call = g_new0 (PendingCall, 1);
  call->self = self;
  call->id = id;
  call->task = task;
  g_hash_table_insert (self->pending, &call->id, call);
}

GBytes *
ab_jsonrpc_take_unread (AbJsonRpc *self)
{
  g_return_val_if_fail (AB_IS_JSONRPC (self), NULL);

  return ab_line_reader_take_partial (self->reader);
}

void
ab_jsonrpc_feed (AbJsonRpc *self, GBytes *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  g_return_if_fail (AB_IS_JSONRPC (self));

  if (len > 0)
    handle_bytes (self, data, len);
}

void
ab_jsonrpc_continue_from (AbJsonRpc *self, gint64 first_id)
{
  g_return_if_fail (AB_IS_JSONRPC (self));
  g_return_if_fail (first_id >= self->next_id);

  self->next_id = first_id;
  self->first_id = first_id;
}

AbJsonRpc *
ab_jsonrpc_new (GInputStream *input, GOutputStream *output,
                gsize max_line_bytes)
{
  AbJsonRpc *self;

  g_return_val_if_fail (G_IS_UNIX_INPUT_STREAM (input), NULL);
  g_return_val_if_fail (G_IS_POLLABLE_OUTPUT_STREAM (output), NULL);
  g_return_val_if_fail (
      g_pollable_output_stream_can_poll (G_POLLABLE_OUTPUT_STREAM (output)),
      NULL);
  g_return_val_if_fail (max_line_bytes > 0, NULL);

  self = g_object_new (AB_TYPE_JSONRPC, NULL);
  self->input = g_object_ref (input);
  self->output = g_object_ref (output);
  self->reader = ab_line_reader_new (max_line_bytes);

  /* On a blocking fd, a read with nothing to read or a write larger than
   * the free pipe buffer would hold up the loop. */
  g_unix_set_fd_nonblocking (
      g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (input)), TRUE, NULL);
  if (G_IS_UNIX_OUTPUT_STREAM (output))
    g_unix_set_fd_nonblocking (
        g_unix_output_stream_get_fd (G_UNIX_OUTPUT_STREAM (output)), TRUE,
        NULL);

  return self;
}

static void
ab_jsonrpc_dispose (GObject *object)
{
  AbJsonRpc *self = AB_JSONRPC (object);

  /* Only reachable with calls pending via g_object_run_dispose(): each
   * pending call holds a reference. */
  if (self->state != STATE_CLOSED)
    {
      self->state = STATE_CLOSED;
      stop_io (self);
    }
  g_hash_table_remove_all (self->pending);

  G_OBJECT_CLASS (ab_jsonrpc_parent_class)->dispose (object);
}

static void
ab_jsonrpc_finalize (GObject *object)
{
  AbJsonRpc *self = AB_JSONRPC (object);

  g_clear_object (&self->input);
  g_clear_object (&self->output);
  g_clear_pointer (&self->reader, ab_line_reader_free);
  g_clear_object (&self->parser);
  g_clear_pointer (&self->pending, g_hash_table_unref);
  g_free (self->read_buf);

  G_OBJECT_CLASS (ab_jsonrpc_parent_class)->finalize (object);
}

static void
ab_jsonrpc_init (AbJsonRpc *self)
{
  self->parser = json_parser_new ();
  self->read_buf = g_malloc (READ_CHUNK_BYTES);
  self->next_id = 1;
  self->pending = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                         (GDestroyNotify)pending_call_free);
  g_queue_init (&self->out_queue);
}

static void
ab_jsonrpc_class_init (AbJsonRpcClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_jsonrpc_dispose;
  object_class->finalize = ab_jsonrpc_finalize;

  signals[SIGNAL_NOTIFICATION] = g_signal_new (
      "notification", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
      JSON_TYPE_NODE | G_SIGNAL_TYPE_STATIC_SCOPE);

  signals[SIGNAL_REQUEST] = g_signal_new (
      "request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      g_signal_accumulator_true_handled, NULL, NULL, G_TYPE_BOOLEAN, 3,
      G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
      JSON_TYPE_NODE | G_SIGNAL_TYPE_STATIC_SCOPE,
      JSON_TYPE_NODE | G_SIGNAL_TYPE_STATIC_SCOPE);

  signals[SIGNAL_CLOSED] = g_signal_new (
      "closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 1, G_TYPE_ERROR | G_SIGNAL_TYPE_STATIC_SCOPE);
}
