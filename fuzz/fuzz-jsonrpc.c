/* agentbroker — libFuzzer target: bytes from a hostile agent's stdout
 *
 * Runs the input through the same line splitter and dispatcher as the
 * daemon, with three calls in flight (ids 1-3) so responses can match,
 * and handlers that answer requests, so replies are generated too.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "jsonrpc.h"

static void
on_call_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = ab_jsonrpc_call_finish (AB_JSONRPC (source), result, &error);

  g_assert ((node == NULL) != (error == NULL));
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            gpointer user_data)
{
  if (g_str_has_prefix (method, "session/"))
    {
      ab_jsonrpc_reply (rpc, id,
                        params != NULL ? json_node_copy (params) : NULL);
      return TRUE;
    }
  return FALSE; /* answered -32601 by the connection */
}

static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params,
                 gpointer user_data)
{
  if (g_strcmp0 (method, "close") == 0)
    ab_jsonrpc_close (rpc);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int in_fds[2], out_fds[2];
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (AbJsonRpc) rpc = NULL;
  size_t split;

  signal (SIGPIPE, SIG_IGN);
  if (pipe (in_fds) != 0 || pipe (out_fds) != 0)
    abort ();
  in = g_unix_input_stream_new (in_fds[0], TRUE);
  out = g_unix_output_stream_new (out_fds[1], TRUE);
  rpc = ab_jsonrpc_new (in, out, 4096);
  g_signal_connect (rpc, "request", G_CALLBACK (on_request), NULL);
  g_signal_connect (rpc, "notification", G_CALLBACK (on_notification), NULL);
  for (int i = 0; i < 3; i++)
    ab_jsonrpc_call (rpc, "session/prompt", NULL, NULL, on_call_done, NULL);

  /* two pieces, split where the first byte says, so lines also get
   * reassembled across reads */
  split = size > 0 ? data[0] % (size + 1) : 0;
  ab_jsonrpc_feed_for_testing (rpc, (const char *)data, split);
  ab_jsonrpc_feed_for_testing (rpc, (const char *)data + split, size - split);

  /* flush queued writes and completions, then tear down */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  ab_jsonrpc_close (rpc);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_object (&rpc);
  close (in_fds[1]);
  close (out_fds[0]);
  return 0;
}
