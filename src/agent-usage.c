/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what an agent's unit uses: memory, CPU time, tasks */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "agent-usage.h"

/* Longest file read: cpu.stat has a handful of lines. */
#define MAX_FILE_BYTES 4096

void
ab_agent_usage_init (AbAgentUsage *usage)
{
  usage->memory_bytes = AB_USAGE_UNKNOWN;
  usage->cpu_nsec = AB_USAGE_UNKNOWN;
  usage->tasks = AB_USAGE_UNKNOWN;
}

static void
add_one (guint64 *a, guint64 b)
{
  if (b == AB_USAGE_UNKNOWN)
    return;
  *a = *a == AB_USAGE_UNKNOWN ? b : *a + b;
}

void
ab_agent_usage_add (AbAgentUsage *a, const AbAgentUsage *b)
{
  add_one (&a->memory_bytes, b->memory_bytes);
  add_one (&a->cpu_nsec, b->cpu_nsec);
  add_one (&a->tasks, b->tasks);
}

/* The contents of a small file, or NULL. */
static char *
read_small (const char *path)
{
  g_autofree char *contents = NULL;
  gsize length;

  if (!g_file_get_contents (path, &contents, &length, NULL)
      || length > MAX_FILE_BYTES || memchr (contents, '\0', length) != NULL)
    return NULL;
  return g_steal_pointer (&contents);
}

/* A decimal number at @text, ended by a blank or the end. */
static gboolean
parse_number (const char *text, guint64 *out)
{
  char *end;

  if (!g_ascii_isdigit (*text))
    return FALSE;
  *out = g_ascii_strtoull (text, &end, 10);
  return *end == '\0' || g_ascii_isspace (*end);
}

/* The number a cgroup file @name in @dir holds, or AB_USAGE_UNKNOWN. */
static guint64
read_number (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *contents = read_small (path);
  guint64 value;

  if (contents == NULL || !parse_number (contents, &value))
    return AB_USAGE_UNKNOWN;
  return value;
}

/* cpu.stat's usage_usec, in nanoseconds. */
static guint64
read_cpu_stat (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "cpu.stat", NULL);
  g_autofree char *contents = read_small (path);
  g_auto (GStrv) lines = NULL;
  guint64 usec;

  if (contents == NULL)
    return AB_USAGE_UNKNOWN;
  lines = g_strsplit (contents, "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "usage_usec ")
        && parse_number (lines[i] + strlen ("usage_usec "), &usec))
      return usec <= G_MAXUINT64 / 1000 ? usec * 1000 : AB_USAGE_UNKNOWN;
  return AB_USAGE_UNKNOWN;
}

/* Whether the group @path is the unit's own: its last component is
 * @unit. */
static gboolean
is_unit_group (const char *path, const char *unit)
{
  const char *last = strrchr (path, '/');

  return path[0] == '/' && last != NULL && g_str_equal (last + 1, unit)
         && strstr (path, "/..") == NULL;
}

void
ab_agent_usage_read (const char *root, const char *group, const char *unit,
                     AbAgentUsage *usage)
{
  g_autofree char *controllers = NULL;

  ab_agent_usage_init (usage);
  if (group == NULL || unit == NULL || !is_unit_group (group, unit))
    return;

  /* The unified hierarchy holds the controllers only where it is the
   * only one; on a v1 or hybrid host each controller has its own, the
   * unit's group at the same path in each. */
  controllers
      = g_build_filename (root, "sys/fs/cgroup/cgroup.controllers", NULL);
  if (g_file_test (controllers, G_FILE_TEST_EXISTS))
    {
      g_autofree char *dir
          = g_build_filename (root, "sys/fs/cgroup", group, NULL);

      usage->memory_bytes = read_number (dir, "memory.current");
      usage->cpu_nsec = read_cpu_stat (dir);
      usage->tasks = read_number (dir, "pids.current");
    }
  else
    {
      g_autofree char *memory
          = g_build_filename (root, "sys/fs/cgroup/memory", group, NULL);
      g_autofree char *cpuacct
          = g_build_filename (root, "sys/fs/cgroup/cpuacct", group, NULL);
      g_autofree char *pids
          = g_build_filename (root, "sys/fs/cgroup/pids", group, NULL);

      usage->memory_bytes = read_number (memory, "memory.usage_in_bytes");
      usage->cpu_nsec = read_number (cpuacct, "cpuacct.usage");
      usage->tasks = read_number (pids, "pids.current");
    }
}
