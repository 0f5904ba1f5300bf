/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — validating the merged configuration tree into an AbConfig
 *
 * The known keys of each section and their parsers (agents and their
 * profiles, pool, timeouts, access, health), built on bounded helpers that
 * read one value each: an integer, a duration, a size, a boolean, a string,
 * a list of names.  A bad value is recorded as a problem at its node, and
 * validation goes on, so that every problem is reported at once.
 */
#include "config.h"

#include <string.h>

#include <gio/gio.h>
#include <glib/gi18n.h>

#include "ab-config-private.h"
#include "duration.h"
#include "transcript.h"

/* Far beyond any sensible timeout, and small enough that consumers can
 * convert to milliseconds or seconds without overflow. */
/* A duration's upper bound, as a value and as the operator writes it. */
typedef struct
{
  gint64 usec;
  const char *text;
} DurationLimit;

static const DurationLimit any_duration
    = { (gint64)3650 * 24 * 3600 * G_USEC_PER_SEC, "3650d" };
/* The timeouts become GLib timers, which count milliseconds in 32 bits:
 * anything longer would wrap around and fire early, so it is refused. */
static const DurationLimit timer_duration
    = { (gint64)G_MAXUINT * 1000, "49d17h2m47s295ms" };

#define MIN_MESSAGE_BYTES (G_GUINT64_CONSTANT (64) * 1024)
#define MAX_MESSAGE_BYTES (G_GUINT64_CONSTANT (1024) * 1024 * 1024)
#define MAX_TRANSCRIPT_BYTES ((guint64)AB_TRANSCRIPT_MAX_BYTES)
/* agents.NAME.sandbox.memory: 1 MiB to 1 TiB */
#define MIN_SANDBOX_MEMORY (G_GUINT64_CONSTANT (1024) * 1024)
#define MAX_SANDBOX_MEMORY (G_GUINT64_CONSTANT (1024) * 1024 * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* Validation helpers                                                  */
/* ------------------------------------------------------------------ */

static void
unknown_key (Loader *l, const Node *key, const char *section,
             const char *const *valid)
{
  g_autofree char *list = g_strjoinv (", ", (char **)valid);

  if (section == NULL)
    ab_config_problem (l, key, _ ("unknown key “%s” (valid keys: %s)"),
                       key->value, list);
  else
    ab_config_problem (l, key, _ ("unknown key “%s” in %s (valid keys: %s)"),
                       key->value, section, list);
}

static gboolean
expect_kind (Loader *l, const Node *node, NodeKind kind, const char *path)
{
  if (node->kind == kind)
    return TRUE;
  ab_config_problem (l, node, _ ("%s: expected %s, got %s"), path,
                     kind == NODE_MAPPING ? _ ("a mapping") : _ ("a sequence"),
                     ab_config_node_kind_name (node));
  return FALSE;
}

/* @what: "a string", "an integer", … as it reads in the message. */
static gboolean
expect_scalar (Loader *l, const Node *node, const char *path, const char *what)
{
  if (node->kind == NODE_SCALAR && !node->is_null)
    return TRUE;
  ab_config_problem (l, node, _ ("%s: expected %s, got %s"), path, what,
                     ab_config_node_kind_name (node));
  return FALSE;
}

