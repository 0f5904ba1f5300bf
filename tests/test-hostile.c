/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — hostile input on a private bus
 *
 * Calls a careless or malicious D-Bus client (or agent, or state
 * directory) could make: wrong argument types, 10 MB strings, 10,000
 * watches from one connection, a prompting connection that vanishes
 * mid-turn, RemoveSession racing Prompt, invalid UTF-8 on the wire,
 * options of the wrong type, unknown permission ids, thread ids with path
 * tricks, an agent whose JSON decodes to invalid UTF-8, and session
 * records crafted to crash the loader.  After every test the daemon must
 * still answer, have no agent process left once its sessions are removed,
 * and hold exactly the file descriptors it held before the test.
 *
 * The limits on input (agentbrokerd(8), org.agentbroker.Broker1(5)) are checked
 * here where no other test does: sessions per owner, agent stderr rate, record
 * size, the size of AnswerPermission ids and of the agent option, the
 * permission requests pending at once.  An agent that never reads its
 * input cannot make the daemon's memory grow.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"
#include "session.h"

#define TEST_ALARM_SECONDS 240
#define HUGE_BYTES (10 * 1024 * 1024)
/* An error message never quotes a huge argument back. */
#define MAX_ERROR_MESSAGE 4096
/* How far the daemon's peak RSS may rise above its RSS before a hostile
 * agent's flood (the unbounded daemon grew by 150 MB and more). */
#define FLOOD_RSS_BOUND_KIB (32 * 1024)
/* Permission requests of 4 KiB that one "permissions: ask" turn sends. */
#define PERMISSION_FLOOD 8000
/* Requests of an agent that never reads its answers: their answers would
 * come to tens of megabytes, many times the read pause. */
#define DEAF_FLOOD 400000

typedef struct
{
  AbDaemonFixture d;
  char *mark; /* in every agent's environment, to find its processes */
  guint base_fds;
} Fixture;

/* ---- the daemon's processes and descriptors ----------------------------- */

static pid_t
daemon_pid (Fixture *fx)
{
  return (pid_t)atoi (g_subprocess_get_identifier (fx->d.daemon));
}

static guint
count_fds (pid_t pid)
{
  g_autofree char *dir_path = g_strdup_printf ("/proc/%d/fd", (int)pid);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static void
print_fds (pid_t pid)
{
  g_autofree char *dir_path = g_strdup_printf ("/proc/%d/fd", (int)pid);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *link = g_build_filename (dir_path, name, NULL);
      g_autofree char *target = g_file_read_link (link, NULL);

      g_test_message ("fd %s -> %s", name, target != NULL ? target : "?");
    }
}

/* Processes (agents and anything they started) whose environment holds
 * this test's mark. */
static guint
count_marked (Fixture *fx)
{
  g_autoptr (GDir) proc = g_dir_open ("/proc", 0, NULL);
  g_autofree char *needle = g_strdup_printf ("AB_HOSTILE_MARK=%s", fx->mark);
  gsize needle_len = strlen (needle);
  const char *name;
  guint n = 0;

  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *env = NULL;
      gsize len = 0;

      if (!g_ascii_isdigit (name[0]))
        continue;
      path = g_strdup_printf ("/proc/%s/environ", name);
      if (!g_file_get_contents (path, &env, &len, NULL))
        continue; /* gone meanwhile */
      for (gsize i = 0; i + needle_len <= len;)
        {
          if (memcmp (env + i, needle, needle_len) == 0
              && (i + needle_len == len || env[i + needle_len] == '\0'))
            {
              n++;
              break;
            }
          i += strnlen (env + i, len - i) + 1;
        }
    }
  return n;
}

/* The daemon closes an agent's pipes when it has read their end and
 * reaped it, a moment after the process is gone: wait until the count
 * holds still for 300 ms. */
static guint
stable_fd_count (pid_t pid)
{
  guint last = count_fds (pid), same = 0;

  for (guint i = 0; i < 200 && same < 3; i++)
    {
      guint now;

      g_usleep (100000);
      while (g_main_context_iteration (NULL, FALSE))
        ;
      now = count_fds (pid);
      same = now == last ? same + 1 : 0;
      last = now;
    }
  return last;
}

/* The "@field:" line of /proc/@pid/status, in KiB, or 0. */
static gsize
status_kib (pid_t pid, const char *field)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int)pid);
  g_autofree char *status = NULL;
  g_autofree char *name = g_strconcat (field, ":", NULL);
  const char *line;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    return 0;
  line = strstr (status, name);
  return line != NULL ? (gsize)g_ascii_strtoull (line + strlen (name), NULL, 10)
                      : 0;
}

static gsize
rss_kib (pid_t pid)
{
  return status_kib (pid, "VmRSS");
}

/* The peak resident set size of @pid so far, in KiB. */
static gsize
peak_rss_kib (pid_t pid)
{
  return status_kib (pid, "VmHWM");
}

/* AddressSanitizer keeps freed memory in quarantine (256 MiB by
 * default) and adds its shadow: under it the daemon's RSS says nothing
 * about what the daemon holds. */
#if defined(__SANITIZE_ADDRESS__)
#define AB_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AB_UNDER_ASAN 1
#endif
#endif

/* The peak RSS of the daemon stayed within FLOOD_RSS_BOUND_KIB of @base. */
static void
assert_rss_bounded (Fixture *fx, gsize base)
{
  gsize peak = peak_rss_kib (daemon_pid (fx));

  g_test_message ("daemon RSS %" G_GSIZE_FORMAT
                  " KiB before, peak %" G_GSIZE_FORMAT " KiB",
                  base, peak);
  g_assert_cmpuint (peak, >, 0);
#ifdef AB_UNDER_ASAN
  g_test_message ("built with AddressSanitizer: the RSS bound is checked "
                  "by the plain build only");
#else
  g_assert_cmpuint (peak, <=, base + FLOOD_RSS_BOUND_KIB);
#endif
}

/* ---- calls -------------------------------------------------------------- */

/* The call fails with @code of AB_ERROR, and its message is short. */
static void
call_refused (Fixture *fx, const char *method, GVariant *params, int code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = ab_call_on (fx->d.connection, method, params, NULL, &error);

  g_assert_null (reply);
  g_assert_error (error, AB_ERROR, code);
  g_assert_cmpuint (strlen (error->message), <, MAX_ERROR_MESSAGE);
}

