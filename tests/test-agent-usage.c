/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — tests of what a unit uses, read from its control group
 * (src/agent-usage.c), on made-up cgroup v2 and v1 trees */
#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>

#include "agent-usage.h"
#include "scratch-dir.h"

#define UNIT "agentbroker-session-cli-t.service"
#define GROUP "/agentbroker.slice/agentbroker-sessions.slice/" UNIT

typedef struct
{
  char *root;
} Fixture;

static void
put (Fixture *fx, const char *path, const char *contents)
{
  g_autofree char *full = g_build_filename (fx->root, path, NULL);
  g_autofree char *dir = g_path_get_dirname (full);
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  g_file_set_contents (full, contents, -1, &error);
  g_assert_no_error (error);
}

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  fx->root = g_dir_make_tmp ("ab-usage-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_remove_tree (fx->root);
  g_free (fx->root);
}

static void
put_v2 (Fixture *fx, const char *group)
{
  g_autofree char *memory
      = g_strconcat ("sys/fs/cgroup", group, "/memory.current", NULL);
  g_autofree char *cpu
      = g_strconcat ("sys/fs/cgroup", group, "/cpu.stat", NULL);
  g_autofree char *pids
      = g_strconcat ("sys/fs/cgroup", group, "/pids.current", NULL);

  put (fx, "sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n");
  put (fx, memory, "52428800\n");
  put (fx, cpu, "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n");
  put (fx, pids, "7\n");
}

static void
test_v2 (Fixture *fx, gconstpointer data)
{
  AbAgentUsage usage;

  put_v2 (fx, GROUP);
  ab_agent_usage_read (fx->root, GROUP, UNIT, &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, 52428800);
  g_assert_cmpuint (usage.cpu_nsec, ==, G_GUINT64_CONSTANT (1500000000));
  g_assert_cmpuint (usage.tasks, ==, 7);
}

/* A v1 (hybrid) host: each controller its own hierarchy, the unit's
 * group at the same path in each; the unified one tracks processes only
 * and is not read. */
static void
test_v1 (Fixture *fx, gconstpointer data)
{
  AbAgentUsage usage;

  put (fx, "sys/fs/cgroup/pids" GROUP "/pids.current", "3\n");
  put (fx, "sys/fs/cgroup/cpuacct" GROUP "/cpuacct.usage", "2500000000\n");
  put (fx, "sys/fs/cgroup/memory" GROUP "/memory.usage_in_bytes", "1048576\n");
  put (fx, "sys/fs/cgroup/unified" GROUP "/cgroup.procs", "42\n");
  ab_agent_usage_read (fx->root, GROUP, UNIT, &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, 1048576);
  g_assert_cmpuint (usage.cpu_nsec, ==, G_GUINT64_CONSTANT (2500000000));
  g_assert_cmpuint (usage.tasks, ==, 3);
}

/* A controller without the unit's group (no accounting enabled for it,
 * or a container that does not let systemd make it) gives no value; a
 * group that is not the unit's own is never read: a parent's figures
 * would count others. */
static void
test_not_the_unit (Fixture *fx, gconstpointer data)
{
  AbAgentUsage usage;

  put (fx, "sys/fs/cgroup/pids" GROUP "/pids.current", "2\n");
  put (fx, "sys/fs/cgroup/memory/agentbroker.slice/memory.usage_in_bytes",
       "999999\n");
  ab_agent_usage_read (fx->root, GROUP, UNIT, &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (usage.cpu_nsec, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (usage.tasks, ==, 2);

  ab_agent_usage_read (fx->root, "/agentbroker.slice", UNIT, &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, AB_USAGE_UNKNOWN);
  ab_agent_usage_read (fx->root, GROUP, "agentbroker-session-other.service",
                       &usage);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);
  ab_agent_usage_read (fx->root, "/../" UNIT, UNIT, &usage);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);
}

/* Whatever the files hold, nothing but a number is taken. */
static void
test_garbage (Fixture *fx, gconstpointer data)
{
  AbAgentUsage usage;

  put (fx, "sys/fs/cgroup/cgroup.controllers", "memory\n");
  put (fx, "sys/fs/cgroup" GROUP "/memory.current", "max\n");
  put (fx, "sys/fs/cgroup" GROUP "/cpu.stat",
       "usage_usec 99999999999999999999\n");
  put (fx, "sys/fs/cgroup" GROUP "/pids.current", "-1\n");
  ab_agent_usage_read (fx->root, GROUP, UNIT, &usage);
  g_assert_cmpuint (usage.memory_bytes, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (usage.cpu_nsec, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);

  /* No group known yet, no unit, a group of another unit's name. */
  ab_agent_usage_read (fx->root, NULL, UNIT, &usage);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);
  ab_agent_usage_read (fx->root, GROUP, NULL, &usage);
  g_assert_cmpuint (usage.tasks, ==, AB_USAGE_UNKNOWN);
}

static void
test_add (void)
{
  AbAgentUsage sum, one = { 100, AB_USAGE_UNKNOWN, 2 };
  AbAgentUsage two = { 50, AB_USAGE_UNKNOWN, AB_USAGE_UNKNOWN };

  ab_agent_usage_init (&sum);
  ab_agent_usage_add (&sum, &one);
  ab_agent_usage_add (&sum, &two);
  g_assert_cmpuint (sum.memory_bytes, ==, 150);
  g_assert_cmpuint (sum.cpu_nsec, ==, AB_USAGE_UNKNOWN);
  g_assert_cmpuint (sum.tasks, ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, func)                                                        \
  g_test_add ("/agent-usage/" name, Fixture, NULL, fixture_up, func,           \
              fixture_down)
  ADD ("cgroup-v2", test_v2);
  ADD ("cgroup-v1", test_v1);
  ADD ("not-the-unit", test_not_the_unit);
  ADD ("garbage", test_garbage);
#undef ADD
  g_test_add_func ("/agent-usage/add", test_add);
  return g_test_run ();
}