static void
get_uint (Loader *l, const Node *node, const char *path, guint min, guint max,
          guint *out)
{
  guint64 value = 0;

  if (!expect_scalar (l, node, path, _ ("an integer")))
    return;
  if (node->value[0] == '\0')
    {
      ab_config_problem (l, node, _ ("%s: “” is not an integer"), path);
      return;
    }
  for (const char *p = node->value; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      {
        ab_config_problem (l, node, _ ("%s: “%s” is not an integer"), path,
                           node->value);
        return;
      }
  for (const char *p = node->value; *p != '\0' && value <= max; p++)
    value = value * 10 + (*p - '0');
  if (value < min || value > max)
    {
      ab_config_problem (l, node, _ ("%s: %s is out of range (%u..%u)"), path,
                         node->value, min, max);
      return;
    }
  *out = (guint)value;
}

/* @min: 0 allows "0" (meaning never/off where documented), 1 requires a
 * positive duration. */
static void
get_duration (Loader *l, const Node *node, const char *path, gint64 min,
              const DurationLimit *max, gint64 *out)
{
  g_autoptr (GError) local_error = NULL;
  gint64 value;

  if (!expect_scalar (l, node, path, _ ("a duration")))
    return;
  if (!ab_parse_duration (node->value, &value, &local_error))
    {
      ab_config_problem (l, node, "%s: %s", path, local_error->message);
      return;
    }
  if (value < min)
    {
      ab_config_problem (l, node, _ ("%s: must be greater than 0"), path);
      return;
    }
  if (value > max->usec)
    {
      ab_config_problem (l, node, _ ("%s: “%s” is too long (the limit is %s)"),
                         path, node->value, max->text);
      return;
    }
  *out = value;
}

/* @bytes in the largest binary unit that divides it: "64KiB", "1TiB". */
static char *
size_text (guint64 bytes)
{
  static const char *const units[] = { "", "KiB", "MiB", "GiB", "TiB" };
  gsize unit = 0;

  while (unit + 1 < G_N_ELEMENTS (units) && bytes >= 1024 && bytes % 1024 == 0)
    {
      bytes /= 1024;
      unit++;
    }
  return g_strdup_printf ("%" G_GUINT64_FORMAT "%s", bytes, units[unit]);
}

static void
get_size (Loader *l, const Node *node, const char *path, guint64 min,
          guint64 max, guint64 *out)
{
  g_autoptr (GError) local_error = NULL;
  guint64 value;

  if (!expect_scalar (l, node, path, _ ("a size")))
    return;
  if (!ab_parse_size (node->value, &value, &local_error))
    {
      ab_config_problem (l, node, "%s: %s", path, local_error->message);
      return;
    }
  if (value < min || value > max)
    {
      g_autofree char *low = size_text (min);
      g_autofree char *high = size_text (max);

      ab_config_problem (l, node, _ ("%s: %s is out of range (%s..%s)"), path,
                         node->value, low, high);
      return;
    }
  *out = value;
}

static void
get_bool (Loader *l, const Node *node, const char *path, gboolean *out)
{
  if (!expect_scalar (l, node, path, _ ("a boolean")))
    return;
  if (g_str_equal (node->value, "true") || g_str_equal (node->value, "yes"))
    *out = TRUE;
  else if (g_str_equal (node->value, "false")
           || g_str_equal (node->value, "no"))
    *out = FALSE;
  else
    ab_config_problem (l, node,
                       _ ("%s: “%s” is not a boolean (use true, false, yes or "
                          "no)"),
                       path, node->value);
}

/* A non-empty string, copied to *@out unless @out is NULL. */
static gboolean
get_string (Loader *l, const Node *node, const char *path, char **out)
{
  if (!expect_scalar (l, node, path, _ ("a string")))
    return FALSE;
  if (node->value[0] == '\0')
    {
      ab_config_problem (l, node, _ ("%s: must not be empty"), path);
      return FALSE;
    }
  if (out != NULL)
    {
      g_free (*out);
      *out = g_strdup (node->value);
    }
  return TRUE;
}

typedef gboolean (*NameCheck) (const char *name);

/* A sequence of names, each passing @check; @what describes a valid name
 * for the message. */
static void
get_name_list (Loader *l, const Node *node, const char *path, NameCheck check,
               const char *what, char ***out)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  gboolean ok = TRUE;

  if (!expect_kind (l, node, NODE_SEQUENCE, path))
    return;
  for (guint i = 0; i < node->children->len; i++)
    {
      const Node *item = node->children->pdata[i];
      g_autofree char *item_path = g_strdup_printf ("%s[%u]", path, i);

      if (!expect_scalar (l, item, item_path, _ ("a string")))
        ok = FALSE;
      else if (!check (item->value))
        {
          ab_config_problem (l, item, _ ("%s: “%s” is not %s"), item_path,
                             item->value, what);
          ok = FALSE;
        }
      else
        g_strv_builder_add (builder, item->value);
    }
  if (ok)
    {
      g_strfreev (*out);
      *out = g_strv_builder_end (builder);
    }
}

