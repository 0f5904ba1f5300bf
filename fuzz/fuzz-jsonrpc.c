/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target: bytes from a hostile agent's stdout
 *
 * Runs the input through the same line splitter and dispatcher as the
 * daemon, with three calls in flight (ids 1-3) so responses can match,
 * and handlers that answer requests, so replies are generated too.
 *
 * The input goes to two connections: one with the text handler the
 * daemon installs (the fast path: ab_jsonrpc_set_text_handlers, and
 * ab_acp_scan_update for session/update as src/session.c reads it), one
 * with json-glib only. Each logs what it was told (notifications with
 * what was read from them, requests, answers, failures); the logs must
 * be the same, or the fast path read a line differently from json-glib.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "acp.h"
#include "jsonrpc.h"

typedef struct
{
  GString *log;
  guint fast; /* lines the text handler took */
} Rec;

static void
log_text (Rec *r, const char *label, const char *text, gsize len)
{
  g_string_append_printf (r->log, " %s=", label);
  if (text == NULL)
    g_string_append (r->log, "(none)");
  else
    {
      g_string_append_c (r->log, '"');
      g_string_append_len (r->log, text, (gssize)len);
      g_string_append_c (r->log, '"');
    }
}

/* @node as json-glib prints it */
static void
log_node (Rec *r, JsonNode *node)
{
  g_autofree char *text = node != NULL ? json_to_string (node, FALSE) : NULL;

  g_string_append_printf (r->log, " %s", text != NULL ? text : "(none)");
}

/* The JSON text @json as json-glib reads and prints it, so the fast
 * path's text and the tree compare by value, printed the same way. */
static void
log_json_text (Rec *r, const char *json, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (!json_parser_load_from_data (parser, json, (gssize)len, NULL))
    g_string_append (r->log, " (unparsable)");
  else
    log_node (r, json_parser_get_root (parser));
}

static gboolean
on_text (AbJsonRpc *rpc, const char *method, const char *params, gsize len,
         gpointer user_data)
{
  Rec *r = user_data;
  AbJsonSpan sid, update, kind;

  if (!ab_jsonrpc_is_reading (rpc))
    abort ();
  if (strcmp (method, "session/update") != 0)
    {
      /* the daemon leaves these to json-glib; taking them here checks
       * which lines the connection offers */
      g_string_append_printf (r->log, "[notification %s", method);
      log_json_text (r, params, len);
      g_string_append (r->log, "]");
      if (strcmp (method, "close") == 0)
        ab_jsonrpc_close (rpc);
      r->fast++;
      return TRUE;
    }
  switch (ab_acp_scan_update (params, len, &sid, &update, &kind))
    {
    case AB_ACP_UPDATE_UNSURE:
      return FALSE;
    case AB_ACP_UPDATE_IGNORED:
      g_string_append (r->log, "[update ignored]");
      break;
    case AB_ACP_UPDATE_FOUND:
      g_string_append (r->log, "[update");
      log_text (r, "sessionId", sid.data, sid.len);
      log_text (r, "sessionUpdate", kind.data, kind.len);
      log_json_text (r, update.data, update.len);
      g_string_append (r->log, "]");
      break;
    }
  r->fast++;
  return TRUE;
}

static void
on_read_done (AbJsonRpc *rpc, gpointer user_data)
{
  Rec *r = user_data;

  g_string_append (r->log, "[read done]");
}

/* What src/session.c reads from a session/update, from the tree. */
static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params,
                 gpointer user_data)
{
  Rec *r = user_data;
  JsonNode *update;
  const char *sid, *kind;

  if (strcmp (method, "session/update") != 0 || params == NULL
      || !JSON_NODE_HOLDS_OBJECT (params))
    {
      g_string_append_printf (r->log, "[notification %s", method);
      log_node (r, params);
      g_string_append (r->log, "]");
    }
  else
    {
      update = json_object_get_member (json_node_get_object (params), "update");
      if (update == NULL || !JSON_NODE_HOLDS_OBJECT (update))
        g_string_append (r->log, "[update ignored]");
      else
        {
          sid = ab_acp_get_string (params, "sessionId");
          kind = ab_acp_get_string (update, "sessionUpdate");
          g_string_append (r->log, "[update");
          log_text (r, "sessionId", sid, sid != NULL ? strlen (sid) : 0);
          log_text (r, "sessionUpdate", kind, kind != NULL ? strlen (kind) : 0);
          log_node (r, update);
          g_string_append (r->log, "]");
        }
    }
  if (g_strcmp0 (method, "close") == 0)
    ab_jsonrpc_close (rpc);
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            gpointer user_data)
{
  Rec *r = user_data;

  g_string_append_printf (r->log, "[request %s", method);
  log_node (r, id);
  log_node (r, params);
  g_string_append (r->log, "]");
  if (g_str_has_prefix (method, "session/"))
    {
      ab_jsonrpc_reply (rpc, id,
                        params != NULL ? json_node_copy (params) : NULL);
      return TRUE;
    }
  return FALSE; /* answered -32601 by the connection */
}

