/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — unit tests for the config loader, durations and sizes
 *
 * Fixtures live in tests/config/ and are found through G_TEST_SRCDIR
 * (g_test_build_filename (G_TEST_DIST, …)).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "ab-config.h"
#include "duration.h"
#include "error.h"

#define SEC G_GINT64_CONSTANT (1000000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static AbConfig *
load_string (const char *yaml, GError **error)
{
  return ab_config_load_from_data (yaml, strlen (yaml), "test.yaml", error);
}

/* Loads @yaml, which must fail with exactly @expected as the message. */
static void
assert_load_fails (const char *yaml, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = load_string (yaml, &error);

  if (config != NULL)
    g_test_message ("expected failure “%s” for:\n%s", expected, yaml);
  g_assert_null (config);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
}

static AbConfig *
load_ok (const char *yaml)
{
  g_autoptr (GError) error = NULL;
  AbConfig *config = load_string (yaml, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);
  return config;
}

static guint
count_lines (const char *text)
{
  guint n = 1;

  for (const char *p = text; *p != '\0'; p++)
    if (*p == '\n')
      n++;
  return n;
}

static void
rm_rf (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          rm_rf (child);
        }
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static void
write_file (const char *dir, const char *name, const char *contents)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

/* ------------------------------------------------------------------ */
/* Durations and sizes                                                 */
/* ------------------------------------------------------------------ */

