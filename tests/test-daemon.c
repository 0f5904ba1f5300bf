/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the daemon on a private bus: names, properties,
 * reload, drain gate, stop */
#include "config.h"

#include <errno.h>

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "daemon-fixture.h"
#include "error.h"

static const char good_config[] = "default_agent: demo\n"
                                  "agents:\n"
                                  "  demo:\n"
                                  "    command: [agentbroker-demo-agent]\n"
                                  "pool:\n"
                                  "  max_sessions: 7\n";

static void
fixture_up (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  ab_daemon_fixture_setup (fx, good_config);
  ab_daemon_fixture_start (fx, &error);
  g_assert_no_error (error);
}

static void
fixture_down (AbDaemonFixture *fx, gconstpointer data)
{
  ab_daemon_fixture_teardown (fx);
}

static void
test_introspection (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GDBusNodeInfo) node = ab_introspect (fx->connection, AB_BUS_PATH);

  g_assert_nonnull (
      g_dbus_node_info_lookup_interface (node, "org.agentbroker.Broker1"));
  g_assert_nonnull (g_dbus_node_info_lookup_interface (
      node, "org.freedesktop.DBus.ObjectManager"));
  g_assert_nonnull (g_dbus_interface_info_lookup_method (
      g_dbus_node_info_lookup_interface (node, "org.agentbroker.Broker1"),
      "Prompt"));
}

static void
test_properties (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GVariant) state = ab_daemon_get_property (fx, "State");
  g_autoptr (GVariant) accepting = ab_daemon_get_property (fx, "Accepting");
  g_autoptr (GVariant) generation = ab_daemon_get_property (fx, "Generation");
  g_autoptr (GVariant) version = ab_daemon_get_property (fx, "Version");
  g_autoptr (GVariant) max = ab_daemon_get_property (fx, "MaxSessions");
  g_autoptr (GVariant) started = ab_daemon_get_property (fx, "StartedAt");
  g_autoptr (GVariant) count = ab_daemon_get_property (fx, "SessionCount");
  guint64 now = (guint64)g_get_real_time ();

  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
  g_assert_true (g_variant_get_boolean (accepting));
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 1);
  g_assert_cmpstr (g_variant_get_string (version, NULL), ==, PACKAGE_VERSION);
  g_assert_cmpuint (g_variant_get_uint32 (max), ==, 7);
  g_assert_cmpuint (g_variant_get_uint32 (count), ==, 0);
  g_assert_cmpuint (g_variant_get_uint64 (started), <=, now);
  g_assert_cmpuint (g_variant_get_uint64 (started), >,
                    now - 60 * G_USEC_PER_SEC);
}

static void
test_reload_valid (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) generation = NULL;
  g_autoptr (GVariant) max = NULL;

  ab_daemon_fixture_write_config (fx, "agents:\n"
                                      "  demo:\n"
                                      "    command: [agentbroker-demo-agent]\n"
                                      "pool:\n"
                                      "  max_sessions: 9\n");
  reply = ab_daemon_call (fx, "Reload", NULL, "()", &error);
  g_assert_no_error (error);

  generation = ab_daemon_get_property (fx, "Generation");
  max = ab_daemon_get_property (fx, "MaxSessions");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 2);
  g_assert_cmpuint (g_variant_get_uint32 (max), ==, 9);
}

/* The configuration file removed under a running daemon: the reload
 * fails naming it, and the configuration in force stays. */
static void
test_reload_missing (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) generation = NULL;
  g_autofree char *expected = NULL;

  g_assert_no_errno (g_unlink (fx->config_path));
  reply = ab_daemon_call (fx, "Reload", NULL, "()", &error);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  expected = g_strdup_printf ("%s: cannot open: %s", fx->config_path,
                              g_strerror (ENOENT));
  g_assert_nonnull (strstr (error->message, expected));
  generation = ab_daemon_get_property (fx, "Generation");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 1);
}