/* The session's last turn ended with @reason and @state holds. */
static gboolean
last_turn_ended (Fixture *fx, const char *thread, guint64 turn,
                 const char *reason)
{
  g_autoptr (GVariant) dict = ab_get_session (&fx->d, thread, NULL);
  guint64 last = 0;
  const char *last_reason = NULL;

  if (dict == NULL || !g_variant_lookup (dict, "last_turn", "t", &last)
      || !g_variant_lookup (dict, "last_reason", "&s", &last_reason))
    return FALSE;
  return last == turn && g_strcmp0 (last_reason, reason) == 0;
}

static void
wait_last_turn (Fixture *fx, const char *thread, guint64 turn,
                const char *reason)
{
  if (!AB_WAIT_UNTIL (last_turn_ended (fx, thread, turn, reason), 30000))
    {
      g_test_message ("turn %" G_GUINT64_FORMAT " of %s did not end with %s",
                      turn, thread, reason);
      g_assert_not_reached ();
    }
}

static gboolean
no_session (Fixture *fx, const char *thread)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = ab_get_session (&fx->d, thread, &error);

  return dict == NULL
         && g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION);
}

static void
assert_alive (Fixture *fx)
{
  g_autoptr (GVariant) state = ab_daemon_get_property (&fx->d, "State");

  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
}

/* The daemon's log, in @log, contains @text. */
static gboolean
log_has (Fixture *fx, const char *text, char **log)
{
  g_clear_pointer (log, g_free);
  return g_file_get_contents (fx->d.log_path, log, NULL, NULL)
         && strstr (*log, text) != NULL;
}

/* ---- fixture ------------------------------------------------------------ */

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->mark = g_path_get_basename (fx->d.tmpdir);
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
}

/* Starts the daemon with the demo agent (marked) plus @agents and @pool
 * lines, then runs one session through its whole life so that whatever
 * the first agent opens for good (a child watch, the worker thread's
 * wakeup fd) is in the baseline of descriptors. */
static void
start_daemon (Fixture *fx, const char *agents, const char *pool)
{
  g_autoptr (GString) yaml = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  guint64 turn;

  g_string_append_printf (yaml,
                          "default_agent: demo\n"
                          "agents:\n"
                          "  demo:\n"
                          "    command: [agentbroker-demo-agent]\n"
                          "    env: {AB_HOSTILE_MARK: %s}\n",
                          fx->mark);
  if (agents != NULL)
    g_string_append (yaml, agents);
  if (pool != NULL)
    g_string_append_printf (yaml, "pool:\n%s", pool);
  g_string_append (yaml, "timeouts:\n  drain: 2s\n  kill: 2s\n");
  ab_daemon_fixture_write_config (&fx->d, yaml->str);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);

  turn = ab_prompt (fx->d.connection, NULL, "warm:up", "echo warm");
  wait_last_turn (fx, "warm:up", turn, "end_turn");
  ab_call_ok (&fx->d, "RemoveSession", g_variant_new ("(s)", "warm:up"));
  g_assert_true (AB_WAIT_UNTIL (count_marked (fx) == 0, 10000));
  fx->base_fds = stable_fd_count (daemon_pid (fx));
  g_test_message ("daemon pid %d holds %u fds", (int)daemon_pid (fx),
                  fx->base_fds);
}

static void
remove_all_sessions (Fixture *fx)
{
  g_autoptr (GVariant) list = ab_list_sessions (&fx->d);
  GVariantIter iter;
  GVariant *dict;

  g_variant_iter_init (&iter, list);
  while ((dict = g_variant_iter_next_value (&iter)) != NULL)
    {
      const char *thread = NULL;
      g_autoptr (GError) remove_error = NULL;
      g_autoptr (GVariant) removed = NULL;

      g_variant_lookup (dict, "thread", "&s", &thread);
      removed = ab_call_on (fx->d.connection, "RemoveSession",
                            g_variant_new ("(s)", thread), NULL, &remove_error);
      if (remove_error != NULL
          && !g_error_matches (remove_error, AB_ERROR,
                               AB_ERROR_NO_SUCH_SESSION))
        g_assert_no_error (remove_error);
      g_variant_unref (dict);
    }
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  if (fx->d.daemon != NULL && !g_test_failed ())
    {
      pid_t pid = daemon_pid (fx);

      /* Alive, and once every session is gone: no agent left, and the
       * descriptors it had before the test (closing is asynchronous:
       * the pipes of an agent go when its process is reaped). */
      assert_alive (fx);
      /* no GLib criticals on the way (an invalid GVariant, say) */
      {
        g_autofree char *log = NULL;

        if (log_has (fx, "-CRITICAL **", &log))
          {
            g_test_message ("the daemon logged a critical warning");
            g_test_fail ();
          }
      }
      remove_all_sessions (fx);
      if (!AB_WAIT_UNTIL (count_marked (fx) == 0, 10000))
        {
          g_test_message ("%u agent processes left", count_marked (fx));
          g_test_fail ();
        }
      if (!AB_WAIT_UNTIL (count_fds (pid) == fx->base_fds, 5000))
        {
          g_test_message ("the daemon holds %u fds, %u before the test",
                          count_fds (pid), fx->base_fds);
          print_fds (pid);
          g_test_fail ();
        }
      g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
    }
  ab_daemon_fixture_teardown (&fx->d);
  g_free (fx->mark);
}

/* ---- wrong argument types ----------------------------------------------- */