static void
test_duration_valid (void)
{
  static const struct
  {
    const char *text;
    gint64 usec;
  } cases[] = {
    { "0", 0 },
    { "30", 30 * SEC },
    { "0s", 0 },
    { "1us", 1 },
    { "500ms", 500000 },
    { "30s", 30 * SEC },
    { "10m", 10 * MINUTE },
    { "2h", 2 * HOUR },
    { "7d", 7 * DAY },
    { "1w", 7 * DAY },
    { "1h30m", HOUR + 30 * MINUTE },
    { "1d2h3m4s5ms6us", DAY + 2 * HOUR + 3 * MINUTE + 4 * SEC + 5006 },
    { "30s30s", 60 * SEC },
    { "007s", 7 * SEC },
    { "9223372036854", G_GINT64_CONSTANT (9223372036854) * SEC },
    { "9223372036854775807us", G_MAXINT64 },
    { "9223372036854775806us1us", G_MAXINT64 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      gint64 usec = -1;

      g_test_message ("duration “%s”", cases[i].text);
      g_assert_true (ab_parse_duration (cases[i].text, &usec, &error));
      g_assert_no_error (error);
      g_assert_cmpint (usec, ==, cases[i].usec);
    }
}

static void
test_duration_invalid (void)
{
  static const struct
  {
    const char *text;
    const char *message;
  } cases[] = {
    { "", "invalid duration “”: empty" },
    { "-5s", "invalid duration “-5s”: negative durations are not allowed" },
    { "-0", "invalid duration “-0”: negative durations are not allowed" },
    { "abc", "invalid duration “abc”: expected a number followed by a unit "
             "(us, ms, s, m, h, d, w), e.g. “30s” or “1h30m”" },
    { "s", "invalid duration “s”: expected a number followed by a unit (us, "
           "ms, s, m, h, d, w), e.g. “30s” or “1h30m”" },
    { "1.5h", "invalid duration “1.5h”: expected a number followed by a "
              "unit (us, ms, s, m, h, d, w), e.g. “30s” or “1h30m”" },
    { " 30s", "invalid duration “ 30s”: expected a number followed by a "
              "unit (us, ms, s, m, h, d, w), e.g. “30s” or “1h30m”" },
    { "30 s", "invalid duration “30 s”: expected a number followed by a "
              "unit (us, ms, s, m, h, d, w), e.g. “30s” or “1h30m”" },
    { "10x", "invalid duration “10x”: unknown unit “x” (valid units: us, ms, "
             "s, m, h, d, w)" },
    { "5min", "invalid duration “5min”: unknown unit “min” (valid units: us, "
              "ms, s, m, h, d, w)" },
    { "10S", "invalid duration “10S”: unknown unit “S” (valid units: us, "
             "ms, s, m, h, d, w)" },
    { "1h30", "invalid duration “1h30”: “30” has no unit (us, ms, s, m, h, "
              "d, w)" },
    { "9223372036855", "invalid duration “9223372036855”: too large" },
    { "9223372036855s", "invalid duration “9223372036855s”: too large" },
    { "99999999999999999999999", "invalid duration "
                                 "“99999999999999999999999”: too large" },
    { "9223372036854775807us1us", "invalid duration "
                                  "“9223372036854775807us1us”: too large" },
    { "15250285w", "invalid duration “15250285w”: too large" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      gint64 usec = 12345;

      g_test_message ("duration “%s”", cases[i].text);
      g_assert_false (ab_parse_duration (cases[i].text, &usec, &error));
      g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
      g_assert_cmpstr (error->message, ==, cases[i].message);
      g_assert_cmpint (usec, ==, 12345);
    }
}

static void
test_duration_invalid_utf8 (void)
{
  g_autoptr (GError) error = NULL;
  gint64 usec;

  g_assert_false (ab_parse_duration ("5\xff", &usec, &error));
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
}

static void
test_duration_format (void)
{
  static const struct
  {
    gint64 usec;
    const char *text;
  } cases[] = {
    { 0, "0" },
    { 1, "1us" },
    { 1500, "1ms500us" },
    { 30 * SEC, "30s" },
    { 10 * MINUTE, "10m" },
    { 7 * DAY, "7d" },
    { 14 * DAY, "14d" },
    { HOUR + 30 * MINUTE, "1h30m" },
    { SEC + 500000, "1s500ms" },
    { -5 * SEC, "-5s" },
    { G_MAXINT64, "106751991d4h54s775ms807us" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = ab_format_duration (cases[i].usec);
      g_autoptr (GError) error = NULL;
      gint64 back = -1;

      g_assert_cmpstr (text, ==, cases[i].text);
      if (cases[i].usec < 0)
        continue;
      /* The inverse really is one. */
      g_assert_true (ab_parse_duration (text, &back, &error));
      g_assert_no_error (error);
      g_assert_cmpint (back, ==, cases[i].usec);
    }

  /* Does not crash or overflow at the negative end. */
  {
    g_autofree char *text = ab_format_duration (G_MININT64);

    g_assert_cmpstr (text, ==, "-106751991d4h54s775ms808us");
  }
}

static void
test_size_valid (void)
{
  static const struct
  {
    const char *text;
    guint64 bytes;
  } cases[] = {
    { "0", 0 },
    { "4096", 4096 },
    { "1B", 1 },
    { "512KiB", 512 * 1024 },
    { "8MiB", 8 * 1024 * 1024 },
    { "1GiB", G_GUINT64_CONSTANT (1) << 30 },
    { "2TiB", G_GUINT64_CONSTANT (2) << 40 },
    { "10kB", 10000 },
    { "10MB", 10000000 },
    { "3GB", G_GUINT64_CONSTANT (3000000000) },
    { "1TB", G_GUINT64_CONSTANT (1000000000000) },
    { "18446744073709551615", G_MAXUINT64 },
    { "16777215TiB", G_GUINT64_CONSTANT (16777215) << 40 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 bytes = 1;

      g_test_message ("size “%s”", cases[i].text);
      g_assert_true (ab_parse_size (cases[i].text, &bytes, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (bytes, ==, cases[i].bytes);
    }
}

static void
test_size_invalid (void)
{
  static const struct
  {
    const char *text;
    const char *message;
  } cases[] = {
    { "", "invalid size “”: empty" },
    { "-1", "invalid size “-1”: negative sizes are not allowed" },
    { "MiB", "invalid size “MiB”: expected a number of bytes, optionally "
             "followed by a unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB), "
             "e.g. “8MiB”" },
    { "8 MiB", "invalid size “8 MiB”: unknown unit “ MiB” (valid units: B, "
               "KiB, MiB, GiB, TiB, kB, MB, GB, TB)" },
    { "10KB", "invalid size “10KB”: unknown unit “KB” (valid units: B, KiB, "
              "MiB, GiB, TiB, kB, MB, GB, TB)" },
    { "1.5MiB", "invalid size “1.5MiB”: unknown unit “.5MiB” (valid units: "
                "B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)" },
    { "8mib", "invalid size “8mib”: unknown unit “mib” (valid units: B, KiB, "
              "MiB, GiB, TiB, kB, MB, GB, TB)" },
    { "18446744073709551616", "invalid size “18446744073709551616”: too "
                              "large" },
    { "16777216TiB", "invalid size “16777216TiB”: too large" },
    { "18446744073709552kB", "invalid size “18446744073709552kB”: too "
                             "large" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 bytes = 77;

      g_test_message ("size “%s”", cases[i].text);
      g_assert_false (ab_parse_size (cases[i].text, &bytes, &error));
      g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
      g_assert_cmpstr (error->message, ==, cases[i].message);
      g_assert_cmpuint (bytes, ==, 77);
    }
}

/* ------------------------------------------------------------------ */
/* Defaults and valid files                                            */
/* ------------------------------------------------------------------ */

static void
assert_default_settings (const AbConfig *config)
{
  g_assert_cmpint (config->launcher, ==, AB_LAUNCHER_AUTO);
  g_assert_cmpuint (config->max_sessions, ==, 64);
  g_assert_cmpuint (config->max_sessions_per_user, ==, 256);
  g_assert_cmpuint (config->max_queued_prompts, ==, 8);
  g_assert_cmpuint (config->max_message_bytes, ==, 8 * 1024 * 1024);
  g_assert_cmpuint (config->transcript_bytes, ==, 4 * 1024 * 1024);
  g_assert_cmpint (config->idle_timeout_usec, ==, 30 * MINUTE);
  g_assert_cmpint (config->max_age_usec, ==, 0);
  g_assert_cmpint (config->forget_after_usec, ==, 7 * DAY);
  g_assert_cmpint (config->handshake_timeout_usec, ==, 120 * SEC);
  g_assert_cmpint (config->turn_inactivity_usec, ==, 10 * MINUTE);
  g_assert_cmpint (config->drain_timeout_usec, ==, 30 * SEC);
  g_assert_cmpint (config->kill_timeout_usec, ==, 5 * SEC);
  g_assert_cmpint (config->permission_timeout_usec, ==, 5 * MINUTE);
  g_assert_cmpstrv (config->access_users,
                    ((const char *const[]){ "agentbroker", NULL }));
  g_assert_cmpstrv (config->access_admins,
                    ((const char *const[]){ "agentbroker-admin", NULL }));
  g_assert_nonnull (config->health_listen);
  g_assert_null (config->health_listen[0]);
}

static void
assert_demo_only (const AbConfig *config)
{
  const AbAgentProfile *demo;

  g_assert_cmpstr (config->default_agent, ==, "demo");
  g_assert_cmpuint (config->agents->len, ==, 1);
  demo = ab_config_lookup_agent (config, "demo");
  g_assert_nonnull (demo);
  g_assert_cmpstrv (demo->command,
                    ((const char *const[]){ "agentbroker-demo-agent", NULL }));
  g_assert_cmpuint (demo->env->len, ==, 0);
  g_assert_null (demo->inherit_env[0]);
  g_assert_cmpstr (demo->working_directory, ==, "{state}/work/{thread}");
  g_assert_cmpint (demo->permissions, ==, AB_PERMISSIONS_DENY);
  g_assert_null (demo->auth_method);
  g_assert_false (demo->resend_interrupted);
}

static void
test_default (void)
{
  g_autoptr (AbConfig) config = ab_config_new_default ();

  assert_default_settings (config);
  assert_demo_only (config);
  g_assert_nonnull (config->sources);
  g_assert_null (config->sources[0]);
  g_assert_null (ab_config_lookup_agent (config, "claude"));
}

static void
test_ref_unref (void)
{
  AbConfig *config = ab_config_new_default ();
  AbConfig *again = ab_config_ref (config);

  g_assert_true (again == config);
  g_assert_cmpint (config->ref_count, ==, 2);
  ab_config_unref (again);
  g_assert_cmpint (config->ref_count, ==, 1);
  ab_config_unref (config);
}

/* Nothing on disk: the built-in default, reading no file. */
static void
test_load_nothing (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-config-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autoptr (AbConfig) config = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "agentbroker.yaml", NULL);
  config = ab_config_load (path, &error);
  g_assert_no_error (error);
  assert_default_settings (config);
  assert_demo_only (config);
  g_assert_null (config->sources[0]);

  /* Not even the directory: the same. */
  g_clear_pointer (&config, ab_config_unref);
  g_clear_pointer (&path, g_free);
  path = g_build_filename (dir, "missing", "agentbroker.yaml", NULL);
  config = ab_config_load (path, &error);
  g_assert_no_error (error);
  assert_demo_only (config);

  rm_rf (dir);
}

static void
test_load_empty (void)
{
  g_autofree char *path
      = g_test_build_filename (G_TEST_DIST, "config", "empty.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);

  g_assert_no_error (error);
  assert_default_settings (config);
  assert_demo_only (config);
  /* The file was read, even though it set nothing. */
  g_assert_cmpstrv (config->sources, ((const char *const[]){ path, NULL }));

  g_clear_pointer (&config, ab_config_unref);
  config = load_ok ("");
  assert_demo_only (config);
  g_assert_cmpstrv (config->sources,
                    ((const char *const[]){ "test.yaml", NULL }));
}

static void
test_example (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data",
                                                 "agentbroker.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);
  const AbAgentProfile *claude, *codex, *demo;
  const AbEnvEntry *env;

  g_assert_no_error (error);
  g_assert_nonnull (config);
  assert_default_settings (config);
  g_assert_cmpstr (config->default_agent, ==, "demo");
  g_assert_cmpstrv (config->sources, ((const char *const[]){ path, NULL }));

  /* Sorted by name. */
  g_assert_cmpuint (config->agents->len, ==, 3);
  claude = config->agents->pdata[0];
  codex = config->agents->pdata[1];
  demo = config->agents->pdata[2];
  g_assert_cmpstr (claude->name, ==, "claude");
  g_assert_cmpstr (codex->name, ==, "codex");
  g_assert_cmpstr (demo->name, ==, "demo");
  g_assert_true (ab_config_lookup_agent (config, "codex") == codex);

  g_assert_cmpstrv (claude->command,
                    ((const char *const[]){ "claude-code-acp", NULL }));
  g_assert_cmpuint (claude->env->len, ==, 1);
  env = claude->env->pdata[0];
  g_assert_cmpstr (env->name, ==, "ANTHROPIC_API_KEY");
  g_assert_null (env->value);
  g_assert_cmpstr (env->credential, ==, "anthropic-key");
  g_assert_cmpstrv (claude->inherit_env,
                    ((const char *const[]){ "HTTPS_PROXY", NULL }));
  g_assert_cmpstr (claude->working_directory, ==, "{state}/work/{thread}");
  g_assert_cmpint (claude->permissions, ==, AB_PERMISSIONS_ALLOW);
  g_assert_null (claude->auth_method);

  g_assert_cmpstr (codex->auth_method, ==, "openai-api-key");
  g_assert_false (codex->resend_interrupted);
  g_assert_cmpint (codex->permissions, ==, AB_PERMISSIONS_DENY);
  env = codex->env->pdata[0];
  g_assert_cmpstr (env->credential, ==, "openai-key");

  g_assert_cmpstrv (demo->command,
                    ((const char *const[]){ "agentbroker-demo-agent", NULL }));
}

static void
test_values (void)
{
  g_autoptr (AbConfig) config = load_ok (
      "launcher: systemd\n"
      "agents:\n"
      "  solo:\n"
      "    command: [/usr/bin/solo, --acp, \"two words\"]\n"
      "    env:\n"
      "      PLAIN: value\n"
      "      EMPTY: \"\"\n"
      "      NUMBER: 42\n"
      "      SECRET: {credential: key.txt}\n"
      "    working_directory: /srv/agents/{thread}\n"
      "    permissions: ask\n"
      "    resend_interrupted: yes\n"
      "    sandbox:\n"
      "      memory: 2GiB\n"
      "      cpu: 150%\n"
      "      tasks: 512\n"
      "      network: loopback\n"
      "      read_only_paths: [/srv/data]\n"
      "      read_write_paths: [/srv/scratch, /var/cache/x]\n"
      "pool:\n"
      "  max_sessions: 100000\n"
      "  max_sessions_per_user: 4\n"
      "  max_queued_prompts: 0\n"
      "  max_message_bytes: 64KiB\n"
      "  transcript_bytes: 0\n"
      "  idle_timeout: 0\n"
      "  max_age: 30d\n"
      "  forget_after: 0\n"
      "timeouts: {handshake: 1s, turn_inactivity: 1h30m, drain: 0, kill: "
      "500ms, permission: 49d17h2m47s295ms}\n"
      "access: {users: [], admins: [wheel, \"domain-admins\"]}\n"
      "health:\n"
      "  listen: [\"127.0.0.1:8090\", \"[::1]:8090\", /run/ab/health.sock]\n");
  const AbAgentProfile *solo;
  const AbEnvEntry *e;

  /* The only agent is the default without being named. */
  g_assert_cmpstr (config->default_agent, ==, "solo");
  solo = ab_config_lookup_agent (config, "solo");
  g_assert_nonnull (solo);
  g_assert_null (ab_config_lookup_agent (config, "demo"));
  g_assert_cmpstrv (
      solo->command,
      ((const char *const[]){ "/usr/bin/solo", "--acp", "two words", NULL }));
  g_assert_cmpuint (solo->env->len, ==, 4);
  e = solo->env->pdata[0];
  g_assert_cmpstr (e->name, ==, "PLAIN");
  g_assert_cmpstr (e->value, ==, "value");
  g_assert_null (e->credential);
  e = solo->env->pdata[1];
  g_assert_cmpstr (e->name, ==, "EMPTY");
  g_assert_cmpstr (e->value, ==, "");
  e = solo->env->pdata[2];
  g_assert_cmpstr (e->value, ==, "42");
  e = solo->env->pdata[3];
  g_assert_cmpstr (e->name, ==, "SECRET");
  g_assert_null (e->value);
  g_assert_cmpstr (e->credential, ==, "key.txt");
  g_assert_cmpstr (solo->working_directory, ==, "/srv/agents/{thread}");
  g_assert_cmpint (solo->permissions, ==, AB_PERMISSIONS_ASK);
  g_assert_true (solo->resend_interrupted);
  g_assert_cmpuint (solo->sandbox.memory_max, ==,
                    G_GUINT64_CONSTANT (2) * 1024 * 1024 * 1024);
  g_assert_cmpuint (solo->sandbox.cpu_percent, ==, 150);
  g_assert_cmpuint (solo->sandbox.tasks_max, ==, 512);
  g_assert_cmpint (solo->sandbox.network, ==, AB_NETWORK_LOOPBACK);
  g_assert_cmpstr (solo->sandbox.read_only_paths[0], ==, "/srv/data");
  g_assert_null (solo->sandbox.read_only_paths[1]);
  g_assert_cmpstr (solo->sandbox.read_write_paths[1], ==, "/var/cache/x");

  g_assert_cmpuint (config->max_sessions, ==, 100000);
  g_assert_cmpuint (config->max_sessions_per_user, ==, 4);
  g_assert_cmpuint (config->max_queued_prompts, ==, 0);
  g_assert_cmpuint (config->max_message_bytes, ==, 64 * 1024);
  g_assert_cmpuint (config->transcript_bytes, ==, 0);
  g_assert_cmpint (config->idle_timeout_usec, ==, 0);
  g_assert_cmpint (config->max_age_usec, ==, 30 * DAY);
  g_assert_cmpint (config->forget_after_usec, ==, 0);
  g_assert_cmpint (config->handshake_timeout_usec, ==, SEC);
  g_assert_cmpint (config->turn_inactivity_usec, ==, HOUR + 30 * MINUTE);
  g_assert_cmpint (config->launcher, ==, AB_LAUNCHER_SYSTEMD);
  g_assert_cmpint (config->drain_timeout_usec, ==, 0);
  g_assert_cmpint (config->kill_timeout_usec, ==, 500000);
  g_assert_cmpint (config->permission_timeout_usec, ==,
                   ((gint64)G_MAXUINT * 1000));
  g_assert_null (config->access_users[0]);
  g_assert_cmpstrv (config->access_admins,
                    ((const char *const[]){ "wheel", "domain-admins", NULL }));
  g_assert_cmpstrv (config->health_listen,
                    ((const char *const[]){ "127.0.0.1:8090", "[::1]:8090",
                                            "/run/ab/health.sock", NULL }));
}

/* A file that only tunes the pool keeps the demo agent. */
static void
test_no_agents_key (void)
{
  g_autoptr (AbConfig) config = load_ok ("pool: {max_sessions: 3}\n");

  assert_demo_only (config);
  g_assert_cmpuint (config->max_sessions, ==, 3);

  g_clear_pointer (&config, ab_config_unref);
  config = load_ok ("default_agent: demo\n");
  assert_demo_only (config);
}

static void
test_booleans (void)
{
  static const struct
  {
    const char *text;
    gboolean value;
  } cases[] = {
    { "true", TRUE },
    { "yes", TRUE },
    { "false", FALSE },
    { "no", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *yaml = g_strdup_printf (
          "agents: {a: {command: [a], resend_interrupted: %s}}\n",
          cases[i].text);
      g_autoptr (AbConfig) config = load_ok (yaml);
      const AbAgentProfile *a = ab_config_lookup_agent (config, "a");

      g_assert_cmpint (a->resend_interrupted, ==, cases[i].value);
    }
}

/* ------------------------------------------------------------------ */
/* Errors, each with its exact position                                */
/* ------------------------------------------------------------------ */

static void
test_errors (void)
{
  static const struct
  {
    const char *yaml;
    const char *message;
  } cases[] = {
    /* unknown keys, at every level */
    { "agent: {}\n",
      "test.yaml:1:1: unknown key “agent” (valid keys: default_agent, "
      "launcher, agents, pool, timeouts, access, health)" },
    { "agents: {a: {command: [a], sandbox: {cpu: 1.5}}}\n",
      "test.yaml:1:43: agents.a.sandbox.cpu: “1.5” is not a percentage of "
      "one CPU from 1% to 10000% (\"150%\": one and a half CPUs)" },
    { "agents: {a: {command: [a], sandbox: {network: lan}}}\n",
      "test.yaml:1:47: agents.a.sandbox.network: “lan” is not one of all, "
      "loopback, none" },
    { "agents: {a: {command: [a], sandbox: {read_write_paths: "
      "[/srv/../etc]}}}\n",
      "test.yaml:1:57: agents.a.sandbox.read_write_paths[0]: “/srv/../etc” "
      "is not an absolute path without “.” or “..”" },
    { "agents: {a: {command: [a], sandbox: {memory: 1KiB, disk: 1}}}\n",
      "test.yaml:1:46: agents.a.sandbox.memory: 1KiB is out of range "
      "(1MiB..1TiB)\n"
      "test.yaml:1:52: unknown key “disk” in agents.a.sandbox (valid keys: "
      "memory, cpu, tasks, network, read_only_paths, read_write_paths)" },
    { "launcher: container\n",
      "test.yaml:1:11: launcher: “container” is not one of auto, systemd, "
      "direct" },
    { "launcher: [systemd]\n",
      "test.yaml:1:11: launcher: expected auto, systemd or direct, got a "
      "sequence" },
    { "pool:\n  max_session: 3\n",
      "test.yaml:2:3: unknown key “max_session” in pool (valid keys: "
      "max_sessions, max_sessions_per_user, max_queued_prompts, "
      "max_message_bytes, transcript_bytes, idle_timeout, max_age, "
      "forget_after)" },
    { "timeouts: {handshake: 1s, idle: 5s}\n",
      "test.yaml:1:27: unknown key “idle” in timeouts (valid keys: "
      "handshake, turn_inactivity, drain, kill, permission)" },
    { "access: {groups: [a]}\n",
      "test.yaml:1:10: unknown key “groups” in access (valid keys: users, "
      "admins)" },
    { "health: {port: 80}\n",
      "test.yaml:1:10: unknown key “port” in health (valid keys: listen)" },
    { "agents:\n  a:\n    command: [a]\n    cmd: [b]\n",
      "test.yaml:4:5: unknown key “cmd” in agents.a (valid keys: command, "
      "env, inherit_env, working_directory, permissions, auth_method, "
      "resend_interrupted, sandbox)" },

    /* wrong types */
    { "- a\n- b\n",
      "test.yaml:1:1: expected a mapping at the top level, got a sequence" },
    { "just text\n",
      "test.yaml:1:1: expected a mapping at the top level, got a scalar" },
    { "pool: [1, 2]\n",
      "test.yaml:1:7: pool: expected a mapping, got a sequence" },
    { "timeouts: 5s\n",
      "test.yaml:1:11: timeouts: expected a mapping, got a scalar" },
    { "agents:\n", "test.yaml:1:8: agents: expected a mapping, got null" },
    { "agents: {a: [x]}\n",
      "test.yaml:1:13: agents.a: expected a mapping, got a sequence" },
    { "pool:\n  max_sessions: {a: 1}\n",
      "test.yaml:2:17: pool.max_sessions: expected an integer, got a "
      "mapping" },
    { "pool:\n  idle_timeout: ~\n",
      "test.yaml:2:17: pool.idle_timeout: expected a duration, got null" },
    { "access:\n  users: agentbroker\n",
      "test.yaml:2:10: access.users: expected a sequence, got a scalar" },
    { "access:\n  users: [[a]]\n",
      "test.yaml:2:11: access.users[0]: expected a string, got a sequence" },
    { "agents: {a: {command: [a], auth_method: [x]}}\n",
      "test.yaml:1:41: agents.a.auth_method: expected a string, got a "
      "sequence" },
    { "agents: {a: {command: [a], auth_method: \"\"}}\n",
      "test.yaml:1:41: agents.a.auth_method: must not be empty" },
    { "default_agent: [a]\n",
      "test.yaml:1:16: default_agent: expected a string, got a sequence" },
    { "health: {listen: [{a: 1}]}\n",
      "test.yaml:1:19: health.listen[0]: expected an address, got a "
      "mapping" },

    /* integers */
    { "pool: {max_sessions: 0}\n",
      "test.yaml:1:22: pool.max_sessions: 0 is out of range (1..100000)" },
    { "pool: {max_sessions: 100001}\n",
      "test.yaml:1:22: pool.max_sessions: 100001 is out of range "
      "(1..100000)" },
    { "pool: {max_sessions: 99999999999999999999999}\n",
      "test.yaml:1:22: pool.max_sessions: 99999999999999999999999 is out of "
      "range (1..100000)" },
    { "pool: {max_sessions: -1}\n",
      "test.yaml:1:22: pool.max_sessions: “-1” is not an integer" },
    { "pool: {max_sessions: 1.5}\n",
      "test.yaml:1:22: pool.max_sessions: “1.5” is not an integer" },
    { "pool: {max_sessions: 0x10}\n",
      "test.yaml:1:22: pool.max_sessions: “0x10” is not an integer" },
    { "pool: {max_sessions: \"\"}\n",
      "test.yaml:1:22: pool.max_sessions: “” is not an integer" },
    { "pool: {max_queued_prompts: 10001}\n",
      "test.yaml:1:28: pool.max_queued_prompts: 10001 is out of range "
      "(0..10000)" },

    /* durations and sizes */
    { "pool:\n  idle_timeout: 10x\n",
      "test.yaml:2:17: pool.idle_timeout: invalid duration “10x”: unknown "
      "unit “x” (valid units: us, ms, s, m, h, d, w)" },
    { "timeouts:\n  kill: -5s\n",
      "test.yaml:2:9: timeouts.kill: invalid duration “-5s”: negative "
      "durations are not allowed" },
    { "timeouts:\n  handshake: 0\n",
      "test.yaml:2:14: timeouts.handshake: must be greater than 0" },
    { "pool:\n  max_age: 3651d\n",
      "test.yaml:2:12: pool.max_age: “3651d” is too long (the limit is "
      "3650d)" },
    /* a timer holds at most 2^32 - 1 ms; one more would wrap around */
    { "timeouts:\n  handshake: 49d17h2m47s296ms\n",
      "test.yaml:2:14: timeouts.handshake: “49d17h2m47s296ms” is too long "
      "(the limit is 49d17h2m47s295ms)" },
    { "timeouts:\n  turn_inactivity: 50d\n",
      "test.yaml:2:20: timeouts.turn_inactivity: “50d” is too long (the limit "
      "is 49d17h2m47s295ms)" },
    { "timeouts: {drain: 3650d}\n",
      "test.yaml:1:19: timeouts.drain: “3650d” is too long (the limit is "
      "49d17h2m47s295ms)" },
    { "timeouts:\n  kill: 60d\n",
      "test.yaml:2:9: timeouts.kill: “60d” is too long (the limit is "
      "49d17h2m47s295ms)" },
    { "timeouts:\n  permission: 1200h\n",
      "test.yaml:2:15: timeouts.permission: “1200h” is too long (the limit is "
      "49d17h2m47s295ms)" },
    { "pool:\n  max_message_bytes: 8XB\n",
      "test.yaml:2:22: pool.max_message_bytes: invalid size “8XB”: unknown "
      "unit “XB” (valid units: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)" },
    { "pool:\n  max_message_bytes: 65535\n",
      "test.yaml:2:22: pool.max_message_bytes: 65535 is out of range "
      "(64KiB..1GiB)" },
    { "pool:\n  max_message_bytes: 2GiB\n",
      "test.yaml:2:22: pool.max_message_bytes: 2GiB is out of range "
      "(64KiB..1GiB)" },
    { "pool:\n  transcript_bytes: 17MiB\n",
      "test.yaml:2:21: pool.transcript_bytes: 17MiB is out of range "
      "(0..16MiB)" },
    { "pool:\n  transcript_bytes: -1\n",
      "test.yaml:2:21: pool.transcript_bytes: invalid size “-1”: negative "
      "sizes are not allowed" },

    /* booleans and enumerations */
    { "agents: {a: {command: [a], resend_interrupted: True}}\n",
      "test.yaml:1:48: agents.a.resend_interrupted: “True” is not a boolean "
      "(use true, false, yes or no)" },
    { "agents: {a: {command: [a], resend_interrupted: 1}}\n",
      "test.yaml:1:48: agents.a.resend_interrupted: “1” is not a boolean "
      "(use true, false, yes or no)" },
    { "agents: {a: {command: [a], permissions: always}}\n",
      "test.yaml:1:41: agents.a.permissions: “always” is not one of allow, "
      "deny, ask" },

    /* commands */
    { "agents:\n  a:\n    permissions: ask\n",
      "test.yaml:2:3: agents.a: missing “command”" },
    { "agents:\n  a:\n    command: []\n",
      "test.yaml:3:14: agents.a.command: must name at least the program to "
      "run" },
    { "agents:\n  a:\n    command:\n",
      "test.yaml:3:13: agents.a.command: expected a sequence, got null" },
    { "agents:\n  a:\n    command: claude-code-acp\n",
      "test.yaml:3:14: agents.a.command: expected a sequence such as "
      "[program, argument, …], got a scalar" },
    { "agents:\n  a:\n    command: [\"\"]\n",
      "test.yaml:3:15: agents.a.command[0]: must not be empty" },
    { "agents:\n  a:\n    command: [a, \"\"]\n",
      "test.yaml:3:18: agents.a.command[1]: must not be empty" },

    /* names */
    { "agents:\n  a/b:\n    command: [x]\n",
      "test.yaml:2:3: agents: “a/b” is not a valid agent name (1 to 64 "
      "characters from A-Z, a-z, 0-9, “.”, “_”, “-”)" },
    { "agents:\n  "
      "a12345678901234567890123456789012345678901234567890123456789012345:\n"
      "    command: [x]\n",
      "test.yaml:2:3: agents: "
      "“a12345678901234567890123456789012345678901234567890123456789012345” "
      "is not a valid agent name (1 to 64 characters from A-Z, a-z, 0-9, "
      "“.”, “_”, “-”)" },
    { "agents:\n  \"\":\n    command: [x]\n",
      "test.yaml:2:3: agents: “” is not a valid agent name (1 to 64 "
      "characters from A-Z, a-z, 0-9, “.”, “_”, “-”)" },
    { "agents: {}\n",
      "test.yaml:1:9: agents: at least one agent must be defined" },

    /* env and credentials */
    { "agents:\n  a:\n    command: [a]\n    env: {1BAD: x}\n",
      "test.yaml:4:11: agents.a.env: “1BAD” is not a valid environment "
      "variable name ([A-Za-z_][A-Za-z0-9_]*)" },
    { "agents:\n  a:\n    command: [a]\n    env: {A-B: x}\n",
      "test.yaml:4:11: agents.a.env: “A-B” is not a valid environment "
      "variable name ([A-Za-z_][A-Za-z0-9_]*)" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: ~}\n",
      "test.yaml:4:16: agents.a.env.KEY: expected a string or {credential: "
      "NAME}, got null" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: [x]}\n",
      "test.yaml:4:16: agents.a.env.KEY: expected a string or {credential: "
      "NAME}, got a sequence" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: {secret: x}}\n",
      "test.yaml:4:16: agents.a.env.KEY: expected a string or a mapping with "
      "the single key “credential”" },
    { "agents:\n  a:\n    command: [a]\n"
      "    env: {KEY: {credential: x, mode: y}}\n",
      "test.yaml:4:16: agents.a.env.KEY: expected a string or a mapping with "
      "the single key “credential”" },
    { "agents:\n  a:\n    command: [a]\n"
      "    env: {KEY: {credential: ../etc/shadow}}\n",
      "test.yaml:4:29: agents.a.env.KEY.credential: “../etc/shadow” is not a "
      "credential name (a file name without “/”, not “.” or “..”)" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: {credential: ..}}\n",
      "test.yaml:4:29: agents.a.env.KEY.credential: “..” is not a credential "
      "name (a file name without “/”, not “.” or “..”)" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: {credential: \"\"}}\n",
      "test.yaml:4:29: agents.a.env.KEY.credential: “” is not a credential "
      "name (a file name without “/”, not “.” or “..”)" },
    { "agents:\n  a:\n    command: [a]\n    env: {KEY: {credential: ~}}\n",
      "test.yaml:4:29: agents.a.env.KEY.credential: expected a credential "
      "name, got null" },
    { "agents:\n  a:\n    command: [a]\n    inherit_env: [PATH, \"X Y\"]\n",
      "test.yaml:4:25: agents.a.inherit_env[1]: “X Y” is not a valid "
      "environment variable name" },
    { "agents:\n  a:\n    command: [a]\n    inherit_env: PATH\n",
      "test.yaml:4:18: agents.a.inherit_env: expected a sequence, got a "
      "scalar" },

    /* working directory templates */
    { "agents:\n  a:\n    command: [a]\n"
      "    working_directory: \"{state}/{user}\"\n",
      "test.yaml:4:24: agents.a.working_directory: unknown placeholder "
      "“{user}” (valid: {thread}, {state})" },
    { "agents:\n  a:\n    command: [a]\n"
      "    working_directory: \"/srv/{thread\"\n",
      "test.yaml:4:24: agents.a.working_directory: unterminated “{”" },
    { "agents:\n  a:\n    command: [a]\n"
      "    working_directory: \"/srv/thread}\"\n",
      "test.yaml:4:24: agents.a.working_directory: unmatched “}”" },
    { "agents:\n  a:\n    command: [a]\n"
      "    working_directory: work/{thread}\n",
      "test.yaml:4:24: agents.a.working_directory: must be an absolute path "
      "or start with {state}" },

    /* default_agent */
    { "default_agent: nope\nagents:\n  a: {command: [a]}\n"
      "  b: {command: [b]}\n",
      "test.yaml:1:16: default_agent: no agent is called “nope” (defined: a, "
      "b)" },
    { "default_agent: claude\n",
      "test.yaml:1:16: default_agent: no agent is called “claude” (defined: "
      "demo)" },
    { "agents:\n  a: {command: [a]}\n  b: {command: [b]}\n",
      "test.yaml:1:1: default_agent must be set when more than one agent is "
      "defined" },

    /* access and health */
    { "access:\n  users: [\"bad:group\"]\n",
      "test.yaml:2:11: access.users[0]: “bad:group” is not a valid group "
      "name" },
    { "access:\n  admins: [\"-x\"]\n",
      "test.yaml:2:12: access.admins[0]: “-x” is not a valid group name" },
    { "health:\n  listen: [\"::1:8090\"]\n",
      "test.yaml:2:12: health.listen[0]: “::1:8090”: IPv6 addresses must be "
      "in brackets, e.g. “[::1]:8090”" },
    { "health:\n  listen: [\"localhost:8090\"]\n",
      "test.yaml:2:12: health.listen[0]: “localhost:8090”: “localhost” is "
      "not an IPv4 address" },
    { "health:\n  listen: [\"[1.2.3.4]:8090\"]\n",
      "test.yaml:2:12: health.listen[0]: “[1.2.3.4]:8090”: “1.2.3.4” is not "
      "an IPv6 address" },
    { "health:\n  listen: [\"[::1]8090\"]\n",
      "test.yaml:2:12: health.listen[0]: “[::1]8090”: expected "
      "“[IPv6]:PORT”" },
    { "health:\n  listen: [\"127.0.0.1:0\"]\n",
      "test.yaml:2:12: health.listen[0]: “127.0.0.1:0”: the port must be a "
      "number from 1 to 65535" },
    { "health:\n  listen: [\"127.0.0.1:65536\"]\n",
      "test.yaml:2:12: health.listen[0]: “127.0.0.1:65536”: the port must be "
      "a number from 1 to 65535" },
    { "health:\n  listen: [\"127.0.0.1:http\"]\n",
      "test.yaml:2:12: health.listen[0]: “127.0.0.1:http”: the port must be "
      "a number from 1 to 65535" },
    { "health:\n  listen: [8090]\n",
      "test.yaml:2:12: health.listen[0]: “8090”: expected “HOST:PORT”, "
      "“[IPv6]:PORT” or an absolute socket path" },

    /* YAML structure */
    { "pool:\n  max_sessions: 1\n  max_sessions: 2\n",
      "test.yaml:3:3: duplicate key “max_sessions” (first defined at line 2, "
      "column 3)" },
    { "agents:\n  a: {command: [a]}\n  a: {command: [b]}\n",
      "test.yaml:3:3: duplicate key “a” (first defined at line 2, column "
      "3)" },
    { "? [a, b]\n: c\n",
      "test.yaml:1:3: mapping keys must be scalars, not a sequence" },
    { "pool: &p {max_sessions: 1}\n",
      "test.yaml:1:7: anchors (“&p”) are not supported" },
    { "a: &x 1\nb: *x\n",
      "test.yaml:1:1: unknown key “a” (valid keys: default_agent, "
      "launcher, agents, pool, timeouts, access, health)\n"
      "test.yaml:1:4: anchors (“&x”) are not supported\n"
      "test.yaml:2:1: unknown key “b” (valid keys: default_agent, "
      "launcher, agents, pool, timeouts, access, health)\n"
      "test.yaml:2:4: aliases (“*x”) are not supported" },
    { "pool: !!map {max_sessions: 1}\n",
      "test.yaml:1:7: tags (“tag:yaml.org,2002:map”) are not supported" },
    { "pool: {max_sessions: 1}\n---\npool: {max_sessions: 2}\n",
      "test.yaml:2:1: multiple documents in one file are not supported" },
    { "agents:\n  a:\n    command: [a\n",
      "test.yaml:4:1: syntax error: while parsing a flow sequence: did not "
      "find expected ',' or ']'" },
    { "pool:\n  max_sessions: 1\n bad: 2\n",
      "test.yaml:3:2: syntax error: while parsing a block mapping: did not "
      "find expected key" },
    { "pool: \"unterminated\n",
      "test.yaml:2:1: syntax error: while scanning a quoted scalar: found "
      "unexpected end of stream" },
    { "pool:\n\tmax_sessions: 1\n",
      "test.yaml:2:1: syntax error: while scanning for the next token: found "
      "character that cannot start any token" },
    { "agents: {a: {command: [\"a\\0b\"]}}\n",
      "test.yaml:1:24: strings must not contain NUL characters" },
    { "pool: \xff\n", "test.yaml:1:7: invalid input: invalid leading UTF-8 "
                      "octet" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *shown = g_strescape (cases[i].yaml, NULL);

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, shown);
      assert_load_fails (cases[i].yaml, cases[i].message);
    }
}

/* Every problem is reported, in position order, one line each. */
static void
test_all_problems (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "config",
                                                 "three-problems.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);
  g_autofree char *expected = NULL;

  g_assert_null (config);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpuint (count_lines (error->message), ==, 3);
  expected = g_strdup_printf (
      "%s:5:18: agents.demo.permissions: “sometimes” is not one of allow, "
      "deny, ask\n"
      "%s:7:17: pool.idle_timeout: invalid duration “5 minutes”: expected a "
      "number followed by a unit (us, ms, s, m, h, d, w), e.g. “30s” or "
      "“1h30m”\n"
      "%s:10:3: unknown key “kil” in timeouts (valid keys: handshake, "
      "turn_inactivity, drain, kill, permission)",
      path, path, path);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_syntax_error_file (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "config",
                                                 "syntax-error.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);
  g_autofree char *expected = NULL;

  g_assert_null (config);
  /* libyaml notices the missing "]" at the ":" after "pool". */
  expected = g_strdup_printf ("%s:4:5: syntax error: while parsing a flow "
                              "sequence: did not find expected ',' or ']'",
                              path);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
}

/* ------------------------------------------------------------------ */
/* Drop-ins                                                            */
/* ------------------------------------------------------------------ */

static void
test_dropins (void)
{
  g_autofree char *path = g_test_build_filename (
      G_TEST_DIST, "config", "dropins", "agentbroker.yaml", NULL);
  g_autofree char *a = g_test_build_filename (
      G_TEST_DIST, "config", "dropins", "agentbroker.d", "10-a.yaml", NULL);
  g_autofree char *b = g_test_build_filename (
      G_TEST_DIST, "config", "dropins", "agentbroker.d", "20-b.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);
  const AbAgentProfile *claude, *codex;

  g_assert_no_error (error);
  g_assert_nonnull (config);

  /* Main file first, then drop-ins in lexical order; README, *.yml and
   * dot files are not read. */
  g_assert_cmpstrv (config->sources,
                    ((const char *const[]){ path, a, b, NULL }));

  /* Scalars: the last file wins (20-b over 10-a over main). */
  g_assert_cmpuint (config->max_sessions, ==, 30);
  g_assert_cmpstr (config->default_agent, ==, "codex");
  /* Mappings merge key by key: what no drop-in touched survives. */
  g_assert_cmpuint (config->max_queued_prompts, ==, 3);
  g_assert_cmpint (config->idle_timeout_usec, ==, HOUR);
  g_assert_cmpint (config->handshake_timeout_usec, ==, 60 * SEC);
  /* Sequences replace. */
  g_assert_cmpstrv (config->access_users,
                    ((const char *const[]){ "ops", NULL }));
  g_assert_cmpstrv (config->access_admins,
                    ((const char *const[]){ "agentbroker-admin", NULL }));
  g_assert_cmpstrv (config->health_listen,
                    ((const char *const[]){ "127.0.0.1:8090", NULL }));

  /* Agents: entries of the same name are replaced whole, others kept. */
  g_assert_cmpuint (config->agents->len, ==, 3);
  g_assert_cmpstr (((AbAgentProfile *)config->agents->pdata[0])->name, ==,
                   "claude");
  g_assert_cmpstr (((AbAgentProfile *)config->agents->pdata[1])->name, ==,
                   "codex");
  g_assert_cmpstr (((AbAgentProfile *)config->agents->pdata[2])->name, ==,
                   "demo");
  claude = ab_config_lookup_agent (config, "claude");
  g_assert_cmpstrv (claude->command,
                    ((const char *const[]){ "claude-code-acp", NULL }));
  /* Not merged from the main file's claude: */
  g_assert_cmpuint (claude->env->len, ==, 0);
  g_assert_null (claude->inherit_env[0]);
  g_assert_cmpint (claude->permissions, ==, AB_PERMISSIONS_DENY);
  codex = ab_config_lookup_agent (config, "codex");
  g_assert_cmpstr (codex->auth_method, ==, "openai-api-key");
  g_assert_nonnull (ab_config_lookup_agent (config, "demo"));
}

/* Errors point into the file the bad value came from. */
static void
test_dropin_errors (void)
{
  g_autofree char *path = g_test_build_filename (
      G_TEST_DIST, "config", "dropin-errors", "agentbroker.yaml", NULL);
  g_autofree char *dropin
      = g_test_build_filename (G_TEST_DIST, "config", "dropin-errors",
                               "agentbroker.d", "50-broken.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);
  g_autofree char *expected = NULL;

  g_assert_null (config);
  expected = g_strdup_printf (
      "%s:5:17: pool.max_sessions: “none” is not an integer\n"
      "%s:2:17: pool.idle_timeout: invalid duration “soon”: expected a "
      "number followed by a unit (us, ms, s, m, h, d, w), e.g. “30s” or "
      "“1h30m”\n"
      /* demo was replaced whole by an entry without a command */
      "%s:4:3: agents.demo: missing “command”\n"
      "%s:5:18: agents.demo.permissions: “always” is not one of allow, deny, "
      "ask",
      path, dropin, dropin, dropin);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_dropins_without_main (void)
{
  g_autofree char *path = g_test_build_filename (
      G_TEST_DIST, "config", "dropins-only", "agentbroker.yaml", NULL);
  g_autofree char *dropin
      = g_test_build_filename (G_TEST_DIST, "config", "dropins-only",
                               "agentbroker.d", "00-only.yaml", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = ab_config_load (path, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (config->max_sessions, ==, 5);
  assert_demo_only (config);
  g_assert_cmpstrv (config->sources, ((const char *const[]){ dropin, NULL }));
}

/* Order is strcmp order of the names, not creation order; later drop-ins
 * can also replace a whole section with a different type. */
static void
test_dropin_order (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-config-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autofree char *dropins = NULL;
  g_autofree char *bad = NULL;
  g_autofree char *expected = NULL;
  g_autoptr (AbConfig) config = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "agentbroker.yaml", NULL);
  dropins = g_build_filename (dir, "agentbroker.d", NULL);
  g_assert_cmpint (g_mkdir (dropins, 0700), ==, 0);

  write_file (dropins, "b.yaml", "pool: {max_sessions: 2}\n");
  write_file (dropins, "a.yaml", "pool: {max_sessions: 1}\n");
  write_file (dropins, "B.yaml", "pool: {max_sessions: 3, max_age: 1h}\n");
  write_file (dir, "agentbroker.yaml",
              "pool: {max_sessions: 9, max_queued_prompts: 4}\n");
  config = ab_config_load (path, &error);
  g_assert_no_error (error);
  /* "B" < "a" < "b" */
  g_assert_cmpuint (config->max_sessions, ==, 2);
  g_assert_cmpuint (config->max_queued_prompts, ==, 4);
  g_assert_cmpint (config->max_age_usec, ==, HOUR);
  g_assert_cmpuint (g_strv_length (config->sources), ==, 4);

  /* A later file replacing the section with a scalar is reported there. */
  write_file (dropins, "c.yaml", "pool: off\n");
  g_clear_pointer (&config, ab_config_unref);
  config = ab_config_load (path, &error);
  g_assert_null (config);
  bad = g_build_filename (dropins, "c.yaml", NULL);
  expected = g_strdup_printf ("%s:1:7: pool: expected a mapping, got a "
                              "scalar",
                              bad);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);

  /* A syntax error in one drop-in fails the whole load. */
  write_file (dropins, "c.yaml", "pool: [\n");
  config = ab_config_load (path, &error);
  g_assert_null (config);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s:2:1: syntax error: while parsing a flow "
                              "node: did not find expected node content",
                              bad);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);

  /* A drop-in that is a directory is an error, not silently skipped. */
  g_assert_cmpint (g_unlink (bad), ==, 0);
  g_assert_cmpint (g_mkdir (bad, 0700), ==, 0);
  config = ab_config_load (path, &error);
  g_assert_null (config);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s: not a regular file", bad);
  g_assert_cmpstr (error->message, ==, expected);

  rm_rf (dir);
}

static void
test_unreadable (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-config-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autofree char *expected = NULL;
  g_autoptr (AbConfig) config = NULL;

  g_assert_no_error (error);

  /* The main file is a directory. */
  path = g_build_filename (dir, "agentbroker.yaml", NULL);
  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  config = ab_config_load (path, &error);
  g_assert_null (config);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  expected = g_strdup_printf ("%s: not a regular file", path);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  g_assert_cmpint (g_rmdir (path), ==, 0);

  /* Exists but cannot be read: an error, never the built-in default.
   * Root reads anything, so this part needs an unprivileged user. */
  if (geteuid () != 0)
    {
      write_file (dir, "agentbroker.yaml", "pool: {max_sessions: 1}\n");
      g_assert_cmpint (g_chmod (path, 0), ==, 0);
      config = ab_config_load (path, &error);
      g_assert_null (config);
      g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
      g_clear_pointer (&expected, g_free);
      expected
          = g_strdup_printf ("%s: cannot open: %s", path, g_strerror (EACCES));
      g_assert_cmpstr (error->message, ==, expected);
    }
  else
    g_test_message ("running as root: skipping the permission check");

  rm_rf (dir);
}

/* ------------------------------------------------------------------ */
/* Bounds                                                              */
/* ------------------------------------------------------------------ */

static void
test_limits (void)
{
  g_autoptr (GString) yaml = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = NULL;

  /* Size: 1 MiB is fine (comments), one byte more is not. */
  g_string_append (yaml, "pool: {max_sessions: 2}\n");
  while (yaml->len < 1024 * 1024)
    g_string_append_c (yaml, '#');
  g_string_truncate (yaml, 1024 * 1024);
  config = ab_config_load_from_data (yaml->str, yaml->len, "big.yaml", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (config->max_sessions, ==, 2);
  g_clear_pointer (&config, ab_config_unref);

  g_string_append_c (yaml, '#');
  config = ab_config_load_from_data (yaml->str, yaml->len, "big.yaml", &error);
  g_assert_null (config);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_cmpstr (error->message, ==,
                   "big.yaml: file is larger than 1048576 bytes");
  g_clear_error (&error);

  /* Depth: 32 levels parse (and fail validation), 33 do not parse. */
  g_string_truncate (yaml, 0);
  for (guint i = 0; i < 32; i++)
    g_string_append_c (yaml, '[');
  for (guint i = 0; i < 32; i++)
    g_string_append_c (yaml, ']');
  config = load_string (yaml->str, &error);
  g_assert_cmpstr (error->message, ==,
                   "test.yaml:1:1: expected a mapping at the top level, got "
                   "a sequence");
  g_clear_error (&error);
  g_string_prepend_c (yaml, '[');
  g_string_append_c (yaml, ']');
  config = load_string (yaml->str, &error);
  g_assert_null (config);
  g_assert_cmpstr (error->message, ==,
                   "test.yaml:1:33: nesting is too deep (the limit is 32 "
                   "levels)");
  g_clear_error (&error);

  /* Nodes: the root plus 9999 items parse, one more item does not. */
  g_string_assign (yaml, "[");
  for (guint i = 0; i < 9999; i++)
    g_string_append (yaml, "1,");
  g_string_append (yaml, "]");
  config = load_string (yaml->str, &error);
  g_assert_null (config);
  g_assert_cmpstr (error->message, ==,
                   "test.yaml:1:1: expected a mapping at the top level, got "
                   "a sequence");
  g_clear_error (&error);
  /* The 10001st node is the 10000th item, at column 2 * 10000. */
  g_string_insert (yaml, 1, "1,");
  config = load_string (yaml->str, &error);
  g_assert_null (config);
  g_assert_cmpstr (error->message, ==,
                   "test.yaml:1:20000: too many nodes (the limit is 10000)");
}

/* A billion-laughs document fails at once instead of expanding. */
static void
test_billion_laughs (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = load_string (
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
      &error);

  g_assert_null (config);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  g_assert_true (g_str_has_prefix (
      error->message, "test.yaml:1:1: unknown key “a” (valid keys: "));
  g_assert_nonnull (strstr (error->message,
                            "test.yaml:1:4: anchors (“&a”) are not "
                            "supported\n"));
  g_assert_nonnull (strstr (error->message,
                            "test.yaml:4:8: aliases (“*c”) are not "
                            "supported\n"));
  /* 4 unknown keys, 4 anchors, 27 aliases */
  g_assert_cmpuint (count_lines (error->message), ==, 35);
}

/* ------------------------------------------------------------------ */
/* Profile comparison                                                  */
/* ------------------------------------------------------------------ */

static void
test_profile_equal (void)
{
  static const char *const base
      = "agents:\n"
        "  a:\n"
        "    command: [prog, --flag]\n"
        "    env: {ONE: \"1\", KEY: {credential: k}}\n"
        "    inherit_env: [HTTPS_PROXY]\n"
        "    working_directory: /srv/{thread}\n"
        "    permissions: ask\n"
        "    auth_method: m\n"
        "    resend_interrupted: true\n";
  /* Each variant differs from base in exactly one field. */
  static const char *const variants[][2] = {
    { "[prog, --flag]", "[prog]" },
    { "[prog, --flag]", "[prog, --flag, x]" },
    { "[prog, --flag]", "[other, --flag]" },
    { "ONE: \"1\"", "ONE: \"2\"" },
    { "ONE: \"1\"", "TWO: \"1\"" },
    { "{credential: k}", "{credential: j}" },
    { "{credential: k}", "k" },
    { "{ONE: \"1\", KEY: {credential: k}}", "{KEY: {credential: k}}" },
    /* order of env entries counts: a reload restarts rather than guess */
    { "{ONE: \"1\", KEY: {credential: k}}",
      "{KEY: {credential: k}, ONE: \"1\"}" },
    { "[HTTPS_PROXY]", "[]" },
    { "/srv/{thread}", "/srv/x/{thread}" },
    { "permissions: ask", "permissions: allow" },
    { "auth_method: m", "auth_method: n" },
    { "    auth_method: m\n", "" },
    { "resend_interrupted: true", "resend_interrupted: false" },
  };
  g_autoptr (AbConfig) c1 = load_ok (base);
  g_autoptr (AbConfig) c2 = load_ok (base);
  const AbAgentProfile *a1 = ab_config_lookup_agent (c1, "a");
  const AbAgentProfile *a2 = ab_config_lookup_agent (c2, "a");
  g_autoptr (AbConfig) d1 = ab_config_new_default ();
  g_autoptr (AbConfig) d2 = load_ok ("pool: {max_sessions: 1}\n");
  g_autoptr (AbConfig) renamed = NULL;
  g_autofree char *renamed_yaml = NULL;

  g_assert_true (a1 != a2);
  g_assert_true (ab_agent_profile_equal (a1, a2));
  g_assert_true (ab_agent_profile_equal (a1, a1));
  g_assert_true (
      ab_agent_profile_equal (d1->agents->pdata[0], d2->agents->pdata[0]));
  g_assert_false (ab_agent_profile_equal (a1, d1->agents->pdata[0]));

  for (gsize i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autoptr (GString) yaml = g_string_new (base);
      g_autoptr (AbConfig) c = NULL;

      g_assert_cmpuint (
          g_string_replace (yaml, variants[i][0], variants[i][1], 1), ==, 1);
      g_test_message ("variant %" G_GSIZE_FORMAT, i);
      c = load_ok (yaml->str);
      g_assert_false (
          ab_agent_profile_equal (a1, ab_config_lookup_agent (c, "a")));
      g_assert_false (
          ab_agent_profile_equal (ab_config_lookup_agent (c, "a"), a1));
    }

  /* Same contents under another name: not the same profile. */
  renamed_yaml = g_strdup (base);
  renamed_yaml[10] = 'b';
  renamed = load_ok (renamed_yaml);
  g_assert_false (
      ab_agent_profile_equal (a1, ab_config_lookup_agent (renamed, "b")));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/duration/valid", test_duration_valid);
  g_test_add_func ("/duration/invalid", test_duration_invalid);
  g_test_add_func ("/duration/invalid-utf8", test_duration_invalid_utf8);
  g_test_add_func ("/duration/format", test_duration_format);
  g_test_add_func ("/size/valid", test_size_valid);
  g_test_add_func ("/size/invalid", test_size_invalid);
  g_test_add_func ("/config/default", test_default);
  g_test_add_func ("/config/ref-unref", test_ref_unref);
  g_test_add_func ("/config/load-nothing", test_load_nothing);
  g_test_add_func ("/config/load-empty", test_load_empty);
  g_test_add_func ("/config/example", test_example);
  g_test_add_func ("/config/values", test_values);
  g_test_add_func ("/config/no-agents-key", test_no_agents_key);
  g_test_add_func ("/config/booleans", test_booleans);
  g_test_add_func ("/config/errors", test_errors);
  g_test_add_func ("/config/all-problems", test_all_problems);
  g_test_add_func ("/config/syntax-error-file", test_syntax_error_file);
  g_test_add_func ("/config/dropins", test_dropins);
  g_test_add_func ("/config/dropin-errors", test_dropin_errors);
  g_test_add_func ("/config/dropins-without-main", test_dropins_without_main);
  g_test_add_func ("/config/dropin-order", test_dropin_order);
  g_test_add_func ("/config/unreadable", test_unreadable);
  g_test_add_func ("/config/limits", test_limits);
  g_test_add_func ("/config/billion-laughs", test_billion_laughs);
  g_test_add_func ("/config/profile-equal", test_profile_equal);

  return g_test_run ();
}