static void
test_reload_invalid (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) generation = NULL;
  g_autoptr (GVariant) max = NULL;
  g_autoptr (GVariant) state = NULL;
  g_autofree char *remote = NULL;

  /* Three problems: a bad duration, an unknown key, a wrong type. */
  ab_daemon_fixture_write_config (fx, "agents:\n"
                                      "  demo:\n"
                                      "    command: [agentbroker-demo-agent]\n"
                                      "pool:\n"
                                      "  max_sessions: 3\n"
                                      "  idle_timeout: soon\n"
                                      "  bogus_key: 1\n"
                                      "timeouts: [1, 2]\n");
  reply = ab_daemon_call (fx, "Reload", NULL, "()", &error);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG);
  remote = g_dbus_error_get_remote_error (error);
  g_assert_cmpstr (remote, ==, "org.agentbroker.Error.InvalidConfig");
  g_assert_nonnull (strstr (error->message, "agentbroker.yaml:6:17: "));
  g_assert_nonnull (strstr (error->message, "agentbroker.yaml:7:3: "));
  g_assert_nonnull (strstr (error->message, "agentbroker.yaml:8:11: "));
  g_assert_nonnull (strstr (error->message, "bogus_key"));

  /* Nothing changed. */
  generation = ab_daemon_get_property (fx, "Generation");
  max = ab_daemon_get_property (fx, "MaxSessions");
  state = ab_daemon_get_property (fx, "State");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 1);
  g_assert_cmpuint (g_variant_get_uint32 (max), ==, 7);
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
}

static void
test_sighup_reloads (AbDaemonFixture *fx, gconstpointer data)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint generation = 1;

  ab_daemon_fixture_write_config (fx,
                                  "agents:\n"
                                  "  demo:\n"
                                  "    command: [agentbroker-demo-agent]\n");
  g_subprocess_send_signal (fx->daemon, SIGHUP);
  while (generation == 1 && g_get_monotonic_time () < deadline)
    {
      g_autoptr (GVariant) value = ab_daemon_get_property (fx, "Generation");
      generation = g_variant_get_uint32 (value);
      if (generation == 1)
        g_usleep (20000);
    }
  g_assert_cmpuint (generation, ==, 2);
}

static void
test_unbacked_methods_answer (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;

  /* Every method answers: a result or a named error, never silence. */
  reply = ab_daemon_call (fx, "AnswerPermission",
                          g_variant_new ("(sss)", "cli:x", "1", "allow"), NULL,
                          &error);
  g_assert_nonnull (error);
  g_assert_true (g_dbus_error_is_remote_error (error));
}

static void
test_drain_gate (AbDaemonFixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) state = NULL;
  g_autoptr (GVariant) accepting = NULL;
  g_autoptr (GVariant) generation = NULL;

  reply
      = ab_daemon_call (fx, "Drain", g_variant_new ("(u)", 5), "(uu)", &error);
  g_assert_no_error (error);
  state = ab_daemon_get_property (fx, "State");
  accepting = ab_daemon_get_property (fx, "Accepting");
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "drained");
  g_assert_false (g_variant_get_boolean (accepting));
  g_clear_pointer (&reply, g_variant_unref);

  /* A reload while drained keeps the gate closed. */
  reply = ab_daemon_call (fx, "Reload", NULL, "()", &error);
  g_assert_no_error (error);
  g_clear_pointer (&state, g_variant_unref);
  state = ab_daemon_get_property (fx, "State");
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "drained");
  generation = ab_daemon_get_property (fx, "Generation");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 2);
  g_clear_pointer (&reply, g_variant_unref);

  reply = ab_daemon_call (fx, "Resume", NULL, "()", &error);
  g_assert_no_error (error);
  g_clear_pointer (&state, g_variant_unref);
  g_clear_pointer (&accepting, g_variant_unref);
  state = ab_daemon_get_property (fx, "State");
  accepting = ab_daemon_get_property (fx, "Accepting");
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
  g_assert_true (g_variant_get_boolean (accepting));
  g_clear_pointer (&reply, g_variant_unref);

  /* Resume on a running broker is done already: it succeeds and
   * changes nothing. */
  reply = ab_daemon_call (fx, "Resume", NULL, "()", &error);
  g_assert_no_error (error);
  g_clear_pointer (&state, g_variant_unref);
  g_clear_pointer (&generation, g_variant_unref);
  state = ab_daemon_get_property (fx, "State");
  generation = ab_daemon_get_property (fx, "Generation");
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 2);
}

static void
test_sigterm_exits_zero (AbDaemonFixture *fx, gconstpointer data)
{
  g_assert_cmpint (ab_daemon_fixture_stop (fx, SIGTERM), ==, 0);
}

static void
test_sigint_exits_zero (AbDaemonFixture *fx, gconstpointer data)
{
  g_assert_cmpint (ab_daemon_fixture_stop (fx, SIGINT), ==, 0);
}