static gboolean
valid_agent_name (const char *name)
{
  gsize len = strlen (name);

  if (len < 1 || len > 64)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

static gboolean
valid_env_name (const char *name)
{
  if (!g_ascii_isalpha (name[0]) && name[0] != '_')
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_')
      return FALSE;
  return strlen (name) <= 255;
}

/* A file name inside $CREDENTIALS_DIRECTORY, never a path out of it. */
static gboolean
valid_credential_name (const char *name)
{
  if (name[0] == '\0' || g_str_equal (name, ".") || g_str_equal (name, ".."))
    return FALSE;
  if (strchr (name, '/') != NULL || strlen (name) > 255)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* Group names are matched against getgrnam(), so only refuse what can
 * never be one (the relaxed rules of systemd's valid_user_group_name). */
static gboolean
valid_group_name (const char *name)
{
  if (name[0] == '\0' || name[0] == '-' || strlen (name) > 256)
    return FALSE;
  if (g_str_equal (name, ".") || g_str_equal (name, ".."))
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if ((guchar)*p <= 0x20 || *p == 0x7f || *p == ':' || *p == '/' || *p == ',')
      return FALSE;
  return TRUE;
}

/* Returns NULL if @template is a valid working_directory, else why not. */
static char *
check_working_directory (const char *template)
{
  for (const char *p = template; *p != '\0'; p++)
    {
      const char *end;
      g_autofree char *name = NULL;

      if (*p == '}')
        return g_strdup (_ ("unmatched “}”"));
      if (*p != '{')
        continue;
      end = strchr (p, '}');
      if (end == NULL)
        return g_strdup (_ ("unterminated “{”"));
      name = g_strndup (p + 1, end - p - 1);
      if (!g_str_equal (name, "thread") && !g_str_equal (name, "state"))
        return g_strdup_printf (_ ("unknown placeholder “{%s}” (valid: "
                                   "{thread}, {state})"),
                                name);
      p = end;
    }
  /* ACP requires an absolute cwd, and a relative one would depend on the
   * daemon's own working directory. */
  if (template[0] != '/' && !g_str_has_prefix (template, "{state}"))
    return g_strdup (_ ("must be an absolute path or start with {state}"));
  return NULL;
}

/* Returns NULL if @text is a valid health.listen entry, else why not. */
static char *
check_listen_address (const char *text)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) address = NULL;
  const char *port;
  guint64 port_number;

  if (text[0] == '/')
    {
      /* sizeof (struct sockaddr_un.sun_path) minus the terminator */
      if (strlen (text) > 107)
        return g_strdup (_ ("socket path is longer than 107 bytes"));
      return NULL;
    }

  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (close == NULL || close[1] != ':')
        return g_strdup (_ ("expected “[IPv6]:PORT”"));
      host = g_strndup (text + 1, close - text - 1);
      port = close + 2;
      address = g_inet_address_new_from_string (host);
      if (address == NULL
          || g_inet_address_get_family (address) != G_SOCKET_FAMILY_IPV6)
        return g_strdup_printf (_ ("“%s” is not an IPv6 address"), host);
    }
  else
    {
      const char *colon = strrchr (text, ':');

      if (colon == NULL)
        return g_strdup (_ ("expected “HOST:PORT”, “[IPv6]:PORT” or an "
                            "absolute socket path"));
      host = g_strndup (text, colon - text);
      port = colon + 1;
      if (strchr (host, ':') != NULL)
        return g_strdup (_ ("IPv6 addresses must be in brackets, e.g. "
                            "“[::1]:8090”"));
      /* An address, not a name: binding must not depend on DNS. */
      address = g_inet_address_new_from_string (host);
      if (address == NULL
          || g_inet_address_get_family (address) != G_SOCKET_FAMILY_IPV4)
        return g_strdup_printf (_ ("“%s” is not an IPv4 address"), host);
    }

  if (port[0] == '\0' || strlen (port) > 5)
    return g_strdup (_ ("the port must be a number from 1 to 65535"));
  for (const char *p = port; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      return g_strdup (_ ("the port must be a number from 1 to 65535"));
  port_number = g_ascii_strtoull (port, NULL, 10);
  if (port_number < 1 || port_number > 65535)
    return g_strdup (_ ("the port must be a number from 1 to 65535"));
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Validation: from the merged tree to an AbConfig                     */
/* ------------------------------------------------------------------ */

static const char *const top_keys[] = {
  "default_agent", "launcher", "agents", "pool",
  "timeouts",      "access",   "health", NULL,
};

static const char *const agent_keys[] = {
  "command",     "env",         "inherit_env",        "working_directory",
  "permissions", "auth_method", "resend_interrupted", "sandbox",
  NULL,
};

static const char *const sandbox_keys[] = {
  "memory",           "cpu", "tasks", "network", "read_only_paths",
  "read_write_paths", NULL,
};

static const char *const pool_keys[] = {
  "max_sessions",      "max_sessions_per_user", "max_queued_prompts",
  "max_message_bytes", "transcript_bytes",      "idle_timeout",
  "max_age",           "forget_after",          NULL,
};

static const char *const timeout_keys[] = {
  "handshake", "turn_inactivity", "drain", "kill", "permission", NULL,
};

static const char *const access_keys[] = { "users", "admins", NULL };

static const char *const health_keys[] = { "listen", NULL };

static void
parse_command (Loader *l, AbAgentProfile *profile, const Node *node,
               const char *path)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  gboolean ok = TRUE;

  if (node->kind == NODE_SCALAR && !node->is_null)
    {
      ab_config_problem (
          l, node,
          _ ("%s: expected a sequence such as [program, argument, …], "
             "got a scalar"),
          path);
      return;
    }
  if (!expect_kind (l, node, NODE_SEQUENCE, path))
    return;
  if (node->children->len == 0)
    {
      ab_config_problem (l, node,
                         _ ("%s: must name at least the program to run"), path);
      return;
    }
  for (guint i = 0; i < node->children->len; i++)
    {
      const Node *item = node->children->pdata[i];
      g_autofree char *item_path = g_strdup_printf ("%s[%u]", path, i);

      if (get_string (l, item, item_path, NULL))
        g_strv_builder_add (builder, item->value);
      else
        ok = FALSE;
    }
  if (ok)
    {
      g_strfreev (profile->command);
      profile->command = g_strv_builder_end (builder);
    }
}

static void
parse_env (Loader *l, AbAgentProfile *profile, const Node *node,
           const char *path)
{
  if (!expect_kind (l, node, NODE_MAPPING, path))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      g_autofree char *entry_path = g_strdup_printf ("%s.%s", path, key->value);
      AbEnvEntry *entry;

      if (!valid_env_name (key->value))
        {
          ab_config_problem (
              l, key,
              _ ("%s: “%s” is not a valid environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*)"),
              path, key->value);
          continue;
        }

      if (value->kind == NODE_MAPPING)
        {
          Node *cred_key = NULL;
          Node *cred
              = ab_config_mapping_lookup (value, "credential", &cred_key);
          g_autofree char *cred_path
              = g_strdup_printf ("%s.credential", entry_path);

          if (cred == NULL || value->children->len != 2)
            {
              ab_config_problem (
                  l, value,
                  _ ("%s: expected a string or a mapping with the single "
                     "key “credential”"),
                  entry_path);
              continue;
            }
          if (!expect_scalar (l, cred, cred_path, _ ("a credential name")))
            continue;
          if (!valid_credential_name (cred->value))
            {
              ab_config_problem (
                  l, cred,
                  _ ("%s: “%s” is not a credential name (a file name "
                     "without “/”, not “.” or “..”)"),
                  cred_path, cred->value);
              continue;
            }
          entry = g_new0 (AbEnvEntry, 1);
          entry->name = g_strdup (key->value);
          entry->credential = g_strdup (cred->value);
          g_ptr_array_add (profile->env, entry);
          continue;
        }

      /* An empty value is a legitimate setting; null is a mistake. */
      if (!expect_scalar (l, value, entry_path,
                          _ ("a string or {credential: NAME}")))
        continue;
      entry = g_new0 (AbEnvEntry, 1);
      entry->name = g_strdup (key->value);
      entry->value = g_strdup (value->value);
      g_ptr_array_add (profile->env, entry);
    }
}

