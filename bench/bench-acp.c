/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — the ACP front door: the official SDK's client
 * reading a streamed answer, through `agentctl acp` or from the agent
 * itself */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>

#include "bench-acp.h"

gboolean
bench_acp_find (const char *builddir, char **node, char **script, char **why)
{
  g_autofree char *dir
      = g_build_filename (builddir, "tests", "acp-client", NULL);
  g_autofree char *sdk = g_build_filename (
      dir, "node_modules", "@agentclientprotocol", "sdk", "package.json", NULL);

  *node = g_find_program_in_path ("node");
  *script = g_build_filename (dir, "bench.mjs", NULL);
  if (*node == NULL)
    *why = g_strdup ("node is not installed");
  else if (!g_file_test (sdk, G_FILE_TEST_EXISTS)
           || !g_file_test (*script, G_FILE_TEST_EXISTS))
    *why = g_strdup_printf ("the SDK client is not installed in %s (make "
                            "tests/acp-client/.npm-installed)",
                            dir);
  else
    return TRUE;
  g_clear_pointer (node, g_free);
  g_clear_pointer (script, g_free);
  return FALSE;
}

double
bench_acp_rate (const char *node, const char *script, const char *bus_address,
                const char *cwd, guint64 n, const char *const *command)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL, *err = NULL;
  const char *line;
  double rate;

  g_ptr_array_add (argv, g_strdup (node));
  g_ptr_array_add (argv, g_strdup (script));
  g_ptr_array_add (argv, g_strdup_printf ("%" G_GUINT64_FORMAT, n));
  g_ptr_array_add (argv, g_strdup (cwd));
  g_ptr_array_add (argv, g_strdup ("--"));
  for (guint i = 0; command[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (command[i]));
  g_ptr_array_add (argv, NULL);
  g_subprocess_launcher_setenv (launcher, "DBUS_SESSION_BUS_ADDRESS",
                                bus_address, TRUE);
  proc = g_subprocess_launcher_spawnv (
      launcher, (const char *const *)argv->pdata, &error);
  if (proc == NULL
      || !g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, &err, &error))
    {
      g_printerr ("acp: %s\n", error->message);
      return NAN;
    }
  line = out != NULL ? strstr (out, "rate ") : NULL;
  if (!g_subprocess_get_if_exited (proc)
      || g_subprocess_get_exit_status (proc) != 0 || line == NULL)
    {
      g_printerr ("acp: the SDK client failed reading %s:\n%s\n", command[0],
                  err != NULL ? err : "");
      return NAN;
    }
  rate = g_ascii_strtod (line + strlen ("rate "), NULL);
  return rate > 0 ? rate : NAN;
}
