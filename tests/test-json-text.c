/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the JSON-RPC fast path (ab_jsonrpc_set_text_handlers,
 * ab_acp_scan_update) reads what the json-glib path reads.
 *
 * Every line goes through two connections: one with a text handler that
 * reads session/update the way src/session.c does, one without. Both
 * must report the same thing: the same sessionId and sessionUpdate, an
 * equivalent update, the same requests, the same failures. Lines the
 * fast path is not sure of must reach the tree-based path. The readers
 * of src/json-text.c are also tested on their own.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "acp.h"
#include "json-text.h"
#include "jsonrpc.h"

typedef struct
{
  GString *log;
  guint fast;
} Rec;

/* An update as json-glib prints it, so texts compare by value. */
static char *
normalise (const char *json, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (!json_parser_load_from_data (parser, json, (gssize)len, NULL))
    return g_strdup ("(unparsable)");
  return json_to_string (json_parser_get_root (parser), FALSE);
}

static void
log_update (Rec *r, const char *sid, gsize sid_len, const char *kind,
            gsize kind_len, const char *update, gsize update_len)
{
  g_autofree char *norm = normalise (update, update_len);

  g_string_append_printf (r->log, "[update sid=%s%.*s kind=%s%.*s %s]",
                          sid != NULL ? "" : "(none)", (int)sid_len,
                          sid != NULL ? sid : "", kind != NULL ? "" : "(none)",
                          (int)kind_len, kind != NULL ? kind : "", norm);
}

static gboolean
on_text (AbJsonRpc *rpc, const char *method, const char *params, gsize len,
         gpointer user_data)
{
  Rec *r = user_data;
  AbJsonSpan sid, update, kind;

  if (strcmp (method, "session/update") != 0)
    return FALSE;
  switch (ab_acp_scan_update (params, len, &sid, &update, &kind))
    {
    case AB_ACP_UPDATE_UNSURE:
      return FALSE;
    case AB_ACP_UPDATE_IGNORED:
      g_string_append (r->log, "[ignored]");
      break;
    case AB_ACP_UPDATE_FOUND:
      log_update (r, sid.data, sid.len, kind.data, kind.len, update.data,
                  update.len);
      break;
    }
  r->fast++;
  return TRUE;
}

static void
on_notification (AbJsonRpc *rpc, const char *method, JsonNode *params, Rec *r)
{
  JsonNode *update;
  const char *sid, *kind;
  g_autofree char *text = NULL;

  if (strcmp (method, "session/update") != 0 || params == NULL
      || !JSON_NODE_HOLDS_OBJECT (params))
    {
      g_string_append_printf (r->log, "[notification %s]", method);
      return;
    }
  update = json_object_get_member (json_node_get_object (params), "update");
  if (update == NULL || !JSON_NODE_HOLDS_OBJECT (update))
    {
      g_string_append (r->log, "[ignored]");
      return;
    }
  sid = ab_acp_get_string (params, "sessionId");
  kind = ab_acp_get_string (update, "sessionUpdate");
  text = json_to_string (update, FALSE);
  log_update (r, sid, sid != NULL ? strlen (sid) : 0, kind,
              kind != NULL ? strlen (kind) : 0, text, strlen (text));
}

static gboolean
on_request (AbJsonRpc *rpc, const char *method, JsonNode *id, JsonNode *params,
            Rec *r)
{
  g_string_append_printf (r->log, "[request %s]", method);
  return TRUE;
}

static void
on_closed (AbJsonRpc *rpc, const GError *error, Rec *r)
{
  g_string_append_printf (r->log, "[closed: %s]",
                          error != NULL ? error->message : "EOF");
}

static AbJsonRpc *
connection_new (Rec *r, gboolean fast)
{
  int in_fds[2], out_fds[2];
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GOutputStream) out = NULL;
  AbJsonRpc *rpc;

  g_assert_cmpint (pipe (in_fds), ==, 0);
  g_assert_cmpint (pipe (out_fds), ==, 0);
  in = g_unix_input_stream_new (in_fds[0], TRUE);
  out = g_unix_output_stream_new (out_fds[1], TRUE);
  close (in_fds[1]);
  close (out_fds[0]);
  rpc = ab_jsonrpc_new (in, out, 1024 * 1024);
  g_signal_connect (rpc, "notification", G_CALLBACK (on_notification), r);
  g_signal_connect (rpc, "request", G_CALLBACK (on_request), r);
  g_signal_connect (rpc, "closed", G_CALLBACK (on_closed), r);
  if (fast)
    ab_jsonrpc_set_text_handlers (rpc, on_text, NULL, r);
  return rpc;
}

