/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ACP content blocks from a client: validation */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "acp-content.h"
#include "error.h"
#include "json-text.h"

/* how much of a caller's unknown type name an error message quotes */
#define MAX_QUOTED_BYTES 64

/* The length of the longest prefix of UTF-8 @s within @max bytes that ends
 * at a character boundary: an error message must stay UTF-8. */
static int
utf8_prefix (const char *s, gsize max)
{
  gsize len = strnlen (s, max + 1);
  const char *end;

  if (len <= max)
    return (int)len;
  end = g_utf8_find_prev_char (s, s + max + 1);
  return end != NULL ? (int)(end - s) : 0;
}

static gboolean
has_string (JsonObject *object, const char *name)
{
  JsonNode *node
      = object != NULL ? json_object_get_member (object, name) : NULL;

  return node != NULL && JSON_NODE_HOLDS_VALUE (node)
         && json_node_get_value_type (node) == G_TYPE_STRING;
}

/* The members a block of @type needs, NULL-terminated; NULL for an
 * unknown type.  "resource" is checked apart: its members are nested. */
static const char *const *
required_members (const char *type)
{
  static const char *const text[] = { "text", NULL };
  static const char *const media[] = { "data", "mimeType", NULL };
  static const char *const link[] = { "uri", "name", NULL };
  static const char *const none[] = { NULL };

  if (g_str_equal (type, "text"))
    return text;
  if (g_str_equal (type, "image") || g_str_equal (type, "audio"))
    return media;
  if (g_str_equal (type, "resource_link"))
    return link;
  if (g_str_equal (type, "resource"))
    return none;
  return NULL;
}

static gboolean
check_resource (JsonObject *block, guint index, GError **error)
{
  JsonNode *node = json_object_get_member (block, "resource");
  JsonObject *resource = node != NULL && JSON_NODE_HOLDS_OBJECT (node)
                             ? json_node_get_object (node)
                             : NULL;

  if (resource == NULL || !has_string (resource, "uri")
      || (!has_string (resource, "text") && !has_string (resource, "blob")))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("content block %u (resource) needs an object "
                      "\"resource\" with a string \"uri\" and a string "
                      "\"text\" or \"blob\""),
                   index);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_block (JsonNode *node, guint index, GString *text, GError **error)
{
  JsonObject *block
      = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  const char *const *required;
  const char *type;

  if (block == NULL || !has_string (block, "type"))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("content block %u is not an object with a string "
                      "\"type\""),
                   index);
      return FALSE;
    }
  type = json_object_get_string_member (block, "type");
  required = required_members (type);
  if (required == NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("content block %u has the unknown type '%.*s'; known: "
                      "text, image, audio, resource, resource_link"),
                   index, utf8_prefix (type, MAX_QUOTED_BYTES), type);
      return FALSE;
    }
  for (const char *const *name = required; *name != NULL; name++)
    if (!has_string (block, *name))
      {
        g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                     _ ("content block %u (%s) needs a string \"%s\""), index,
                     type, *name);
        return FALSE;
      }
  if (g_str_equal (type, "resource") && !check_resource (block, index, error))
    return FALSE;
  if (g_str_equal (type, "text"))
    g_string_append (text, json_object_get_string_member (block, "text"));
  return TRUE;
}

/* @text cut to at most @max bytes, at a character boundary. */
static char *
cut_text (GString *text, gsize max)
{
  if (text->len > max)
    {
      const char *end = g_utf8_find_prev_char (text->str, text->str + max + 1);

      g_string_truncate (text, end != NULL ? (gsize)(end - text->str) : 0);
    }
  return g_string_free (text, FALSE);
}

JsonNode *
ab_acp_content_parse (const char *json, gsize len, gsize max_text, char **text,
                      GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) parse_error = NULL;
  JsonArray *blocks;
  GString *joined;
  guint n;

  if (len > AB_ACP_CONTENT_MAX_BYTES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the content is %zu bytes long; at most %d bytes are "
                      "accepted"),
                   len, AB_ACP_CONTENT_MAX_BYTES);
      return NULL;
    }
  parser = json_parser_new ();
  root = ab_json_parse_untrusted (parser, json, len, &parse_error);
  if (root == NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the content is not JSON: %s"), parse_error->message);
      return NULL;
    }
  if (!JSON_NODE_HOLDS_ARRAY (root))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the content must be a JSON array of ACP content "
                      "blocks"));
      return NULL;
    }
  blocks = json_node_get_array (root);
  n = json_array_get_length (blocks);
  if (n == 0 || n > AB_ACP_CONTENT_MAX_BLOCKS)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the content has %u blocks; 1 to %d are accepted"), n,
                   AB_ACP_CONTENT_MAX_BLOCKS);
      return NULL;
    }
  joined = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    if (!check_block (json_array_get_element (blocks, i), i, joined, error))
      {
        g_string_free (joined, TRUE);
        return NULL;
      }
  *text = cut_text (joined, max_text);
  return g_steal_pointer (&root);
}
