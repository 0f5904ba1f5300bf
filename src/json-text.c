/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — JSON text from untrusted sources
 *
 * The agent's lines and the session records on disk are JSON that nobody
 * vouches for. Parsed with json-glib, they are first bounded in depth (its
 * parser recurses) and afterwards checked for string escapes that decode
 * to invalid UTF-8. Where a tree is not worth building, a strict check
 * of the text makes it safe to read members straight from it.
 */
#include "config.h"

#include <string.h>

#include "json-text.h"

/* Linear pre-scan so the recursive parser never sees deep nesting. */
gboolean
ab_json_too_deep (const char *s, gsize len, guint max_depth)
{
  guint depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      char c = s[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '[' || c == '{')
        {
          if (++depth > max_depth)
            return TRUE;
        }
      else if ((c == ']' || c == '}') && depth > 0)
        depth--;
    }
  return FALSE;
}

/* json-glib turns a lone surrogate escape ("\udc00") into bytes that are
 * not UTF-8; GVariant refuses such strings, so they must never reach a
 * D-Bus signal, reply or property.  Recursive: callers have bounded the
 * depth with ab_json_too_deep() first. */
gboolean
ab_json_node_is_utf8 (JsonNode *node)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObjectIter iter;
      const char *name;
      JsonNode *member;

      json_object_iter_init (&iter, json_node_get_object (node));
      while (json_object_iter_next (&iter, &name, &member))
        if (!g_utf8_validate (name, -1, NULL) || !ab_json_node_is_utf8 (member))
          return FALSE;
    }
  else if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = 0; i < json_array_get_length (array); i++)
        if (!ab_json_node_is_utf8 (json_array_get_element (array, i)))
          return FALSE;
    }
  else if (JSON_NODE_HOLDS_VALUE (node)
           && json_node_get_value_type (node) == G_TYPE_STRING)
    return g_utf8_validate (json_node_get_string (node), -1, NULL);
  return TRUE;
}

JsonNode *
ab_json_parse_untrusted (JsonParser *parser, const char *data, gsize len,
                         GError **error)
{
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) parse_error = NULL;

  if (ab_json_too_deep (data, len, AB_JSON_MAX_DEPTH))
    {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                   "JSON nested deeper than %u levels", AB_JSON_MAX_DEPTH);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, (gssize)len, &parse_error))
    {
      /* json-glib quotes the offending token in its message, decoded: a
       * lone surrogate escape there is not UTF-8, and the message goes on
       * to D-Bus callers and the journal */
      if (!g_utf8_validate (parse_error->message, -1, NULL))
        {
          char *valid = g_utf8_make_valid (parse_error->message, -1);

          g_free (parse_error->message);
          parse_error->message = valid;
        }
      g_propagate_error (error, g_steal_pointer (&parse_error));
      return NULL;
    }
  root = json_parser_steal_root (parser);
  if (root == NULL)
    {
      g_set_error_literal (error, JSON_PARSER_ERROR,
                           JSON_PARSER_ERROR_INVALID_DATA, "empty JSON text");
      return NULL;
    }
  if (!ab_json_node_is_utf8 (root))
    {
      g_set_error_literal (error, JSON_PARSER_ERROR,
                           JSON_PARSER_ERROR_INVALID_DATA,
                           "JSON string escapes decode to invalid UTF-8");
      return NULL;
    }
  return g_steal_pointer (&root);
}

/* ---- reading valid text without a tree -------------------------------
 *
 * json-glib builds a tree of GObjects and hash tables for every line; an
 * agent streaming a turn sends thousands of notifications a second that
 * are only looked at in three places. A strict, iterative check of the
 * whole line (RFC 8259, UTF-8, bounded depth) lets the fields be read
 * straight from the text. Whatever this path is not sure of (escapes in a
 * name or a compared string, a duplicated member, a lone surrogate,
 * "\u0000", deep nesting, anything malformed) goes to json-glib, which
 * decides and reports as before.
 */

#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

static const char *
skip_ws (const char *p, const char *end)
{
  while (p < end && IS_WS (*p))
    p++;
  return p;
}

static int
hex4 (const char *p)
{
  int v = 0;

  for (int i = 0; i < 4; i++)
    {
      int d = g_ascii_xdigit_value (p[i]);

      if (d < 0)
        return -1;
      v = v * 16 + d;
    }
  return v;
}

/* @p at the opening quote; returns the byte after the closing one, or
 * NULL. Bytes are known to be UTF-8 already. */