/* json-glib prints numbers with an exponent as "1e+40.0" or "inf.0",
 * which is not JSON: the tree path's text of such an update cannot be
 * compared (the fast path passes the agent's own, valid, text). */
static gboolean
has_exponent_number (const char *line, gsize len)
{
  gboolean in_string = FALSE;

  for (gsize i = 0; i + 1 < len; i++)
    {
      if (in_string)
        {
          if (line[i] == '\\')
            i++;
          else if (line[i] == '"')
            in_string = FALSE;
        }
      else if (line[i] == '"')
        in_string = TRUE;
      else if ((line[i] == 'e' || line[i] == 'E') && i > 0
               && g_ascii_isdigit (line[i - 1]))
        return TRUE;
    }
  return FALSE;
}

/* Both paths on @line; returns whether the fast one took it. */
static gboolean
compare (const char *line, gsize len)
{
  Rec fast = { g_string_new (NULL), 0 }, slow = { g_string_new (NULL), 0 };
  AbJsonRpc *a = connection_new (&fast, TRUE);
  AbJsonRpc *b = connection_new (&slow, FALSE);
  g_autofree char *framed = g_strndup (line, len + 1);
  gboolean took;

  framed[len] = '\n';
  ab_jsonrpc_feed_for_testing (a, framed, len + 1);
  ab_jsonrpc_feed_for_testing (b, framed, len + 1);
  if (!has_exponent_number (line, len)
      || strstr (slow.log->str, "(unparsable)") == NULL)
    {
      if (strcmp (fast.log->str, slow.log->str) != 0)
        g_test_message ("line: %.*s", (int)MIN (len, 400), line);
      g_assert_cmpstr (fast.log->str, ==, slow.log->str);
    }
  took = fast.fast > 0;
  ab_jsonrpc_close (a);
  ab_jsonrpc_close (b);
  g_object_unref (a);
  g_object_unref (b);
  g_string_free (fast.log, TRUE);
  g_string_free (slow.log, TRUE);
  return took;
}

#define BASE                                                                   \
  "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"            \
  "\"sessionId\":\"s1\",\"update\":{\"sessionUpdate\":\"agent_message_"        \
  "chunk\",\"content\":{\"type\":\"text\",\"text\":\"hello\"}}}}"

static char *
replace_once (const char *s, const char *from, const char *to)
{
  const char *at = strstr (s, from);

  if (at == NULL)
    return NULL;
  return g_strdup_printf ("%.*s%s%s", (int)(at - s), s, to, at + strlen (from));
}

