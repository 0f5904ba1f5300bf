/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — JSON text from untrusted sources (an agent, a record in
 * the state directory): a parser that refuses what json-glib would
 * mishandle, a strict validator, and readers of members and values
 * straight from valid text, for the paths where a tree costs too much.
 * Whatever a reader is not sure of, it says so (FALSE or NULL): the
 * caller then parses with ab_json_parse_untrusted(), which decides. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* json-glib parses recursively; a hostile agent could otherwise crash the
 * daemon's stack with a few megabytes of '['. ACP messages are shallow. */
#define AB_JSON_MAX_DEPTH 256

/* Whether @s nests arrays and objects deeper than @max_depth: a linear
 * scan, valid JSON or not. */
gboolean ab_json_too_deep (const char *s, gsize len, guint max_depth);
/* Whether every string (and member name) under @node is UTF-8; json-glib
 * decodes a lone surrogate escape ("\udc00") to bytes that are not. @node
 * must be bounded in depth (ab_json_too_deep()): recursive. */
gboolean ab_json_node_is_utf8 (JsonNode *node);

/* Parses JSON text from an untrusted source: nesting deeper than
 * AB_JSON_MAX_DEPTH and string escapes that decode to invalid UTF-8 are
 * errors (JSON_PARSER_ERROR) like a syntax error; an error's message is
 * UTF-8. Returns the root, transfer full. */
JsonNode *ab_json_parse_untrusted (JsonParser *parser, const char *data,
                                   gsize len, GError **error);

/* Is @s exactly one JSON text (RFC 8259, UTF-8), nested at most
 * @max_depth (<= AB_JSON_MAX_DEPTH) deep? Iterative, whatever the input.
 * The readers below expect text it accepted. */
gboolean ab_json_is_valid (const char *s, gsize len, guint max_depth);

/* A JSON value as it is written in a text. */
typedef struct
{
  const char *data; /* NULL: absent */
  gsize len;
} AbJsonSpan;

/* The members of an object in valid JSON text, in order: each name as
 * written between its quotes (escapes not decoded) and its value's
 * text. */
typedef struct
{
  const char *p;
  const char *end;
} AbJsonObjectIter;

/* FALSE when @json is not an object. */
gboolean ab_json_object_iter_init (AbJsonObjectIter *iter, const char *json,
                                   gsize len);
/* FALSE after the last member. */
gboolean ab_json_object_iter_next (AbJsonObjectIter *iter, AbJsonSpan *name,
                                   AbJsonSpan *value);

/* In @json, valid JSON text, an object: the values of the members @names.
 * FALSE when not sure: not an object, a member name with escapes, a name
 * looked for given twice. */
gboolean ab_json_object_get_members (const char *json, gsize len,
                                     const char *const *names,
                                     AbJsonSpan *values, guint n_names);
/* A string value without escapes: its bytes, without the quotes. */
gboolean ab_json_span_get_plain_string (const AbJsonSpan *span,
                                        const char **text, gsize *len);
/* A string value, decoded; NULL if not a string or if it has a \u
 * escape (json-glib's business). */
char *ab_json_span_dup_string (const AbJsonSpan *span);
/* An integer of at most 18 digits, without a fraction or an exponent,
 * and not "-0". */
gboolean ab_json_span_get_int (const AbJsonSpan *span, gint64 *out);
/* true or false. */
gboolean ab_json_span_get_boolean (const AbJsonSpan *span, gboolean *out);

G_END_DECLS
