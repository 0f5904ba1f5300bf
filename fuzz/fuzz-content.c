/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target for a client's ACP content blocks
 * (src/acp-content.c)
 *
 * The input is the content argument of PromptContent (and of the ACP front
 * door's session/prompt) from a hostile D-Bus caller.  What the validator
 * accepts goes to the agent and, as its joined text, into the session's
 * record; what it refuses goes back to the caller as a D-Bus error
 * message.  So: a refusal is an AB_ERROR_INVALID_ARGUMENT whose message is
 * valid UTF-8; an acceptance is an array of 1 to AB_ACP_CONTENT_MAX_BLOCKS
 * objects of known types whose joined text is valid UTF-8, within the
 * bound asked for, cut at a character boundary and as long as that
 * allows, and which is accepted again, unchanged, once serialised (what
 * the agent is sent).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "acp-content.h"
#include "error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* small enough that the fuzzer reaches the cut with short inputs */
#define SHORT_TEXT 5

static void
check_refusal (const GError *error)
{
  if (error == NULL || error->domain != AB_ERROR
      || error->code != AB_ERROR_INVALID_ARGUMENT
      || !g_utf8_validate (error->message, -1, NULL))
    abort ();
}

/* The text of every text block of @root joined, computed apart from the
 * validator. */
static GString *
joined_text (JsonNode *root)
{
  JsonArray *blocks = json_node_get_array (root);
  GString *text = g_string_new (NULL);
  guint n = json_array_get_length (blocks);

  if (n == 0 || n > AB_ACP_CONTENT_MAX_BLOCKS)
    abort ();
  for (guint i = 0; i < n; i++)
    {
      JsonObject *block = json_array_get_object_element (blocks, i);
      const char *type;

      if (block == NULL)
        abort ();
      type = json_object_get_string_member_with_default (block, "type", NULL);
      if (type == NULL
          || !(g_str_equal (type, "text") || g_str_equal (type, "image")
               || g_str_equal (type, "audio") || g_str_equal (type, "resource")
               || g_str_equal (type, "resource_link")))
        abort ();
      if (g_str_equal (type, "text"))
        g_string_append (text, json_object_get_string_member (block, "text"));
    }
  return text;
}

/* @cut is the longest prefix of @full within @max bytes that ends at a
 * character boundary. */
static void
check_cut (const char *cut, const GString *full, gsize max)
{
  gsize len = strlen (cut);

  if (!g_utf8_validate (cut, -1, NULL) || len > max
      || strncmp (cut, full->str, len) != 0)
    abort ();
  if (full->len <= max ? len != full->len : len + 4 <= max)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) short_error = NULL;
  g_autoptr (GError) again_error = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (JsonNode) short_root = NULL;
  g_autoptr (JsonNode) again = NULL;
  g_autofree char *text = NULL;
  g_autofree char *short_text = NULL;
  g_autofree char *again_text = NULL;
  g_autofree char *sent = NULL;
  GString *full;

  root = ab_acp_content_parse ((const char *)data, size, G_MAXSIZE, &text,
                               &error);
  short_root = ab_acp_content_parse ((const char *)data, size, SHORT_TEXT,
                                     &short_text, &short_error);
  if ((root == NULL) != (short_root == NULL))
    abort ();
  if (root == NULL)
    {
      if (text != NULL || short_text != NULL)
        abort ();
      check_refusal (error);
      check_refusal (short_error);
      return 0;
    }
  if (error != NULL || short_error != NULL || text == NULL || short_text == NULL
      || !JSON_NODE_HOLDS_ARRAY (root))
    abort ();

  full = joined_text (root);
  if (!g_utf8_validate (full->str, full->len, NULL)
      || strcmp (text, full->str) != 0)
    abort ();
  check_cut (short_text, full, SHORT_TEXT);
  g_string_free (full, TRUE);

  /* the blocks as the agent receives them pass the same checks again */
  sent = json_to_string (root, FALSE);
  again = ab_acp_content_parse (sent, strlen (sent), G_MAXSIZE, &again_text,
                                &again_error);
  if (again == NULL || strcmp (again_text, text) != 0)
    abort ();
  return 0;
}