/* What the daemon streams goes the fast way, and reads the same. */
static void
test_plain_updates (void)
{
  static const char *const lines[] = {
    BASE,
    "  { \"jsonrpc\" : \"2.0\" , \"method\" : \"session/update\" , "
    "\"params\" : { \"update\" : { \"sessionUpdate\" : \"plan\" , "
    "\"entries\" : [ ] } , \"sessionId\" : \"s1\" } }  ",
    "{\"method\":\"session/update\",\"params\":{\"sessionId\":\"s1\","
    "\"update\":{\"sessionUpdate\":\"available_commands_update\","
    "\"availableCommands\":[{\"name\":\"x\",\"input\":null}]}},"
    "\"jsonrpc\":\"2.0\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"
    "\"sessionId\":\"s1\",\"update\":{\"sessionUpdate\":\"tool_call\","
    "\"rawInput\":{\"a\":[1,2.5,-3,true,false,null,{}],"
    "\"b\":\"\\u00e9\\n\\t\\\"x\\\\ \\ud83d\\ude00\"}}}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"
    "\"sessionId\":\"s1\",\"update\":{\"content\":{\"text\":\"\xc3\xa9\xe2"
    "\x82\xac\xf0\x9f\x98\x80\"}}}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"
    "\"sessionId\":5,\"update\":{\"sessionUpdate\":7}}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"
    "\"sessionId\":\"s1\"}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{"
    "\"sessionId\":\"s1\",\"update\":[1]}}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    g_assert_true (compare (lines[i], strlen (lines[i])));
}

/* What the fast path is not sure of goes the json-glib way: the same
 * outcome, whichever path decided. */
static void
test_doubtful_lines (void)
{
  static const char *const swaps[][2] = {
    { "\"s1\"", "\"\\u0073\\u0031\"" },
    { "\"sessionId\"", "\"\\u0073essionId\"" },
    { "\"update\"", "\"upd\\u0061te\"" },
    { "\"session/update\"", "\"session\\/update\"" },
    { "\"2.0\"", "\"2\\u002e0\"" },
    { "\"hello\"", "\"\\ud83d\"" },
    { "\"hello\"", "\"\\udc00x\"" },
    { "\"hello\"", "\"a\\u0000b\"" },
    { "\"hello\"", "\"\xff\xfe\"" },
    { "\"hello\"", "\"a\001b\"" },
    { "\"hello\"", "'hello'" },
    { "\"hello\"", "01" },
    { "\"hello\"", "1." },
    { "\"hello\"", ".5" },
    { "\"hello\"", "tru" },
    { "\"hello\"", "NaN" },
    { "\"hello\"", "\"\\x41\"" },
    { "\"hello\"", "\"\\u00G1\"" },
    { "\"sessionId\":\"s1\"", "\"sessionId\":\"s1\",\"sessionId\":\"s2\"" },
    { "\"sessionUpdate\":\"agent_message_chunk\"",
      "\"sessionUpdate\":\"agent_message_chunk\",\"sessionUpdate\":"
      "\"current_mode_update\"" },
    { "\"method\":\"session/update\"",
      "\"method\":\"session/update\",\"method\":\"x\"" },
    { "\"jsonrpc\":\"2.0\"", "\"jsonrpc\":\"2.0\",\"jsonrpc\":\"1.0\"" },
    { "\"jsonrpc\":\"2.0\"", "\"jsonrpc\":\"1.0\"" },
    { "\"jsonrpc\":\"2.0\",", "" },
    { "\"jsonrpc\":\"2.0\",", "\"jsonrpc\":\"2.0\",\"id\":4," },
    { "}}}}", "}}}} x" },
    { "}}}}", "}}}}," },
    { "\"text\":\"hello\"", "\"text\":\"hello\"," },
  };

  for (guint i = 0; i < G_N_ELEMENTS (swaps); i++)
    {
      g_autofree char *line = replace_once (BASE, swaps[i][0], swaps[i][1]);

      g_assert_nonnull (line);
      compare (line, strlen (line));
    }
}

/* Nesting deeper than json-glib is given, and just within. */
static void
test_depth (void)
{
  for (guint depth = 250; depth <= 260; depth += 5)
    {
      g_autofree char *open = g_strnfill (depth, '[');
      g_autofree char *close = g_strnfill (depth, ']');
      g_autofree char *deep = g_strconcat (open, close, NULL);
      g_autofree char *line = replace_once (BASE, "\"hello\"", deep);

      compare (line, strlen (line));
    }
}

/* json-glib quotes a bad string constant in its error message as it
 * decoded it, a lone surrogate as bytes that are not UTF-8 (found by
 * fuzz/fuzz-content); the message goes on to D-Bus callers. */
static void
test_error_utf8 (void)
{
  static const char *const texts[] = {
    "{\"a\":\"\\ud83d^\"x}",
    "[{\"type\":\"text\",\"text\":\"\\udc00^\"x}]",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_autoptr (GError) error = NULL;
      g_autoptr (JsonNode) root = ab_json_parse_untrusted (
          parser, texts[i], strlen (texts[i]), &error);

      g_assert_null (root);
      g_assert_true (error != NULL && error->domain == JSON_PARSER_ERROR);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
    }
}

/* Byte-level mutations of the lines above, from a fixed seed. */
static void
test_mutations (void)
{
  static const char alphabet[] = "{}[]\",:\\ 0123456789.-+eEtrufalsnu\xff\xc3";
  g_autoptr (GRand) rand = g_rand_new_with_seed (8);
  guint took = 0;

  for (guint i = 0; i < 20000; i++)
    {
      g_autoptr (GString) s = g_string_new (BASE);

      for (guint k = g_rand_int_range (rand, 1, 4); k > 0; k--)
        {
          guint pos = g_rand_int_range (rand, 0, (gint32)s->len);
          char c = alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)];

          switch (g_rand_int_range (rand, 0, 3))
            {
            case 0:
              g_string_erase (s, pos, 1);
              break;
            case 1:
              g_string_insert_c (s, pos, c);
              break;
            default:
              s->str[pos] = c;
              break;
            }
        }
      took += compare (s->str, s->len);
    }
  /* Most mutations break the line; some still go the fast way. */
  g_assert_cmpuint (took, >, 100);
}

