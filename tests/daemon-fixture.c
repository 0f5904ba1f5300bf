/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the real daemon on a private session bus
 *
 * Each test gets its own dbus-daemon (GTestDBus), temporary config and
 * state directories, and the built agentbrokerd. The daemon's log goes to
 * a file that is printed when the test fails.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounded-wait.h"
#include "daemon-fixture.h"
#include "error.h"
#include "session-list.h"

#define BUS_NAME AB_BUS_NAME
#define BUS_PATH AB_BUS_PATH

/* For the watchdog's signal handlers: the log to print and the daemon to
 * stop, kept up to date by the start and the stop. */
static const char *watchdog_log_path;
static pid_t watchdog_daemon_pid;
static gboolean watchdog_armed;
static char watchdog_hang_message[256];

/* One private bus for the whole test program: each test starts and
 * stops its own daemon on it. */
static GTestDBus *test_bus;

void
ab_test_bus_up (void)
{
  test_bus = g_test_dbus_new (G_TEST_DBUS_NONE);
  g_test_dbus_up (test_bus);
}

void
ab_test_bus_down (void)
{
  g_test_dbus_down (test_bus);
  g_clear_object (&test_bus);
}

/* g_test_run() and ab_test_bus_down(): the program's exit status. */
int
ab_test_run (void)
{
  int status = g_test_run ();

  ab_test_bus_down ();
  return status;
}

const char *
ab_test_builddir (void)
{
  const char *dir = g_getenv ("AB_TEST_BUILDDIR");

  g_assert_nonnull (dir);
  return dir;
}

char *
ab_test_program (const char *name)
{
  return g_build_filename (ab_test_builddir (), "src", name, NULL);
}

void
ab_daemon_fixture_write_config (AbDaemonFixture *fx, const char *yaml)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents (fx->config_path, yaml, -1, &error);
  g_assert_no_error (error);
}

void
ab_daemon_fixture_setup (AbDaemonFixture *fx, const char *config_yaml)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *bindir = g_build_filename (ab_test_builddir (), "src", NULL);
  g_autofree char *path = g_strdup_printf ("%s:%s", bindir, g_getenv ("PATH"));

  memset (fx, 0, sizeof *fx);
  fx->tmpdir = g_dir_make_tmp ("agentbroker-test-XXXXXX", &error);
  g_assert_no_error (error);
  fx->config_path = g_build_filename (fx->tmpdir, "agentbroker.yaml", NULL);
  fx->state_dir = g_build_filename (fx->tmpdir, "state", NULL);
  fx->log_path = g_build_filename (fx->tmpdir, "daemon.log", NULL);
  fx->caller_map = g_build_filename (fx->tmpdir, "caller-map", NULL);
  ab_daemon_fixture_setenv (fx, "AGENTBROKER_TEST_CALLER_MAP", fx->caller_map);
  g_assert_cmpint (g_mkdir_with_parents (fx->state_dir, 0700), ==, 0);
  if (config_yaml != NULL)
    ab_daemon_fixture_write_config (fx, config_yaml);

  /* The daemon and its agents find the built programs first. */
  g_setenv ("PATH", path, TRUE);

  fx->connection = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
}

static void
on_name_appeared (GDBusConnection *connection, const char *name,
                  const char *owner, gpointer user_data)
{
  *(gboolean *)user_data = TRUE;
}

static void
on_wait_check (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  /* Cancelled: the fixture behind user_data may be gone. */
  if (g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error)
      || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    *(gboolean *)user_data = TRUE;
}