/* An absolute path without "." or ".." components, for a unit's
 * ReadOnlyPaths= or ReadWritePaths=. */
static gboolean
valid_sandbox_path (const char *path)
{
  g_auto (GStrv) parts = NULL;

  if (path[0] != '/' || strlen (path) > 4096)
    return FALSE;
  parts = g_strsplit (path, "/", -1);
  for (gsize i = 0; parts[i] != NULL; i++)
    if (g_str_equal (parts[i], ".") || g_str_equal (parts[i], ".."))
      return FALSE;
  for (const char *p = path; *p != '\0'; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* "N%" of one CPU, 1% to 100 CPUs. */
static void
get_cpu_percent (Loader *l, const Node *node, const char *path, guint *out)
{
  g_autofree char *number = NULL;
  guint64 value = 0;

  if (!expect_scalar (l, node, path, _ ("a percentage of one CPU")))
    return;
  if (!g_str_has_suffix (node->value, "%")
      || !(number = g_strndup (node->value, strlen (node->value) - 1))
      || !g_ascii_string_to_unsigned (number, 10, 1, 10000, &value, NULL))
    {
      ab_config_problem (l, node,
                         _ ("%s: “%s” is not a percentage of one CPU from "
                            "1%% to 10000%% (\"150%%\": one and a half "
                            "CPUs)"),
                         path, node->value);
      return;
    }
  *out = (guint)value;
}

static void
parse_sandbox (Loader *l, AbSandbox *sandbox, const Node *node,
               const char *path)
{
  if (!expect_kind (l, node, NODE_MAPPING, path))
    return;
  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *key_path = g_strdup_printf ("%s.%s", path, k);

      if (g_str_equal (k, "memory"))
        get_size (l, value, key_path, MIN_SANDBOX_MEMORY, MAX_SANDBOX_MEMORY,
                  &sandbox->memory_max);
      else if (g_str_equal (k, "cpu"))
        get_cpu_percent (l, value, key_path, &sandbox->cpu_percent);
      else if (g_str_equal (k, "tasks"))
        get_uint (l, value, key_path, 1, 1000000, &sandbox->tasks_max);
      else if (g_str_equal (k, "network"))
        {
          if (!expect_scalar (l, value, key_path, _ ("all, loopback or none")))
            continue;
          if (g_str_equal (value->value, "all"))
            sandbox->network = AB_NETWORK_ALL;
          else if (g_str_equal (value->value, "loopback"))
            sandbox->network = AB_NETWORK_LOOPBACK;
          else if (g_str_equal (value->value, "none"))
            sandbox->network = AB_NETWORK_NONE;
          else
            ab_config_problem (l, value,
                               _ ("%s: “%s” is not one of all, loopback, none"),
                               key_path, value->value);
        }
      else if (g_str_equal (k, "read_only_paths"))
        get_name_list (l, value, key_path, valid_sandbox_path,
                       _ ("an absolute path without “.” or “..”"),
                       &sandbox->read_only_paths);
      else if (g_str_equal (k, "read_write_paths"))
        get_name_list (l, value, key_path, valid_sandbox_path,
                       _ ("an absolute path without “.” or “..”"),
                       &sandbox->read_write_paths);
      else
        unknown_key (l, key, path, sandbox_keys);
    }
}

/* Always returns a profile, even an invalid one, so that default_agent
 * naming it does not cause a second, misleading error. */
static AbAgentProfile *
parse_agent (Loader *l, const Node *name, const Node *node)
{
  g_autofree char *path = g_strdup_printf ("agents.%s", name->value);
  g_autoptr (AbAgentProfile) profile = ab_agent_profile_new (name->value);
  gboolean have_command = FALSE;

  if (!valid_agent_name (name->value))
    ab_config_problem (
        l, name,
        _ ("agents: “%s” is not a valid agent name (1 to 64 characters "
           "from A-Z, a-z, 0-9, “.”, “_”, “-”)"),
        name->value);

  if (!expect_kind (l, node, NODE_MAPPING, path))
    return g_steal_pointer (&profile);

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *key_path = g_strdup_printf ("%s.%s", path, k);

      if (g_str_equal (k, "command"))
        {
          have_command = TRUE;
          parse_command (l, profile, value, key_path);
        }
      else if (g_str_equal (k, "env"))
        parse_env (l, profile, value, key_path);
      else if (g_str_equal (k, "inherit_env"))
        get_name_list (l, value, key_path, valid_env_name,
                       _ ("a valid environment variable name"),
                       &profile->inherit_env);
      else if (g_str_equal (k, "working_directory"))
        {
          g_autofree char *why = NULL;

          if (!get_string (l, value, key_path, &profile->working_directory))
            continue;
          why = check_working_directory (value->value);
          if (why != NULL)
            ab_config_problem (l, value, "%s: %s", key_path, why);
        }
      else if (g_str_equal (k, "permissions"))
        {
          if (!expect_scalar (l, value, key_path, _ ("allow, deny or ask")))
            continue;
          if (g_str_equal (value->value, "allow"))
            profile->permissions = AB_PERMISSIONS_ALLOW;
          else if (g_str_equal (value->value, "deny"))
            profile->permissions = AB_PERMISSIONS_DENY;
          else if (g_str_equal (value->value, "ask"))
            profile->permissions = AB_PERMISSIONS_ASK;
          else
            ab_config_problem (l, value,
                               _ ("%s: “%s” is not one of allow, deny, ask"),
                               key_path, value->value);
        }
      else if (g_str_equal (k, "auth_method"))
        get_string (l, value, key_path, &profile->auth_method);
      else if (g_str_equal (k, "resend_interrupted"))
        get_bool (l, value, key_path, &profile->resend_interrupted);
      else if (g_str_equal (k, "sandbox"))
        parse_sandbox (l, &profile->sandbox, value, key_path);
      else
        unknown_key (l, key, path, agent_keys);
    }

  if (!have_command)
    ab_config_problem (l, name, _ ("%s: missing “command”"), path);

  return g_steal_pointer (&profile);
}

