/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — writing JSON-RPC: one JSON object per line on
 * stdout, and the ACP objects its messages are made of
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "demo-agent.h"

void
write_line (const char *data, gsize len)
{
  /* A client that went away is not worth a SIGPIPE death certificate in the
   * journal: say so and leave. */
  if (fwrite (data, 1, len, stdout) != len || fputc ('\n', stdout) == EOF
      || fflush (stdout) != 0)
    {
      demo_log ("cannot write to stdout: %s; exiting", g_strerror (errno));
      exit (1);
    }
}

JsonObject *
message_new (void)
{
  JsonObject *message = json_object_new ();

  json_object_set_string_member (message, "jsonrpc", "2.0");
  return message;
}

JsonNode *
object_node (JsonObject *object)
{
  JsonNode *node = json_node_init (json_node_alloc (), JSON_NODE_OBJECT);

  json_node_take_object (node, object);
  return node;
}

void
send_message (JsonObject *message)
{
  g_autoptr (JsonNode) node
      = json_node_init_object (json_node_alloc (), message);
  g_autofree char *text = json_to_string (node, FALSE);

  write_line (text, strlen (text));
}

void
send_result (JsonNode *id, JsonNode *result)
{
  g_autoptr (JsonObject) message = message_new ();

  json_object_set_member (message, "id", json_node_copy (id));
  json_object_set_member (message, "result", result);
  send_message (message);
}

void
send_empty_result (JsonNode *id)
{
  send_result (id, object_node (json_object_new ()));
}

void
send_error (JsonNode *id, int code, const char *text, const char *data_text)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *error = json_object_new ();

  if (id != NULL)
    json_object_set_member (message, "id", json_node_copy (id));
  else
    json_object_set_null_member (message, "id");
  json_object_set_int_member (error, "code", code);
  json_object_set_string_member (error, "message", text);
  if (data_text != NULL)
    {
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "message", data_text);
      json_object_set_object_member (error, "data", data);
    }
  json_object_set_object_member (message, "error", error);
  send_message (message);
}

void
send_update (const char *session_id, JsonObject *update)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();

  json_object_set_string_member (message, "method", "session/update");
  json_object_set_string_member (params, "sessionId", session_id);
  json_object_set_object_member (params, "update", update);
  json_object_set_object_member (message, "params", params);
  send_message (message);
}

JsonObject *
text_block_new (const char *text)
{
  JsonObject *block = json_object_new ();

  json_object_set_string_member (block, "type", "text");
  json_object_set_string_member (block, "text", text);
  return block;
}

JsonObject *
chunk_update_new (const char *kind, const char *text)
{
  JsonObject *update = json_object_new ();

  json_object_set_string_member (update, "sessionUpdate", kind);
  json_object_set_object_member (update, "content", text_block_new (text));
  return update;
}

JsonObject *
tool_call_new (const char *update_kind, const char *id, const char *title,
               const char *kind, const char *status)
{
  JsonObject *update = json_object_new ();

  if (update_kind != NULL)
    json_object_set_string_member (update, "sessionUpdate", update_kind);
  json_object_set_string_member (update, "toolCallId", id);
  if (title != NULL)
    json_object_set_string_member (update, "title", title);
  if (kind != NULL)
    json_object_set_string_member (update, "kind", kind);
  json_object_set_string_member (update, "status", status);
  return update;
}
