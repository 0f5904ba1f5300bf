/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the configuration's YAML layer: each file parsed with
 * libyaml's event API into a small tree whose nodes remember (file, line,
 * column), the problems found on the way, and the merging of the trees of
 * several files into one.
 */
#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <yaml.h>

#include "ab-config-private.h"
#include "error.h"

/* ------------------------------------------------------------------ */
/* The node tree                                                       */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint file;
  guint line; /* 0 for a problem with the whole file */
  guint column;
  char *message;
} Problem;

static void
node_free (gpointer data)
{
  Node *node = data;

  g_free (node->value);
  g_clear_pointer (&node->children, g_ptr_array_unref);
  g_free (node);
}

static void
problem_free (gpointer data)
{
  Problem *p = data;

  g_free (p->message);
  g_free (p);
}

void
ab_config_loader_init (Loader *l)
{
  l->files = g_ptr_array_new_with_free_func (g_free);
  l->nodes = g_ptr_array_new_with_free_func (node_free);
  l->problems = g_ptr_array_new_with_free_func (problem_free);
  l->sources = g_array_new (FALSE, FALSE, sizeof (guint));
}

void
ab_config_loader_clear (Loader *l)
{
  g_clear_pointer (&l->files, g_ptr_array_unref);
  g_clear_pointer (&l->nodes, g_ptr_array_unref);
  g_clear_pointer (&l->problems, g_ptr_array_unref);
  g_clear_pointer (&l->sources, g_array_unref);
}

guint
ab_config_loader_add_file (Loader *l, const char *name)
{
  g_ptr_array_add (l->files, g_strdup (name));
  return l->files->len - 1;
}

static Node *
node_new (Loader *l, NodeKind kind, guint file, guint line, guint column)
{
  Node *node = g_new0 (Node, 1);

  node->kind = kind;
  node->file = file;
  node->line = line;
  node->column = column;
  if (kind != NODE_SCALAR)
    node->children = g_ptr_array_new ();
  g_ptr_array_add (l->nodes, node);
  return node;
}

void
ab_config_problem_at (Loader *l, guint file, guint line, guint column,
                      const char *format, ...)
{
  Problem *p = g_new0 (Problem, 1);
  va_list args;

  p->file = file;
  p->line = line;
  p->column = column;
  va_start (args, format);
  p->message = g_strdup_vprintf (format, args);
  va_end (args);
  g_ptr_array_add (l->problems, p);
}

void
ab_config_problem (Loader *l, const Node *node, const char *format, ...)
{
  Problem *p = g_new0 (Problem, 1);
  va_list args;

  p->file = node->file;
  p->line = node->line;
  p->column = node->column;
  va_start (args, format);
  p->message = g_strdup_vprintf (format, args);
  va_end (args);
  g_ptr_array_add (l->problems, p);
}

static gint
problem_compare (gconstpointer a, gconstpointer b)
{
  const Problem *pa = *(const Problem *const *)a;
  const Problem *pb = *(const Problem *const *)b;

  if (pa->file != pb->file)
    return pa->file < pb->file ? -1 : 1;
  if (pa->line != pb->line)
    return pa->line < pb->line ? -1 : 1;
  if (pa->column != pb->column)
    return pa->column < pb->column ? -1 : 1;
  return 0;
}

void
ab_config_loader_set_error (Loader *l, GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);

  g_ptr_array_sort (l->problems, problem_compare);
  for (guint i = 0; i < l->problems->len; i++)
    {
      const Problem *p = l->problems->pdata[i];
      const char *file = l->files->pdata[p->file];

      if (i > 0)
        g_string_append_c (text, '\n');
      if (p->line == 0)
        g_string_append_printf (text, "%s: %s", file, p->message);
      else
        g_string_append_printf (text, "%s:%u:%u: %s", file, p->line, p->column,
                                p->message);
    }

  /* The message may go out over D-Bus, which carries only UTF-8; file
   * names come from the file system and may be anything. */
  if (!g_utf8_validate (text->str, text->len, NULL))
    {
      g_autofree char *valid = g_utf8_make_valid (text->str, text->len);

      g_set_error_literal (error, AB_ERROR, AB_ERROR_INVALID_CONFIG, valid);
      return;
    }
  g_set_error_literal (error, AB_ERROR, AB_ERROR_INVALID_CONFIG, text->str);
}

const char *
ab_config_node_kind_name (const Node *node)
{
  switch (node->kind)
    {
    case NODE_MAPPING:
      return _ ("a mapping");
    case NODE_SEQUENCE:
      return _ ("a sequence");
    case NODE_SCALAR:
    default:
      return node->is_null ? _ ("null") : _ ("a scalar");
    }
}

