/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — how an agent process is started: the interface, and the
 * direct spawn as the daemon's child */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "agent-launcher.h"
#include "agent-process.h"
#include "error.h"

G_DEFINE_INTERFACE (AbAgentLauncher, ab_agent_launcher, G_TYPE_OBJECT)

static void
ab_agent_launcher_default_init (AbAgentLauncherInterface *iface)
{
}

AbAcpConnection *
ab_agent_launcher_launch (AbAgentLauncher *self, const AbAgentProfile *profile,
                          const char *thread, const char *state_dir,
                          gsize max_message_bytes, char **cwd, GError **error)
{
  g_return_val_if_fail (AB_IS_AGENT_LAUNCHER (self), NULL);
  g_return_val_if_fail (profile != NULL && thread != NULL, NULL);
  g_return_val_if_fail (cwd != NULL && *cwd == NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return AB_AGENT_LAUNCHER_GET_IFACE (self)->launch (
      self, profile, thread, state_dir, max_message_bytes, cwd, error);
}

char *
ab_agent_expand_working_directory (const char *template, const char *thread,
                                   const char *state_dir)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);
  GString *out = g_string_new (NULL);

  for (const char *p = template; *p != '\0';)
    {
      if (g_str_has_prefix (p, "{thread}"))
        {
          g_string_append (out, escaped);
          p += strlen ("{thread}");
        }
      else if (g_str_has_prefix (p, "{state}"))
        {
          g_string_append (out, state_dir);
          p += strlen ("{state}");
        }
      else
        g_string_append_c (out, *p++);
    }
  return g_string_free (out, FALSE);
}

/* ---- the direct launcher ------------------------------------------------ */

struct _AbDirectLauncher
{
  GObject parent_instance;
};

static void direct_launcher_iface_init (AbAgentLauncherInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbDirectLauncher, ab_direct_launcher, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_LAUNCHER,
                                                direct_launcher_iface_init))

/* NAME=VALUE for each entry of the profile's env, credentials read. */
static GPtrArray *
profile_environment (const AbAgentProfile *prof, GError **error)
{
  g_autoptr (GPtrArray) extra = g_ptr_array_new_with_free_func (g_free);
  const char *credentials = g_getenv ("CREDENTIALS_DIRECTORY");

  for (guint i = 0; prof->env != NULL && i < prof->env->len; i++)
    {
      AbEnvEntry *e = g_ptr_array_index (prof->env, i);
      g_autofree char *path = NULL;
      g_autofree char *value = NULL;
      gsize len = 0;
      g_autoptr (GError) local = NULL;

      if (e->credential == NULL)
        {
          g_ptr_array_add (extra, g_strdup_printf ("%s=%s", e->name, e->value));
          continue;
        }
      if (credentials == NULL)
        {
          g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                       _ ("agent '%s' needs credential '%s' but "
                          "$CREDENTIALS_DIRECTORY is not set"),
                       prof->name, e->credential);
          return NULL;
        }
      path = g_build_filename (credentials, e->credential, NULL);
      if (!g_file_get_contents (path, &value, &len, &local))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                       _ ("cannot read credential '%s' for agent '%s': %s"),
                       e->credential, prof->name, local->message);
          return NULL;
        }
      if (len > AB_AGENT_MAX_CREDENTIAL_BYTES || strlen (value) != len)
        {
          g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                       _ ("credential '%s' is not a text of at most %d "
                          "bytes"),
                       e->credential, AB_AGENT_MAX_CREDENTIAL_BYTES);
          return NULL;
        }
      /* One trailing newline is the file's, not the secret's. */
      if (len > 0 && value[len - 1] == '\n')
        value[len - 1] = '\0';
      g_ptr_array_add (extra, g_strdup_printf ("%s=%s", e->name, value));
    }
  return g_steal_pointer (&extra);
}

gboolean
ab_agent_make_working_directory (const AbAgentProfile *profile,
                                 const char *thread, const char *state_dir,
                                 char **cwd, GError **error)
{
  *cwd = ab_agent_expand_working_directory (profile->working_directory, thread,
                                            state_dir);
  if (g_mkdir_with_parents (*cwd, 0700) != 0)
    {
      int saved = errno;

      g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                   _ ("cannot create working directory %s: %s"), *cwd,
                   g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static AbAcpConnection *
direct_launch (AbAgentLauncher *launcher, const AbAgentProfile *prof,
               const char *thread, const char *state_dir,
               gsize max_message_bytes, char **cwd, GError **error)
{
  g_autoptr (GPtrArray) extra = NULL;
  g_auto (GStrv) envp = NULL;
  g_autoptr (AbAgentProcess) process = NULL;
  g_autoptr (AbJsonRpc) rpc = NULL;

  if (!ab_agent_make_working_directory (prof, thread, state_dir, cwd, error))
    return NULL;

  extra = profile_environment (prof, error);
  if (extra == NULL)
    return NULL;
  envp = ab_agent_build_env ((const char *const *)prof->inherit_env, extra,
                             thread);
  process
      = ab_agent_process_spawn ((const char *const *)prof->command,
                                (const char *const *)envp, *cwd, thread, error);
  if (process == NULL)
    return NULL;
  rpc = ab_jsonrpc_new (ab_agent_process_get_stdout (process),
                        ab_agent_process_get_stdin (process),
                        max_message_bytes);
  return ab_acp_connection_new (rpc, AB_AGENT_HANDLE (process));
}

static void
direct_launcher_iface_init (AbAgentLauncherInterface *iface)
{
  iface->launch = direct_launch;
}

static void
ab_direct_launcher_class_init (AbDirectLauncherClass *klass)
{
}

static void
ab_direct_launcher_init (AbDirectLauncher *self)
{
}

AbAgentLauncher *
ab_direct_launcher_new (void)
{
  return g_object_new (AB_TYPE_DIRECT_LAUNCHER, NULL);
}

char **
ab_agent_build_env (const char *const *inherit_env, GPtrArray *extra,
                    const char *thread)
{
  static const char *const base[] = { "HOME", "PATH", "USER", "LANG" };
  char **env = g_new0 (char *, 1);

  g_return_val_if_fail (thread != NULL, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (base); i++)
    {
      const char *value = g_getenv (base[i]);

      if (value != NULL)
        env = g_environ_setenv (env, base[i], value, TRUE);
    }

  for (gsize i = 0; inherit_env != NULL && inherit_env[i] != NULL; i++)
    {
      const char *value = g_getenv (inherit_env[i]);

      if (value != NULL)
        env = g_environ_setenv (env, inherit_env[i], value, TRUE);
    }

  for (guint i = 0; extra != NULL && i < extra->len; i++)
    {
      const char *entry = g_ptr_array_index (extra, i);
      const char *eq = strchr (entry, '=');
      g_autofree char *name = NULL;

      if (eq == NULL || eq == entry)
        {
          g_warning ("ignoring malformed agent environment entry '%s'", entry);
          continue;
        }
      name = g_strndup (entry, (gsize)(eq - entry));
      env = g_environ_setenv (env, name, eq + 1, TRUE);
    }

  return g_environ_setenv (env, "AGENTBROKER_THREAD", thread, TRUE);
}