gboolean
ab_daemon_fixture_start (AbDaemonFixture *fx, GError **error)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autofree char *daemon_path = ab_test_program ("agentbrokerd");
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto (GStrv) wrapper = NULL;
  const char *wrapper_text = g_getenv ("AB_TEST_DAEMON_WRAPPER");
  gboolean appeared = FALSE, exited = FALSE;
  guint watch, timeout_ms = 20000;
  int log_fd;
  gint64 deadline;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (launcher, "STATE_DIRECTORY", fx->state_dir,
                                TRUE);
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "NOTIFY_SOCKET");
  for (guint i = 0; fx->env != NULL && fx->env[i] != NULL; i++)
    {
      g_auto (GStrv) pair = g_strsplit (fx->env[i], "=", 2);

      g_subprocess_launcher_setenv (launcher, pair[0], pair[1], TRUE);
    }
  /* One open file description for both, appending: two separate opens
   * would write over each other's lines. */
  log_fd = open (fx->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot open %s: %s", fx->log_path, g_strerror (errno));
      return FALSE;
    }
  g_subprocess_launcher_take_stderr_fd (launcher, dup (log_fd));
  g_subprocess_launcher_take_stdout_fd (launcher, log_fd);
  /* AB_TEST_DAEMON_WRAPPER: a command line (split like the shell's) the
   * daemon runs under, e.g. "valgrind -q --error-exitcode=1
   * --leak-check=full" (tests/run-sanitizers.sh; -q: the log holds the
   * daemon's own lines unless there is an error); such a tool also starts
   * it more slowly. */
  if (wrapper_text != NULL && wrapper_text[0] != '\0')
    {
      if (!g_shell_parse_argv (wrapper_text, NULL, &wrapper, error))
        {
          close (log_fd);
          return FALSE;
        }
      for (guint i = 0; wrapper[i] != NULL; i++)
        g_ptr_array_add (argv, g_strdup (wrapper[i]));
      timeout_ms *= 3;
    }
  g_ptr_array_add (argv, g_strdup (daemon_path));
  g_ptr_array_add (argv, g_strdup ("--session"));
  g_ptr_array_add (argv, g_strdup ("--config"));
  g_ptr_array_add (argv, g_strdup (fx->config_path));
  g_ptr_array_add (argv, NULL);
  fx->daemon = g_subprocess_launcher_spawnv (
      launcher, (const char *const *)argv->pdata, error);
  if (fx->daemon == NULL)
    return FALSE;
  watchdog_daemon_pid = atoi (g_subprocess_get_identifier (fx->daemon) ?: "0");

  watch = g_bus_watch_name_on_connection (
      fx->connection, BUS_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE, on_name_appeared,
      NULL, &appeared, NULL);
  g_subprocess_wait_async (fx->daemon, cancellable, on_wait_check, &exited);
  deadline = g_get_monotonic_time () + timeout_ms * 1000;
  while (!appeared && !exited && g_get_monotonic_time () < deadline)
    ab_iterate_until_deadline (NULL, deadline);
  g_bus_unwatch_name (watch);
  g_cancellable_cancel (cancellable);

  if (!appeared)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   exited ? "agentbrokerd exited before owning its name"
                          : "agentbrokerd did not own its name in time");
      return FALSE;
    }
  /* The name is visible a moment before the daemon has handled owning
   * it and left "starting"; a signal sent in between (SIGHUP) would be
   * refused.  Slow runs (valgrind) hit that window. */
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
          fx->connection, BUS_NAME, BUS_PATH, "org.freedesktop.DBus.Properties",
          "Get", g_variant_new ("(ss)", "org.agentbroker.Broker1", "State"),
          G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 10000, NULL, NULL);
      g_autoptr (GVariant) state = NULL;

      if (reply != NULL)
        {
          g_variant_get (reply, "(v)", &state);
          if (!g_variant_is_of_type (state, G_VARIANT_TYPE_STRING)
              || !g_str_equal (g_variant_get_string (state, NULL), "starting"))
            break;
        }
      g_usleep (10000);
    }
  return TRUE;
}

void
ab_daemon_fixture_setenv (AbDaemonFixture *fx, const char *name,
                          const char *value)
{
  fx->env = g_environ_setenv (fx->env, name, value, TRUE);
}