static void
parse_agents (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "agents"))
    return;
  if (node->children->len == 0)
    {
      ab_config_problem (l, node,
                         _ ("agents: at least one agent must be defined"));
      return;
    }
  for (guint i = 0; i + 1 < node->children->len; i += 2)
    g_ptr_array_add (config->agents,
                     parse_agent (l, node->children->pdata[i],
                                  node->children->pdata[i + 1]));
}

static void
parse_pool (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "pool"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *path = g_strdup_printf ("pool.%s", k);

      if (g_str_equal (k, "max_sessions"))
        get_uint (l, value, path, 1, 100000, &config->max_sessions);
      else if (g_str_equal (k, "max_sessions_per_user"))
        get_uint (l, value, path, 0, 100000, &config->max_sessions_per_user);
      else if (g_str_equal (k, "max_queued_prompts"))
        get_uint (l, value, path, 0, 10000, &config->max_queued_prompts);
      else if (g_str_equal (k, "max_message_bytes"))
        get_size (l, value, path, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES,
                  &config->max_message_bytes);
      else if (g_str_equal (k, "transcript_bytes"))
        get_size (l, value, path, 0, MAX_TRANSCRIPT_BYTES,
                  &config->transcript_bytes);
      else if (g_str_equal (k, "idle_timeout"))
        get_duration (l, value, path, 0, &any_duration,
                      &config->idle_timeout_usec);
      else if (g_str_equal (k, "max_age"))
        get_duration (l, value, path, 0, &any_duration, &config->max_age_usec);
      else if (g_str_equal (k, "forget_after"))
        get_duration (l, value, path, 0, &any_duration,
                      &config->forget_after_usec);
      else
        unknown_key (l, key, "pool", pool_keys);
    }
}

