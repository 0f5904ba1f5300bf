/* agentbroker tests — real ACP peers behind the daemon: shared fixture */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "error.h"
#include "peer-common.h"

#define BUS_NAME "org.agentbroker.Broker1"
#define BUS_PATH "/org/agentbroker/Broker1"
#define BROKER_IFACE "org.agentbroker.Broker1"
#define SESSION_IFACE "org.agentbroker.Session1"
#define CALL_TIMEOUT_MS 30000

gboolean
peer_tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* ---- signal collector --------------------------------------------------- */

static void
peer_turn_free (PeerTurn *t)
{
  g_free (t->path);
  g_ptr_array_unref (t->updates);
  g_ptr_array_unref (t->chunks);
  g_string_free (t->text, TRUE);
  g_free (t->reason);
  g_free (t->message);
  g_free (t);
}

static char *
session_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (BUS_PATH "/session/", escaped, NULL);
}

static PeerTurn *
find_turn (PeerCollector *c, const char *path, guint64 turn, gboolean create)
{
  PeerTurn *t;

  for (guint i = 0; i < c->turns->len; i++)
    {
      t = c->turns->pdata[i];
      if (t->turn == turn && g_str_equal (t->path, path))
        return t;
    }
  if (!create)
    return NULL;
  t = g_new0 (PeerTurn, 1);
  t->path = g_strdup (path);
  t->turn = turn;
  t->updates = g_ptr_array_new_with_free_func (g_free);
  t->chunks = g_ptr_array_new_with_free_func (g_free);
  t->text = g_string_new (NULL);
  g_ptr_array_add (c->turns, t);
  return t;
}

PeerTurn *
peer_collector_lookup (PeerCollector *c, const char *thread, guint64 turn)
{
  g_autofree char *path = session_path (thread);

  return find_turn (c, path, turn, FALSE);
}

static void
add_update (PeerTurn *t, const char *json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *update, *content;

  g_ptr_array_add (t->updates, g_strdup (json));
  if (!json_parser_load_from_data (parser, json, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_test_message ("update is not a JSON object: %.200s", json);
      g_test_fail ();
      return;
    }
  update = json_node_get_object (json_parser_get_root (parser));
  if (g_strcmp0 (json_object_get_string_member_with_default (
                     update, "sessionUpdate", ""),
                 "agent_message_chunk")
          != 0
      || !json_object_has_member (update, "content")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (update, "content")))
    return;
  content = json_object_get_object_member (update, "content");
  if (g_strcmp0 (
          json_object_get_string_member_with_default (content, "type", ""),
          "text")
      != 0)
    return;
  g_ptr_array_add (t->chunks,
                   g_strdup (json_object_get_string_member_with_default (
                       content, "text", "")));
  g_string_append (t->text, t->chunks->pdata[t->chunks->len - 1]);
}

static void
on_session_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *iface, const char *member,
                   GVariant *params, gpointer user_data)
{
  PeerCollector *c = user_data;
  guint64 turn;

  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tas)")))
    {
      g_autofree const char **updates = NULL;
      PeerTurn *t;

      g_variant_get (params, "(t^a&s)", &turn, &updates);
      t = find_turn (c, path, turn, TRUE);
      t->update_signals++;
      for (guint i = 0; updates[i] != NULL; i++)
        add_update (t, updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tss)")))
    {
      const char *reason, *message;
      PeerTurn *t;

      g_variant_get (params, "(t&s&s)", &turn, &reason, &message);
      t = find_turn (c, path, turn, TRUE);
      if (t->ended)
        {
          g_test_message ("TurnEnded twice for %s turn %" G_GUINT64_FORMAT,
                          path, turn);
          g_test_fail ();
        }
      t->ended = TRUE;
      g_free (t->reason);
      g_free (t->message);
      t->reason = g_strdup (reason);
      t->message = g_strdup (message);
    }
}

