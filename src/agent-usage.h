/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what an agent's unit uses: memory, CPU time, tasks
 *
 * Read from the unit's control group when asked, never polled: the
 * cgroup v2 files (memory.current, cpu.stat, pids.current) or, on a
 * cgroup v1 or hybrid host, those of the memory, cpuacct and pids
 * hierarchies.  The group is the one systemd names, not one found
 * through /proc: the daemon's own unit hides other users' processes
 * (ProtectProc=invisible).  A value the kernel does not keep for the unit (a
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

/* The usage of unit @unit, whose control group is @group (systemd's
 * ControlGroup, e.g. "/agentbroker.slice/…/UNIT"): nothing is read
 * unless its last component is @unit, so a parent's figures are never
 * taken for the unit's.  @root is "/" but for tests (a tree with
 * sys/fs/cgroup/ under it). */
void ab_agent_usage_read (const char *root, const char *group, const char *unit,
                          AbAgentUsage *usage);

/* Adds @b's known values to @a's; a value known in neither stays
 * unknown. */
void ab_agent_usage_add (AbAgentUsage *a, const AbAgentUsage *b);

G_END_DECLS
