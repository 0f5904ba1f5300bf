/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — loading and validating the YAML configuration
 *
 * Three steps, so that every error points into the file its value came
 * from: each file is parsed with libyaml's event API into a small tree
 * whose nodes remember (file, line, column); the trees are merged; the
 * merged tree is validated into an AbConfig.  Every problem found on the
 * way is collected, and the load fails with all of them at once, because
 * an operator fixing a config should not have to reload once per typo.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <yaml.h>

#include "ab-config.h"
#include "duration.h"
#include "error.h"

/* Bounds on hostile or broken input: a config is a few kilobytes. */
#define MAX_FILE_SIZE (1024 * 1024)
#define MAX_DEPTH 32
#define MAX_NODES 10000

/* Far beyond any sensible timeout, and small enough that consumers can
 * convert to milliseconds or seconds without overflow. */
/* A duration's upper bound, as a value and as the operator writes it. */
typedef struct
{
  gint64 usec;
  const char *text;
} DurationLimit;

static const DurationLimit any_duration
    = { (gint64)3650 * 24 * 3600 * G_USEC_PER_SEC, "3650d" };
/* The timeouts become GLib timers, which count milliseconds in 32 bits:
 * anything longer would wrap around and fire early, so it is refused. */
static const DurationLimit timer_duration
    = { (gint64)G_MAXUINT * 1000, "49d17h2m47s295ms" };

#define MIN_MESSAGE_BYTES (G_GUINT64_CONSTANT (64) * 1024)
#define MAX_MESSAGE_BYTES (G_GUINT64_CONSTANT (1024) * 1024 * 1024)

#define DEFAULT_WORKING_DIRECTORY "{state}/work/{thread}"

/* ------------------------------------------------------------------ */
/* The node tree                                                       */
/* ------------------------------------------------------------------ */

typedef enum
{
  NODE_SCALAR,
  NODE_SEQUENCE,
  NODE_MAPPING,
} NodeKind;

typedef struct _Node Node;

struct _Node
{
  NodeKind kind;
  guint file; /* index into Loader.files */
  guint line; /* 1-based */
  guint column;
  char *value;         /* scalars: the text, never containing NUL */
  gboolean is_null;    /* a plain "", "~" or "null" scalar */
  GPtrArray *children; /* sequence: items; mapping: key, value, key, … */
  Node *pending_key;   /* mappings, while parsing: key awaiting its value */
};

typedef struct
{
  guint file;
  guint line; /* 0 for a problem with the whole file */
  guint column;
  char *message;
} Problem;

typedef struct
{
  GPtrArray *files;    /* char *: names used in messages */
  GPtrArray *nodes;    /* Node *: owns every node, so merged trees can
                          share subtrees freely */
  GPtrArray *problems; /* Problem * */
  GArray *sources;     /* guint: indices of the files actually read */
} Loader;

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

static void
loader_init (Loader *l)
{
  l->files = g_ptr_array_new_with_free_func (g_free);
  l->nodes = g_ptr_array_new_with_free_func (node_free);
  l->problems = g_ptr_array_new_with_free_func (problem_free);
  l->sources = g_array_new (FALSE, FALSE, sizeof (guint));
}