static void
parse_timeouts (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "timeouts"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      const char *k = key->value;
      g_autofree char *path = g_strdup_printf ("timeouts.%s", k);

      if (g_str_equal (k, "handshake"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->handshake_timeout_usec);
      else if (g_str_equal (k, "turn_inactivity"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->turn_inactivity_usec);
      else if (g_str_equal (k, "drain"))
        get_duration (l, value, path, 0, &timer_duration,
                      &config->drain_timeout_usec);
      else if (g_str_equal (k, "kill"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->kill_timeout_usec);
      else if (g_str_equal (k, "permission"))
        get_duration (l, value, path, 1, &timer_duration,
                      &config->permission_timeout_usec);
      else
        unknown_key (l, key, "timeouts", timeout_keys);
    }
}

static void
parse_access (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "access"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];

      if (g_str_equal (key->value, "users"))
        get_name_list (l, value, "access.users", valid_group_name,
                       _ ("a valid group name"), &config->access_users);
      else if (g_str_equal (key->value, "admins"))
        get_name_list (l, value, "access.admins", valid_group_name,
                       _ ("a valid group name"), &config->access_admins);
      else
        unknown_key (l, key, "access", access_keys);
    }
}

static void
parse_health (Loader *l, AbConfig *config, const Node *node)
{
  if (!expect_kind (l, node, NODE_MAPPING, "health"))
    return;

  for (guint i = 0; i + 1 < node->children->len; i += 2)
    {
      const Node *key = node->children->pdata[i];
      const Node *value = node->children->pdata[i + 1];
      g_autoptr (GStrvBuilder) builder = NULL;
      gboolean ok = TRUE;

      if (!g_str_equal (key->value, "listen"))
        {
          unknown_key (l, key, "health", health_keys);
          continue;
        }
      if (!expect_kind (l, value, NODE_SEQUENCE, "health.listen"))
        continue;

      builder = g_strv_builder_new ();
      for (guint j = 0; j < value->children->len; j++)
        {
          const Node *item = value->children->pdata[j];
          g_autofree char *path = g_strdup_printf ("health.listen[%u]", j);
          g_autofree char *why = NULL;

          if (!expect_scalar (l, item, path, _ ("an address")))
            {
              ok = FALSE;
              continue;
            }
          why = check_listen_address (item->value);
          if (why != NULL)
            {
              ab_config_problem (l, item, _ ("%s: “%s”: %s"), path, item->value,
                                 why);
              ok = FALSE;
              continue;
            }
          g_strv_builder_add (builder, item->value);
        }
      if (ok)
        {
          g_strfreev (config->health_listen);
          config->health_listen = g_strv_builder_end (builder);
        }
    }
}

