/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what the files of the configuration loader share
 *
 * The node tree each YAML file is parsed into, the Loader that owns the
 * nodes and collects the problems found, and the steps from file to
 * AbConfig: parse (ab-config-yaml.c), merge (ab-config-yaml.c), validate
 * (ab-config-sections.c), with the AbConfig itself and the entry points in
 * ab-config.c.  Private to src/ab-config*.c; everyone else includes
 * ab-config.h.
 */
#pragma once

#include <glib.h>

#include "ab-config.h"

G_BEGIN_DECLS

/* Bounds on hostile or broken input: a config is a few kilobytes. */
#define MAX_FILE_SIZE (1024 * 1024)
#define MAX_DEPTH 32
#define MAX_NODES 10000

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
  GPtrArray *files;    /* char *: names used in messages */
  GPtrArray *nodes;    /* Node *: owns every node, so merged trees can
                          share subtrees freely */
  GPtrArray *problems; /* Problem * */
  GArray *sources;     /* guint: indices of the files actually read */
} Loader;

/* ---- ab-config-yaml.c: the node tree, problems, parsing, merging ---- */

void ab_config_loader_init (Loader *l);
void ab_config_loader_clear (Loader *l);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Loader, ab_config_loader_clear)

/* Adds @name to the files of @l; returns its index for nodes and
 * problems. */
guint ab_config_loader_add_file (Loader *l, const char *name);

/* Records a problem at a position of @file (@line 0: the whole file). */
void ab_config_problem_at (Loader *l, guint file, guint line, guint column,
                           const char *format, ...) G_GNUC_PRINTF (5, 6);
/* Records a problem at the position of @node. */
void ab_config_problem (Loader *l, const Node *node, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* One GError for all problems, one "FILE:LINE:COLUMN: message" line each,
 * in file and position order (the sort is stable, so problems at the same
 * place keep the order they were found in). */
void ab_config_loader_set_error (Loader *l, GError **error);

/* "a mapping", "a sequence", "null" or "a scalar", translated. */
const char *ab_config_node_kind_name (const Node *node);

/* The value of @key in @mapping, or NULL; *@out_key, unless @out_key is
 * NULL, is set to the key's node. */
Node *ab_config_mapping_lookup (const Node *mapping, const char *key,
                                Node **out_key);

/* Parses one YAML document.  Returns its root (NULL for an empty file)
 * and sets *fatal when the file could not be read to its end. */
Node *ab_config_parse_document (Loader *l, guint file, const char *data,
                                gsize len, gboolean *fatal);

typedef enum
{
  MERGE_DEEP,    /* mappings merge key by key, recursively */
  MERGE_ROOT,    /* like MERGE_DEEP, but `agents:` uses MERGE_ENTRIES */
  MERGE_ENTRIES, /* mappings merge, but each value is replaced whole */
} MergeMode;

/* Returns @overlay laid over @base.  Both stay untouched; the result may
 * share nodes with either. */
Node *ab_config_merge (Loader *l, Node *base, Node *overlay, MergeMode mode);

/* ---- ab-config-sections.c: from the merged tree to an AbConfig ---- */

/* Builds the config from the merged tree; problems go to @l.  @root is
 * NULL when every file was empty. */
AbConfig *ab_config_from_tree (Loader *l, const Node *root);

/* ---- ab-config.c: AbConfig and AbAgentProfile ---- */

/* Every default except the agents. */
AbConfig *ab_config_new_base (void);

/* A profile called @name with every default and an empty command. */
AbAgentProfile *ab_agent_profile_new (const char *name);
void ab_agent_profile_free (AbAgentProfile *profile);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbAgentProfile, ab_agent_profile_free)

/* The profile "demo" of the built-in default. */
AbAgentProfile *ab_config_demo_profile_new (void);
/* Orders pointers to profiles by name. */
gint ab_agent_profile_compare (gconstpointer a, gconstpointer b);

G_END_DECLS