static void
loader_clear (Loader *l)
{
  g_clear_pointer (&l->files, g_ptr_array_unref);
  g_clear_pointer (&l->nodes, g_ptr_array_unref);
  g_clear_pointer (&l->problems, g_ptr_array_unref);
  g_clear_pointer (&l->sources, g_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Loader, loader_clear)

static guint
loader_add_file (Loader *l, const char *name)
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

static void G_GNUC_PRINTF (5, 6)
    problem_at (Loader *l, guint file, guint line, guint column,
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

static void G_GNUC_PRINTF (3, 4)
    problem (Loader *l, const Node *node, const char *format, ...)
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

/* One GError for all problems, one "FILE:LINE:COLUMN: message" line each,
 * in file and position order (the sort is stable, so problems at the same
 * place keep the order they were found in). */
static void
loader_set_error (Loader *l, GError **error)
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

static const char *
node_kind_name (const Node *node)
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

static Node *
mapping_lookup (const Node *mapping, const char *key, Node **out_key)
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
      problem_at (l, file, 0, 0, _ ("out of memory while parsing"));
      return;
    case YAML_READER_ERROR:
      offset_to_position (data, len, parser->problem_offset, &line, &column);
      problem_at (l, file, line, column, _ ("invalid input: %s"), what);
      return;
    default:
      line = parser->problem_mark.line + 1;
      column = parser->problem_mark.column + 1;
      if (parser->context != NULL)
        problem_at (l, file, line, column, _ ("syntax error: %s: %s"),
                    parser->context, what);
      else
        problem_at (l, file, line, column, _ ("syntax error: %s"), what);
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
        problem (l, node, _ ("mapping keys must be scalars, not %s"),
                 node_kind_name (node));
      return;
    }

  key = g_steal_pointer (&parent->pending_key);
  if (key->kind != NODE_SCALAR)
    return;

  /* Keep the first, report the second: a silently ignored duplicate is
   * the kind of config bug that takes an afternoon to find. */
  if (mapping_lookup (parent, key->value, &first) != NULL)
    {
      problem (l, key,
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
      problem (l, node, _ ("anchors (“&%s”) are not supported"),
               (const char *)anchor);
      ok = FALSE;
    }
  if (tag != NULL)
    {
      problem (l, node, _ ("tags (“%s”) are not supported"), (const char *)tag);
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
          problem_at (l, file, line, column,
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
      problem_at (l, file, line, column, _ ("too many nodes (the limit is %u)"),
                  MAX_NODES);
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
        problem (l, node, _ ("strings must not contain NUL characters"));
    }
  else if (event->type == YAML_ALIAS_EVENT)
    {
      node = node_new (l, NODE_SCALAR, file, line, column);
      node->value = g_strdup ("");
      node->is_null = TRUE;
      problem (l, node, _ ("aliases (“*%s”) are not supported"),
               (const char *)event->data.alias.anchor);
    }
  else
    {
      gboolean is_mapping = event->type == YAML_MAPPING_START_EVENT;

      if (stack->len >= MAX_DEPTH)
        {
          problem_at (l, file, line, column,
                      _ ("nesting is too deep (the limit is %u levels)"),
                      MAX_DEPTH);
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

/* Parses one YAML document.  Returns its root (NULL for an empty file)
 * and sets *fatal when the file could not be read to its end. */
static Node *
parse_document (Loader *l, guint file, const char *data, gsize len,
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
      problem_at (l, file, 0, 0, _ ("file is larger than %u bytes"),
                  MAX_FILE_SIZE);
      *fatal = TRUE;
      return NULL;
    }

  if (yaml_parser_initialize (&parser) == 0)
    {
      problem_at (l, file, 0, 0, _ ("out of memory while parsing"));
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

typedef enum
{
  MERGE_DEEP,    /* mappings merge key by key, recursively */
  MERGE_ROOT,    /* like MERGE_DEEP, but `agents:` uses MERGE_ENTRIES */
  MERGE_ENTRIES, /* mappings merge, but each value is replaced whole */
} MergeMode;

/* Returns @overlay laid over @base.  Both stay untouched; the result may
 * share nodes with either. */
static Node *
merge (Loader *l, Node *base, Node *overlay, MergeMode mode)
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
      Node *over = mapping_lookup (overlay, key->value, &over_key);

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
                         merge (l, value, over, MERGE_ENTRIES));
      else
        g_ptr_array_add (result->children, merge (l, value, over, MERGE_DEEP));
    }

  for (guint i = 0; i + 1 < overlay->children->len; i += 2)
    {
      Node *key = overlay->children->pdata[i];

      if (mapping_lookup (base, key->value, NULL) == NULL)
        {
          g_ptr_array_add (result->children, key);
          g_ptr_array_add (result->children, overlay->children->pdata[i + 1]);
        }
    }

  return result;
}

/* ------------------------------------------------------------------ */
/* Validation helpers                                                  */
/* ------------------------------------------------------------------ */

static void
unknown_key (Loader *l, const Node *key, const char *section,
             const char *const *valid)
{
  g_autofree char *list = g_strjoinv (", ", (char **)valid);

  if (section == NULL)
    problem (l, key, _ ("unknown key “%s” (valid keys: %s)"), key->value, list);
  else
    problem (l, key, _ ("unknown key “%s” in %s (valid keys: %s)"), key->value,
             section, list);
}

static gboolean
expect_kind (Loader *l, const Node *node, NodeKind kind, const char *path)
{
  if (node->kind == kind)
    return TRUE;
  problem (l, node, _ ("%s: expected %s, got %s"), path,
           kind == NODE_MAPPING ? _ ("a mapping") : _ ("a sequence"),
           node_kind_name (node));
  return FALSE;
}

/* @what: "a string", "an integer", … as it reads in the message. */
static gboolean
expect_scalar (Loader *l, const Node *node, const char *path, const char *what)
{
  if (node->kind == NODE_SCALAR && !node->is_null)
    return TRUE;
  problem (l, node, _ ("%s: expected %s, got %s"), path, what,
           node_kind_name (node));
  return FALSE;
}

static void
get_uint (Loader *l, const Node *node, const char *path, guint min, guint max,
          guint *out)
{
  guint64 value = 0;

  if (!expect_scalar (l, node, path, _ ("an integer")))
    return;
  if (node->value[0] == '\0')
    {
      problem (l, node, _ ("%s: “” is not an integer"), path);
      return;
    }
  for (const char *p = node->value; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      {
        problem (l, node, _ ("%s: “%s” is not an integer"), path, node->value);
        return;
      }
  for (const char *p = node->value; *p != '\0' && value <= max; p++)
    value = value * 10 + (*p - '0');
  if (value < min || value > max)
    {
      problem (l, node, _ ("%s: %s is out of range (%u..%u)"), path,
               node->value, min, max);
      return;
    }
  *out = (guint)value;
}

/* @min: 0 allows "0" (meaning never/off where documented), 1 requires a
 * positive duration. */
static void
get_duration (Loader *l, const Node *node, const char *path, gint64 min,
              const DurationLimit *max, gint64 *out)
{
  g_autoptr (GError) local_error = NULL;
  gint64 value;

  if (!expect_scalar (l, node, path, _ ("a duration")))
    return;
  if (!ab_parse_duration (node->value, &value, &local_error))
    {
      problem (l, node, "%s: %s", path, local_error->message);
      return;
    }
  if (value < min)
    {
      problem (l, node, _ ("%s: must be greater than 0"), path);
      return;
    }
  if (value > max->usec)
    {
      problem (l, node, _ ("%s: “%s” is too long (the limit is %s)"), path,
               node->value, max->text);
      return;
    }
  *out = value;
}

static void
get_size (Loader *l, const Node *node, const char *path, guint64 min,
          guint64 max, guint64 *out)
{
  g_autoptr (GError) local_error = NULL;
  guint64 value;

  if (!expect_scalar (l, node, path, _ ("a size")))
    return;
  if (!ab_parse_size (node->value, &value, &local_error))
    {
      problem (l, node, "%s: %s", path, local_error->message);
      return;
    }
  if (value < min || value > max)
    {
      problem (l, node, _ ("%s: %s is out of range (64KiB..1GiB)"), path,
               node->value);
      return;
    }
  *out = value;
}

static void
get_bool (Loader *l, const Node *node, const char *path, gboolean *out)
{
  if (!expect_scalar (l, node, path, _ ("a boolean")))
    return;
  if (g_str_equal (node->value, "true") || g_str_equal (node->value, "yes"))
    *out = TRUE;
  else if (g_str_equal (node->value, "false")
           || g_str_equal (node->value, "no"))
    *out = FALSE;
  else
    problem (l, node,
             _ ("%s: “%s” is not a boolean (use true, false, yes or "
                "no)"),
             path, node->value);
}

/* A non-empty string, copied to *@out unless @out is NULL. */
static gboolean
get_string (Loader *l, const Node *node, const char *path, char **out)
{
  if (!expect_scalar (l, node, path, _ ("a string")))
    return FALSE;
  if (node->value[0] == '\0')
    {
      problem (l, node, _ ("%s: must not be empty"), path);
      return FALSE;
    }
  if (out != NULL)
    {
      g_free (*out);
      *out = g_strdup (node->value);
    }
  return TRUE;
}

typedef gboolean (*NameCheck) (const char *name);

/* A sequence of names, each passing @check; @what describes a valid name
 * for the message. */
static void
get_name_list (Loader *l, const Node *node, const char *path, NameCheck check,
               const char *what, char ***out)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  gboolean ok = TRUE;

  if (!expect_kind (l, node, NODE_SEQUENCE, path))
    return;
  for (guint i = 0; i < node->children->len; i++)
    {
      const Node *item = node->children->pdata[i];
      g_autofree char *item_path = g_strdup_printf ("%s[%u]", path, i);

      if (!expect_scalar (l, item, item_path, _ ("a string")))
        ok = FALSE;
      else if (!check (item->value))
        {
          problem (l, item, _ ("%s: “%s” is not %s"), item_path, item->value,
                   what);
          ok = FALSE;
        }
      else
        g_strv_builder_add (builder, item->value);
    }
  if (ok)
    {
      g_strfreev (*out);
      *out = g_strv_builder_end (builder);
    }
}

static gboolean
valid_agent_name (const char *name)
{
  gsize len = strlen (name);

  if (len < 1 || len > 64)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

static gboolean
valid_env_name (const char *name)
{
  if (!g_ascii_isalpha (name[0]) && name[0] != '_')
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_')
      return FALSE;
  return strlen (name) <= 255;
}

/* A file name inside $CREDENTIALS_DIRECTORY, never a path out of it. */
static gboolean
valid_credential_name (const char *name)
{
  if (name[0] == '\0' || g_str_equal (name, ".") || g_str_equal (name, ".."))
    return FALSE;
  if (strchr (name, '/') != NULL || strlen (name) > 255)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* Group names are matched against getgrnam(), so only refuse what can
 * never be one (the relaxed rules of systemd's valid_user_group_name). */
static gboolean
valid_group_name (const char *name)
{
  if (name[0] == '\0' || name[0] == '-' || strlen (name) > 256)
    return FALSE;
  if (g_str_equal (name, ".") || g_str_equal (name, ".."))
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if ((guchar)*p <= 0x20 || *p == 0x7f || *p == ':' || *p == '/' || *p == ',')
      return FALSE;
  return TRUE;
}

/* Returns NULL if @template is a valid working_directory, else why not. */
static char *
check_working_directory (const char *template)
{
  for (const char *p = template; *p != '\0'; p++)
    {
      const char *end;
      g_autofree char *name = NULL;

      if (*p == '}')
        return g_strdup (_ ("unmatched “}”"));
      if (*p != '{')
        continue;
      end = strchr (p, '}');
      if (end == NULL)
        return g_strdup (_ ("unterminated “{”"));
      name = g_strndup (p + 1, end - p - 1);
      if (!g_str_equal (name, "thread") && !g_str_equal (name, "state"))
        return g_strdup_printf (_ ("unknown placeholder “{%s}” (valid: "
                                   "{thread}, {state})"),
                                name);
      p = end;
    }
  /* ACP requires an absolute cwd, and a relative one would depend on the
   * daemon's own working directory. */
  if (template[0] != '/' && !g_str_has_prefix (template, "{state}"))
    return g_strdup (_ ("must be an absolute path or start with {state}"));
  return NULL;
}

/* Returns NULL if @text is a valid health.listen entry, else why not. */
static char *
check_listen_address (const char *text)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) address = NULL;
  const char *port;
  guint64 port_number;

  if (text[0] == '/')
    {
      /* sizeof (struct sockaddr_un.sun_path) minus the terminator */
      if (strlen (text) > 107)
        return g_strdup (_ ("socket path is longer than 107 bytes"));
      return NULL;
    }

  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (close == NULL || close[1] != ':')
        return g_strdup (_ ("expected “[IPv6]:PORT”"));
      host = g_strndup (text + 1, close - text - 1);
      port = close + 2;
      address = g_inet_address_new_from_string (host);
      if (address == NULL
          || g_inet_address_get_family (address) != G_SOCKET_FAMILY_IPV6)
        return g_strdup_printf (_ ("“%s” is not an IPv6 address"), host);
    }
  else
    {
      const char *colon = strrchr (text, ':');

      if (colon == NULL)
        return g_strdup (_ ("expected “HOST:PORT”, “[IPv6]:PORT” or an "
                            "absolute socket path"));
      host = g_strndup (text, colon - text);
      port = colon + 1;
      if (strchr (host, ':') != NULL)
        return g_strdup (_ ("IPv6 addresses must be in brackets, e.g. "
                            "“[::1]:8090”"));
      /* An address, not a name: binding must not depend on DNS. */
      address = g_inet_address_new_from_string (host);
      if (address == NULL
          || g_inet_address_get_family (address) != G_SOCKET_FAMILY_IPV4)
        return g_strdup_printf (_ ("“%s” is not an IPv4 address"), host);
    }

  if (port[0] == '\0' || strlen (port) > 5)
    return g_strdup (_ ("the port must be a number from 1 to 65535"));
  for (const char *p = port; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      return g_strdup (_ ("the port must be a number from 1 to 65535"));
  port_number = g_ascii_strtoull (port, NULL, 10);
  if (port_number < 1 || port_number > 65535)
    return g_strdup (_ ("the port must be a number from 1 to 65535"));
  return NULL;
}

/* ------------------------------------------------------------------ */
/* AbConfig and AbAgentProfile                                         */
/* ------------------------------------------------------------------ */

static void
env_entry_free (gpointer data)
{
  AbEnvEntry *entry = data;

  g_free (entry->name);
  g_free (entry->value);
  g_free (entry->credential);
  g_free (entry);
}

static void
agent_profile_free (AbAgentProfile *profile)
{
  g_free (profile->name);
  g_strfreev (profile->command);
  g_clear_pointer (&profile->env, g_ptr_array_unref);
  g_strfreev (profile->inherit_env);
  g_free (profile->working_directory);
  g_free (profile->auth_method);
  g_free (profile);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbAgentProfile, agent_profile_free)

static char **
strv_new1 (const char *s)
{
  char **strv = g_new0 (char *, 2);

  strv[0] = g_strdup (s);
  return strv;
}

static AbAgentProfile *
agent_profile_new (const char *name)
{
  AbAgentProfile *profile = g_new0 (AbAgentProfile, 1);

  profile->name = g_strdup (name);
  profile->command = g_new0 (char *, 1);
  profile->env = g_ptr_array_new_with_free_func (env_entry_free);
  profile->inherit_env = g_new0 (char *, 1);
  profile->working_directory = g_strdup (DEFAULT_WORKING_DIRECTORY);
  profile->permissions = AB_PERMISSIONS_DENY;
  return profile;
}

static AbAgentProfile *
demo_profile_new (void)
{
  AbAgentProfile *profile = agent_profile_new ("demo");

  g_strfreev (profile->command);
  profile->command = strv_new1 ("agentbroker-demo-agent");
  return profile;
}

static gint
agent_profile_compare (gconstpointer a, gconstpointer b)
{
  const AbAgentProfile *pa = *(const AbAgentProfile *const *)a;
  const AbAgentProfile *pb = *(const AbAgentProfile *const *)b;

  return strcmp (pa->name, pb->name);
}

/* Every default except the agents. */
static AbConfig *
config_new_base (void)
{
  AbConfig *config = g_new0 (AbConfig, 1);

  config->ref_count = 1;
  config->agents
      = g_ptr_array_new_with_free_func ((GDestroyNotify)agent_profile_free);
  config->max_sessions = 64;
  /* One user must not fill the pool alone; a bridge that serves many
   * threads as one user raises it. */
  config->max_sessions_per_user = 256;
  config->max_queued_prompts = 8;
  config->max_message_bytes = G_GUINT64_CONSTANT (8) * 1024 * 1024;
  config->idle_timeout_usec = 30 * 60 * G_USEC_PER_SEC;
  config->max_age_usec = 0;
  config->forget_after_usec = (gint64)7 * 24 * 3600 * G_USEC_PER_SEC;
  config->handshake_timeout_usec = 120 * G_USEC_PER_SEC;
  config->turn_inactivity_usec = 10 * 60 * G_USEC_PER_SEC;
  config->drain_timeout_usec = 30 * G_USEC_PER_SEC;
  config->kill_timeout_usec = 5 * G_USEC_PER_SEC;
  config->permission_timeout_usec = 5 * 60 * G_USEC_PER_SEC;
  config->access_users = strv_new1 ("agentbroker");
  config->access_admins = strv_new1 ("agentbroker-admin");
  config->health_listen = g_new0 (char *, 1);
  config->sources = g_new0 (char *, 1);
  return config;
}

AbConfig *
ab_config_new_default (void)
{
  AbConfig *config = config_new_base ();

  g_ptr_array_add (config->agents, demo_profile_new ());
  config->default_agent = g_strdup ("demo");
  return config;
}

AbConfig *
ab_config_ref (AbConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_atomic_int_inc (&config->ref_count);
  return config;
}

void
ab_config_unref (AbConfig *config)
{
  g_return_if_fail (config != NULL);
  if (!g_atomic_int_dec_and_test (&config->ref_count))
    return;
  g_free (config->default_agent);
  g_ptr_array_unref (config->agents);
  g_strfreev (config->access_users);
  g_strfreev (config->access_admins);
  g_strfreev (config->health_listen);
  g_strfreev (config->sources);
  g_free (config);
}

const AbAgentProfile *
ab_config_lookup_agent (const AbConfig *config, const char *name)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i < config->agents->len; i++)
    {
      const AbAgentProfile *profile = config->agents->pdata[i];

      if (g_str_equal (profile->name, name))
        return profile;
    }
  return NULL;
}

static gboolean
env_entry_equal (const AbEnvEntry *a, const AbEnvEntry *b)
{
  return g_strcmp0 (a->name, b->name) == 0
         && g_strcmp0 (a->value, b->value) == 0
         && g_strcmp0 (a->credential, b->credential) == 0;
}

gboolean
ab_agent_profile_equal (const AbAgentProfile *a, const AbAgentProfile *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (g_strcmp0 (a->name, b->name) != 0
      || !g_strv_equal ((const char *const *)a->command,
                        (const char *const *)b->command)
      || !g_strv_equal ((const char *const *)a->inherit_env,
                        (const char *const *)b->inherit_env)
      || g_strcmp0 (a->working_directory, b->working_directory) != 0
      || a->permissions != b->permissions
      || g_strcmp0 (a->auth_method, b->auth_method) != 0
      || !a->resend_interrupted != !b->resend_interrupted
      || a->env->len != b->env->len)
    return FALSE;

  for (guint i = 0; i < a->env->len; i++)
    if (!env_entry_equal (a->env->pdata[i], b->env->pdata[i]))
      return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Validation: from the merged tree to an AbConfig                     */
/* ------------------------------------------------------------------ */

static const char *const top_keys[] = {
  "default_agent", "launcher", "agents", "pool",
  "timeouts",      "access",   "health", NULL,
};

static const char *const agent_keys[] = {
  "command",     "env",         "inherit_env",        "working_directory",
  "permissions", "auth_method", "resend_interrupted", NULL,
};

static const char *const pool_keys[] = {
  "max_sessions",       "max_sessions_per_user",
  "max_queued_prompts", "max_message_bytes",
  "idle_timeout",       "max_age",
  "forget_after",       NULL,
};

static const char *const timeout_keys[] = {
  "handshake", "turn_inactivity", "drain", "kill", "permission", NULL,
};

static const char *const access_keys[] = { "users", "admins", NULL };

static const char *const health_keys[] = { "listen", NULL };

static void
parse_command (Loader *l, AbAgentProfile *profile, const Node *node,
               const char *path)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  gboolean ok = TRUE;

  if (node->kind == NODE_SCALAR && !node->is_null)
    {
      problem (l, node,
               _ ("%s: expected a sequence such as [program, argument, …], "
                  "got a scalar"),
               path);
      return;
    }
  if (!expect_kind (l, node, NODE_SEQUENCE, path))
    return;
  if (node->children->len == 0)
    {
      problem (l, node, _ ("%s: must name at least the program to run"), path);
      return;
    }
  for (guint i = 0; i < node->children->len; i++)
    {
      const Node *item = node->children->pdata[i];
      g_autofree char *item_path = g_strdup_printf ("%s[%u]", path, i);

      if (get_string (l, item, item_path, NULL))
        g_strv_builder_add (builder, item->value);
      else
        ok = FALSE;
    }
  if (ok)
    {
      g_strfreev (profile->command);
      profile->command = g_strv_builder_end (builder);
    }
}

static void
parse_env (Loader *l, AbAgentProfile *profile, const Node *node,
           const char *path)
{
  if (!expect_kind (l, node, NODE_MAPPING, path))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      g_autofree char *entry_path = g_strdup_printf ("%s.%s", path, key->value);
      AbEnvEntry *entry;

      if (!valid_env_name (key->value))
        {
          problem (l, key,
                   _ ("%s: “%s” is not a valid environment variable name "
                      "([A-Za-z_][A-Za-z0-9_]*)"),
                   path, key->value);
          continue;
        }

      if (value->kind == NODE_MAPPING)
        {
          Node *cred_key = NULL;
          Node *cred = mapping_lookup (value, "credential", &cred_key);
          g_autofree char *cred_path
              = g_strdup_printf ("%s.credential", entry_path);

          if (cred == NULL || value->children->len != 2)
            {
              problem (l, value,
                       _ ("%s: expected a string or a mapping with the single "
                          "key “credential”"),
                       entry_path);
              continue;
            }
          if (!expect_scalar (l, cred, cred_path, _ ("a credential name")))
            continue;
          if (!valid_credential_name (cred->value))
            {
              problem (l, cred,
                       _ ("%s: “%s” is not a credential name (a file name "
                          "without “/”, not “.” or “..”)"),
                       cred_path, cred->value);
              continue;
            }
          entry = g_new0 (AbEnvEntry, 1);
          entry->name = g_strdup (key->value);
          entry->credential = g_strdup (cred->value);
          g_ptr_array_add (profile->env, entry);
          continue;
        }

      /* An empty value is a legitimate setting; null is a mistake. */
      if (!expect_scalar (l, value, entry_path,
                          _ ("a string or {credential: NAME}")))
        continue;
      entry = g_new0 (AbEnvEntry, 1);
      entry->name = g_strdup (key->value);
      entry->value = g_strdup (value->value);
      g_ptr_array_add (profile->env, entry);
    }
}

/* Always returns a profile, even an invalid one, so that default_agent
 * naming it does not cause a second, misleading error. */
static AbAgentProfile *
parse_agent (Loader *l, const Node *name, const Node *node)
{
  g_autofree char *path = g_strdup_printf ("agents.%s", name->value);
  g_autoptr (AbAgentProfile) profile = agent_profile_new (name->value);
  gboolean have_command = FALSE;

  if (!valid_agent_name (name->value))
    problem (l, name,
             _ ("agents: “%s” is not a valid agent name (1 to 64 characters "
                "from A-Z, a-z, 0-9, “.”, “_”, “-”)"),
             name->value);

  if (!expect_kind (l, node, NODE_MAPPING, path))
    return g_steal_pointer (&profile);

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *key_path = g_strdup_printf ("%s.%s", path, k);

      if (g_str_equal (k, "command"))
        {
          have_command = TRUE;
          parse_command (l, profile, value, key_path);
        }
      else if (g_str_equal (k, "env"))
        parse_env (l, profile, value, key_path);
      else if (g_str_equal (k, "inherit_env"))
        get_name_list (l, value, key_path, valid_env_name,
                       _ ("a valid environment variable name"),
                       &profile->inherit_env);
      else if (g_str_equal (k, "working_directory"))
        {
          g_autofree char *why = NULL;

          if (!get_string (l, value, key_path, &profile->working_directory))
            continue;
          why = check_working_directory (value->value);
          if (why != NULL)
            problem (l, value, "%s: %s", key_path, why);
        }
      else if (g_str_equal (k, "permissions"))
        {
          if (!expect_scalar (l, value, key_path, _ ("allow, deny or ask")))
            continue;
          if (g_str_equal (value->value, "allow"))
            profile->permissions = AB_PERMISSIONS_ALLOW;
          else if (g_str_equal (value->value, "deny"))
            profile->permissions = AB_PERMISSIONS_DENY;
          else if (g_str_equal (value->value, "ask"))
            profile->permissions = AB_PERMISSIONS_ASK;
          else
            problem (l, value, _ ("%s: “%s” is not one of allow, deny, ask"),
                     key_path, value->value);
        }
      else if (g_str_equal (k, "auth_method"))
        get_string (l, value, key_path, &profile->auth_method);
      else if (g_str_equal (k, "resend_interrupted"))
        get_bool (l, value, key_path, &profile->resend_interrupted);
      else
        unknown_key (l, key, path, agent_keys);
    }

  if (!have_command)
    problem (l, name, _ ("%s: missing “command”"), path);

  return g_steal_pointer (&profile);
}