static const char *
check_string (const char *p, const char *end)
{
  for (p++; p < end; p++)
    {
      guchar c = (guchar)*p;

      if (c == '"')
        return p + 1;
      if (c < 0x20)
        return NULL;
      if (c != '\\')
        continue;
      if (++p >= end)
        return NULL;
      switch (*p)
        {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        case 'u':
          {
            int u;

            if (end - p < 5 || (u = hex4 (p + 1)) <= 0)
              return NULL; /* "\u0000" too: json-glib's business */
            p += 4;
            if (u >= 0xDC00 && u <= 0xDFFF)
              return NULL;
            if (u >= 0xD800 && u <= 0xDBFF)
              {
                int low;

                if (end - p < 7 || p[1] != '\\' || p[2] != 'u'
                    || (low = hex4 (p + 3)) < 0xDC00 || low > 0xDFFF)
                  return NULL;
                p += 6;
              }
            break;
          }
        default:
          return NULL;
        }
    }
  return NULL;
}

static const char *
check_number (const char *p, const char *end)
{
  if (p < end && *p == '-')
    p++;
  if (p >= end || !g_ascii_isdigit (*p))
    return NULL;
  if (*p == '0')
    p++;
  else
    while (p < end && g_ascii_isdigit (*p))
      p++;
  if (p < end && *p == '.')
    {
      if (++p >= end || !g_ascii_isdigit (*p))
        return NULL;
      while (p < end && g_ascii_isdigit (*p))
        p++;
    }
  if (p < end && (*p == 'e' || *p == 'E'))
    {
      p++;
      if (p < end && (*p == '+' || *p == '-'))
        p++;
      if (p >= end || !g_ascii_isdigit (*p))
        return NULL;
      while (p < end && g_ascii_isdigit (*p))
        p++;
    }
  return p;
}

static const char *
check_literal (const char *p, const char *end, const char *word)
{
  gsize n = strlen (word);

  if ((gsize)(end - p) < n || memcmp (p, word, n) != 0)
    return NULL;
  return p + n;
}

/* Is @s exactly one JSON text, nested at most @max_depth deep? Iterative:
 * no recursion whatever the input. */
gboolean
ab_json_is_valid (const char *s, gsize len, guint max_depth)
{
  const char *p = s, *end = s + len;
  char stack[AB_JSON_MAX_DEPTH]; /* '{' or '[' */
  guint depth = 0;

  if (max_depth > AB_JSON_MAX_DEPTH || !g_utf8_validate_len (s, len, NULL))
    return FALSE;
  p = skip_ws (p, end);

value:
  if (p >= end)
    return FALSE;
  switch (*p)
    {
    case '{':
    case '[':
      if (depth == max_depth)
        return FALSE;
      stack[depth++] = *p++;
      p = skip_ws (p, end);
      if (p < end && *p == (stack[depth - 1] == '{' ? '}' : ']'))
        {
          p++;
          depth--;
          goto after;
        }
      if (stack[depth - 1] == '{')
        goto member;
      goto value;
    case '"':
      p = check_string (p, end);
      break;
    case 't':
      p = check_literal (p, end, "true");
      break;
    case 'f':
      p = check_literal (p, end, "false");
      break;
    case 'n':
      p = check_literal (p, end, "null");
      break;
    default:
      p = check_number (p, end);
      break;
    }
  if (p == NULL)
    return FALSE;

after:
  p = skip_ws (p, end);
  if (depth == 0)
    return p == end;
  if (p >= end)
    return FALSE;
  if (*p == ',')
    {
      p = skip_ws (p + 1, end);
      if (stack[depth - 1] == '{')
        goto member;
      goto value;
    }
  if (*p != (stack[depth - 1] == '{' ? '}' : ']'))
    return FALSE;
  p++;
  depth--;
  goto after;

member:
  if (p >= end || *p != '"' || (p = check_string (p, end)) == NULL)
    return FALSE;
  p = skip_ws (p, end);
  if (p >= end || *p != ':')
    return FALSE;
  p = skip_ws (p + 1, end);
  goto value;
}

/* In valid JSON: the end of the value starting at @p. */
static const char *
skip_value (const char *p, const char *end)
{
  guint depth = 0;

  do
    {
      switch (*p)
        {
        case '"':
          for (p++; p < end && *p != '"'; p++)
            if (*p == '\\')
              p++;
          p++;
          break;
        case '{':
        case '[':
          depth++;
          p++;
          break;
        case '}':
        case ']':
          depth--;
          p++;
          break;
        default:
          if (depth == 0)
            {
              while (p < end && *p != ',' && *p != '}' && *p != ']'
                     && !IS_WS (*p))
                p++;
              return p;
            }
          p++;
          break;
        }
    }
  while (depth > 0 && p < end);
  return p;
}