/* The readers of src/json-text.c on their own: members in order, values
 * decoded, and "not sure" wherever json-glib must decide. */
static void
test_readers (void)
{
  const char *text = "{ \"a\" : \"x\\\"y\\n\\/\" , \"b\":[1,{\"c\":2}],"
                     "\"n\\u0041\":-12, \"t\":true,\"f\": false }";
  static const char *const ints[][2] = {
    { "0", "0" },
    { "-7", "-7" },
    { "123456789012345678", "123456789012345678" },
    { "-0", NULL },
    { "1.5", NULL },
    { "1e3", NULL },
    { "1234567890123456789", NULL },
    { "\"1\"", NULL },
  };
  AbJsonObjectIter iter;
  AbJsonSpan name, value;
  g_autofree char *decoded = NULL;
  gboolean flag = FALSE;
  gint64 number = 0;

  g_assert_true (ab_json_is_valid (text, strlen (text), 3));
  g_assert_false (ab_json_is_valid (text, strlen (text), 2));
  g_assert_true (ab_json_object_iter_init (&iter, text, strlen (text)));

  g_assert_true (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_cmpmem (name.data, name.len, "a", 1);
  decoded = ab_json_span_dup_string (&value);
  g_assert_cmpstr (decoded, ==, "x\"y\n/");
  g_assert_true (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_cmpmem (name.data, name.len, "b", 1);
  g_assert_cmpmem (value.data, value.len, "[1,{\"c\":2}]", 11);
  g_assert_null (ab_json_span_dup_string (&value));
  /* A name with an escape, as written. */
  g_assert_true (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_cmpmem (name.data, name.len, "n\\u0041", 7);
  g_assert_true (ab_json_span_get_int (&value, &number));
  g_assert_cmpint (number, ==, -12);
  g_assert_true (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_true (ab_json_span_get_boolean (&value, &flag));
  g_assert_true (flag);
  g_assert_true (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_true (ab_json_span_get_boolean (&value, &flag));
  g_assert_false (flag);
  g_assert_false (ab_json_span_get_int (&value, &number));
  g_assert_false (ab_json_object_iter_next (&iter, &name, &value));

  g_assert_true (ab_json_object_iter_init (&iter, " {} ", 4));
  g_assert_false (ab_json_object_iter_next (&iter, &name, &value));
  g_assert_false (ab_json_object_iter_init (&iter, "[1]", 3));

  /* \u escapes are json-glib's to decode. */
  value = (AbJsonSpan){ "\"\\u0041\"", 8 };
  g_assert_null (ab_json_span_dup_string (&value));
  for (guint i = 0; i < G_N_ELEMENTS (ints); i++)
    {
      AbJsonSpan span = { ints[i][0], strlen (ints[i][0]) };

      number = 42;
      g_assert_cmpint (ab_json_span_get_int (&span, &number), ==,
                       ints[i][1] != NULL);
      if (ints[i][1] != NULL)
        g_assert_cmpint (number, ==, g_ascii_strtoll (ints[i][1], NULL, 10));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/json-text/plain-updates", test_plain_updates);
  g_test_add_func ("/json-text/doubtful-lines", test_doubtful_lines);
  g_test_add_func ("/json-text/depth", test_depth);
  g_test_add_func ("/json-text/error-utf8", test_error_utf8);
  g_test_add_func ("/json-text/mutations", test_mutations);
  g_test_add_func ("/json-text/readers", test_readers);
  return g_test_run ();
}