static void
test_agentctl_status (AbDaemonFixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *json_out = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *obj;

  g_assert_cmpint (ab_run_agentctl (fx, &out, &err, "status", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "running"));
  g_assert_nonnull (strstr (out, "Generation: 1"));

  g_assert_cmpint (
      ab_run_agentctl (fx, &json_out, NULL, "--json", "status", NULL), ==, 0);
  json_parser_load_from_data (parser, json_out, -1, &error);
  g_assert_no_error (error);
  obj = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (obj, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (obj, "generation"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (obj, "max_sessions"), ==, 7);
}

static void
test_agentctl_reload (AbDaemonFixture *fx, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *out2 = NULL, *err2 = NULL;
  g_autoptr (GVariant) generation = NULL;

  g_assert_cmpint (ab_run_agentctl (fx, &out, &err, "reload", NULL), ==, 0);
  generation = ab_daemon_get_property (fx, "Generation");
  g_assert_cmpuint (g_variant_get_uint32 (generation), ==, 2);
  g_assert_nonnull (strstr (out, "generation 2"));

  ab_daemon_fixture_write_config (fx, "agents: {}\nwhat: 1\n");
  g_assert_cmpint (ab_run_agentctl (fx, &out2, &err2, "reload", NULL), !=, 0);
  /* A header, then one line per problem, each with its position. */
  g_assert_true (g_str_has_prefix (err2, "agentctl: the configuration is "
                                         "invalid; nothing was changed:\n"));
  g_assert_nonnull (strstr (err2, "agentbroker.yaml:1:"));
  g_assert_nonnull (strstr (err2, "agentbroker.yaml:2:1: "));
}

static void
test_agentctl_errors (AbDaemonFixture *fx, gconstpointer data)
{
  g_autofree char *err = NULL, *err2 = NULL;

  g_assert_cmpint (ab_run_agentctl (fx, NULL, &err, "frobnicate", NULL), !=, 0);
  g_assert_nonnull (strstr (err, "frobnicate"));
  g_assert_cmpint (ab_run_agentctl (fx, NULL, &err2, NULL), !=, 0);
  g_assert_nonnull (strstr (err2, "verb"));
}

/* Starts the daemon of @fx, which must exit with status 1 at once; its
 * log. */
static char *
assert_start_fails (AbDaemonFixture *fx)
{
  g_autoptr (GError) error = NULL;
  char *log = NULL;

  g_assert_false (ab_daemon_fixture_start (fx, &error));
  g_assert_true (ab_subprocess_wait_bounded (fx->daemon));
  g_assert_true (g_subprocess_get_if_exited (fx->daemon));
  g_assert_cmpint (g_subprocess_get_exit_status (fx->daemon), ==, 1);
  g_clear_object (&fx->daemon);
  g_assert_true (g_file_get_contents (fx->log_path, &log, NULL, NULL));
  return log;
}

static void
test_invalid_config_at_start (void)
{
  AbDaemonFixture fx;
  g_autofree char *log = NULL;
  g_auto (GStrv) lines = NULL;

  ab_daemon_fixture_setup (&fx, "agents:\n"
                                "  demo:\n"
                                "    command: []\n"
                                "pool:\n"
                                "  max_sessions: lots\n");
  log = assert_start_fails (&fx);
  lines = g_strsplit (g_strstrip (log), "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  g_assert_true (g_str_has_prefix (lines[0], fx.config_path));
  g_assert_nonnull (strstr (lines[0], ":3:"));
  g_assert_nonnull (strstr (lines[1], ":5:"));
  ab_daemon_fixture_teardown (&fx);
}

/* The daemon takes its hard open-file limit at start, and says so over
 * D-Bus and in agentctl status; started by systemd, it warns that agents
 * run as its own children. */
static void
test_limits_at_start (void)
{
  AbDaemonFixture fx;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) value = NULL;
  g_autofree char *out = NULL, *err = NULL, *expected = NULL;
  g_autofree char *log = NULL;
  struct rlimit ours, lowered;
  guint64 limit;

  g_assert_no_errno (getrlimit (RLIMIT_NOFILE, &ours));
  if (ours.rlim_max == RLIM_INFINITY || ours.rlim_max <= 256)
    {
      g_test_skip ("the hard open-file limit leaves nothing to raise");
      return;
    }
  /* The daemon inherits a soft limit well below the hard one. */
  lowered = ours;
  lowered.rlim_cur = 256;
  g_assert_no_errno (setrlimit (RLIMIT_NOFILE, &lowered));
  ab_daemon_fixture_setup (&fx, "pool: {max_sessions: 4}\n");
  ab_daemon_fixture_setenv (&fx, "INVOCATION_ID",
                            "0123456789abcdef0123456789abcdef");
  if (!ab_daemon_fixture_start (&fx, &error))
    g_error ("daemon did not start: %s", error->message);
  g_assert_no_errno (setrlimit (RLIMIT_NOFILE, &ours));

  value = ab_daemon_get_property (&fx, "OpenFileLimit");
  limit = g_variant_get_uint64 (value);
  /* valgrind fixes its client's open-file limit at start (it keeps the
   * descriptors above it for itself): there the raise cannot happen, and
   * only the plain run checks it. */
  if (g_getenv ("AB_TEST_DAEMON_WRAPPER") == NULL)
    g_assert_cmpuint (limit, ==, ours.rlim_max);
  else
    g_test_message ("under a wrapper: open-file limit %" G_GUINT64_FORMAT
                    " not compared with the hard limit",
                    limit);
  g_assert_cmpint (ab_run_agentctl (&fx, &out, &err, "status", NULL), ==, 0);
  expected
      = g_strdup_printf ("Open files: at most %" G_GUINT64_FORMAT "\n", limit);
  g_assert_nonnull (strstr (out, expected));
  g_assert_nonnull (
      strstr (out, "Launcher: direct (agents are children of the daemon)\n"));
  g_clear_pointer (&value, g_variant_unref);
  value = ab_daemon_get_property (&fx, "Launcher");
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "direct");
  g_assert_true (g_file_get_contents (fx.log_path, &log, NULL, NULL));
  g_assert_nonnull (strstr (log, "(the direct launcher)"));
  ab_daemon_fixture_teardown (&fx);
}