static void
parse_agents (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "agents"))
    return;
  if (node->children->len == 0)
    {
      problem (l, node, _ ("agents: at least one agent must be defined"));
      return;
    }
  for (guint i = 0; i + 1 < node->children->len; i += 2)
    g_ptr_array_add (config->agents,
                     parse_agent (l, node->children->pdata[i],
                                  node->children->pdata[i + 1]));
}

static void
parse_pool (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "pool"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *path = g_strdup_printf ("pool.%s", k);

      if (g_str_equal (k, "max_sessions"))
        get_uint (l, value, path, 1, 100000, &config->max_sessions);
      else if (g_str_equal (k, "max_sessions_per_user"))
        get_uint (l, value, path, 0, 100000, &config->max_sessions_per_user);
      else if (g_str_equal (k, "max_queued_prompts"))
        get_uint (l, value, path, 0, 10000, &config->max_queued_prompts);
      else if (g_str_equal (k, "max_message_bytes"))
        get_size (l, value, path, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES,
                  &config->max_message_bytes);
      else if (g_str_equal (k, "idle_timeout"))
        get_duration (l, value, path, 0, &any_duration,
                      &config->idle_timeout_usec);
      else if (g_str_equal (k, "max_age"))
        get_duration (l, value, path, 0, &any_duration, &config->max_age_usec);
      else if (g_str_equal (k, "forget_after"))
        get_duration (l, value, path, 0, &any_duration,
                      &config->forget_after_usec);
      else
        unknown_key (l, key, "pool", pool_keys);
    }
}