Node *
ab_config_mapping_lookup (const Node *mapping, const char *key, Node **out_key)
{
  for (guint i = 0; i + 1 < mapping->children->len; i += 2)
    {
      Node *k = mapping->children->pdata[i];

      if (g_str_equal (k->value, key))
        {
          if (out_key != NULL)
            *out_key = k;
          return mapping->children->pdata[i + 1];
        }
    }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Parsing one file                                                    */
/* ------------------------------------------------------------------ */

/* libyaml reports encoding problems as a byte offset, not a mark. */
static void
offset_to_position (const char *data, gsize len, gsize offset, guint *line,
                    guint *column)
{
  *line = 1;
  *column = 1;
  for (gsize i = 0; i < offset && i < len; i++)
    {
      guchar c = data[i];

      if (c == '\n')
        {
          (*line)++;
          *column = 1;
        }
      else if ((c & 0xC0) != 0x80) /* count characters, not bytes */
        (*column)++;
    }
}

static void
add_syntax_problem (Loader *l, guint file, const yaml_parser_t *parser,
                    const char *data, gsize len)
{
  const char *what = parser->problem != NULL ? parser->problem : "";
  guint line, column;

  switch (parser->error)
    {
    case YAML_MEMORY_ERROR:
      ab_config_problem_at (l, file, 0, 0, _ ("out of memory while parsing"));
      return;
    case YAML_READER_ERROR:
      offset_to_position (data, len, parser->problem_offset, &line, &column);
      ab_config_problem_at (l, file, line, column, _ ("invalid input: %s"),
                            what);
      return;
    default:
      line = parser->problem_mark.line + 1;
      column = parser->problem_mark.column + 1;
      if (parser->context != NULL)
        ab_config_problem_at (l, file, line, column, _ ("syntax error: %s: %s"),
                              parser->context, what);
      else
        ab_config_problem_at (l, file, line, column, _ ("syntax error: %s"),
                              what);
      return;
    }
}

/* Hangs @node below the innermost open container (or makes it the root),
 * catching non-scalar and duplicate keys on the way. */
static void
attach (Loader *l, GPtrArray *stack, Node **root, Node *node)
{
  Node *parent;
  Node *key;
  Node *first;

  if (stack->len == 0)
    {
      *root = node;
      return;
    }

  parent = stack->pdata[stack->len - 1];
  if (parent->kind == NODE_SEQUENCE)
    {
      g_ptr_array_add (parent->children, node);
      return;
    }

  if (parent->pending_key == NULL)
    {
      parent->pending_key = node;
      if (node->kind != NODE_SCALAR)
        ab_config_problem (l, node, _ ("mapping keys must be scalars, not %s"),
                           ab_config_node_kind_name (node));
      return;
    }

  key = g_steal_pointer (&parent->pending_key);
  if (key->kind != NODE_SCALAR)
    return;

  /* Keep the first, report the second: a silently ignored duplicate is
   * the kind of config bug that takes an afternoon to find. */
  if (ab_config_mapping_lookup (parent, key->value, &first) != NULL)
    {
      ab_config_problem (
          l, key,
          _ ("duplicate key “%s” (first defined at line %u, column %u)"),
          key->value, first->line, first->column);
      return;
    }
  g_ptr_array_add (parent->children, key);
  g_ptr_array_add (parent->children, node);
}

static gboolean
check_anchor_and_tag (Loader *l, const Node *node, const yaml_char_t *anchor,
                      const yaml_char_t *tag)
{
  gboolean ok = TRUE;

  /* Aliases are what makes "billion laughs" possible; a config has no
   * need for them, so anchors are refused rather than bounded. */
  if (anchor != NULL)
    {
      ab_config_problem (l, node, _ ("anchors (“&%s”) are not supported"),
                         (const char *)anchor);
      ok = FALSE;
    }
  if (tag != NULL)
    {
      ab_config_problem (l, node, _ ("tags (“%s”) are not supported"),
                         (const char *)tag);
      ok = FALSE;
    }
  return ok;
}

static gboolean
scalar_is_null (const yaml_event_t *event)
{
  const char *v = (const char *)event->data.scalar.value;

  if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return FALSE;
  return event->data.scalar.length == 0 || g_str_equal (v, "~")
         || g_str_equal (v, "null") || g_str_equal (v, "Null")
         || g_str_equal (v, "NULL");
}

/* Handles one event.  Returns FALSE when parsing this file must stop. */
static gboolean
handle_event (Loader *l, guint file, const yaml_event_t *event,
              GPtrArray *stack, Node **root, guint *n_documents, guint *n_nodes)
{
  guint line = event->start_mark.line + 1;
  guint column = event->start_mark.column + 1;
  Node *node;

  switch (event->type)
    {
    case YAML_DOCUMENT_START_EVENT:
      if (++(*n_documents) > 1)
        {
          ab_config_problem_at (
              l, file, line, column,
              _ ("multiple documents in one file are not supported"));
          return FALSE;
        }
      return TRUE;

    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      g_ptr_array_remove_index (stack, stack->len - 1);
      return TRUE;

    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      break;

    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    default:
      return TRUE;
    }

  if (++(*n_nodes) > MAX_NODES)
    {
      ab_config_problem_at (l, file, line, column,
                            _ ("too many nodes (the limit is %u)"), MAX_NODES);
      return FALSE;
    }

  if (event->type == YAML_SCALAR_EVENT)
    {
      const char *value = (const char *)event->data.scalar.value;
      gsize length = event->data.scalar.length;

      node = node_new (l, NODE_SCALAR, file, line, column);
      node->value = g_strndup (value, length);
      node->is_null = scalar_is_null (event);
      check_anchor_and_tag (l, node, event->data.scalar.anchor,
                            event->data.scalar.tag);
      /* A "\0" escape would silently cut the string short in C. */
      if (memchr (value, '\0', length) != NULL)
        ab_config_problem (l, node,
                           _ ("strings must not contain NUL characters"));
    }
  else if (event->type == YAML_ALIAS_EVENT)
    {
      node = node_new (l, NODE_SCALAR, file, line, column);
      node->value = g_strdup ("");
      node->is_null = TRUE;
      ab_config_problem (l, node, _ ("aliases (“*%s”) are not supported"),
                         (const char *)event->data.alias.anchor);
    }
  else
    {
      gboolean is_mapping = event->type == YAML_MAPPING_START_EVENT;

      if (stack->len >= MAX_DEPTH)
        {
          ab_config_problem_at (
              l, file, line, column,
              _ ("nesting is too deep (the limit is %u levels)"), MAX_DEPTH);
          return FALSE;
        }
      node = node_new (l, is_mapping ? NODE_MAPPING : NODE_SEQUENCE, file, line,
                       column);
      if (is_mapping)
        check_anchor_and_tag (l, node, event->data.mapping_start.anchor,
                              event->data.mapping_start.tag);
      else
        check_anchor_and_tag (l, node, event->data.sequence_start.anchor,
                              event->data.sequence_start.tag);
    }

  attach (l, stack, root, node);
  if (node->kind != NODE_SCALAR)
    g_ptr_array_add (stack, node);
  return TRUE;
}

Node *
ab_config_parse_document (Loader *l, guint file, const char *data, gsize len,
                          gboolean *fatal)
{
  yaml_parser_t parser;
  g_autoptr (GPtrArray) stack = g_ptr_array_new ();
  Node *root = NULL;
  guint n_documents = 0;
  guint n_nodes = 0;
  gboolean done = FALSE;

  *fatal = FALSE;
  if (len > MAX_FILE_SIZE)
    {
      ab_config_problem_at (l, file, 0, 0, _ ("file is larger than %u bytes"),
                            MAX_FILE_SIZE);
      *fatal = TRUE;
      return NULL;
    }

  if (yaml_parser_initialize (&parser) == 0)
    {
      ab_config_problem_at (l, file, 0, 0, _ ("out of memory while parsing"));
      *fatal = TRUE;
      return NULL;
    }
  yaml_parser_set_input_string (&parser, (const unsigned char *)data, len);

  while (!done)
    {
      yaml_event_t event;

      if (yaml_parser_parse (&parser, &event) == 0)
        {
          add_syntax_problem (l, file, &parser, data, len);
          *fatal = TRUE;
          break;
        }
      if (event.type == YAML_STREAM_END_EVENT)
        done = TRUE;
      else if (!handle_event (l, file, &event, stack, &root, &n_documents,
                              &n_nodes))
        {
          *fatal = TRUE;
          done = TRUE;
        }
      yaml_event_delete (&event);
    }

  yaml_parser_delete (&parser);
  return *fatal ? NULL : root;
}

/* ------------------------------------------------------------------ */
/* Merging                                                             */
/* ------------------------------------------------------------------ */

Node *
ab_config_merge (Loader *l, Node *base, Node *overlay, MergeMode mode)
{
  Node *result;

  if (base == NULL)
    return overlay;
  if (overlay == NULL)
    return base;
  if (base->kind != NODE_MAPPING || overlay->kind != NODE_MAPPING)
    return overlay;

  /* The merged mapping takes the overlay's position: it is the latest
   * place the operator wrote this section. */
  result = node_new (l, NODE_MAPPING, overlay->file, overlay->line,
                     overlay->column);

  for (guint i = 0; i + 1 < base->children->len; i += 2)
    {
      Node *key = base->children->pdata[i];
      Node *value = base->children->pdata[i + 1];
      Node *over_key = NULL;
      Node *over = ab_config_mapping_lookup (overlay, key->value, &over_key);

      if (over == NULL)
        {
          g_ptr_array_add (result->children, key);
          g_ptr_array_add (result->children, value);
          continue;
        }

      g_ptr_array_add (result->children, over_key);
      if (mode == MERGE_ENTRIES)
        g_ptr_array_add (result->children, over);
      else if (mode == MERGE_ROOT && g_str_equal (key->value, "agents"))
        g_ptr_array_add (result->children,
                         ab_config_merge (l, value, over, MERGE_ENTRIES));
      else
        g_ptr_array_add (result->children,
                         ab_config_merge (l, value, over, MERGE_DEEP));
    }

  for (guint i = 0; i + 1 < overlay->children->len; i += 2)
    {
      Node *key = overlay->children->pdata[i];

      if (ab_config_mapping_lookup (base, key->value, NULL) == NULL)
        {
          g_ptr_array_add (result->children, key);
          g_ptr_array_add (result->children, overlay->children->pdata[i + 1]);
        }
    }

  return result;
}
