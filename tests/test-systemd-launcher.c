/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — tests of the transient unit properties
 * (src/systemd-launcher.c) */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "systemd-launcher.h"

static const char *const argv_[] = { "/usr/bin/agent", "--acp", NULL };
/* systemd expands $NAME in a command line: a "$" the agent is to see
 * goes as "$$". */
static const char *const dollar_argv[]
    = { "/usr/bin/agent", "--price=$5", "$HOME", NULL };
static const char *const envp_[] = { "PATH=/usr/bin", "AB=1", NULL };

static GVariant *
lookup (GVariant *props, const char *name)
{
  GVariantIter iter;
  const char *key;
  GVariant *value;

  g_variant_iter_init (&iter, props);
  while (g_variant_iter_next (&iter, "(&sv)", &key, &value))
    {
      if (g_str_equal (key, name))
        return value;
      g_variant_unref (value);
    }
  return NULL;
}

static void
assert_prop (GVariant *props, const char *name, const char *want)
{
  g_autoptr (GVariant) v = lookup (props, name);
  g_autofree char *text = NULL;

  if (want == NULL)
    {
      g_assert_null (v);
      return;
    }
  g_assert_nonnull (v);
  text = g_variant_print (v, TRUE);
  g_assert_cmpstr (text, ==, want);
}

/* The one journal field, as bytes with no terminating zero: systemd
 * refuses a field containing a zero byte. */
static void
assert_field (GVariant *props, const char *want)
{
  g_autoptr (GVariant) v = lookup (props, "LogExtraFields");
  g_autoptr (GVariant) field = NULL;
  const char *bytes;
  gsize len = 0;

  g_assert_nonnull (v);
  g_assert_true (g_variant_is_of_type (v, G_VARIANT_TYPE ("aay")));
  g_assert_cmpuint (g_variant_n_children (v), ==, 1);
  field = g_variant_get_child_value (v, 0);
  bytes = g_variant_get_fixed_array (field, &len, sizeof (char));
  g_assert_cmpmem (bytes, len, want, strlen (want));
}

static void
test_user_mode (void)
{
  g_autoptr (GVariant) p
      = g_variant_ref_sink (ab_systemd_transient_properties (&(AbUnitSpec){
          .argv = argv_,
          .envp = envp_,
          .cwd = "/srv/t/a",
          .thread = "team/a",
          .unit = "agentbroker-session-team-a.service",
          .daemon_unit = "agentbroker.service",
          .stdin_path = "/p/a.in",
          .stdout_path = "/p/a.out",
      }));

  g_assert_true (g_variant_is_of_type (p, G_VARIANT_TYPE ("a(sv)")));
  assert_prop (p, "ExecStart",
               "[('/usr/bin/agent', ['/usr/bin/agent', '--acp'], false)]");
  assert_prop (p, "Slice", "'agentbroker-sessions.slice'");
  assert_prop (p, "WorkingDirectory", "'/srv/t/a'");
  assert_prop (p, "Environment", "['PATH=/usr/bin', 'AB=1']");
  assert_prop (p, "StandardInputFile", "'/p/a.in'");
  assert_prop (p, "StandardOutputFile", "'/p/a.out'");
  assert_prop (p, "StandardError", "'journal'");
  assert_field (p, "AGENTBROKER_THREAD=team/a");
  assert_prop (p, "KillMode", "'control-group'");
  assert_prop (p, "CollectMode", "'inactive-or-failed'");
  assert_prop (p, "Before", "['agentbroker.service']");
  assert_prop (p, "BindsTo", NULL);
  assert_prop (p, "DynamicUser", NULL);
  assert_prop (p, "ProtectSystem", NULL);
  assert_prop (p, "LoadCredential", NULL);
  g_clear_pointer (&p, g_variant_unref);
  p = g_variant_ref_sink (ab_systemd_transient_properties (&(AbUnitSpec){
      .argv = dollar_argv,
      .thread = "team/a",
      .stdin_path = "/p/a.in",
      .stdout_path = "/p/a.out",
      .unit = "agentbroker-session-team-a.service",
  }));
  assert_prop (p, "ExecStart",
               "[('/usr/bin/agent', ['/usr/bin/agent', '--price=$$5', "
               "'$$HOME'], false)]");
  assert_prop (p, "Before", NULL);
}

/* Under the system manager: a user of its own, its own state directory
 * as working directory and HOME, the sandbox, and each credential read
 * from the unit's own credentials into its variable before the agent
 * starts. */
