/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what an agent's unit uses: memory, CPU time, tasks
 *
 * Read from the unit's control group when asked, never polled: the
 * cgroup v2 files (memory.current, cpu.stat, pids.current) or, on a
 * cgroup v1 or hybrid host, those of the memory, cpuacct and pids
 * hierarchies.  A value the kernel does not keep for the unit (a
 * controller not enabled for it, or not mounted in a container) is
 * AB_USAGE_UNKNOWN, as systemd shows "[not set]".
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AB_USAGE_UNKNOWN G_MAXUINT64

typedef struct
{
  guint64 memory_bytes;
  guint64 cpu_nsec;
  guint64 tasks;
} AbAgentUsage;

/* Every value unknown. */
void ab_agent_usage_init (AbAgentUsage *usage);

/* The usage of unit @unit, found through the control group of its
 * process @pid: a value is taken only from a group whose last component
 * is @unit, never from a parent that holds it.  @root is "/" but for
 * tests (a tree with proc/ and sys/fs/cgroup/ under it). */
void ab_agent_usage_read (const char *root, guint pid, const char *unit,
                          AbAgentUsage *usage);

/* Adds @b's known values to @a's; a value known in neither stays
 * unknown. */
void ab_agent_usage_add (AbAgentUsage *a, const AbAgentUsage *b);

G_END_DECLS
