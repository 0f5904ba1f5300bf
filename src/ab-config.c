/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — loading and validating the YAML configuration
 *
 * Three steps, so that every error points into the file its value came
 * from: each file is parsed with libyaml's event API into a small tree
 * whose nodes remember (file, line, column); the trees are merged (both in
 * ab-config-yaml.c); the merged tree is validated into an AbConfig
 * (ab-config-sections.c).  Every problem found on the way is collected,
 * and the load fails with all of them at once, because an operator fixing
 * a config should not have to reload once per typo.
 *
 * This file: AbConfig and AbAgentProfile, their defaults and lifetime, and
 * the entry points, which choose the files and read them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "ab-config-private.h"

#define DEFAULT_WORKING_DIRECTORY "{state}/work/{thread}"

/* ------------------------------------------------------------------ */
/* AbConfig and AbAgentProfile                                         */
/* ------------------------------------------------------------------ */

static void
env_entry_free (gpointer data)
{
  AbEnvEntry *entry = data;

  g_free (entry->name);
  g_free (entry->value);
  g_free (entry->credential);
  g_free (entry);
}

void
ab_agent_profile_free (AbAgentProfile *profile)
{
  g_free (profile->name);
  g_strfreev (profile->command);
  g_clear_pointer (&profile->env, g_ptr_array_unref);
  g_strfreev (profile->inherit_env);
  g_free (profile->working_directory);
  g_free (profile->auth_method);
  g_strfreev (profile->sandbox.read_only_paths);
  g_strfreev (profile->sandbox.read_write_paths);
  g_free (profile);
}

static char **
strv_new1 (const char *s)
{
  char **strv = g_new0 (char *, 2);

  strv[0] = g_strdup (s);
  return strv;
}

AbAgentProfile *
ab_agent_profile_new (const char *name)
{
  AbAgentProfile *profile = g_new0 (AbAgentProfile, 1);

  profile->name = g_strdup (name);
  profile->command = g_new0 (char *, 1);
  profile->env = g_ptr_array_new_with_free_func (env_entry_free);
  profile->inherit_env = g_new0 (char *, 1);
  profile->sandbox.read_only_paths = g_new0 (char *, 1);
  profile->sandbox.read_write_paths = g_new0 (char *, 1);
  profile->working_directory = g_strdup (DEFAULT_WORKING_DIRECTORY);
  profile->permissions = AB_PERMISSIONS_DENY;
  return profile;
}

AbAgentProfile *
ab_config_demo_profile_new (void)
{
  AbAgentProfile *profile = ab_agent_profile_new ("demo");

  g_strfreev (profile->command);
  profile->command = strv_new1 ("agentbroker-demo-agent");
  return profile;
}

gint
ab_agent_profile_compare (gconstpointer a, gconstpointer b)
{
  const AbAgentProfile *pa = *(const AbAgentProfile *const *)a;
  const AbAgentProfile *pb = *(const AbAgentProfile *const *)b;

  return strcmp (pa->name, pb->name);
}

AbConfig *
ab_config_new_base (void)
{
  AbConfig *config = g_new0 (AbConfig, 1);

  config->ref_count = 1;
  config->agents
      = g_ptr_array_new_with_free_func ((GDestroyNotify)ab_agent_profile_free);
  config->launcher = AB_LAUNCHER_AUTO;
  config->max_sessions = 64;
  /* One user must not fill the pool alone; a bridge that serves many
   * threads as one user raises it. */
  config->max_sessions_per_user = 256;
  config->max_queued_prompts = 8;
  config->max_message_bytes = G_GUINT64_CONSTANT (8) * 1024 * 1024;
  config->transcript_bytes = G_GUINT64_CONSTANT (4) * 1024 * 1024;
  config->idle_timeout_usec = 30 * 60 * G_USEC_PER_SEC;
  config->max_age_usec = 0;
  config->forget_after_usec = (gint64)7 * 24 * 3600 * G_USEC_PER_SEC;
  config->handshake_timeout_usec = 120 * G_USEC_PER_SEC;
  config->turn_inactivity_usec = 10 * 60 * G_USEC_PER_SEC;
  config->drain_timeout_usec = 30 * G_USEC_PER_SEC;
  config->kill_timeout_usec = 5 * G_USEC_PER_SEC;
  config->permission_timeout_usec = 5 * 60 * G_USEC_PER_SEC;
  config->access_users = strv_new1 ("agentbroker");
  config->access_admins = strv_new1 ("agentbroker-admin");
  config->health_listen = g_new0 (char *, 1);
  config->sources = g_new0 (char *, 1);
  return config;
}