static void
test_wrong_types (Fixture *fx, gconstpointer data)
{
  struct
  {
    const char *method;
    const char *params; /* GVariant text, or NULL for no arguments */
  } cases[] = {
    { "Prompt", "(5,)" },
    { "Prompt", "('t:1', 'echo', @a{sv} {}, 3)" },
    { "Prompt", "('t:1', 'echo')" },
    { "Prompt", NULL },
    { "Prompt", "('t:1', 'echo', 'agent')" },
    { "Prompt", "('t:1', 'echo', {'agent': 5})" }, /* a{si}, not a{sv} */
    { "GetSession", "(uint32 1,)" },
    { "Watch", "(objectpath '/x',)" },
    { "AnswerPermission", "('a', 'b')" },
    { "Drain", "('10',)" },
    { "Drain", "(int64 10,)" },
    { "Reload", "('x',)" },
    { "RemoveSession", "(['t:1'],)" },
    { "NoSuchMethod", NULL },
  };

  start_daemon (fx, NULL, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GVariant) reply = NULL;
      GVariant *params = NULL;

      if (cases[i].params != NULL)
        {
          params = g_variant_parse (NULL, cases[i].params, NULL, NULL, &error);
          g_assert_no_error (error);
        }
      reply = g_dbus_connection_call_sync (
          fx->d.connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE,
          cases[i].method, params, NULL, G_DBUS_CALL_FLAGS_NONE,
          AB_CALL_TIMEOUT_MS, NULL, &error);
      g_test_message ("%s%s: %s", cases[i].method,
                      cases[i].params != NULL ? cases[i].params : "()",
                      error != NULL ? error->message : "accepted");
      g_assert_null (reply);
      g_assert_true (
          g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS)
          || g_error_matches (error, G_DBUS_ERROR,
                              G_DBUS_ERROR_UNKNOWN_METHOD));
      assert_alive (fx);
    }

  /* read-only properties, and a Set of the wrong type */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
        fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
        "org.freedesktop.DBus.Properties", "Set",
        g_variant_new ("(ssv)", AB_BROKER_IFACE, "Accepting",
                       g_variant_new_int32 (0)),
        NULL, G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL, &error);

    g_assert_null (reply);
    g_assert_nonnull (error);
  }
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
        fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
        "org.freedesktop.DBus.Properties", "Set",
        g_variant_new ("(ssv)", AB_BROKER_IFACE, "State",
                       g_variant_new_string ("stopping")),
        NULL, G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL, &error);

    g_assert_null (reply);
    g_assert_nonnull (error);
  }
  /* a broker method on a session's path */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
        fx->d.connection, AB_BUS_NAME, AB_BUS_PATH "/session/x",
        AB_BROKER_IFACE, "Prompt",
        g_variant_new ("(ssa{sv})", "x", "echo", NULL), NULL,
        G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL, &error);

    g_assert_null (reply);
    g_assert_nonnull (error);
  }
  g_assert_true (no_session (fx, "t:1"));
}

/* ---- huge strings ------------------------------------------------------- */

static void
test_huge_strings (Fixture *fx, gconstpointer data)
{
  g_autofree char *huge = g_strnfill (HUGE_BYTES, 'a');
  GVariantBuilder options;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  call_refused (fx, "Prompt", g_variant_new ("(ssa{sv})", huge, "echo", NULL),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "Prompt", g_variant_new ("(ssa{sv})", "huge:1", huge, NULL),
                AB_ERROR_INVALID_ARGUMENT);
  g_assert_true (no_session (fx, "huge:1"));
  call_refused (fx, "GetSession", g_variant_new ("(s)", huge),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "Watch", g_variant_new ("(s)", huge),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "Unwatch", g_variant_new ("(s)", huge),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "Cancel", g_variant_new ("(s)", huge),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "RemoveSession", g_variant_new ("(s)", huge),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", huge, "1", "allow"),
                AB_ERROR_INVALID_ARGUMENT);

  /* the agent option, and permission ids, of an existing session */
  g_variant_builder_init (&options, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&options, "{sv}", "agent",
                         g_variant_new_string (huge));
  call_refused (fx, "Prompt",
                g_variant_new ("(ssa{sv})", "huge:2", "echo", &options),
                AB_ERROR_INVALID_ARGUMENT);
  g_assert_true (no_session (fx, "huge:2"));
  turn = ab_prompt (fx->d.connection, NULL, "huge:2", "echo hi");
  wait_last_turn (fx, "huge:2", turn, "end_turn");
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "huge:2", huge, "allow"),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "huge:2", "1", huge),
                AB_ERROR_INVALID_ARGUMENT);
  assert_alive (fx);
}

/* ---- 10,000 watches ----------------------------------------------------- */

/* dbus-daemon allows a connection 128 calls awaiting a reply by default
 * (max_replies_per_connection): the flood keeps 100 in flight. */
#define FLOOD_WINDOW 100

typedef struct
{
  GDBusConnection *connection;
  guint next, n;
  guint done, ok, refused, other;
} WatchTally;

static void flood_next (WatchTally *tally);

static void
on_watch_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  WatchTally *tally = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);

  tally->done++;
  if (reply != NULL)
    tally->ok++;
  else if (g_error_matches (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT)
           && strstr (error->message, "at most 1024") != NULL)
    tally->refused++;
  else
    {
      if (tally->other++ == 0)
        g_test_message ("unexpected Watch reply: %s", error->message);
    }
  flood_next (tally);
}

static void
flood_next (WatchTally *tally)
{
  g_autofree char *thread = NULL;

  if (tally->next >= tally->n)
    return;
  thread = g_strdup_printf ("w:%u", tally->next++);
  g_dbus_connection_call (
      tally->connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE, "Watch",
      g_variant_new ("(s)", thread), NULL, G_DBUS_CALL_FLAGS_NONE,
      AB_CALL_TIMEOUT_MS, NULL, on_watch_reply, tally);
}

static GDBusConnection *
private_connection (void)
{
  g_autoptr (GError) error = NULL;
  GDBusConnection *connection = g_dbus_connection_new_for_address_sync (
      g_getenv ("DBUS_SESSION_BUS_ADDRESS"),
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
          | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, &error);

  g_assert_no_error (error);
  return connection;
}

static void
test_watch_flood (Fixture *fx, gconstpointer data)
{
  g_autoptr (GDBusConnection) flooder = private_connection ();
  WatchTally tally = { 0 };
  const guint n = 10000;
  pid_t pid;
  gsize rss_before, rss_after;

  start_daemon (fx, NULL, NULL);
  pid = daemon_pid (fx);
  rss_before = rss_kib (pid);
  tally.connection = flooder;
  tally.n = n;
  for (guint i = 0; i < FLOOD_WINDOW; i++)
    flood_next (&tally);
  g_assert_true (AB_WAIT_UNTIL (tally.done == n, 180000));
  rss_after = rss_kib (pid);
  g_test_message ("%u watches: %u accepted, %u refused; daemon RSS %zu -> "
                  "%zu KiB",
                  n, tally.ok, tally.refused, rss_before, rss_after);
  g_assert_cmpuint (tally.other, ==, 0);
  g_assert_cmpuint (tally.ok, ==, 1024);
  g_assert_cmpuint (tally.refused, ==, n - 1024);
  /* Bounded: 1024 short strings; the slack covers allocator caches, not
   * 10,000 entries kept. AddressSanitizer keeps up to 256 MiB of freed
   * memory in quarantine. */
  g_assert_cmpuint (
      rss_after, <,
      rss_before + (g_getenv ("ASAN_OPTIONS") != NULL ? 512 : 64) * 1024);

  /* A thread already watched may be watched again; another connection
   * has its own 1024. */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GVariant) again = ab_call_on (
        flooder, "Watch", g_variant_new ("(s)", "w:5"), NULL, &error);

    g_assert_no_error (error);
  }
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", "w:9999"));
  ab_call_ok (&fx->d, "Unwatch", g_variant_new ("(s)", "w:9999"));

  /* The flooder goes away with its watches. */
  g_dbus_connection_close_sync (flooder, NULL, NULL);
  assert_alive (fx);
}