/* A report of AddressSanitizer, UndefinedBehaviorSanitizer or valgrind
 * in the daemon's log fails the test, whatever its exit status (most
 * tests do not look at it, and a leak shows only at exit). */
static void
check_tool_reports (AbDaemonFixture *fx)
{
  static const char *const reports[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
    "runtime error:", /* UndefinedBehaviorSanitizer */
  };
  g_autofree char *log = NULL;

  if (!g_file_get_contents (fx->log_path, &log, NULL, NULL))
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (reports); i++)
    if (strstr (log, reports[i]) != NULL)
      {
        g_test_message ("agentbrokerd log reports \"%s\"", reports[i]);
        g_test_fail ();
        return;
      }
  /* valgrind -q prints only errors (leaks included), as "==PID== ..." */
  if (g_regex_match_simple ("^==[0-9]+== ", log, G_REGEX_MULTILINE, 0)
      || g_regex_match_simple ("ERROR SUMMARY: [1-9]", log, 0, 0))
    {
      g_test_message ("valgrind found errors in agentbrokerd");
      g_test_fail ();
    }
}

/* Sends @signum and waits for the exit; returns the exit status, or
 * 128 + signal when it died of one. */
int
ab_daemon_fixture_stop (AbDaemonFixture *fx, int signum)
{
  if (fx->daemon == NULL)
    return -1;
  watchdog_daemon_pid = 0;
  g_subprocess_send_signal (fx->daemon, signum);
  if (!ab_subprocess_wait_bounded (fx->daemon))
    {
      g_test_message ("agentbrokerd still runs %d ms after signal %d",
                      AB_EXIT_TIMEOUT_MS, signum);
      g_test_fail ();
      g_subprocess_force_exit (fx->daemon);
      g_assert_true (ab_subprocess_wait_bounded (fx->daemon));
    }
  if (g_subprocess_get_if_exited (fx->daemon))
    fx->exit_status = g_subprocess_get_exit_status (fx->daemon);
  else
    fx->exit_status = 128 + g_subprocess_get_term_sig (fx->daemon);
  g_clear_object (&fx->daemon);
  check_tool_reports (fx);
  return fx->exit_status;
}

void
ab_daemon_fixture_stop_checked (AbDaemonFixture *fx)
{
  int status;

  if (fx->daemon == NULL)
    return;
  status = ab_daemon_fixture_stop (fx, SIGTERM);
  if (!g_test_failed () && status != 0)
    {
      g_test_message ("agentbrokerd exited with status %d at teardown", status);
      g_test_fail ();
    }
}

/* Prints @header, the daemon's log and a footer to stderr, then stops
 * the daemon; async-signal-safe calls only. */
static void
print_log_from_handler (const char *header, gsize len)
{
  static const char footer[] = "---- end of log ----\n";
  char buf[4096];
  ssize_t n;
  int fd;

  if (write (STDERR_FILENO, header, len) < 0)
    return;
  fd = watchdog_log_path != NULL ? open (watchdog_log_path, O_RDONLY) : -1;
  while (fd >= 0 && (n = read (fd, buf, sizeof buf)) > 0)
    if (write (STDERR_FILENO, buf, n) < 0)
      break;
  if (fd >= 0)
    close (fd);
  if (write (STDERR_FILENO, footer, sizeof footer - 1) < 0)
    return;
  if (watchdog_daemon_pid > 0)
    kill (watchdog_daemon_pid, SIGTERM);
}

static void
on_alarm (int signum)
{
  print_log_from_handler (watchdog_hang_message,
                          strlen (watchdog_hang_message));
  _exit (99);
}

static void
on_abort (int signum)
{
  static const char msg[] = "---- agentbrokerd log ----\n";

  print_log_from_handler (msg, sizeof msg - 1);
  signal (SIGABRT, SIG_DFL);
  raise (SIGABRT);
}

