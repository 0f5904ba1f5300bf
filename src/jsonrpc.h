/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — newline-delimited JSON-RPC 2.0 over an agent's pipes
 *
 * AbJsonRpc is the ACP wire: one JSON object per line, read from the
 * agent's stdout and written to its stdin, entirely on the main loop.
 * The input is a GUnixInputStream (a pipe or socket), read through an
 * AbFdWatch; the output any pollable stream.  Unix stream fds are switched
 * to O_NONBLOCK so neither a read nor a write blocks the loop.
 *
 * Signals (all emitted from the main loop, never from inside an
 * ab_jsonrpc_*() call, and never after ab_jsonrpc_close()):
 *
 *   void     notification (AbJsonRpc *self, const char *method,
 *                          JsonNode *params, gpointer user_data);
 *   gboolean request      (AbJsonRpc *self, const char *method,
 *                          JsonNode *id, JsonNode *params,
 *                          gpointer user_data);
 *       Return TRUE when the handler will answer (now or later) with
 *       ab_jsonrpc_reply() or ab_jsonrpc_reply_error(); keep the id with
 *       json_node_ref() to answer later.  When no handler returns TRUE the
 *       request is answered with -32601 "Method not found".
 *   void     closed       (AbJsonRpc *self, const GError *error,
 *                          gpointer user_data);
 *       Emitted once.  error == NULL: the agent closed its stdout (EOF).
 *       Otherwise a fatal failure: protocol errors (over-long line,
 *       invalid JSON, unknown response id, non-object message, wrong
 *       "jsonrpc" version) are AB_ERROR_AGENT_FAILED with a message
 *       naming the problem; read/write failures keep their G_IO_ERROR
 *       code (a write to an agent that went away is
 *       G_IO_ERROR_BROKEN_PIPE — the daemon must ignore SIGPIPE).
 *
 * params/id nodes passed to handlers are owned by the connection and
 * valid during the emission; params may be NULL when the message had none.
 *
 * After "closed" (or a fatal error) nothing more is read or written and
 * every pending call has completed with the same error (EOF: a
 * G_IO_ERROR_CONNECTION_CLOSED "agent exited").  Pending calls complete
 * before "closed" is emitted.
 *
 * Reentrancy: handlers and call callbacks may call any ab_jsonrpc_*()
 * function, including ab_jsonrpc_close(), and may drop their reference;
 * the connection holds its own reference while dispatching.  Each pending
 * call holds a reference too (GTask source object), so call
 * ab_jsonrpc_close() before dropping the last reference of a connection
 * that may still have calls in flight.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* JSON-RPC error responses from the agent: code = the JSON-RPC "code",
 * message = error.message, then ": " + error.data.message when present. */
#define AB_JSONRPC_ERROR (ab_jsonrpc_error_quark ())
GQuark ab_jsonrpc_error_quark (void);

typedef enum
{
  AB_JSONRPC_ERROR_PARSE_ERROR = -32700,
  AB_JSONRPC_ERROR_INVALID_REQUEST = -32600,
  AB_JSONRPC_ERROR_METHOD_NOT_FOUND = -32601,
  AB_JSONRPC_ERROR_INVALID_PARAMS = -32602,
  AB_JSONRPC_ERROR_INTERNAL_ERROR = -32603,
} AbJsonRpcErrorCode;

/* Bytes queued for the agent's stdin beyond which the agent is considered
 * stuck and the connection fails.  Each message counts its whole line
 * plus AB_JSONRPC_MESSAGE_OVERHEAD_BYTES for its bookkeeping. */
#define AB_JSONRPC_MAX_PENDING_WRITE_BYTES ((gsize)64 * 1024 * 1024)
#define AB_JSONRPC_MESSAGE_OVERHEAD_BYTES ((gsize)64)

/* While more than this waits to be written to the agent, nothing more is
 * read from it: an agent that does not read its input cannot make the
 * daemon queue answers without end.  Reading resumes once the queue is
 * back at or below it. */
#define AB_JSONRPC_READ_PAUSE_BYTES ((gsize)1024 * 1024)

#define AB_TYPE_JSONRPC (ab_jsonrpc_get_type ())
G_DECLARE_FINAL_TYPE (AbJsonRpc, ab_jsonrpc, AB, JSONRPC, GObject)

/* Takes references on both streams; never closes them (the agent
 * process owns them).  Nothing is read until ab_jsonrpc_start(), so
 * connect the signals first. */