static void
parse_timeouts (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "timeouts"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *path = g_strdup_printf ("timeouts.%s", k);

      if (g_str_equal (k, "handshake"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->handshake_timeout_usec);
      else if (g_str_equal (k, "turn_inactivity"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->turn_inactivity_usec);
      else if (g_str_equal (k, "drain"))
        get_duration (l, value, path, 0, &timer_duration,
                      &config->drain_timeout_usec);
      else if (g_str_equal (k, "kill"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->kill_timeout_usec);
      else if (g_str_equal (k, "permission"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->permission_timeout_usec);
      else
        unknown_key (l, key, "timeouts", timeout_keys);
    }
}

static void
parse_access (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "access"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];

      if (g_str_equal (key->value, "users"))
        get_name_list (l, value, "access.users", valid_group_name,
                       _ ("a valid group name"), &config->access_users);
      else if (g_str_equal (key->value, "admins"))
        get_name_list (l, value, "access.admins", valid_group_name,
                       _ ("a valid group name"), &config->access_admins);
      else
        unknown_key (l, key, "access", access_keys);
    }
}

static void
parse_health (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "health"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      g_autoptr (GStrvBuilder) builder = NULL;
      gboolean ok = TRUE;

      if (!g_str_equal (key->value, "listen"))
        {
          unknown_key (l, key, "health", health_keys);
          continue;
        }
      if (!expect_kind (l, value, NODE_SEQUENCE, "health.listen"))
        continue;

      builder = g_strv_builder_new ();
      for (guint j = 0; j < value->children->len; j++)
        {
          const Node *item = value->children->pdata[j];
          g_autofree char *path = g_strdup_printf ("health.listen[%u]", j);
          g_autofree char *why = NULL;

          if (!expect_scalar (l, item, path, _ ("an address")))
            {
              ok = FALSE;
              continue;
            }
          why = check_listen_address (item->value);
          if (why != NULL)
            {
              problem (l, item, _ ("%s: “%s”: %s"), path, item->value, why);
              ok = FALSE;
              continue;
            }
          g_strv_builder_add (builder, item->value);
        }
      if (ok)
        {
          g_strfreev (config->health_listen);
          config->health_listen = g_strv_builder_end (builder);
        }
    }
}

