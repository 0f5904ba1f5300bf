/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — tests of the transient unit properties
 * (src/systemd-launcher.c) */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "systemd-launcher.h"

static const char *const argv_[] = { "/usr/bin/agent", "--acp", NULL };
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
  g_autoptr (GVariant) p = g_variant_ref_sink (ab_systemd_transient_properties (
      argv_, envp_, "/srv/t/a", "team/a", 0, 1, FALSE));

  g_assert_true (g_variant_is_of_type (p, G_VARIANT_TYPE ("a(sv)")));
  assert_prop (p, "ExecStart",
               "[('/usr/bin/agent', ['/usr/bin/agent', '--acp'], false)]");
  assert_prop (p, "Slice", "'agentbroker-sessions.slice'");
  assert_prop (p, "WorkingDirectory", "'/srv/t/a'");
  assert_prop (p, "Environment", "['PATH=/usr/bin', 'AB=1']");
  assert_prop (p, "StandardInputFileDescriptor", "handle 0");
  assert_prop (p, "StandardOutputFileDescriptor", "handle 1");
  assert_prop (p, "StandardError", "'journal'");
  assert_field (p, "AGENTBROKER_THREAD=team/a");
  assert_prop (p, "KillMode", "'control-group'");
  assert_prop (p, "CollectMode", "'inactive-or-failed'");
  assert_prop (p, "DynamicUser", NULL);
  assert_prop (p, "ProtectSystem", NULL);
}

static void
test_system_mode (void)
{
  g_autoptr (GVariant) p = g_variant_ref_sink (ab_systemd_transient_properties (
      argv_, envp_, "/var/lib/agentbroker/t/a", "a", 3, 4, TRUE));

  assert_prop (p, "Environment",
               "['PATH=/usr/bin', 'AB=1', 'HOME=/var/lib/agentbroker/t/a']");
  assert_prop (p, "StandardInputFileDescriptor", "handle 3");
  assert_prop (p, "StandardOutputFileDescriptor", "handle 4");
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/systemd-launcher/user-mode", test_user_mode);
  g_test_add_func ("/systemd-launcher/system-mode", test_system_mode);
  return g_test_run ();
}
