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

/* Where the groups of one process are, by hierarchy. */
typedef struct
{
  char *unified; /* the cgroup v2 path */
  char *memory;  /* cgroup v1: the mount's name, then the path */
  char *cpuacct;
  char *pids;
} Groups;

static void
groups_clear (Groups *groups)
{
  g_free (groups->unified);
  g_free (groups->memory);
  g_free (groups->cpuacct);
  g_free (groups->pids);
}

/* Whether the group @path is the unit's own: its last component is
 * @unit. */
static gboolean
is_unit_group (const char *path, const char *unit)
{
  const char *last = strrchr (path, '/');

  return path[0] == '/' && last != NULL && g_str_equal (last + 1, unit)
         && strstr (path, "/../") == NULL;
}

/* One line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH". */
static void
take_line (Groups *groups, const char *root, const char *line, const char *unit)
{
  g_auto (GStrv) parts = g_strsplit (line, ":", 3);
  g_auto (GStrv) controllers = NULL;

  if (g_strv_length (parts) != 3 || !is_unit_group (parts[2], unit))
    return;
  if (parts[1][0] == '\0')
    {
      g_free (groups->unified);
      groups->unified
          = g_build_filename (root, "sys/fs/cgroup", parts[2], NULL);
      return;
    }
  controllers = g_strsplit (parts[1], ",", -1);
  for (gsize i = 0; controllers[i] != NULL; i++)
    {
      char **slot = g_str_equal (controllers[i], "memory")    ? &groups->memory
                    : g_str_equal (controllers[i], "cpuacct") ? &groups->cpuacct
                    : g_str_equal (controllers[i], "pids")    ? &groups->pids
                                                              : NULL;

      if (slot != NULL)
        {
          g_free (*slot);
          *slot = g_build_filename (root, "sys/fs/cgroup", parts[1], parts[2],
                                    NULL);
        }
    }
}

void
ab_agent_usage_read (const char *root, guint pid, const char *unit,
                     AbAgentUsage *usage)
{
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *controllers = NULL;
  g_auto (GStrv) lines = NULL;
  Groups groups = { 0 };
  gboolean v2;

  ab_agent_usage_init (usage);
  if (pid == 0 || unit == NULL)
    return;
  path = g_strdup_printf ("%s/proc/%u/cgroup", root, pid);
  contents = read_small (path);
  if (contents == NULL)
    return;
  lines = g_strsplit (contents, "\n", -1);
  for (gsize i = 0; lines[i] != NULL; i++)
    take_line (&groups, root, lines[i], unit);

  /* The unified hierarchy holds the controllers only where it is the
   * only one (on a hybrid host it tracks processes, nothing else). */
  controllers
      = g_build_filename (root, "sys/fs/cgroup/cgroup.controllers", NULL);
  v2 = groups.unified != NULL && g_file_test (controllers, G_FILE_TEST_EXISTS);
  if (v2)
    {
      usage->memory_bytes = read_number (groups.unified, "memory.current");
      usage->cpu_nsec = read_cpu_stat (groups.unified);
      usage->tasks = read_number (groups.unified, "pids.current");
    }
  else
    {
      if (groups.memory != NULL)
        usage->memory_bytes
            = read_number (groups.memory, "memory.usage_in_bytes");
      if (groups.cpuacct != NULL)
        usage->cpu_nsec = read_number (groups.cpuacct, "cpuacct.usage");
      if (groups.pids != NULL)
        usage->tasks = read_number (groups.pids, "pids.current");
    }
  groups_clear (&groups);
}