/* ---- a prompter that vanishes mid-turn ---------------------------------- */

static void
test_vanishing_prompter (Fixture *fx, gconstpointer data)
{
  g_autoptr (GDBusConnection) prompter = private_connection ();
  g_autoptr (GDBusConnection) watcher = private_connection ();
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  reply = ab_call_on (watcher, "Watch", g_variant_new ("(s)", "vanish:1"), NULL,
                      &error);
  g_assert_no_error (error);
  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_call_on (prompter, "Prompt",
                      g_variant_new ("(ssa{sv})", "vanish:1", "sleep 2", NULL),
                      "(t)", &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(t)", &turn);

  /* Both leave while the agent streams; the turn still completes. */
  g_dbus_connection_close_sync (prompter, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_close_sync (watcher, NULL, &error);
  g_assert_no_error (error);
  wait_last_turn (fx, "vanish:1", turn, "end_turn");

  /* and the session serves the next prompter */
  turn = ab_prompt (fx->d.connection, NULL, "vanish:1", "echo again");
  wait_last_turn (fx, "vanish:1", turn, "end_turn");
  assert_alive (fx);
}

/* ---- callers that leave before their answer ----------------------------- */

/* The daemon remembers each caller's uid until the caller's name goes.
 * Connections that call and leave at once, some before the bus has told
 * the daemon who they were, leave nothing behind that breaks the next
 * caller; the prompts among them that were accepted still run. */
static void
test_vanishing_callers (Fixture *fx, gconstpointer data)
{
  const char *thread = "vanish:callers";
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  for (guint i = 0; i < 300; i++)
    {
      g_autoptr (GDBusConnection) caller = private_connection ();
      g_autoptr (GError) error = NULL;

      if (i % 30 == 0)
        g_dbus_connection_call (
            caller, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE, "Prompt",
            g_variant_new ("(ssa{sv})", thread, "echo from a leaver", NULL),
            NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
      else
        g_dbus_connection_call (
            caller, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE,
            i % 2 ? "ListSessions" : "GetSession",
            i % 2 ? g_variant_new ("(a{sv})", NULL)
                  : g_variant_new ("(s)", thread),
            NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
      g_dbus_connection_flush_sync (caller, NULL, &error);
      g_assert_no_error (error);
      g_dbus_connection_close_sync (caller, NULL, &error);
      g_assert_no_error (error);
    }

  /* A caller after them is answered, and its turn follows theirs. */
  turn = ab_prompt (fx->d.connection, NULL, thread, "echo after them");
  g_assert_cmpuint (turn, >=, 1);
  g_assert_cmpuint (turn, <=, 11);
  wait_last_turn (fx, thread, turn, "end_turn");
  assert_alive (fx);
}

/* ---- RemoveSession racing Prompt ---------------------------------------- */

typedef struct
{
  guint done, failed;
} RaceTally;

static void
on_race_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RaceTally *tally = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);

  tally->done++;
  /* Either call may lose the race, with an error of the broker's own
   * (NoSuchSession, Busy, ...), never a dropped call. */
  if (reply == NULL && error->domain != AB_ERROR)
    {
      g_test_message ("race: %s", error->message);
      tally->failed++;
    }
}

static void
race_call (Fixture *fx, const char *method, GVariant *params, RaceTally *tally)
{
  g_dbus_connection_call (fx->d.connection, AB_BUS_NAME, AB_BUS_PATH,
                          AB_BROKER_IFACE, method, params, NULL,
                          G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS, NULL,
                          on_race_reply, tally);
}

static void
test_remove_race (Fixture *fx, gconstpointer data)
{
  static const char *const texts[] = { "echo race", "stream 20", "sleep 1" };
  RaceTally tally = { 0 };
  const guint rounds = 50;

  start_daemon (fx, NULL, NULL);
  for (guint i = 0; i < rounds; i++)
    {
      GVariant *prompt_args
          = g_variant_new ("(ssa{sv})", "race:1", texts[i % 3], NULL);
      GVariant *remove_args = g_variant_new ("(s)", "race:1");

      if (i % 2 == 0)
        {
          race_call (fx, "Prompt", prompt_args, &tally);
          race_call (fx, "RemoveSession", remove_args, &tally);
        }
      else
        {
          race_call (fx, "RemoveSession", remove_args, &tally);
          race_call (fx, "Prompt", prompt_args, &tally);
        }
      /* every few rounds, let both finish before the next pair */
      if (i % 5 == 4)
        g_assert_true (AB_WAIT_UNTIL (tally.done == 2 * (i + 1), 60000));
    }
  g_assert_true (AB_WAIT_UNTIL (tally.done == 2 * rounds, 60000));
  g_assert_cmpuint (tally.failed, ==, 0);
  assert_alive (fx);

  /* whatever state the race left, the thread still works */
  {
    guint64 turn = ab_prompt (fx->d.connection, NULL, "race:1", "echo after");

    wait_last_turn (fx, "race:1", turn, "end_turn");
  }
}

/* ---- invalid UTF-8 on the wire ------------------------------------------ */

/* Sends @message's serialisation over @stream, with @placeholder (once in
 * it) replaced by bytes that are not UTF-8. */
static void
send_corrupted (GIOStream *stream, GDBusMessage *message,
                const char *placeholder)
{
  g_autoptr (GError) error = NULL;
  g_autofree guchar *blob = NULL;
  gsize size = 0;
  static const guchar bad[] = { 0xff, 0xfe, 0xc0, 0x80 };

  blob = g_dbus_message_to_blob (message, &size, G_DBUS_CAPABILITY_FLAGS_NONE,
                                 &error);
  g_assert_no_error (error);
  if (placeholder != NULL)
    {
      gsize plen = strlen (placeholder);

      g_assert_cmpuint (plen, ==, sizeof bad);
      for (gsize i = 0; i + plen <= size; i++)
        if (memcmp (blob + i, placeholder, plen) == 0)
          {
            memcpy (blob + i, bad, sizeof bad);
            break;
          }
    }
  g_output_stream_write_all (g_io_stream_get_output_stream (stream), blob, size,
                             NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_invalid_utf8 (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GIOStream) stream = NULL;
  g_autoptr (GDBusMessage) hello = NULL;
  g_autoptr (GDBusMessage) bad = NULL;
  g_autofree char *uid = g_strdup_printf ("%u", (guint)getuid ());
  g_autoptr (GString) auth = g_string_new (NULL);
  GSocket *socket;
  char buf[4096];
  gssize n;
  gboolean closed = FALSE;

  start_daemon (fx, NULL, NULL);
  /* A raw connection: GDBus itself never sends invalid UTF-8. */
  stream = g_dbus_address_get_stream_sync (
      g_getenv ("DBUS_SESSION_BUS_ADDRESS"), NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_SOCKET_CONNECTION (stream));
  socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  g_socket_set_timeout (socket, 10);

  g_string_append_c (auth, '\0');
  g_string_append (auth, "AUTH EXTERNAL ");
  for (const char *p = uid; *p != '\0'; p++)
    g_string_append_printf (auth, "%02x", (guint)(guchar)*p);
  g_string_append (auth, "\r\n");
  g_socket_send (socket, auth->str, auth->len, NULL, &error);
  g_assert_no_error (error);
  n = g_socket_receive (socket, buf, sizeof buf - 1, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, >, 2);
  g_assert_true (g_str_has_prefix (buf, "OK "));
  g_socket_send (socket, "BEGIN\r\n", 7, NULL, &error);
  g_assert_no_error (error);

  hello = g_dbus_message_new_method_call ("org.freedesktop.DBus",
                                          "/org/freedesktop/DBus",
                                          "org.freedesktop.DBus", "Hello");
  g_dbus_message_set_serial (hello, 1);
  send_corrupted (stream, hello, NULL);
  bad = g_dbus_message_new_method_call (AB_BUS_NAME, AB_BUS_PATH,
                                        AB_BROKER_IFACE, "Prompt");
  g_dbus_message_set_body (
      bad, g_variant_new ("(ssa{sv})", "utf8:1", "text QQQQ", NULL));
  g_dbus_message_set_serial (bad, 2);
  send_corrupted (stream, bad, "QQQQ");

  /* The bus drops a connection that sends an invalid message. */
  while (!closed)
    {
      g_autoptr (GError) read_error = NULL;

      n = g_socket_receive (socket, buf, sizeof buf, NULL, &read_error);
      if (n == 0
          || g_error_matches (read_error, G_IO_ERROR,
                              G_IO_ERROR_CONNECTION_CLOSED))
        closed = TRUE;
      else if (n < 0)
        {
          g_test_message ("reading the raw connection: %s",
                          read_error->message);
          g_assert_not_reached ();
        }
    }
  g_assert_true (no_session (fx, "utf8:1"));
  assert_alive (fx);
}

/* ---- options of the wrong type ------------------------------------------ */

static void
test_option_types (Fixture *fx, gconstpointer data)
{
  const char *bad[] = {
    "{'agent': <5>}",
    "{'agent': <['demo']>}",
    "{'agent': <<'demo'>>}",
    "{'agent': <objectpath '/demo'>}",
    "{'agent': <'no-such-agent'>}",
    "{'agent': <''>}",
  };
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      GVariant *options = g_variant_parse (G_VARIANT_TYPE ("a{sv}"), bad[i],
                                           NULL, NULL, &error);

      g_assert_no_error (error);
      call_refused (fx, "Prompt",
                    g_variant_new ("(ss@a{sv})", "opt:1", "echo", options),
                    AB_ERROR_INVALID_ARGUMENT);
      g_assert_true (no_session (fx, "opt:1"));
    }

  /* unknown options are ignored (room for later ones) */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GVariant) reply = NULL;
    GVariant *options = g_variant_parse (G_VARIANT_TYPE ("a{sv}"),
                                         "{'colour': <5>, 'agent': <'demo'>}",
                                         NULL, NULL, &error);

    g_assert_no_error (error);
    reply = ab_call_on (fx->d.connection, "Prompt",
                        g_variant_new ("(ss@a{sv})", "opt:1", "echo", options),
                        "(t)", &error);
    g_assert_no_error (error);
    g_variant_get (reply, "(t)", &turn);
    wait_last_turn (fx, "opt:1", turn, "end_turn");
  }
}