gboolean
ab_json_object_iter_init (AbJsonObjectIter *iter, const char *json, gsize len)
{
  const char *end = json + len;
  const char *p = skip_ws (json, end);

  if (p >= end || *p != '{')
    return FALSE;
  p = skip_ws (p + 1, end);
  iter->p = p < end && *p == '}' ? end : p;
  iter->end = end;
  return TRUE;
}

gboolean
ab_json_object_iter_next (AbJsonObjectIter *iter, AbJsonSpan *name,
                          AbJsonSpan *value)
{
  const char *p = iter->p, *end = iter->end, *name_end;

  if (p >= end || *p != '"')
    return FALSE;
  for (name_end = p + 1; name_end < end && *name_end != '"'; name_end++)
    if (*name_end == '\\')
      name_end++;
  name->data = p + 1;
  name->len = (gsize)(name_end - name->data);
  p = skip_ws (name_end + 1, end);
  p = skip_ws (p + 1, end); /* the ':' */
  value->data = p;
  p = skip_value (p, end);
  value->len = (gsize)(p - value->data);
  p = skip_ws (p, end);
  iter->p = p < end && *p == ',' ? skip_ws (p + 1, end) : end;
  return TRUE;
}

gboolean
ab_json_object_get_members (const char *json, gsize len,
                            const char *const *names, AbJsonSpan *values,
                            guint n_names)
{
  AbJsonObjectIter iter;
  AbJsonSpan name, value;

  memset (values, 0, n_names * sizeof *values);
  if (!ab_json_object_iter_init (&iter, json, len))
    return FALSE;
  while (ab_json_object_iter_next (&iter, &name, &value))
    {
      if (memchr (name.data, '\\', name.len) != NULL)
        return FALSE; /* could spell a name looked for */
      for (guint i = 0; i < n_names; i++)
        if (strlen (names[i]) == name.len
            && memcmp (names[i], name.data, name.len) == 0)
          {
            if (values[i].data != NULL)
              return FALSE; /* json-glib keeps the last one */
            values[i] = value;
          }
    }
  return TRUE;
}

gboolean
ab_json_span_get_plain_string (const AbJsonSpan *span, const char **text,
                               gsize *len)
{
  if (span->data == NULL || span->len < 2 || span->data[0] != '"'
      || memchr (span->data, '\\', span->len) != NULL)
    return FALSE;
  *text = span->data + 1;
  *len = span->len - 2;
  return TRUE;
}

char *
ab_json_span_dup_string (const AbJsonSpan *span)
{
  const char *p, *end;
  char *out, *o;

  if (span->data == NULL || span->len < 2 || span->data[0] != '"')
    return NULL;
  p = span->data + 1;
  end = span->data + span->len - 1;
  out = o = g_malloc ((gsize)(end - p) + 1);
  for (; p < end; p++)
    {
      if (*p != '\\')
        {
          *o++ = *p;
          continue;
        }
      switch (*++p)
        {
        case '"':
        case '\\':
        case '/':
          *o++ = *p;
          break;
        case 'b':
          *o++ = '\b';
          break;
        case 'f':
          *o++ = '\f';
          break;
        case 'n':
          *o++ = '\n';
          break;
        case 'r':
          *o++ = '\r';
          break;
        case 't':
          *o++ = '\t';
          break;
        default: /* \u */
          g_free (out);
          return NULL;
        }
    }
  *o = '\0';
  return out;
}

gboolean
ab_json_span_get_int (const AbJsonSpan *span, gint64 *out)
{
  const char *p = span->data, *end;
  gboolean negative = FALSE;
  gint64 value = 0;

  if (p == NULL || span->len == 0)
    return FALSE;
  end = p + span->len;
  if (*p == '-')
    {
      negative = TRUE;
      p++;
    }
  if (p >= end || end - p > 18)
    return FALSE;
  if (*p == '0' && (negative || end - p > 1))
    return FALSE;
  for (; p < end; p++)
    {
      if (!g_ascii_isdigit (*p))
        return FALSE;
      value = value * 10 + (*p - '0');
    }
  *out = negative ? -value : value;
  return TRUE;
}

gboolean
ab_json_span_get_boolean (const AbJsonSpan *span, gboolean *out)
{
  if (span->data == NULL)
    return FALSE;
  if (span->len == 4 && memcmp (span->data, "true", 4) == 0)
    *out = TRUE;
  else if (span->len == 5 && memcmp (span->data, "false", 5) == 0)
    *out = FALSE;
  else
    return FALSE;
  return TRUE;
}
