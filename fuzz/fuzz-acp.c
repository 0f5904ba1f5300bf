/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target for the ACP readers (src/acp.c)
 *
 * The input is one message body from a hostile agent, parsed the way the
 * JSON-RPC connection parses a line, then given to every helper that
 * reads a field out of an agent's answer: the initialize result (and its
 * description with a session/new result's modes and options), a
 * session/new result, a session/prompt result, a permission request and
 * an update (and a usage_update's values).  Whatever these return travels on to
 * D-Bus clients, so it must be valid UTF-8 and within its documented bounds.
 * (The line reader and the dispatcher in front of them have their own target,
 * fuzz-jsonrpc.)
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "acp-usage.h"
#include "acp.h"
#include "json-text.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_utf8 (const char *text)
{
  if (text != NULL && !g_utf8_validate (text, -1, NULL))
    abort ();
}

static void
check_permission (JsonNode *params)
{
  static const AbPermissions policies[]
      = { AB_PERMISSIONS_ALLOW, AB_PERMISSIONS_DENY, AB_PERMISSIONS_ASK };

  for (gsize i = 0; i < G_N_ELEMENTS (policies); i++)
    {
      g_autofree char *pick = ab_acp_permission_pick (params, policies[i]);
      g_autoptr (JsonNode) answer = NULL;

      if (pick == NULL)
        continue;
      /* a picked option is one the agent offered, and answerable */
      check_utf8 (pick);
      if (!ab_acp_permission_has_option (params, pick))
        abort ();
      answer = ab_acp_permission_selected (pick);
      if (g_strcmp0 (
              ab_acp_get_string (json_object_get_member (
                                     json_node_get_object (answer), "outcome"),
                                 "optionId"),
              pick)
          != 0)
        abort ();
    }
}

/* What ListProfiles tells of the agent: its initialize answer and a
 * session/new answer (here the same message) described, a JSON object
 * whose session setup stays within its bound. */
static void
check_description (JsonNode *root)
{
  g_autofree char *description = ab_acp_describe_agent (root);
  g_autoptr (JsonNode) parsed = NULL;
  JsonObject *object;

  ab_acp_describe_session (&description, root);
  check_utf8 (description);
  parsed = json_from_string (description, NULL);
  if (parsed == NULL || !JSON_NODE_HOLDS_OBJECT (parsed))
    abort ();
  object = json_node_get_object (parsed);
  for (const char *const *name
       = (const char *const[]){ "modes", "configOptions", NULL };
       *name != NULL; name++)
    if (json_object_has_member (object, *name))
      {
        g_autofree char *text
            = json_to_string (json_object_get_member (object, *name), FALSE);

        if (strlen (text) > AB_ACP_MAX_SESSION_SETUP_BYTES)
          abort ();
      }
}

/* What a usage_update leaves in a session is unknown or in bounds. */
static void
check_usage (const uint8_t *data, size_t size)
{
  AbAcpUsage usage;
  gsize len;

  ab_acp_usage_init (&usage);
  ab_acp_read_usage ((const char *)data, size, &usage);
  if (usage.cost != AB_ACP_COST_UNKNOWN
      && !(usage.cost >= 0 && usage.cost <= AB_ACP_COST_MAX))
    abort ();
  len = strlen (usage.currency);
  if ((len == 0) != (usage.cost == AB_ACP_COST_UNKNOWN)
      || strspn (usage.currency, "abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
             != len)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *auth = NULL;
  g_autofree char *session_id = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *update = NULL;

  check_usage (data, size);
  root = ab_json_parse_untrusted (parser, (const char *)data, size, &error);
  if ((root == NULL) == (error == NULL))
    abort ();
  if (root == NULL)
    return 0;

  ab_acp_agent_can_load (root);
  auth = ab_acp_describe_auth_methods (root);
  check_utf8 (auth);
  check_description (root);

  session_id = ab_acp_session_id_from_result (root);
  if (session_id != NULL
      && (session_id[0] == '\0' || strlen (session_id) > 1024))
    abort ();
  check_utf8 (session_id);

  /* a stop reason is always a short token */
  reason = ab_acp_stop_reason (root);
  if (reason == NULL || reason[0] == '\0' || strlen (reason) > 64
      || strspn (reason, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
             != strlen (reason))
    abort ();

  check_permission (root);
  check_utf8 (ab_acp_get_string (root, "sessionUpdate"));

  /* what the session sends on as an Update signal */
  update = json_to_string (root, FALSE);
  check_utf8 (update);
  return 0;
}