/* ---- AnswerPermission with unknown ids ---------------------------------- */

static void
test_unknown_permission (Fixture *fx, gconstpointer data)
{
  g_autofree char *long_id = g_strnfill (1025, '7');
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:none", "1", "allow"),
                AB_ERROR_NO_SUCH_SESSION);
  turn = ab_prompt (fx->d.connection, NULL, "perm:1", "echo hi");
  wait_last_turn (fx, "perm:1", turn, "end_turn");
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:1", "1", "allow"),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:1", "", ""),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:1", "99999999999999999999", "x"),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:1", long_id, "allow"),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "perm:1", "1", long_id),
                AB_ERROR_INVALID_ARGUMENT);
  call_refused (fx, "AnswerPermission",
                g_variant_new ("(sss)", "../perm", "1", "allow"),
                AB_ERROR_INVALID_ARGUMENT);
}

/* ---- Watch("*") ---------------------------------------------------------- */

/* On the session bus the user is admin of their own broker
 * (org.agentbroker.Broker1(5)), so Watch("*") is allowed here; its refusal to a
 * non-admin needs a second user on the system bus:
 * tests/systemd/scenario-access.sh. */
static void
test_watch_all (Fixture *fx, gconstpointer data)
{
  start_daemon (fx, NULL, NULL);
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", "*"));
  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", "*"));
  ab_call_ok (&fx->d, "Unwatch", g_variant_new ("(s)", "*"));
  ab_call_ok (&fx->d, "Unwatch", g_variant_new ("(s)", "*"));
  call_refused (fx, "Watch", g_variant_new ("(s)", "**"),
                AB_ERROR_INVALID_ARGUMENT);
}