static void
parse_launcher (Loader *l, AbConfig *config, const Node *value)
{
  if (!expect_scalar (l, value, "launcher", _ ("auto, systemd or direct")))
    return;
  if (g_str_equal (value->value, "auto"))
    config->launcher = AB_LAUNCHER_AUTO;
  else if (g_str_equal (value->value, "systemd"))
    config->launcher = AB_LAUNCHER_SYSTEMD;
  else if (g_str_equal (value->value, "direct"))
    config->launcher = AB_LAUNCHER_DIRECT;
  else
    ab_config_problem (l, value,
                       _ ("%s: “%s” is not one of auto, systemd, direct"),
                       "launcher", value->value);
}

AbConfig *
ab_config_from_tree (Loader *l, const Node *root)
{
  g_autoptr (AbConfig) config = ab_config_new_base ();
  const Node *default_node = NULL;
  const Node *agents_key = NULL;

  if (root != NULL && root->kind != NODE_MAPPING)
    ab_config_problem (l, root,
                       _ ("expected a mapping at the top level, got %s"),
                       ab_config_node_kind_name (root));
  else if (root != NULL)
    for (guint i = 0; i + 1 < root->children->len; i += 2)
      {
        const Node *key = root->children->pdata[i];
        const Node *value = root->children->pdata[i + 1];
        const char *k = key->value;

        if (g_str_equal (k, "default_agent"))
          default_node = value;
        else if (g_str_equal (k, "launcher"))
          parse_launcher (l, config, value);
        else if (g_str_equal (k, "agents"))
          {
            agents_key = key;
            parse_agents (l, config, value);
          }
        else if (g_str_equal (k, "pool"))
          parse_pool (l, config, value);
        else if (g_str_equal (k, "timeouts"))
          parse_timeouts (l, config, value);
        else if (g_str_equal (k, "access"))
          parse_access (l, config, value);
        else if (g_str_equal (k, "health"))
          parse_health (l, config, value);
        else
          unknown_key (l, key, NULL, top_keys);
      }

  /* A file that only tunes the pool keeps the demo agent running. */
  if (agents_key == NULL)
    g_ptr_array_add (config->agents, ab_config_demo_profile_new ());
  g_ptr_array_sort (config->agents, ab_agent_profile_compare);

  if (default_node != NULL)
    {
      if (get_string (l, default_node, "default_agent", &config->default_agent)
          && config->agents->len > 0
          && ab_config_lookup_agent (config, config->default_agent) == NULL)
        {
          g_autoptr (GStrvBuilder) names = g_strv_builder_new ();
          g_auto (GStrv) strv = NULL;
          g_autofree char *list = NULL;

          for (guint i = 0; i < config->agents->len; i++)
            g_strv_builder_add (
                names, ((AbAgentProfile *)config->agents->pdata[i])->name);
          strv = g_strv_builder_end (names);
          list = g_strjoinv (", ", strv);
          ab_config_problem (
              l, default_node,
              _ ("default_agent: no agent is called “%s” (defined: %s)"),
              default_node->value, list);
        }
    }
  else if (config->agents->len == 1)
    config->default_agent
        = g_strdup (((AbAgentProfile *)config->agents->pdata[0])->name);
  else if (config->agents->len > 1)
    ab_config_problem (
        l, agents_key,
        _ ("default_agent must be set when more than one agent is "
           "defined"));

  return g_steal_pointer (&config);
}