AbConfig *
ab_config_new_default (void)
{
  AbConfig *config = ab_config_new_base ();

  g_ptr_array_add (config->agents, ab_config_demo_profile_new ());
  config->default_agent = g_strdup ("demo");
  return config;
}

AbConfig *
ab_config_ref (AbConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_atomic_int_inc (&config->ref_count);
  return config;
}

void
ab_config_unref (AbConfig *config)
{
  g_return_if_fail (config != NULL);
  if (!g_atomic_int_dec_and_test (&config->ref_count))
    return;
  g_free (config->default_agent);
  g_ptr_array_unref (config->agents);
  g_strfreev (config->access_users);
  g_strfreev (config->access_admins);
  g_strfreev (config->health_listen);
  g_strfreev (config->sources);
  g_free (config);
}

const AbAgentProfile *
ab_config_lookup_agent (const AbConfig *config, const char *name)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i < config->agents->len; i++)
    {
      const AbAgentProfile *profile = config->agents->pdata[i];

      if (g_str_equal (profile->name, name))
        return profile;
    }
  return NULL;
}

static gboolean
env_entry_equal (const AbEnvEntry *a, const AbEnvEntry *b)
{
  return g_strcmp0 (a->name, b->name) == 0
         && g_strcmp0 (a->value, b->value) == 0
         && g_strcmp0 (a->credential, b->credential) == 0;
}

gboolean
ab_agent_profile_equal (const AbAgentProfile *a, const AbAgentProfile *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (g_strcmp0 (a->name, b->name) != 0
      || !g_strv_equal ((const char *const *)a->command,
                        (const char *const *)b->command)
      || !g_strv_equal ((const char *const *)a->inherit_env,
                        (const char *const *)b->inherit_env)
      || g_strcmp0 (a->working_directory, b->working_directory) != 0
      || a->permissions != b->permissions
      || g_strcmp0 (a->auth_method, b->auth_method) != 0
      || !a->resend_interrupted != !b->resend_interrupted
      || a->sandbox.memory_max != b->sandbox.memory_max
      || a->sandbox.cpu_percent != b->sandbox.cpu_percent
      || a->sandbox.tasks_max != b->sandbox.tasks_max
      || a->sandbox.network != b->sandbox.network
      || !g_strv_equal ((const char *const *)a->sandbox.read_only_paths,
                        (const char *const *)b->sandbox.read_only_paths)
      || !g_strv_equal ((const char *const *)a->sandbox.read_write_paths,
                        (const char *const *)b->sandbox.read_write_paths)
      || a->env->len != b->env->len)
    return FALSE;

  for (guint i = 0; i < a->env->len; i++)
    if (!env_entry_equal (a->env->pdata[i], b->env->pdata[i]))
      return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static AbConfig *
loader_finish (Loader *l, Node *root, gboolean fatal, GError **error)
{
  g_autoptr (AbConfig) config = NULL;

  /* After a syntax error the tree is incomplete, and validating it would
   * only add errors that are not there. */
  if (!fatal)
    config = ab_config_from_tree (l, root);

  if (l->problems->len > 0 || config == NULL)
    {
      ab_config_loader_set_error (l, error);
      return NULL;
    }

  g_strfreev (config->sources);
  config->sources = g_new0 (char *, l->sources->len + 1);
  for (guint i = 0; i < l->sources->len; i++)
    config->sources[i]
        = g_strdup (l->files->pdata[g_array_index (l->sources, guint, i)]);
  return g_steal_pointer (&config);
}

AbConfig *
ab_config_load_from_data (const char *data, gsize len, const char *name,
                          GError **error)
{
  g_auto (Loader) l = { 0 };
  gboolean fatal;
  Node *root;
  guint file;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ab_config_loader_init (&l);
  file = ab_config_loader_add_file (&l, name);
  g_array_append_val (l.sources, file);
  root = ab_config_parse_document (&l, file, data != NULL ? data : "", len,
                                   &fatal);
  return loader_finish (&l, root, fatal, error);
}

typedef enum
{
  READ_OK,
  READ_MISSING,
  READ_FAILED, /* a problem was recorded */
} ReadResult;

/* Reads @path whole, refusing anything that is not a regular file of at
 * most MAX_FILE_SIZE bytes. */
static ReadResult
read_config_file (Loader *l, const char *path, char **out_data, gsize *out_len)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  struct stat st;
  guint file;
  int fd;

  /* O_NONBLOCK: a FIFO put there by mistake must not hang the daemon. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT)
        return READ_MISSING;
      file = ab_config_loader_add_file (l, path);
      ab_config_problem_at (l, file, 0, 0, _ ("cannot open: %s"),
                            g_strerror (saved_errno));
      return READ_FAILED;
    }

  file = ab_config_loader_add_file (l, path);
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      ab_config_problem_at (l, file, 0, 0, _ ("not a regular file"));
      close (fd);
      return READ_FAILED;
    }

  /* One byte more than allowed, so that a file growing under us is still
   * caught by the size check. */
  data = g_malloc (MAX_FILE_SIZE + 2);
  while (len <= MAX_FILE_SIZE)
    {
      ssize_t n = read (fd, data + len, MAX_FILE_SIZE + 1 - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          ab_config_problem_at (l, file, 0, 0, _ ("cannot read: %s"),
                                g_strerror (errno));
          close (fd);
          return READ_FAILED;
        }
      if (n == 0)
        break;
      len += n;
    }
  close (fd);

  if (len > MAX_FILE_SIZE)
    {
      ab_config_problem_at (l, file, 0, 0, _ ("file is larger than %u bytes"),
                            MAX_FILE_SIZE);
      return READ_FAILED;
    }

  data[len] = '\0';
  *out_data = g_steal_pointer (&data);
  *out_len = len;
  return READ_OK;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The drop-ins of @dir in strcmp order; none if @dir does not exist, NULL
 * (with a problem recorded) if it cannot be read. */
static GPtrArray *
list_dropins (Loader *l, const char *dir)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local_error);
  const char *name;

  if (d == NULL)
    {
      if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_steal_pointer (&paths);
      ab_config_problem_at (l, ab_config_loader_add_file (l, dir), 0, 0, "%s",
                            local_error->message);
      return NULL;
    }

  /* Dot files are editors' and package managers' leftovers. */
  while ((name = g_dir_read_name (d)) != NULL)
    if (name[0] != '.' && g_str_has_suffix (name, ".yaml"))
      g_ptr_array_add (paths, g_build_filename (dir, name, NULL));

  g_ptr_array_sort (paths, compare_strings);
  return g_steal_pointer (&paths);
}