/* ---- thread ids with path tricks ---------------------------------------- */

static guint
count_entries (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (d != NULL && g_dir_read_name (d) != NULL)
    n++;
  return n;
}

static void
test_thread_tricks (Fixture *fx, gconstpointer data)
{
  g_autofree char *too_long = g_strnfill (201, 'a');
  const char *refused[] = {
    "../x", "a/../b", "a/..",     "..",          "/abs",  ".hid",  "a\\b",
    "a b",  "a\nb",   "%2e%2e/x", "a/b/../../c", "~root", "$(id)", "a;rm",
    "é",    "a\tb",   "",         too_long,
  };
  const char *accepted[] = { "a/b..c/d", "x/.y", "a//b", "a/./b", "a/b/" };
  g_autofree char *work = g_build_filename (fx->d.state_dir, "work", NULL);
  g_autoptr (GHashTable) cwds
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint entries_before;

  start_daemon (fx, NULL, NULL);
  entries_before = count_entries (fx->d.tmpdir);
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      call_refused (fx, "Prompt",
                    g_variant_new ("(ssa{sv})", refused[i], "echo", NULL),
                    AB_ERROR_INVALID_ARGUMENT);
      call_refused (fx, "GetSession", g_variant_new ("(s)", refused[i]),
                    AB_ERROR_INVALID_ARGUMENT);
      call_refused (fx, "Watch", g_variant_new ("(s)", refused[i]),
                    AB_ERROR_INVALID_ARGUMENT);
    }
  /* nothing was created next to the state directory */
  g_assert_cmpuint (count_entries (fx->d.tmpdir), ==, entries_before);

  for (gsize i = 0; i < G_N_ELEMENTS (accepted); i++)
    {
      guint64 turn = ab_prompt (fx->d.connection, NULL, accepted[i], "echo");
      g_autoptr (GVariant) dict = NULL;
      g_autofree char *parent = NULL;
      const char *cwd = NULL;

      wait_last_turn (fx, accepted[i], turn, "end_turn");
      dict = ab_get_session (&fx->d, accepted[i], NULL);
      g_assert_nonnull (dict);
      g_assert_true (g_variant_lookup (dict, "cwd", "&s", &cwd));
      /* one directory per thread, right under work/ */
      parent = g_path_get_dirname (cwd);
      g_assert_cmpstr (parent, ==, work);
      g_hash_table_add (cwds, g_strdup (cwd));
    }
  g_assert_cmpuint (g_hash_table_size (cwds), ==, G_N_ELEMENTS (accepted));
}

/* ---- limits: sessions per owner, agent stderr --------------------------- */

static void
test_sessions_per_user (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  guint64 turn;

  start_daemon (fx, NULL, "  max_sessions_per_user: 2\n");
  turn = ab_prompt (fx->d.connection, NULL, "u:1", "echo");
  wait_last_turn (fx, "u:1", turn, "end_turn");
  turn = ab_prompt (fx->d.connection, NULL, "u:2", "echo");
  wait_last_turn (fx, "u:2", turn, "end_turn");
  reply = ab_call_on (fx->d.connection, "Prompt",
                      g_variant_new ("(ssa{sv})", "u:3", "echo", NULL), "(t)",
                      &error);
  g_assert_error (error, AB_ERROR, AB_ERROR_POOL_EXHAUSTED);
  g_assert_nonnull (strstr (error->message, "max_sessions_per_user"));
  g_assert_true (no_session (fx, "u:3"));

  /* the owner's existing sessions still take prompts */
  turn = ab_prompt (fx->d.connection, NULL, "u:1", "echo");
  wait_last_turn (fx, "u:1", turn, "end_turn");
  ab_call_ok (&fx->d, "RemoveSession", g_variant_new ("(s)", "u:1"));
  turn = ab_prompt (fx->d.connection, NULL, "u:3", "echo");
  wait_last_turn (fx, "u:3", turn, "end_turn");
}

static void
test_stderr_rate (Fixture *fx, gconstpointer data)
{
  g_autofree char *log = NULL;
  guint lines = 0;
  guint64 turn;

  start_daemon (fx, NULL, NULL);
  turn = ab_prompt (fx->d.connection, NULL, "noisy:1", "stderr 2000");
  wait_last_turn (fx, "noisy:1", turn, "end_turn");
  /* the count of suppressed lines is logged when the agent goes */
  ab_call_ok (&fx->d, "RemoveSession", g_variant_new ("(s)", "noisy:1"));
  g_assert_true (AB_WAIT_UNTIL (log_has (fx, "suppressed ", &log), 10000));
  for (const char *p = log; (p = strstr (p, "agent noisy:1[")) != NULL; p++)
    lines++;
  g_test_message ("%u of 2000+ agent stderr lines logged", lines);
  g_assert_cmpuint (lines, <=, 201); /* 200 per window + the summary */
  g_assert_nonnull (strstr (log, "suppressed "));
}

/* ---- agents that flood the daemon with requests ------------------------- */

/* Under "permissions: ask", an agent asking thousands of questions at once
 * gets AB_SESSION_MAX_PENDING_PERMISSIONS of them to the prompter; the
 * rest are denied at once, and the session goes on. */