/* launcher: systemd where no manager can be used (a private bus): the
 * daemon does not start, and says why; auto falls back to direct. */
static void
test_systemd_launcher_unreachable (void)
{
  AbDaemonFixture fx;
  g_autofree char *log = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) value = NULL;

  ab_daemon_fixture_setup (&fx, "launcher: systemd\n");
  log = assert_start_fails (&fx);
  g_assert_nonnull (
      strstr (log, "launcher: systemd, but the systemd manager cannot be "
                   "reached: "));
  ab_daemon_fixture_teardown (&fx);

  ab_daemon_fixture_setup (&fx, "launcher: auto\n");
  if (!ab_daemon_fixture_start (&fx, &error))
    g_error ("daemon did not start: %s", error->message);
  value = ab_daemon_get_property (&fx, "Launcher");
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "direct");
  ab_daemon_fixture_teardown (&fx);
}

/* A --config that names no file is an error, not the built-in default:
 * a typo in a unit must not run the demo agent in production. */
static void
test_missing_config_at_start (void)
{
  AbDaemonFixture fx;
  g_autofree char *log = NULL;
  g_autofree char *expected = NULL;

  ab_daemon_fixture_setup (&fx, "pool: {max_sessions: 4}\n");
  g_assert_no_errno (g_unlink (fx.config_path));
  log = assert_start_fails (&fx);
  expected = g_strdup_printf ("%s: cannot open: %s", fx.config_path,
                              g_strerror (ENOENT));
  g_assert_cmpstr (g_strstrip (log), ==, expected);
  ab_daemon_fixture_teardown (&fx);
}

/* The MESSAGE_IDs of data/agentbroker.catalog that operators search for */
#define ID_SESSION_CREATED "0f2d22f8973843e28383199115a636ef"
#define ID_SESSION_REMOVED "eabcc3e99f2d4faca64b6690a8d3c093"
#define ID_AGENT_LOST "5b822607a87a4220a4c2fdda1c59c5cb"
#define ID_REQUEST "6a6d7612dcc2471c83457c0d3aa72427"

/* The entry of the daemon's log (AGENTBROKER_LOG_FIELDS=1: NAME=value
 * lines, an empty line after each entry) with MESSAGE_ID @id and
 * AGENTBROKER_THREAD @thread, as a table of its fields; NULL if none. */
static GHashTable *
log_entry (AbDaemonFixture *fx, const char *id, const char *thread)
{
  g_autofree char *log = NULL;
  g_auto (GStrv) entries = NULL;

  if (!g_file_get_contents (fx->log_path, &log, NULL, NULL))
    return NULL;
  entries = g_strsplit (log, "\n\n", -1);
  for (guint i = 0; entries[i] != NULL; i++)
    {
      g_autoptr (GHashTable) fields
          = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      g_auto (GStrv) lines = g_strsplit (entries[i], "\n", -1);

      for (guint j = 0; lines[j] != NULL; j++)
        {
          const char *equals = strchr (lines[j], '=');

          if (equals != NULL)
            g_hash_table_replace (fields,
                                  g_strndup (lines[j], equals - lines[j]),
                                  g_strdup (equals + 1));
        }
      if (g_strcmp0 (g_hash_table_lookup (fields, "MESSAGE_ID"), id) == 0
          && g_strcmp0 (g_hash_table_lookup (fields, "AGENTBROKER_THREAD"),
                        thread)
                 == 0)
        return g_steal_pointer (&fields);
    }
  return NULL;
}