static void
on_closed (AbJsonRpc *rpc, const GError *error, gpointer user_data)
{
  Rec *r = user_data;

  g_string_append_printf (r->log, "[closed: %s]",
                          error != NULL ? error->message : "EOF");
}

static void
on_call_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Rec *r = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = ab_jsonrpc_call_finish (AB_JSONRPC (source), result, &error);

  g_assert ((node == NULL) != (error == NULL));
  if (error != NULL)
    g_string_append_printf (r->log, "[call failed: %s]", error->message);
  else
    {
      g_string_append (r->log, "[call answered");
      log_node (r, node);
      g_string_append (r->log, "]");
    }
}

typedef struct
{
  AbJsonRpc *rpc;
  int in_write_fd, out_read_fd;
} Connection;

static void
connection_open (Connection *c, Rec *r, gboolean fast)
{
  int in_fds[2], out_fds[2];
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GOutputStream) out = NULL;

  if (pipe (in_fds) != 0 || pipe (out_fds) != 0)
    abort ();
  in = g_unix_input_stream_new (in_fds[0], TRUE);
  out = g_unix_output_stream_new (out_fds[1], TRUE);
  c->in_write_fd = in_fds[1];
  c->out_read_fd = out_fds[0];
  c->rpc = ab_jsonrpc_new (in, out, 4096);
  g_signal_connect (c->rpc, "request", G_CALLBACK (on_request), r);
  g_signal_connect (c->rpc, "notification", G_CALLBACK (on_notification), r);
  g_signal_connect (c->rpc, "closed", G_CALLBACK (on_closed), r);
  /* the batch boundary on both, so it is compared too */
  ab_jsonrpc_set_text_handlers (c->rpc, fast ? on_text : NULL, on_read_done, r);
  for (int i = 0; i < 3; i++)
    ab_jsonrpc_call (c->rpc, "session/prompt", NULL, NULL, on_call_done, r);
}

static void
connection_close (Connection *c)
{
  ab_jsonrpc_close (c->rpc);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_object (&c->rpc);
  close (c->in_write_fd);
  close (c->out_read_fd);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  Rec fast = { g_string_new (NULL), 0 }, slow = { g_string_new (NULL), 0 };
  Connection a, b;
  size_t split;

  signal (SIGPIPE, SIG_IGN);
  connection_open (&a, &fast, TRUE);
  connection_open (&b, &slow, FALSE);

  /* two pieces, split where the first byte says, so lines also get
   * reassembled across reads */
  split = size > 0 ? data[0] % (size + 1) : 0;
  ab_jsonrpc_feed_for_testing (a.rpc, (const char *)data, split);
  ab_jsonrpc_feed_for_testing (a.rpc, (const char *)data + split, size - split);
  ab_jsonrpc_feed_for_testing (b.rpc, (const char *)data, split);
  ab_jsonrpc_feed_for_testing (b.rpc, (const char *)data + split, size - split);

  /* flush queued writes and completions, then tear down */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  connection_close (&a);
  connection_close (&b);

  if (fast.log->len != slow.log->len
      || memcmp (fast.log->str, slow.log->str, fast.log->len) != 0)
    {
      fprintf (stderr,
               "fast path and json-glib disagree\nfast: %s\n"
               "json-glib: %s\n",
               fast.log->str, slow.log->str);
      abort ();
    }
  g_string_free (fast.log, TRUE);
  g_string_free (slow.log, TRUE);
  return 0;
}