static void
test_permission_flood (Fixture *fx, gconstpointer data)
{
  const char *thread = "flood:ask";
  g_autoptr (GError) error = NULL;
  g_autofree char *text
      = g_strdup_printf ("permission-flood %u 4096", PERMISSION_FLOOD);
  g_autofree char *log = NULL;
  AbCollector *c;
  g_autofree char *agents
      = g_strdup_printf ("  asking:\n"
                         "    command: [agentbroker-demo-agent]\n"
                         "    env: {AB_HOSTILE_MARK: %s}\n"
                         "    permissions: ask\n",
                         fx->mark);
  AbTurn *rec;
  guint64 turn;
  gsize base;

  start_daemon (fx, agents, NULL);
  base = rss_kib (daemon_pid (fx));
  c = ab_collector_new (fx->d.connection);
  turn = ab_prompt_on (fx->d.connection, c, thread, text, "asking", &error);
  g_assert_no_error (error);
  rec = ab_wait_turn (c, thread, turn, 120000);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "flooded"));
  g_test_message ("%u PermissionRequested signals", c->perms->len);
  g_assert_cmpuint (c->perms->len, ==, AB_SESSION_MAX_PENDING_PERMISSIONS);
  assert_rss_bounded (fx, base);
  g_assert_true (AB_WAIT_UNTIL (
      log_has (fx, "permission requests denied over the limit", &log), 10000));

  /* the session lives on, and its next question is asked again */
  turn = ab_prompt_on (fx->d.connection, c, thread, "permission", "asking",
                       &error);
  g_assert_no_error (error);
  AB_WAIT_FOR (c->perms->len == AB_SESSION_MAX_PENDING_PERMISSIONS + 1, 30000);
  ab_call_ok (&fx->d, "AnswerPermission",
              g_variant_new (
                  "(sss)", thread,
                  ((AbPermission *)c->perms->pdata[c->perms->len - 1])->request,
                  "allow_once"));
  rec = ab_wait_turn (c, thread, turn, 30000);
  g_assert_nonnull (strstr (rec->text->str, "permission: allow_once"));
  ab_collector_free (c);
}

/* Bytes @pid has written so far, or G_MAXUINT64 when that cannot be read. */
static guint64
bytes_written (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/io", (int)pid);
  g_autofree char *io = NULL;
  const char *line;

  if (!g_file_get_contents (path, &io, NULL, NULL)
      || (line = strstr (io, "wchar:")) == NULL)
    return G_MAXUINT64;
  return g_ascii_strtoull (line + 6, NULL, 10);
}

/* Whether @pid wrote nothing for a second (it blocks on a full pipe). */
static gboolean
stopped_writing (pid_t pid)
{
  guint64 before = bytes_written (pid);

  g_usleep (G_USEC_PER_SEC);
  return before != G_MAXUINT64 && bytes_written (pid) == before;
}

/* Agents that flood requests the daemon answers and never read the
 * answers: the daemon stops reading them once AB_JSONRPC_READ_PAUSE_BYTES
 * wait for them, so its memory stays bounded whatever they send, their
 * turns cannot end, and other sessions keep working. */
static void
test_deaf_agent (Fixture *fx, gconstpointer data)
{
  guint n = GPOINTER_TO_UINT (data);
  g_autofree char *text
      = g_strdup_printf ("permission-flood %u 64 deaf", DEAF_FLOOD);
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  g_autoptr (GArray) written = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autofree char *agents
      = g_strdup_printf ("  deaf:\n"
                         "    command: [agentbroker-demo-agent]\n"
                         "    env: {AB_HOSTILE_MARK: %s}\n"
                         "    permissions: allow\n",
                         fx->mark);
  gsize base;
  guint64 turn;

  start_daemon (fx, agents, NULL);
  base = rss_kib (daemon_pid (fx));
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *thread = g_strdup_printf ("deaf:%u", i);
      pid_t pid;

      ab_prompt_on (fx->d.connection, NULL, thread, text, "deaf", &error);
      g_assert_no_error (error);
      AB_WAIT_FOR ((pid = (pid_t)ab_session_u (&fx->d, thread, "pid")) != 0,
                   10000);
      g_array_append_val (pids, pid);
    }
  for (guint i = 0; i < n; i++)
    {
      pid_t pid = g_array_index (pids, pid_t, i);
      guint64 bytes;

      if (!AB_WAIT_UNTIL (stopped_writing (pid), 120000))
        {
          g_test_message ("agent %d never stopped writing", (int)pid);
          g_assert_not_reached ();
        }
      bytes = bytes_written (pid);
      g_test_message ("agent %d stopped after %" G_GUINT64_FORMAT " bytes",
                      (int)pid, bytes);
      /* the requests read before the answers filled the pause, the
       * pipes, one read: a few megabytes of the 200 it would send */
      g_assert_cmpuint (bytes, <, 16 * 1024 * 1024);
      g_array_append_val (written, bytes);
    }

  /* Another session is served meanwhile; the daemon, busy with it, still
   * reads not a byte more from the deaf agents, whose turns cannot end.
   * (Had it read on, they would have sent everything and ended their
   * turns, or been failed for not reading.) */
  turn
      = ab_prompt (fx->d.connection, NULL, "deaf:neighbour", "echo still here");
  wait_last_turn (fx, "deaf:neighbour", turn, "end_turn");
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *thread = g_strdup_printf ("deaf:%u", i);

      g_assert_cmpuint (bytes_written (g_array_index (pids, pid_t, i)), ==,
                        g_array_index (written, guint64, i));
      g_assert_true (ab_state_is (&fx->d, thread, "busy"));
    }
  assert_rss_bounded (fx, base);
}

/* ---- an agent whose JSON decodes to invalid UTF-8 ----------------------- */

/* A minimal ACP agent in sh: answers initialize and session/new, and
 * sends one update, or an error, with a lone surrogate escape, which
 * json-glib decodes to bytes that are not UTF-8 (and GVariant refuses). */
static const char surrogate_agent[]
    = "#!/bin/sh\n"
      "while IFS= read -r line; do\n"
      "  id=$(printf '%s' \"$line\" | sed -n "
      "'s/.*\"id\":\\([0-9]*\\).*/\\1/p')\n"
      "  case \"$line\" in\n"
      "  *'\"initialize\"'*)\n"
      "    printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":"
      "{\"protocolVersion\":1,\"agentCapabilities\":{}}}\\n' \"$id\" ;;\n"
      "  *'\"session/new\"'*)\n"
      "    printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":"
      "{\"sessionId\":\"s1\"}}\\n' \"$id\" ;;\n"
      "  *'\"session/prompt\"'*)\n"
      "    if [ \"$MODE\" = error ]; then\n"
      "      printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":"
      "-32603,\"message\":\"bad \\\\udc00 here\"}}\\n' \"$id\"\n"
      "    else\n"
      "      printf '{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
      "\"params\":{\"sessionId\":\"s1\",\"update\":{\"sessionUpdate\":"
      "\"agent_message_chunk\",\"content\":{\"type\":\"text\",\"text\":"
      "\"bad \\\\udc00 here\"}}}}\\n'\n"
      "      printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":"
      "{\"stopReason\":\"end_turn\"}}\\n' \"$id\"\n"
      "    fi ;;\n"
      "  esac\n"
      "done\n";