static void
parse_launcher (Loader *l, AbConfig *config, const Node *value)
{
  if (!expect_scalar (l, value, "launcher", _ ("auto, systemd or direct")))
    return;
  if (g_str_equal (value->value, "auto"))
    config->launcher = AB_LAUNCHER_AUTO;
  else if (g_str_equal (value->value, "systemd"))
    config->launcher = AB_LAUNCHER_SYSTEMD;
  else if (g_str_equal (value->value, "direct"))
    config->launcher = AB_LAUNCHER_DIRECT;
  else
    problem (l, value, _ ("%s: “%s” is not one of auto, systemd, direct"),
             "launcher", value->value);
}

/* Builds the config from the merged tree; problems go to @l.  @root is
 * NULL when every file was empty. */
static AbConfig *
config_from_tree (Loader *l, const Node *root)
{
  g_autoptr (AbConfig) config = config_new_base ();
  const Node *default_node = NULL;
  const Node *agents_key = NULL;

  if (root != NULL && root->kind != NODE_MAPPING)
    problem (l, root, _ ("expected a mapping at the top level, got %s"),
             node_kind_name (root));
  else if (root != NULL)
    for (guint i = 0; i + 1 < root->children->len; i += 2)
      {
        const Node *key = root->children->pdata[i];
        const Node *value = root->children->pdata[i + 1];
        const char *k = key->value;

        if (g_str_equal (k, "default_agent"))
          default_node = value;
        else if (g_str_equal (k, "launcher"))
          parse_launcher (l, config, value);
        else if (g_str_equal (k, "agents"))
          {
            agents_key = key;
            parse_agents (l, config, value);
          }
        else if (g_str_equal (k, "pool"))
          parse_pool (l, config, value);
        else if (g_str_equal (k, "timeouts"))
          parse_timeouts (l, config, value);
        else if (g_str_equal (k, "access"))
          parse_access (l, config, value);
        else if (g_str_equal (k, "health"))
          parse_health (l, config, value);
        else
          unknown_key (l, key, NULL, top_keys);
      }

  /* A file that only tunes the pool keeps the demo agent running. */
  if (agents_key == NULL)
    g_ptr_array_add (config->agents, demo_profile_new ());
  g_ptr_array_sort (config->agents, agent_profile_compare);

  if (default_node != NULL)
    {
      if (get_string (l, default_node, "default_agent", &config->default_agent)
          && config->agents->len > 0
          && ab_config_lookup_agent (config, config->default_agent) == NULL)
        {
          g_autoptr (GStrvBuilder) names = g_strv_builder_new ();
          g_auto (GStrv) strv = NULL;
          g_autofree char *list = NULL;

          for (guint i = 0; i < config->agents->len; i++)
            g_strv_builder_add (
                names, ((AbAgentProfile *)config->agents->pdata[i])->name);
          strv = g_strv_builder_end (names);
          list = g_strjoinv (", ", strv);
          problem (l, default_node,
                   _ ("default_agent: no agent is called “%s” (defined: %s)"),
                   default_node->value, list);
        }
    }
  else if (config->agents->len == 1)
    config->default_agent
        = g_strdup (((AbAgentProfile *)config->agents->pdata[0])->name);
  else if (config->agents->len > 1)
    problem (l, agents_key,
             _ ("default_agent must be set when more than one agent is "
                "defined"));

  return g_steal_pointer (&config);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static AbConfig *
loader_finish (Loader *l, Node *root, gboolean fatal, GError **error)
{
  g_autoptr (AbConfig) config = NULL;

  /* After a syntax error the tree is incomplete, and validating it would
   * only add errors that are not there. */
  if (!fatal)
    config = config_from_tree (l, root);

  if (l->problems->len > 0 || config == NULL)
    {
      loader_set_error (l, error);
      return NULL;
    }

  g_strfreev (config->sources);
  config->sources = g_new0 (char *, l->sources->len + 1);
  for (guint i = 0; i < l->sources->len; i++)
    config->sources[i]
        = g_strdup (l->files->pdata[g_array_index (l->sources, guint, i)]);
  return g_steal_pointer (&config);
}

AbConfig *
ab_config_load_from_data (const char *data, gsize len, const char *name,
                          GError **error)
{
  g_auto (Loader) l = { 0 };
  gboolean fatal;
  Node *root;
  guint file;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  loader_init (&l);
  file = loader_add_file (&l, name);
  g_array_append_val (l.sources, file);
  root = parse_document (&l, file, data != NULL ? data : "", len, &fatal);
  return loader_finish (&l, root, fatal, error);
}

typedef enum
{
  READ_OK,
  READ_MISSING,
  READ_FAILED, /* a problem was recorded */
} ReadResult;

/* Reads @path whole, refusing anything that is not a regular file of at
 * most MAX_FILE_SIZE bytes. */
static ReadResult
read_config_file (Loader *l, const char *path, char **out_data, gsize *out_len)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  struct stat st;
  guint file;
  int fd;

  /* O_NONBLOCK: a FIFO put there by mistake must not hang the daemon. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT)
        return READ_MISSING;
      file = loader_add_file (l, path);
      problem_at (l, file, 0, 0, _ ("cannot open: %s"),
                  g_strerror (saved_errno));
      return READ_FAILED;
    }

  file = loader_add_file (l, path);
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      problem_at (l, file, 0, 0, _ ("not a regular file"));
      close (fd);
      return READ_FAILED;
    }

  /* One byte more than allowed, so that a file growing under us is still
   * caught by the size check. */
  data = g_malloc (MAX_FILE_SIZE + 2);
  while (len <= MAX_FILE_SIZE)
    {
      ssize_t n = read (fd, data + len, MAX_FILE_SIZE + 1 - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          problem_at (l, file, 0, 0, _ ("cannot read: %s"), g_strerror (errno));
          close (fd);
          return READ_FAILED;
        }
      if (n == 0)
        break;
      len += n;
    }
  close (fd);

  if (len > MAX_FILE_SIZE)
    {
      problem_at (l, file, 0, 0, _ ("file is larger than %u bytes"),
                  MAX_FILE_SIZE);
      return READ_FAILED;
    }

  data[len] = '\0';
  *out_data = g_steal_pointer (&data);
  *out_len = len;
  return READ_OK;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The drop-ins of @dir in strcmp order; none if @dir does not exist, NULL
 * (with a problem recorded) if it cannot be read. */
static GPtrArray *
list_dropins (Loader *l, const char *dir)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local_error);
  const char *name;

  if (d == NULL)
    {
      if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_steal_pointer (&paths);
      problem_at (l, loader_add_file (l, dir), 0, 0, "%s",
                  local_error->message);
      return NULL;
    }

  /* Dot files are editors' and package managers' leftovers. */
  while ((name = g_dir_read_name (d)) != NULL)
    if (name[0] != '.' && g_str_has_suffix (name, ".yaml"))
      g_ptr_array_add (paths, g_build_filename (dir, name, NULL));

  g_ptr_array_sort (paths, compare_strings);
  return g_steal_pointer (&paths);
}