static gboolean
has_log_entry (AbDaemonFixture *fx, const char *id, const char *thread)
{
  g_autoptr (GHashTable) fields = log_entry (fx, id, thread);

  return fields != NULL;
}

/* Structured entries: session created (with the caller's uid), agent
 * lost (a warning), removal requested by a uid, session removed. */
static void
test_journal_fields (void)
{
  AbDaemonFixture fx;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GHashTable) created = NULL;
  g_autoptr (GHashTable) lost = NULL;
  g_autoptr (GHashTable) request = NULL;
  g_autofree char *uid = g_strdup_printf ("%u", (guint)getuid ());

  ab_daemon_fixture_setup (&fx, good_config);
  ab_daemon_fixture_setenv (&fx, "AGENTBROKER_LOG_FIELDS", "1");
  ab_daemon_fixture_start (&fx, &error);
  g_assert_no_error (error);

  reply = ab_daemon_call (&fx, "Prompt",
                          g_variant_new ("(ss@a{sv})", "cli:log", "crash",
                                         g_variant_new ("a{sv}", NULL)),
                          "(t)", &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (has_log_entry (&fx, ID_AGENT_LOST, "cli:log"), 20000);

  created = log_entry (&fx, ID_SESSION_CREATED, "cli:log");
  g_assert_nonnull (created);
  g_assert_cmpstr (g_hash_table_lookup (created, "AGENTBROKER_CALLER_UID"), ==,
                   uid);
  g_assert_cmpstr (g_hash_table_lookup (created, "SYSLOG_IDENTIFIER"), ==,
                   "agentbrokerd");
  g_assert_cmpstr (g_hash_table_lookup (created, "PRIORITY"), ==, "5");
  g_assert_nonnull (
      strstr (g_hash_table_lookup (created, "MESSAGE"), "cli:log created"));

  /* A failure shows with journalctl -p warning. */
  lost = log_entry (&fx, ID_AGENT_LOST, "cli:log");
  g_assert_cmpstr (g_hash_table_lookup (lost, "PRIORITY"), ==, "4");
  g_assert_cmpstr (g_hash_table_lookup (lost, "SYSLOG_IDENTIFIER"), ==,
                   "agentbrokerd");
  g_assert_false (g_hash_table_contains (lost, "AGENTBROKER_CALLER_UID"));

  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_daemon_call (&fx, "RemoveSession",
                          g_variant_new ("(s)", "cli:log"), "()", &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (has_log_entry (&fx, ID_SESSION_REMOVED, "cli:log"), 20000);
  request = log_entry (&fx, ID_REQUEST, "cli:log");
  g_assert_nonnull (request);
  g_assert_cmpstr (g_hash_table_lookup (request, "AGENTBROKER_CALLER_UID"), ==,
                   uid);
  ab_daemon_fixture_teardown (&fx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/daemon/" name, AbDaemonFixture, NULL, fixture_up, func,        \
              fixture_down)
  ADD ("introspection", test_introspection);
  ADD ("properties", test_properties);
  ADD ("reload/valid", test_reload_valid);
  ADD ("reload/invalid", test_reload_invalid);
  ADD ("reload/missing", test_reload_missing);
  ADD ("reload/sighup", test_sighup_reloads);
  ADD ("methods/answer", test_unbacked_methods_answer);
  ADD ("drain-gate", test_drain_gate);
  ADD ("stop/sigterm", test_sigterm_exits_zero);
  ADD ("stop/sigint", test_sigint_exits_zero);
  ADD ("agentctl/status", test_agentctl_status);
  ADD ("agentctl/reload", test_agentctl_reload);
  ADD ("agentctl/errors", test_agentctl_errors);
#undef ADD
  g_test_add_func ("/daemon/invalid-config-at-start",
                   test_invalid_config_at_start);
  g_test_add_func ("/daemon/limits-at-start", test_limits_at_start);
  g_test_add_func ("/daemon/systemd-launcher-unreachable",
                   test_systemd_launcher_unreachable);
  g_test_add_func ("/daemon/missing-config-at-start",
                   test_missing_config_at_start);
  g_test_add_func ("/daemon/journal-fields", test_journal_fields);

  /* Remote errors map back to AB_ERROR once the domain is registered. */
  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