static AbConfig *
load (const char *path, gboolean required, GError **error)
{
  g_auto (Loader) l = { 0 };
  g_autofree char *dir = NULL;
  g_autofree char *dropin_dir = NULL;
  g_autoptr (GPtrArray) paths = NULL;
  Node *root = NULL;
  gboolean fatal = FALSE;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ab_config_loader_init (&l);
  dir = g_path_get_dirname (path);
  dropin_dir = g_build_filename (dir, "agentbroker.d", NULL);
  paths = list_dropins (&l, dropin_dir);
  if (paths == NULL)
    {
      /* Missing drop-ins could change anything: never run without them. */
      fatal = TRUE;
      paths = g_ptr_array_new_with_free_func (g_free);
    }
  g_ptr_array_insert (paths, 0, g_strdup (path));

  for (guint i = 0; i < paths->len; i++)
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      gboolean file_fatal = FALSE;
      Node *doc;
      guint file;

      switch (read_config_file (&l, paths->pdata[i], &data, &len))
        {
        case READ_OK:
          break;
        case READ_MISSING:
          /* A path the operator named must exist: a typo there must not
           * quietly run the built-in demo default instead. */
          if (i == 0 && required)
            {
              ab_config_problem_at (
                  &l, ab_config_loader_add_file (&l, paths->pdata[i]), 0, 0,
                  _ ("cannot open: %s"), g_strerror (ENOENT));
              fatal = TRUE;
            }
          continue;
        case READ_FAILED:
        default:
          /* A file that exists but cannot be read could hold anything:
           * never run a config with a piece missing. */
          fatal = TRUE;
          continue;
        }
      file = l.files->len - 1;
      g_array_append_val (l.sources, file);
      doc = ab_config_parse_document (&l, file, data, len, &file_fatal);
      fatal = fatal || file_fatal;
      root = ab_config_merge (&l, root, doc, MERGE_ROOT);
    }

  if (l.sources->len == 0 && l.problems->len == 0)
    return ab_config_new_default ();

  return loader_finish (&l, root, fatal, error);
}

AbConfig *
ab_config_load (const char *path, GError **error)
{
  return load (path, FALSE, error);
}

AbConfig *
ab_config_load_required (const char *path, GError **error)
{
  return load (path, TRUE, error);
}