static void
test_agent_invalid_utf8 (Fixture *fx, gconstpointer data)
{
  g_autofree char *script
      = g_build_filename (fx->d.tmpdir, "surrogate-agent.sh", NULL);
  g_autofree char *agents = NULL;
  g_autoptr (GError) error = NULL;
  static const char *const agent_names[] = { "update", "error" };

  g_file_set_contents (script, surrogate_agent, -1, &error);
  g_assert_no_error (error);
  agents = g_strdup_printf ("  update:\n"
                            "    command: [/bin/sh, %s]\n"
                            "    env: {MODE: update, AB_HOSTILE_MARK: %s}\n"
                            "  error:\n"
                            "    command: [/bin/sh, %s]\n"
                            "    env: {MODE: error, AB_HOSTILE_MARK: %s}\n",
                            script, fx->mark, script, fx->mark);
  start_daemon (fx, agents, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (agent_names); i++)
    {
      g_autofree char *thread = g_strdup_printf ("bad-utf8:%s", agent_names[i]);
      g_autoptr (GVariant) reply = NULL;
      GVariantBuilder options;
      guint64 turn;

      g_variant_builder_init (&options, G_VARIANT_TYPE ("a{sv}"));
      g_variant_builder_add (&options, "{sv}", "agent",
                             g_variant_new_string (agent_names[i]));
      reply = ab_call_on (fx->d.connection, "Prompt",
                          g_variant_new ("(ssa{sv})", thread, "hi", &options),
                          "(t)", &error);
      g_assert_no_error (error);
      g_variant_get (reply, "(t)", &turn);
      /* a protocol error of that agent: its session fails, not the
       * daemon */
      wait_last_turn (fx, thread, turn, "agent-error");
      assert_alive (fx);
    }
}

/* ---- session records crafted against the loader ------------------------- */

static void
plant_record (const char *dir, const char *thread, const char *contents,
              gssize len)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".json", NULL);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, len, &error);
  g_assert_no_error (error);
}

static char *
record_json (const char *thread, const char *cwd)
{
  return g_strdup_printf (
      "{\"version\":1,\"thread\":\"%s\",\"agent\":\"demo\",\"owner\":%u,"
      "\"cwd\":\"%s\",\"created\":1,\"last_activity\":1,\"turns\":0,"
      "\"last_turn\":0,\"interrupted_reported\":false}",
      thread, (guint)getuid (), cwd);
}

static void
test_hostile_records (Fixture *fx, gconstpointer data)
{
  g_autofree char *dir = g_build_filename (fx->d.state_dir, "sessions", NULL);
  g_autofree char *good_cwd = g_build_filename (fx->d.tmpdir, "good", NULL);
  g_autofree char *good = record_json ("rec:good", good_cwd);
  g_autofree char *surrogate = record_json ("rec:surrogate", "/w\\udc00");
  g_autofree char *fuzzed = NULL;
  g_autofree char *fuzzed_path = NULL;
  g_autoptr (GString) deep = g_string_new (NULL);
  g_autoptr (GString) big = g_string_new (NULL);
  g_autoptr (GDir) d = NULL;
  g_autoptr (GVariant) dict = NULL;
  gsize fuzzed_len = 0;
  guint corrupt = 0;
  const char *name;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  plant_record (dir, "rec:good", good, -1);
  /* found by fuzz/fuzz-record: strings that decode to invalid UTF-8 would
   * become D-Bus properties */
  plant_record (dir, "rec:surrogate", surrogate, -1);
  fuzzed_path
      = g_test_build_filename (G_TEST_DIST, "..", "fuzz", "corpus", "record",
                               "regress-surrogate-roundtrip.json", NULL);
  g_assert_true (g_file_get_contents (fuzzed_path, &fuzzed, &fuzzed_len, NULL));
  plant_record (dir, "discord:1234567890", fuzzed, (gssize)fuzzed_len);
  /* 4 MiB of '[': json-glib's recursive parser would overflow the stack
   * (a crash at every start) */
  g_string_append (deep, "{\"version\":1,\"thread\":");
  while (deep->len < 4 * 1024 * 1024)
    g_string_append_c (deep, '[');
  plant_record (dir, "rec:deep", deep->str, (gssize)deep->len);
  /* over the record size limit */
  g_string_append (big, "{\"version\":1,\"pad\":\"");
  while (big->len <= 8 * 1024 * 1024)
    g_string_append (big, "xxxxxxxxxxxxxxxx");
  g_string_append (big, "\"}");
  plant_record (dir, "rec:big", big->str, (gssize)big->len);

  start_daemon (fx, NULL, NULL);
  d = g_dir_open (dir, 0, NULL);
  while ((name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".corrupt"))
      corrupt++;
  g_assert_cmpuint (corrupt, ==, 4);
  dict = ab_get_session (&fx->d, "rec:good", NULL);
  g_assert_nonnull (dict);
  g_assert_true (no_session (fx, "rec:surrogate"));
  {
    guint64 turn = ab_prompt (fx->d.connection, NULL, "rec:good", "echo back");

    wait_last_turn (fx, "rec:good", turn, "end_turn");
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/hostile/" name, Fixture, NULL, fixture_up, func, fixture_down)
  ADD ("wrong-types", test_wrong_types);
  ADD ("huge-strings", test_huge_strings);
  ADD ("watch-flood", test_watch_flood);
  ADD ("vanishing-prompter", test_vanishing_prompter);
  ADD ("vanishing-callers", test_vanishing_callers);
  ADD ("remove-race", test_remove_race);
  ADD ("invalid-utf8", test_invalid_utf8);
  ADD ("option-types", test_option_types);
  ADD ("unknown-permission", test_unknown_permission);
  ADD ("watch-all", test_watch_all);
  ADD ("thread-tricks", test_thread_tricks);
  ADD ("limits/sessions-per-user", test_sessions_per_user);
  ADD ("limits/stderr-rate", test_stderr_rate);
  ADD ("agent-invalid-utf8", test_agent_invalid_utf8);
  ADD ("limits/permission-flood", test_permission_flood);
  g_test_add ("/hostile/limits/deaf-agent", Fixture, GUINT_TO_POINTER (1),
              fixture_up, test_deaf_agent, fixture_down);
  g_test_add ("/hostile/limits/deaf-agents", Fixture, GUINT_TO_POINTER (3),
              fixture_up, test_deaf_agent, fixture_down);
  ADD ("records", test_hostile_records);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