void
ab_daemon_fixture_watchdog (AbDaemonFixture *fx, guint seconds)
{
  g_autofree char *program = g_path_get_basename (g_get_prgname ());

  g_snprintf (watchdog_hang_message, sizeof watchdog_hang_message,
              "\n%s: the test hung (no end after %u s)\n"
              "---- agentbrokerd log ----\n",
              program, seconds);
  watchdog_log_path = fx->log_path;
  watchdog_armed = TRUE;
  signal (SIGALRM, on_alarm);
  signal (SIGABRT, on_abort);
  alarm (seconds);
}

static void
print_log (AbDaemonFixture *fx)
{
  g_autofree char *log = NULL;

  if (g_file_get_contents (fx->log_path, &log, NULL, NULL))
    g_printerr ("---- agentbrokerd log ----\n%s---- end of log ----\n", log);
}

void
ab_daemon_fixture_teardown (AbDaemonFixture *fx)
{
  if (fx->daemon != NULL)
    ab_daemon_fixture_stop (fx, SIGTERM);
  if (g_test_failed ())
    print_log (fx);
  g_clear_object (&fx->connection);
  if (!g_test_failed () && fx->tmpdir != NULL)
    {
      g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", fx->tmpdir);
      g_assert_cmpint (system (cmd), ==, 0);
    }
  g_free (fx->tmpdir);
  g_free (fx->config_path);
  g_free (fx->state_dir);
  if (watchdog_armed)
    {
      alarm (0);
      signal (SIGALRM, SIG_DFL);
      signal (SIGABRT, SIG_DFL);
      watchdog_armed = FALSE;
    }
  watchdog_log_path = NULL;
  watchdog_daemon_pid = 0;
  g_free (fx->log_path);
  g_free (fx->caller_map);
  g_strfreev (fx->env);
}

GVariant *
ab_daemon_call (AbDaemonFixture *fx, const char *method, GVariant *params,
                const char *reply_type, GError **error)
{
  return g_dbus_connection_call_sync (
      fx->connection, BUS_NAME, BUS_PATH, "org.agentbroker.Broker1", method,
      params, reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL,
      G_DBUS_CALL_FLAGS_NONE, 60000, NULL, error);
}

GVariant *
ab_daemon_get_property (AbDaemonFixture *fx, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  GVariant *value = NULL;

  reply = g_dbus_connection_call_sync (
      fx->connection, BUS_NAME, BUS_PATH, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", "org.agentbroker.Broker1", name),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return value;
}

int
ab_run_agentctl (AbDaemonFixture *fx, char **out, char **err, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *stdout_buf = NULL, *stderr_buf = NULL;
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, ab_test_program ("agentctl"));
  g_ptr_array_add (argv, g_strdup ("--user"));
  va_start (ap, err);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  ab_subprocess_communicate_bounded (proc, &stdout_buf, &stderr_buf);
  if (out != NULL)
    *out = g_steal_pointer (&stdout_buf);
  if (err != NULL)
    *err = g_steal_pointer (&stderr_buf);
  return g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc)
                                           : -1;
}

gboolean
ab_broker_name_has_owner (GDBusConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
      "org.freedesktop.DBus", "NameHasOwner", g_variant_new ("(s)", BUS_NAME),
      G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL,
      &error);
  gboolean owned = FALSE;

  g_assert_no_error (error);
  g_variant_get (reply, "(b)", &owned);
  return owned;
}

GDBusConnection *
ab_second_connection (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *address
      = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  GDBusConnection *connection;

  g_assert_no_error (error);
  connection = g_dbus_connection_new_for_address_sync (
      address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
          | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, &error);
  g_assert_no_error (error);
  return connection;
}

GDBusConnection *
ab_user_connection (AbDaemonFixture *fx, uid_t uid)
{
  GDBusConnection *connection = ab_second_connection ();
  g_autofree char *line = g_strdup_printf (
      "%s %u user\n", g_dbus_connection_get_unique_name (connection),
      (guint)uid);
  FILE *map = fopen (fx->caller_map, "a");

  g_assert_nonnull (map);
  g_assert_cmpint (fputs (line, map), >=, 0);
  g_assert_cmpint (fclose (map), ==, 0);
  return connection;
}