static AbConfig *
load (const char *path, gboolean required, GError **error)
{
  g_auto (Loader) l = { 0 };
  g_autofree char *dir = NULL;
  g_autofree char *dropin_dir = NULL;
  g_autoptr (GPtrArray) paths = NULL;
  Node *root = NULL;
  gboolean fatal = FALSE;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  loader_init (&l);
  dir = g_path_get_dirname (path);
  dropin_dir = g_build_filename (dir, "agentbroker.d", NULL);
  paths = list_dropins (&l, dropin_dir);
  if (paths == NULL)
    {
      /* Missing drop-ins could change anything: never run without them. */
      fatal = TRUE;
      paths = g_ptr_array_new_with_free_func (g_free);
    }
  g_ptr_array_insert (paths, 0, g_strdup (path));

  for (guint i = 0; i < paths->len; i++)
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      gboolean file_fatal = FALSE;
      Node *doc;
      guint file;

      switch (read_config_file (&l, paths->pdata[i], &data, &len))
        {
        case READ_OK:
          break;
        case READ_MISSING:
          /* A path the operator named must exist: a typo there must not
           * quietly run the built-in demo default instead. */
          if (i == 0 && required)
            {
              problem_at (&l, loader_add_file (&l, paths->pdata[i]), 0, 0,
                          _ ("cannot open: %s"), g_strerror (ENOENT));
              fatal = TRUE;
            }
          continue;
        case READ_FAILED:
        default:
          /* A file that exists but cannot be read could hold anything:
           * never run a config with a piece missing. */
          fatal = TRUE;
          continue;
        }
      file = l.files->len - 1;
      g_array_append_val (l.sources, file);
      doc = parse_document (&l, file, data, len, &file_fatal);
      fatal = fatal || file_fatal;
      root = merge (&l, root, doc, MERGE_ROOT);
    }

  if (l.sources->len == 0 && l.problems->len == 0)
    return ab_config_new_default ();

  return loader_finish (&l, root, fatal, error);
}

AbConfig *
ab_config_load (const char *path, GError **error)
{
  return load (path, FALSE, error);
}

AbConfig *
ab_config_load_required (const char *path, GError **error)
{
  return load (path, TRUE, error);
}