AbJsonRpc *ab_jsonrpc_new (GInputStream *input, GOutputStream *output,
                           gsize max_line_bytes);
void ab_jsonrpc_start (AbJsonRpc *self);
/* For a peer that an earlier connection (a previous instance of the
 * daemon) sent requests to: this one's requests are numbered from
 * @first_id on, and answers to lower ids, the earlier connection's, are
 * dropped instead of failing the connection.  Before the first request. */
void ab_jsonrpc_continue_from (AbJsonRpc *self, gint64 first_id);
/* The id of the latest request sent. */
gint64 ab_jsonrpc_get_last_call_id (AbJsonRpc *self);
/* Treats the answer to request @id, sent by the earlier connection (below
 * ab_jsonrpc_continue_from()'s first id), as the answer to a call of
 * @method made here: @callback gets it as from ab_jsonrpc_call(). */
void ab_jsonrpc_expect (AbJsonRpc *self, gint64 id, const char *method,
                        GAsyncReadyCallback callback, gpointer user_data);
/* What was read but is not a whole line yet (empty bytes if nothing);
 * left out of what is read next. */
GBytes *ab_jsonrpc_take_unread (AbJsonRpc *self);
/* Handles @bytes as if read from the peer (what an earlier connection had
 * read but not handled), before anything read from now on. */
void ab_jsonrpc_feed (AbJsonRpc *self, GBytes *bytes);

/* Sends a request with the next integer id.  @params: transfer full, or
 * NULL to omit "params".  Cancelling @cancellable completes the call with
 * G_IO_ERROR_CANCELLED at once; a late answer to it is then ignored. */
void ab_jsonrpc_call (AbJsonRpc *self, const char *method, JsonNode *params,
                      GCancellable *cancellable, GAsyncReadyCallback callback,
                      gpointer user_data);
/* Returns the "result" node (transfer full; a JSON null node when the
 * result was null), or NULL with an AB_JSONRPC_ERROR for an error
 * response, or the connection's failure. */
JsonNode *ab_jsonrpc_call_finish (AbJsonRpc *self, GAsyncResult *result,
                                  GError **error);

/* Fire-and-forget; @params transfer full or NULL.  Ignored once closed. */
void ab_jsonrpc_notify (AbJsonRpc *self, const char *method, JsonNode *params);

/* Answers an agent request.  @id transfer none (as received);
 * @result transfer full, NULL sends "result": null. */
void ab_jsonrpc_reply (AbJsonRpc *self, JsonNode *id, JsonNode *result);
void ab_jsonrpc_reply_error (AbJsonRpc *self, JsonNode *id, int code,
                             const char *message);

/* Stops reading and writing, drops unsent data, completes every pending
 * call with G_IO_ERROR_CANCELLED (their callbacks may run before this
 * returns) and suppresses all further signals.  Idempotent. */
void ab_jsonrpc_close (AbJsonRpc *self);
gboolean ab_jsonrpc_is_closed (AbJsonRpc *self);

/* The fast path. @func is offered each notification whose params are an
 * object, as text, before any JSON tree is built: the line is known to be
 * valid JSON (RFC 8259, UTF-8, bounded nesting) with "jsonrpc": "2.0" and
 * a plain "method" string. @params points into the read buffer, valid
 * during the call; read it with json-text.h. Return TRUE when handled;
 * FALSE sends the line the usual way ("notification" signal). @read_done
 * runs after the lines of each read were dispatched, while the connection
 * is open (a batch boundary). Either may be NULL. */
typedef gboolean (*AbJsonRpcTextFunc) (AbJsonRpc *self, const char *method,
                                       const char *params, gsize params_len,
                                       gpointer user_data);
typedef void (*AbJsonRpcReadDoneFunc) (AbJsonRpc *self, gpointer user_data);
void ab_jsonrpc_set_text_handlers (AbJsonRpc *self, AbJsonRpcTextFunc func,
                                   AbJsonRpcReadDoneFunc read_done,
                                   gpointer user_data);
/* Inside the dispatch of one read's lines: @read_done follows. */
gboolean ab_jsonrpc_is_reading (AbJsonRpc *self);

/* Runs @data through the same line splitter and dispatcher as bytes read
 * from the agent (for tests and the fuzz target). */
void ab_jsonrpc_feed_for_testing (AbJsonRpc *self, const char *data, gsize len);

G_END_DECLS