/* ---- bounded waits ------------------------------------------------------ */

/* The source that wakes AB_WAIT_UNTIL() to re-check its condition. */
gboolean
ab_wait_tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

void
ab_drain_main_context (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
start_wait (gpointer proc, GAsyncReadyCallback callback, gpointer data)
{
  g_subprocess_wait_async (proc, NULL, callback, data);
}

gboolean
ab_subprocess_wait_bounded (GSubprocess *proc)
{
  g_autoptr (GAsyncResult) result
      = ab_run_bounded (proc, start_wait, AB_EXIT_TIMEOUT_MS);
  g_autoptr (GError) error = NULL;

  if (result == NULL)
    return FALSE;
  g_subprocess_wait_finish (proc, result, &error);
  g_assert_no_error (error);
  return TRUE;
}

static void
start_communicate (gpointer proc, GAsyncReadyCallback callback, gpointer data)
{
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, callback, data);
}

void
ab_subprocess_communicate_bounded (GSubprocess *proc, char **out, char **err)
{
  g_autoptr (GAsyncResult) result
      = ab_run_bounded (proc, start_communicate, AB_EXIT_TIMEOUT_MS);
  g_autoptr (GError) error = NULL;

  if (result == NULL)
    {
      g_subprocess_force_exit (proc);
      g_error ("%s did not end within %d ms",
               g_subprocess_get_identifier (proc) ?: "a child",
               AB_EXIT_TIMEOUT_MS);
    }
  g_subprocess_communicate_utf8_finish (proc, result, out, err, &error);
  g_assert_no_error (error);
}

/* ---- calls to the broker ------------------------------------------------ */

GVariant *
ab_call_on (GDBusConnection *connection, const char *method, GVariant *params,
            const char *reply_type, GError **error)
{
  return g_dbus_connection_call_sync (
      connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE, method, params,
      reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL,
      G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL, error);
}

void
ab_call_ok_on (GDBusConnection *connection, const char *method,
               GVariant *params)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = ab_call_on (connection, method, params, "()", &error);

  g_assert_no_error (error);
}

void
ab_call_ok (AbDaemonFixture *fx, const char *method, GVariant *params)
{
  ab_call_ok_on (fx->connection, method, params);
}

void
ab_sync_with_daemon (GDBusConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = ab_call_on (connection, "ListSessions", g_variant_new ("(a{sv})", NULL),
                    "(" AB_SESSION_LIST_TYPE ")", &error);

  g_assert_no_error (error);
  ab_drain_main_context ();
}

char *
ab_session_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (AB_SESSION_PREFIX, escaped, NULL);
}

GVariant *
ab_get_session (AbDaemonFixture *fx, const char *thread, GError **error)
{
  g_autoptr (GVariant) reply
      = ab_call_on (fx->connection, "GetSession", g_variant_new ("(s)", thread),
                    "(a{sv})", error);
  GVariant *dict = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(@a{sv})", &dict);
  return dict;
}

char *
ab_session_state (AbDaemonFixture *fx, const char *thread)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = ab_get_session (fx, thread, &error);
  const char *state = NULL;

  if (dict == NULL)
    return g_strdup (g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION)
                         ? "(none)"
                         : "(error)");
  if (!g_variant_lookup (dict, "state", "&s", &state))
    return g_strdup ("(no state key)");
  return g_strdup (state);
}

gboolean
ab_state_is (AbDaemonFixture *fx, const char *thread, const char *want)
{
  g_autofree char *state = ab_session_state (fx, thread);
  g_auto (GStrv) wanted = g_strsplit (want, "|", -1);

  return g_strv_contains ((const char *const *)wanted, state);
}

/* GetSession(thread), asserting that it succeeds and holds @key. */
static GVariant *
lookup_session_key (AbDaemonFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = ab_get_session (fx, thread, &error);
  GVariant *value;

  g_assert_no_error (error);
  value = g_variant_lookup_value (dict, key, NULL);
  g_assert_nonnull (value);
  return value;
}