static void
test_system_mode (void)
{
  AbEnvEntry key = { (char *)"API_KEY", NULL, (char *)"api key" };
  g_autoptr (GPtrArray) creds = g_ptr_array_new ();
  g_autoptr (GVariant) p = NULL;

  g_ptr_array_add (creds, &key);
  p = g_variant_ref_sink (ab_systemd_transient_properties (&(AbUnitSpec){
      .argv = argv_,
      .envp = (const char *const[]){ "PATH=/usr/bin", "HOME=/var/lib/x", "AB=1",
                                     NULL },
      .thread = "a",
      .unit = "agentbroker-session-a.service",
      .credentials = "/run/credentials/agentbrokerd.service",
      .credential_env = creds,
      .stdin_path = "/p/b.in",
      .stdout_path = "/p/b.out",
      .system_mode = TRUE,
  }));

  assert_prop (p, "Environment",
               "['PATH=/usr/bin', 'AB=1', 'HOME=/var/lib/agentbroker-sessions/"
               "agentbroker-session-a.service']");
  assert_prop (p, "WorkingDirectory",
               "'/var/lib/agentbroker-sessions/agentbroker-session-a.service'");
  assert_prop (p, "StateDirectory",
               "['agentbroker-sessions/agentbroker-session-a.service']");
  assert_prop (p, "LoadCredential",
               "[('api key', '/run/credentials/agentbrokerd.service/api "
               "key')]");
  assert_prop (
      p, "ExecStart",
      "[('/bin/sh', ['/bin/sh', '-c', \"API_KEY=\\\"$$(cat \\\"$$CREDENTIA"
      "LS_DIRECTORY\\\"/'api key')\\\" && export API_KEY && exec "
      "\\\"$$@\\\"\", 'sh', '/usr/bin/agent', '--acp'], false)]");
  assert_prop (p, "Before", NULL);
  assert_prop (p, "StandardInputFile", "'/p/b.in'");
  assert_prop (p, "StandardOutputFile", "'/p/b.out'");
  assert_prop (p, "DynamicUser", "true");
  assert_prop (p, "NoNewPrivileges", "true");
  assert_prop (p, "ProtectSystem", "'strict'");
  assert_prop (p, "PrivateTmp", "true");
  assert_prop (p, "PrivateDevices", "true");
  assert_prop (p, "ProtectKernelTunables", "true");
  assert_prop (p, "ProtectKernelModules", "true");
  assert_prop (p, "RestrictSUIDSGID", "true");
  assert_prop (p, "SystemCallFilter", "(true, ['@system-service'])");
}

/* A profile's sandbox: its limits as the unit's resource controls. */
static void
test_limits (void)
{
  char *ro[] = { (char *)"/srv/data", NULL };
  char *rw[] = { (char *)"/srv/scratch", NULL };
  AbSandbox sandbox = {
    .memory_max = 64 * 1024 * 1024,
    .cpu_percent = 150,
    .tasks_max = 32,
    .network = AB_NETWORK_LOOPBACK,
    .read_only_paths = ro,
    .read_write_paths = rw,
  };
  g_autoptr (GVariant) p = NULL;

  p = g_variant_ref_sink (ab_systemd_transient_properties (&(AbUnitSpec){
      .argv = argv_,
      .thread = "a",
      .unit = "agentbroker-session-a.service",
      .stdin_path = "/p/a.in",
      .stdout_path = "/p/a.out",
      .sandbox = &sandbox,
      .system_mode = TRUE,
  }));
  assert_prop (p, "MemoryMax", "uint64 67108864");
  assert_prop (p, "CPUQuotaPerSecUSec", "uint64 1500000");
  assert_prop (p, "TasksMax", "uint64 32");
  assert_prop (p, "IPAddressAllow",
               "[(2, [byte 0x7f, 0x00, 0x00, 0x00], uint32 8), (10, [0x00, "
               "0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, "
               "0x00, 0x00, 0x00, 0x00, 0x01], 128)]");
  assert_prop (p, "PrivateNetwork", NULL);
  assert_prop (p, "ReadOnlyPaths", "['/srv/data']");
  assert_prop (p, "ReadWritePaths", "['/srv/scratch']");

  sandbox = (AbSandbox){ .network = AB_NETWORK_NONE };
  g_clear_pointer (&p, g_variant_unref);
  p = g_variant_ref_sink (ab_systemd_transient_properties (&(AbUnitSpec){
      .argv = argv_,
      .thread = "a",
      .unit = "agentbroker-session-a.service",
      .stdin_path = "/p/a.in",
      .stdout_path = "/p/a.out",
      .sandbox = &sandbox,
  }));
  assert_prop (p, "PrivateNetwork", "true");
  assert_prop (p, "IPAddressDeny", NULL);
  assert_prop (p, "MemoryMax", NULL);
  assert_prop (p, "ReadOnlyPaths", NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/systemd-launcher/user-mode", test_user_mode);
  g_test_add_func ("/systemd-launcher/system-mode", test_system_mode);
  g_test_add_func ("/systemd-launcher/limits", test_limits);
  return g_test_run ();
}