PeerCollector *
peer_collector_new (GDBusConnection *connection)
{
  PeerCollector *c = g_new0 (PeerCollector, 1);

  c->connection = g_object_ref (connection);
  c->turns = g_ptr_array_new_with_free_func ((GDestroyNotify)peer_turn_free);
  c->sub = g_dbus_connection_signal_subscribe (
      connection, NULL, SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_session_signal, c, NULL);
  return c;
}

void
peer_collector_free (PeerCollector *c)
{
  if (c == NULL)
    return;
  g_dbus_connection_signal_unsubscribe (c->connection, c->sub);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_object_unref (c->connection);
  g_ptr_array_unref (c->turns);
  g_free (c);
}

/* ---- fixture ------------------------------------------------------------ */

/* For the signal handlers: a failed assertion or a hang prints the
 * daemon's log (async-signal-safe calls only) and stops the daemon. */
static const char *current_log_path;
static pid_t current_daemon_pid;

static void
print_log_from_handler (const char *header, gsize len)
{
  static const char footer[] = "---- end of log ----\n";
  char buf[4096];
  ssize_t n;
  int fd;

  if (write (STDERR_FILENO, header, len) < 0)
    return;
  fd = current_log_path != NULL ? open (current_log_path, O_RDONLY) : -1;
  while (fd >= 0 && (n = read (fd, buf, sizeof buf)) > 0)
    if (write (STDERR_FILENO, buf, n) < 0)
      break;
  if (fd >= 0)
    close (fd);
  if (write (STDERR_FILENO, footer, sizeof footer - 1) < 0)
    return;
  if (current_daemon_pid > 0)
    kill (current_daemon_pid, SIGTERM);
}

static void
on_alarm (int signum)
{
  static const char msg[] = "\nthe test hung (alarm)\n"
                            "---- agentbrokerd log ----\n";

  print_log_from_handler (msg, sizeof msg - 1);
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
peer_fixture_up (PeerFixture *fx, guint alarm_seconds)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = peer_collector_new (fx->d.connection);
  current_log_path = fx->d.log_path;
  current_daemon_pid = 0;
  signal (SIGALRM, on_alarm);
  signal (SIGABRT, on_abort);
  alarm (alarm_seconds);
}

void
peer_fixture_start (PeerFixture *fx, const char *yaml)
{
  g_autoptr (GError) error = NULL;

  if (yaml != NULL)
    ab_daemon_fixture_write_config (&fx->d, yaml);
  ab_daemon_fixture_start (&fx->d, &error);
  if (fx->d.daemon != NULL)
    current_daemon_pid
        = atoi (g_subprocess_get_identifier (fx->d.daemon) ?: "0");
  g_assert_no_error (error);
}

void
peer_fixture_down (PeerFixture *fx)
{
  peer_collector_free (fx->c);
  fx->c = NULL;
  if (fx->d.daemon != NULL)
    {
      int status = ab_daemon_fixture_stop (&fx->d, SIGTERM);

      /* The daemon survived whatever the peer did. */
      if (!g_test_failed () && status != 0)
        {
          g_test_message ("agentbrokerd exited with status %d at teardown",
                          status);
          g_test_fail ();
        }
    }
  ab_daemon_fixture_teardown (&fx->d);
  alarm (0);
  current_log_path = NULL;
  current_daemon_pid = 0;
}

GDBusConnection *
peer_second_connection (void)
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

/* ---- calls -------------------------------------------------------------- */

guint64
peer_prompt_on (GDBusConnection *connection, const char *thread,
                const char *text, const char *agent, GError **error)
{
  GVariantBuilder options;
  g_autoptr (GVariant) reply = NULL;
  guint64 turn = 0;

  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  if (agent != NULL)
    g_variant_builder_add (&options, "{sv}", "agent",
                           g_variant_new_string (agent));
  reply = g_dbus_connection_call_sync (
      connection, BUS_NAME, BUS_PATH, BROKER_IFACE, "Prompt",
      g_variant_new ("(ssa{sv})", thread, text, &options),
      G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
      error);
  if (reply != NULL)
    g_variant_get (reply, "(t)", &turn);
  return turn;
}