char *
ab_session_s (AbDaemonFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GVariant) value = lookup_session_key (fx, thread, key);

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING));
  return g_variant_dup_string (value, NULL);
}

guint32
ab_session_u (AbDaemonFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GVariant) value = lookup_session_key (fx, thread, key);

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32));
  return g_variant_get_uint32 (value);
}

guint64
ab_session_t (AbDaemonFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GVariant) value = lookup_session_key (fx, thread, key);

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64));
  return g_variant_get_uint64 (value);
}

GVariant *
ab_list_sessions_with (AbDaemonFixture *fx, GVariant *options, GError **error)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) structs = NULL;
  g_autoptr (GPtrArray) dicts = NULL;

  if (options == NULL)
    options = g_variant_new ("a{sv}", NULL);
  reply = ab_call_on (fx->connection, "ListSessions",
                      g_variant_new_tuple (&options, 1),
                      "(" AB_SESSION_LIST_TYPE ")", error);
  if (reply == NULL)
    return NULL;
  structs = g_variant_get_child_value (reply, 0);
  dicts = ab_session_list_to_dicts (structs);
  return g_variant_ref_sink (g_variant_new_array (
      G_VARIANT_TYPE_VARDICT, (GVariant **)dicts->pdata, dicts->len));
}

GVariant *
ab_list_sessions (AbDaemonFixture *fx)
{
  g_autoptr (GError) error = NULL;
  GVariant *list = ab_list_sessions_with (fx, NULL, &error);

  g_assert_no_error (error);
  return list;
}

GDBusNodeInfo *
ab_introspect (GDBusConnection *connection, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  GDBusNodeInfo *node;
  const char *xml;

  reply = g_dbus_connection_call_sync (
      connection, AB_BUS_NAME, path, "org.freedesktop.DBus.Introspectable",
      "Introspect", NULL, G_VARIANT_TYPE ("(s)"), G_DBUS_CALL_FLAGS_NONE, 10000,
      NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &xml);
  node = g_dbus_node_info_new_for_xml (xml, &error);
  g_assert_no_error (error);
  return node;
}

guint32
ab_broker_u (AbDaemonFixture *fx, const char *name)
{
  g_autoptr (GVariant) value = ab_daemon_get_property (fx, name);

  return g_variant_get_uint32 (value);
}

void
ab_assert_error_named (const GError *error, int code, const char *name)
{
  g_autofree char *remote = NULL;

  g_assert_nonnull (error);
  remote = g_dbus_error_get_remote_error (error);
  if (!g_error_matches (error, AB_ERROR, code))
    g_test_message ("expected %s, got %s: %s", name, remote, error->message);
  g_assert_error (error, AB_ERROR, code);
  g_assert_cmpstr (remote, ==, name);
}

gboolean
ab_process_gone (pid_t pid)
{
  g_autofree char *stat_path = g_strdup_printf ("/proc/%d/stat", (int)pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (kill (pid, 0) == -1 && errno == ESRCH)
    return TRUE;
  if (!g_file_get_contents (stat_path, &stat, NULL, NULL))
    return TRUE;
  paren = strrchr (stat, ')');
  return paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
}

char *
ab_gate_path (AbDaemonFixture *fx, const char *name)
{
  g_autofree char *base = g_strconcat ("gate-", name, NULL);

  return g_build_filename (fx->tmpdir, base, NULL);
}

char *
ab_gate_prompt (AbDaemonFixture *fx, const char *name)
{
  g_autofree char *path = ab_gate_path (fx, name);

  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  return g_strconcat ("gate ", path, NULL);
}

void
ab_gate_open (AbDaemonFixture *fx, const char *name)
{
  g_autofree char *path = ab_gate_path (fx, name);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, "", 0, &error);
  g_assert_no_error (error);
}
