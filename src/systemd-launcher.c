/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — starting an agent as a transient systemd service */
#include "config.h"

#include <string.h>

#include "systemd-launcher.h"
#include "systemd-unit-name.h"

static void
add (GVariantBuilder *b, const char *name, GVariant *value)
{
  g_variant_builder_add (b, "(sv)", name, value);
}

GVariant *
ab_systemd_transient_properties (const char *const *argv,
                                 const char *const *envp, const char *cwd,
                                 const char *thread, gint32 stdin_index,
                                 gint32 stdout_index, gboolean system_mode)
{
  GVariantBuilder b;
  GVariantBuilder exec;
  GVariantBuilder env;
  GVariantBuilder fields;
  g_autofree char *field = NULL;
  g_autofree char *description = NULL;

  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (cwd != NULL && thread != NULL, NULL);

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(sv)"));

  description = g_strdup_printf ("agentbroker agent for thread %s", thread);
  add (&b, "Description", g_variant_new_string (description));
  add (&b, "Slice", g_variant_new_string (AB_SESSIONS_SLICE));

  g_variant_builder_init (&exec, G_VARIANT_TYPE ("a(sasb)"));
  g_variant_builder_add (&exec, "(s^asb)", argv[0], argv, FALSE);
  add (&b, "ExecStart", g_variant_builder_end (&exec));
  add (&b, "WorkingDirectory", g_variant_new_string (cwd));

  g_variant_builder_init (&env, G_VARIANT_TYPE ("as"));
  for (gsize i = 0; envp != NULL && envp[i] != NULL; i++)
    g_variant_builder_add (&env, "s", envp[i]);
  if (system_mode)
    {
      g_autofree char *home = g_strconcat ("HOME=", cwd, NULL);

      g_variant_builder_add (&env, "s", home);
    }
  add (&b, "Environment", g_variant_builder_end (&env));

  add (&b, "StandardInputFileDescriptor", g_variant_new_handle (stdin_index));
  add (&b, "StandardOutputFileDescriptor", g_variant_new_handle (stdout_index));
  add (&b, "StandardError", g_variant_new_string ("journal"));
  field = g_strconcat ("AGENTBROKER_THREAD=", thread, NULL);
  g_variant_builder_init (&fields, G_VARIANT_TYPE ("aay"));
  /* Each field is a byte array without a terminating zero byte: systemd
   * refuses a field that contains one. */
  g_variant_builder_add_value (
      &fields, g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, field,
                                          strlen (field), sizeof (char)));
  add (&b, "LogExtraFields", g_variant_builder_end (&fields));

  add (&b, "KillMode", g_variant_new_string ("control-group"));
  add (&b, "CollectMode", g_variant_new_string ("inactive-or-failed"));

  if (system_mode)
    {
      const char *const filter[] = { "@system-service", NULL };

      add (&b, "DynamicUser", g_variant_new_boolean (TRUE));
      add (&b, "NoNewPrivileges", g_variant_new_boolean (TRUE));
      add (&b, "ProtectSystem", g_variant_new_string ("strict"));
      add (&b, "PrivateTmp", g_variant_new_boolean (TRUE));
      add (&b, "PrivateDevices", g_variant_new_boolean (TRUE));
      add (&b, "ProtectKernelTunables", g_variant_new_boolean (TRUE));
      add (&b, "ProtectKernelModules", g_variant_new_boolean (TRUE));
      add (&b, "RestrictSUIDSGID", g_variant_new_boolean (TRUE));
      add (&b, "SystemCallFilter", g_variant_new ("(b^as)", TRUE, filter));
    }

  return g_variant_builder_end (&b);
}