guint64
peer_prompt (PeerFixture *fx, const char *thread, const char *text)
{
  g_autoptr (GError) error = NULL;
  guint64 turn = peer_prompt_on (fx->d.connection, thread, text, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (turn, >, 0);
  return turn;
}

void
peer_call_ok (PeerFixture *fx, const char *method, GVariant *params)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = ab_daemon_call (&fx->d, method, params, NULL, &error);

  g_assert_no_error (error);
}

static gboolean
turn_ended (PeerCollector *c, const char *thread, guint64 turn)
{
  PeerTurn *t = peer_collector_lookup (c, thread, turn);

  return t != NULL && t->ended;
}

gboolean
peer_turn_has_update (PeerCollector *c, const char *thread, guint64 turn)
{
  PeerTurn *t = peer_collector_lookup (c, thread, turn);

  return t != NULL && t->updates->len > 0;
}

PeerTurn *
peer_wait_turn (PeerFixture *fx, PeerCollector *c, const char *thread,
                guint64 turn, guint ms)
{
  PEER_WAIT_FOR (turn_ended (c, thread, turn), ms);
  return peer_collector_lookup (c, thread, turn);
}

GVariant *
peer_get_session (PeerFixture *fx, const char *thread, GError **error)
{
  g_autoptr (GVariant) reply = ab_daemon_call (
      &fx->d, "GetSession", g_variant_new ("(s)", thread), "(a{sv})", error);
  GVariant *dict = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(@a{sv})", &dict);
  return dict;
}

char *
peer_session_s (PeerFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = peer_get_session (fx, thread, &error);
  char *value = NULL;

  g_assert_no_error (error);
  g_assert_true (g_variant_lookup (dict, key, "s", &value));
  return value;
}

guint32
peer_session_u (PeerFixture *fx, const char *thread, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = peer_get_session (fx, thread, &error);
  guint32 value = G_MAXUINT32;

  g_assert_no_error (error);
  g_assert_true (g_variant_lookup (dict, key, "u", &value));
  return value;
}

gboolean
peer_state_is (PeerFixture *fx, const char *thread, const char *want)
{
  g_autoptr (GVariant) dict = peer_get_session (fx, thread, NULL);
  const char *state = NULL;

  return dict != NULL && g_variant_lookup (dict, "state", "&s", &state)
         && g_str_equal (state, want);
}

/* Gone when kill(pid, 0) finds nothing, or a zombie (PID 1 of a sandbox
 * may not reap what it inherits). */
gboolean
peer_process_gone (pid_t pid)
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

/* ---- where the peers are ------------------------------------------------ */

char *
peer_find_installed (const char *pkgdir, const char *relpath, const char *probe)
{
  const char *roots[]
      = { g_getenv ("G_TEST_BUILDDIR"), g_getenv ("G_TEST_SRCDIR") };

  for (guint i = 0; i < G_N_ELEMENTS (roots); i++)
    {
      g_autofree char *probe_path = NULL;
      g_autofree char *file = NULL;

      if (roots[i] == NULL)
        continue;
      probe_path
          = g_build_filename (roots[i], pkgdir, "node_modules", probe, NULL);
      file = g_build_filename (roots[i], pkgdir, relpath, NULL);
      if (g_file_test (probe_path, G_FILE_TEST_EXISTS)
          && g_file_test (file, G_FILE_TEST_EXISTS))
        return g_canonicalize_filename (file, NULL);
    }
  return NULL;
}

void
peer_unavailable (const char *why)
{
  if (g_strcmp0 (g_getenv ("AGENTBROKER_REQUIRE_ALL_TESTS"), "1") == 0)
    {
      g_test_message ("%s (a failure: AGENTBROKER_REQUIRE_ALL_TESTS=1)", why);
      g_test_fail ();
    }
  else
    g_test_skip (why);
}
