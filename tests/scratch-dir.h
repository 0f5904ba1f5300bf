/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — a test's scratch directory: counting and removing
 * what it holds */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>

G_BEGIN_DECLS

/* How many names in the directory @path end with @suffix (0 if it cannot
 * be read). */
static inline guint
ab_count_suffix (const char *path, const char *suffix)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    n += g_str_has_suffix (name, suffix);
  return n;
}

/* Removes @path and everything under it, as far as it can. */
static inline void
ab_remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR)
          && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        ab_remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

G_END_DECLS
