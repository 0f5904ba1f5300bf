/* agentbroker tests — sessions on a private bus: Prompt and its stream,
 * ListSessions/GetSession, queue, cancel, failures of the agent, idle
 * suspend and resume, eviction, removal, permissions, the agent's
 * environment (DESIGN.md §2, §4).
 *
 * Every wait is bounded: a predicate is re-checked while the main context
 * runs, until a deadline, and a timeout fails the test with what it waited
 * for. A SIGALRM per test turns a hang anywhere (a blocking call included)
 * into a failure that prints the daemon's log.
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

#include <json-glib/json-glib.h>

#include "daemon-fixture.h"
#include "error.h"

#define BUS_NAME "org.agentbroker.Broker1"
#define BUS_PATH "/org/agentbroker/Broker1"
#define BROKER_IFACE "org.agentbroker.Broker1"
#define SESSION_IFACE "org.agentbroker.Session1"
#define SESSION_PREFIX BUS_PATH "/session/"

#define CALL_TIMEOUT_MS 20000
#define TURN_TIMEOUT_MS 20000
#define TEST_ALARM_SECONDS 45

/* ---- signal collector -------------------------------------------------- */

/* Everything one connection saw of one turn of one session. */
typedef struct
{
  char *path;
  guint64 turn;
  GPtrArray *updates; /* JSON text of each update, in arrival order */
  GPtrArray *chunks;  /* text of each agent_message_chunk */
  GString *text;      /* the chunks concatenated */
  guint update_signals;
  guint64 first_seq; /* seq of the first signal of this turn */
  gboolean ended;
  guint64 ended_seq;
  char *reason;
  char *message;
} TurnRec;

typedef struct
{
  char *path;
  guint64 turn;
  char *request;
  char *request_json;
} PermRec;

typedef struct
{
  GDBusConnection *connection;
  guint session_sub;
  guint added_sub;
  guint removed_sub;
  guint64 seq;        /* counts signals and prompt replies, in dispatch order */
  GPtrArray *turns;   /* TurnRec */
  GPtrArray *perms;   /* PermRec */
  GPtrArray *added;   /* "thread path" */
  GPtrArray *removed; /* "thread reason" */
  guint session_signals; /* any signal on a session object */
} Collector;

static void
turn_rec_free (TurnRec *rec)
{
  g_free (rec->path);
  g_ptr_array_unref (rec->updates);
  g_ptr_array_unref (rec->chunks);
  g_string_free (rec->text, TRUE);
  g_free (rec->reason);
  g_free (rec->message);
  g_free (rec);
}

static void
perm_rec_free (PermRec *rec)
{
  g_free (rec->path);
  g_free (rec->request);
  g_free (rec->request_json);
  g_free (rec);
}

static char *
session_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (SESSION_PREFIX, escaped, NULL);
}

static TurnRec *
collector_find (Collector *c, const char *path, guint64 turn)
{
  for (guint i = 0; i < c->turns->len; i++)
    {
      TurnRec *rec = c->turns->pdata[i];

      if (rec->turn == turn && g_str_equal (rec->path, path))
        return rec;
    }
  return NULL;
}

static TurnRec *
collector_lookup (Collector *c, const char *thread, guint64 turn)
{
  g_autofree char *path = session_path (thread);

  return collector_find (c, path, turn);
}

static TurnRec *
collector_get (Collector *c, const char *path, guint64 turn)
{
  TurnRec *rec = collector_find (c, path, turn);

  if (rec != NULL)
    return rec;
  rec = g_new0 (TurnRec, 1);
  rec->path = g_strdup (path);
  rec->turn = turn;
  rec->updates = g_ptr_array_new_with_free_func (g_free);
  rec->chunks = g_ptr_array_new_with_free_func (g_free);
  rec->text = g_string_new (NULL);
  rec->first_seq = c->seq;
  g_ptr_array_add (c->turns, rec);
  return rec;
}

/* Appends the text of an agent_message_chunk update; other kinds are kept
 * only as JSON. */
static void
turn_rec_add_update (TurnRec *rec, const char *json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *update, *content;

  g_ptr_array_add (rec->updates, g_strdup (json));
  if (!json_parser_load_from_data (parser, json, -1, &error))
    {
      g_test_message ("update is not JSON: %s: %.200s", error->message, json);
      g_test_fail ();
      return;
    }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_test_message ("update is not a JSON object: %.200s", json);
      g_test_fail ();
      return;
    }
  update = json_node_get_object (json_parser_get_root (parser));
  if (g_strcmp0 (json_object_get_string_member_with_default (
                     update, "sessionUpdate", NULL),
                 "agent_message_chunk")
      != 0)
    return;
  if (!json_object_has_member (update, "content")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (update, "content")))
    return;
  content = json_object_get_object_member (update, "content");
  if (g_strcmp0 (
          json_object_get_string_member_with_default (content, "type", NULL),
          "text")
      != 0)
    return;
  g_ptr_array_add (rec->chunks,
                   g_strdup (json_object_get_string_member_with_default (
                       content, "text", "")));
  g_string_append (rec->text, rec->chunks->pdata[rec->chunks->len - 1]);
}

static void
on_session_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *iface, const char *member,
                   GVariant *params, gpointer user_data)
{
  Collector *c = user_data;

  c->seq++;
  c->session_signals++;
  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tas)")))
    {
      guint64 turn;
      g_autofree const char **updates = NULL;
      TurnRec *rec;

      g_variant_get (params, "(t^a&s)", &turn, &updates);
      rec = collector_get (c, path, turn);
      rec->update_signals++;
      for (guint i = 0; updates[i] != NULL; i++)
        turn_rec_add_update (rec, updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tss)")))
    {
      guint64 turn;
      const char *reason, *message;
      TurnRec *rec;

      g_variant_get (params, "(t&s&s)", &turn, &reason, &message);
      rec = collector_get (c, path, turn);
      if (rec->ended)
        {
          g_test_message ("TurnEnded twice for %s turn %" G_GUINT64_FORMAT,
                          path, turn);
          g_test_fail ();
        }
      rec->ended = TRUE;
      rec->ended_seq = c->seq;
      g_free (rec->reason);
      g_free (rec->message);
      rec->reason = g_strdup (reason);
      rec->message = g_strdup (message);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tss)")))
    {
      PermRec *rec = g_new0 (PermRec, 1);

      rec->path = g_strdup (path);
      g_variant_get (params, "(tss)", &rec->turn, &rec->request,
                     &rec->request_json);
      collector_get (c, path, rec->turn);
      g_ptr_array_add (c->perms, rec);
    }
  else if (g_str_equal (member, "PropertiesChanged"))
    c->session_signals--; /* not a streaming signal */
  else
    {
      g_test_message ("unexpected signal %s%s on %s", member,
                      g_variant_get_type_string (params), path);
      g_test_fail ();
    }
}

static void
on_manager_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *iface, const char *member,
                   GVariant *params, gpointer user_data)
{
  Collector *c = user_data;
  const char *a, *b;

  c->seq++;
  if (g_str_equal (member, "SessionAdded")
      && g_variant_is_of_type (params, G_VARIANT_TYPE ("(so)")))
    {
      g_variant_get (params, "(&s&o)", &a, &b);
      g_ptr_array_add (c->added, g_strdup_printf ("%s %s", a, b));
    }
  else if (g_str_equal (member, "SessionRemoved")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(ss)")))
    {
      g_variant_get (params, "(&s&s)", &a, &b);
      g_ptr_array_add (c->removed, g_strdup_printf ("%s %s", a, b));
    }
}

static Collector *
collector_new (GDBusConnection *connection)
{
  Collector *c = g_new0 (Collector, 1);

  c->connection = g_object_ref (connection);
  c->turns = g_ptr_array_new_with_free_func ((GDestroyNotify)turn_rec_free);
  c->perms = g_ptr_array_new_with_free_func ((GDestroyNotify)perm_rec_free);
  c->added = g_ptr_array_new_with_free_func (g_free);
  c->removed = g_ptr_array_new_with_free_func (g_free);
  /* Streaming signals of every session: the path namespace is the
   * sessions' prefix; a unicast signal arrives whatever the match rule,
   * a broadcast one only through it — so a connection that should not get
   * the stream would see a broadcast here. */
  c->session_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_session_signal, c, NULL);
  c->added_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, BROKER_IFACE, "SessionAdded", BUS_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_manager_signal, c, NULL);
  c->removed_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, BROKER_IFACE, "SessionRemoved", BUS_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_manager_signal, c, NULL);
  return c;
}

static void
collector_free (Collector *c)
{
  if (c == NULL)
    return;
  g_dbus_connection_signal_unsubscribe (c->connection, c->session_sub);
  g_dbus_connection_signal_unsubscribe (c->connection, c->added_sub);
  g_dbus_connection_signal_unsubscribe (c->connection, c->removed_sub);
  /* Let pending dispatches of the unsubscribed handlers run out before
   * their user data goes. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_object_unref (c->connection);
  g_ptr_array_unref (c->turns);
  g_ptr_array_unref (c->perms);
  g_ptr_array_unref (c->added);
  g_ptr_array_unref (c->removed);
  g_free (c);
}

static gboolean
collector_has (GPtrArray *list, const char *entry)
{
  for (guint i = 0; i < list->len; i++)
    if (g_str_equal (list->pdata[i], entry))
      return TRUE;
  return FALSE;
}

/* ---- bounded waits ------------------------------------------------------ */

static gboolean
tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main context until @cond holds or @ms pass; @cond is checked
 * at least every 20 ms, so it may poll the daemon. */
#define WAIT_UNTIL(cond, ms)                                                   \
  ({                                                                           \
    gint64 _deadline = g_get_monotonic_time () + (gint64)(ms)*1000;            \
    guint _tick = g_timeout_add (20, tick_cb, NULL);                           \
    gboolean _ok;                                                              \
    while (!(_ok = (cond)) && g_get_monotonic_time () < _deadline)             \
      g_main_context_iteration (NULL, TRUE);                                   \
    g_source_remove (_tick);                                                   \
    _ok;                                                                       \
  })

#define WAIT_FOR(cond, ms)                                                     \
  G_STMT_START                                                                 \
  {                                                                            \
    if (!WAIT_UNTIL (cond, ms))                                                \
      {                                                                        \
        g_autofree char *_msg = g_strdup_printf (                              \
            "timed out after %d ms waiting for: %s", (int)(ms), #cond);        \
        g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,      \
                             _msg);                                            \
      }                                                                        \
  }                                                                            \
  G_STMT_END

/* Dispatches whatever already arrived, without waiting. */
static void
drain_main_context (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct
{
  AbDaemonFixture d;
  Collector *c; /* signals on the test's main connection */
} Fixture;

/* For the signal handlers: a failed g_assert aborts the test program
 * before the fixture's teardown could print the daemon's log, and a hang
 * ends in SIGALRM; both print it here, with async-signal-safe calls only,
 * and stop the daemon. */
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
  static const char msg[]
      = "\ntest-sessions: the test hung (no end after " G_STRINGIFY (
          TEST_ALARM_SECONDS) " s)\n"
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

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = collector_new (fx->d.connection);
  current_log_path = fx->d.log_path;
  current_daemon_pid = 0;
  signal (SIGALRM, on_alarm);
  signal (SIGABRT, on_abort);
  alarm (TEST_ALARM_SECONDS);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  collector_free (fx->c);
  if (fx->d.daemon != NULL)
    {
      int status = ab_daemon_fixture_stop (&fx->d, SIGTERM);

      /* The daemon survived whatever the test did to it. */
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

/* Writes a config with the demo agent as default plus @agents (YAML lines
 * under agents:), @pool and @timeouts (lines under those keys, may be NULL),
 * and starts the daemon on it. Drain and kill are short so a teardown with a
 * turn still running stays quick. */
static void
start_daemon (Fixture *fx, const char *agents, const char *pool,
              const char *timeouts)
{
  g_autoptr (GString) yaml = g_string_new (NULL);
  g_autoptr (GError) error = NULL;

  g_string_append (yaml, "default_agent: demo\n"
                         "agents:\n"
                         "  demo:\n"
                         "    command: [agentbroker-demo-agent]\n");
  if (agents != NULL)
    g_string_append (yaml, agents);
  if (pool != NULL)
    g_string_append_printf (yaml, "pool:\n%s", pool);
  g_string_append (yaml, "timeouts:\n  drain: 2s\n");
  if (timeouts == NULL || strstr (timeouts, "kill:") == NULL)
    g_string_append (yaml, "  kill: 2s\n");
  if (timeouts != NULL)
    g_string_append (yaml, timeouts);
  ab_daemon_fixture_write_config (&fx->d, yaml->str);
  ab_daemon_fixture_start (&fx->d, &error);
  if (fx->d.daemon != NULL)
    current_daemon_pid
        = atoi (g_subprocess_get_identifier (fx->d.daemon) ?: "0");
  g_assert_no_error (error);
}

/* ---- calls ------------------------------------------------------------- */

static GVariant *
call_on (GDBusConnection *connection, const char *method, GVariant *params,
         const char *reply_type, GError **error)
{
  return g_dbus_connection_call_sync (
      connection, BUS_NAME, BUS_PATH, BROKER_IFACE, method, params,
      reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL,
      G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, error);
}

static GVariant *
call (Fixture *fx, const char *method, GVariant *params, const char *reply_type,
      GError **error)
{
  return call_on (fx->d.connection, method, params, reply_type, error);
}

static void
call_ok (Fixture *fx, const char *method, GVariant *params)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = call (fx, method, params, "()", &error);

  g_assert_no_error (error);
}

/* GetSession(thread), or NULL with @error. */
static GVariant *
get_session (Fixture *fx, const char *thread, GError **error)
{
  g_autoptr (GVariant) reply = call (
      fx, "GetSession", g_variant_new ("(s)", thread), "(a{sv})", error);
  GVariant *dict = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(@a{sv})", &dict);
  return dict;
}

/* The session's state, or "(none)" / "(error)" as a string to compare. */
static char *
session_state (Fixture *fx, const char *thread)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = get_session (fx, thread, &error);
  const char *state = NULL;

  if (dict == NULL)
    return g_strdup (g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION)
                         ? "(none)"
                         : "(error)");
  if (!g_variant_lookup (dict, "state", "&s", &state))
    return g_strdup ("(no state key)");
  return g_strdup (state);
}

/* @want: a state, or several separated by "|". */
static gboolean
state_is (Fixture *fx, const char *thread, const char *want)
{
  g_autofree char *state = session_state (fx, thread);
  g_auto (GStrv) wanted = g_strsplit (want, "|", -1);

  return g_strv_contains ((const char *const *)wanted, state);
}

static guint32
session_u (Fixture *fx, const char *thread, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = get_session (fx, thread, &error);
  guint32 value = G_MAXUINT32;

  g_assert_no_error (error);
  g_assert_true (g_variant_lookup (dict, key, "u", &value));
  return value;
}

static char *
session_s (Fixture *fx, const char *thread, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = get_session (fx, thread, &error);
  char *value = NULL;

  g_assert_no_error (error);
  g_assert_true (g_variant_lookup (dict, key, "s", &value));
  return value;
}

/* session_s() for a comparison in place: freed at the test's teardown. */
static const char *
session_tmp (Fixture *fx, const char *thread, const char *key)
{
  char *value = session_s (fx, thread, key);

  g_test_queue_free (value);
  return value;
}

static GVariant *
list_sessions (Fixture *fx)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = call (fx, "ListSessions", NULL, "(aa{sv})", &error);
  GVariant *list = NULL;

  g_assert_no_error (error);
  g_variant_get (reply, "(@aa{sv})", &list);
  return list;
}

static guint
count_sessions (Fixture *fx)
{
  g_autoptr (GVariant) list = list_sessions (fx);

  return g_variant_n_children (list);
}

static guint32
broker_u (Fixture *fx, const char *name)
{
  g_autoptr (GVariant) value = ab_daemon_get_property (&fx->d, name);

  return g_variant_get_uint32 (value);
}

/* A process is gone when kill(pid, 0) finds nothing, or when it is a
 * zombie: PID 1 of this sandbox may not reap what it inherits. */
static gboolean
process_gone (pid_t pid)
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

/* ---- prompts ------------------------------------------------------------ */

typedef struct
{
  Collector *c;
  char *thread;
  gboolean done;
  guint64 turn;
  guint64 seq; /* collector seq when the reply was dispatched */
  GError *error;
} PromptCall;

static void
prompt_call_free (PromptCall *p)
{
  g_free (p->thread);
  g_clear_error (&p->error);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PromptCall, prompt_call_free)

static void
on_prompt_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  PromptCall *p = user_data;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &p->error);

  if (reply != NULL)
    g_variant_get (reply, "(t)", &p->turn);
  p->c->seq++;
  p->seq = p->c->seq;
  p->done = TRUE;
}

/* Sends Prompt from the collector's connection without waiting. */
static PromptCall *
prompt_send (Collector *c, const char *thread, const char *text,
             const char *agent)
{
  PromptCall *p = g_new0 (PromptCall, 1);
  GVariantBuilder options;

  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  if (agent != NULL)
    g_variant_builder_add (&options, "{sv}", "agent",
                           g_variant_new_string (agent));
  p->c = c;
  p->thread = g_strdup (thread);
  g_dbus_connection_call (c->connection, BUS_NAME, BUS_PATH, BROKER_IFACE,
                          "Prompt",
                          g_variant_new ("(ssa{sv})", thread, text, &options),
                          G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE,
                          CALL_TIMEOUT_MS, NULL, on_prompt_reply, p);
  return p;
}

/* Waits for the reply; on success checks that no signal of the turn came
 * before it. Returns the turn, or 0 with @error. */
static guint64
prompt_finish (PromptCall *p, GError **error)
{
  TurnRec *rec;

  WAIT_FOR (p->done, CALL_TIMEOUT_MS + 2000);
  if (p->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&p->error));
      return 0;
    }
  rec = collector_lookup (p->c, p->thread, p->turn);
  if (rec != NULL && rec->first_seq < p->seq)
    {
      g_test_message ("a signal of %s turn %" G_GUINT64_FORMAT
                      " arrived before the Prompt reply",
                      p->thread, p->turn);
      g_test_fail ();
    }
  return p->turn;
}

/* Prompt and wait for the reply: the turn, or 0 with @error. */
static guint64
prompt_on (Collector *c, const char *thread, const char *text,
           const char *agent, GError **error)
{
  g_autoptr (PromptCall) p = prompt_send (c, thread, text, agent);

  return prompt_finish (p, error);
}

static guint64
prompt (Fixture *fx, const char *thread, const char *text)
{
  g_autoptr (GError) error = NULL;
  guint64 turn = prompt_on (fx->c, thread, text, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (turn, >, 0);
  return turn;
}

static gboolean
turn_ended (Collector *c, const char *thread, guint64 turn)
{
  TurnRec *rec = collector_lookup (c, thread, turn);

  return rec != NULL && rec->ended;
}

static gboolean
turn_has_update (Collector *c, const char *thread, guint64 turn)
{
  TurnRec *rec = collector_lookup (c, thread, turn);

  return rec != NULL && rec->updates->len > 0;
}

/* Waits for TurnEnded of @turn and returns its record. */
static TurnRec *
wait_turn (Collector *c, const char *thread, guint64 turn, guint ms)
{
  WAIT_FOR (turn_ended (c, thread, turn), ms);
  return collector_lookup (c, thread, turn);
}

/* Prompts @text on @thread and waits for the end of its turn; returns the
 * agent's text, and the reason and message when asked for. */
static char *
prompt_and_wait (Fixture *fx, const char *thread, const char *text,
                 char **reason, char **message)
{
  guint64 turn = prompt (fx, thread, text);
  TurnRec *rec = wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);

  if (reason != NULL)
    *reason = g_strdup (rec->reason);
  if (message != NULL)
    *message = g_strdup (rec->message);
  return g_strdup (rec->text->str);
}

/* Prompts and asserts the turn ends with end_turn; returns the text. */
static char *
prompt_ok (Fixture *fx, const char *thread, const char *text)
{
  g_autofree char *reason = NULL, *message = NULL;
  char *answer = prompt_and_wait (fx, thread, text, &reason, &message);

  if (g_strcmp0 (reason, "end_turn") != 0)
    g_test_message ("turn of \"%s\" on %s ended %s: %s", text, thread, reason,
                    message);
  g_assert_cmpstr (reason, ==, "end_turn");
  return answer;
}

static void
assert_error_named (const GError *error, int code, const char *name)
{
  g_autofree char *remote = NULL;

  g_assert_nonnull (error);
  remote = g_dbus_error_get_remote_error (error);
  if (!g_error_matches (error, AB_ERROR, code))
    g_test_message ("expected %s, got %s: %s", name, remote, error->message);
  g_assert_error (error, AB_ERROR, code);
  g_assert_cmpstr (remote, ==, name);
}

/* ---- tests: the basics -------------------------------------------------- */

static void
assert_session_dict (Fixture *fx, GVariant *dict, const char *thread,
                     const char *state, guint32 turns)
{
  g_autofree char *path = session_path (thread);
  g_autofree char *escaped = g_dbus_escape_object_path (thread);
  g_autofree char *cwd
      = g_build_filename (fx->d.state_dir, "work", escaped, NULL);
  const char *s;
  guint32 u;
  guint64 created, last_activity, last_turn;
  guint64 now = g_get_real_time ();

  g_assert_true (g_variant_lookup (dict, "thread", "&s", &s));
  g_assert_cmpstr (s, ==, thread);
  g_assert_true (g_variant_lookup (dict, "agent", "&s", &s));
  g_assert_cmpstr (s, ==, "demo");
  g_assert_true (g_variant_lookup (dict, "state", "&s", &s));
  g_assert_cmpstr (s, ==, state);
  g_assert_true (g_variant_lookup (dict, "owner", "u", &u));
  g_assert_cmpuint (u, ==, getuid ());
  g_assert_true (g_variant_lookup (dict, "cwd", "&s", &s));
  g_assert_cmpstr (s, ==, cwd);
  g_assert_true (g_variant_lookup (dict, "pid", "u", &u));
  g_assert_cmpuint (u, >, 1);
  g_assert_false (process_gone (u));
  g_assert_true (g_variant_lookup (dict, "acp_session", "&s", &s));
  g_assert_true (g_str_has_prefix (s, "demo-"));
  g_assert_true (g_variant_lookup (dict, "created", "t", &created));
  g_assert_true (g_variant_lookup (dict, "last_activity", "t", &last_activity));
  g_assert_cmpuint (created, >, now - 60 * G_USEC_PER_SEC);
  g_assert_cmpuint (created, <=, last_activity);
  g_assert_cmpuint (last_activity, <=, now);
  g_assert_true (g_variant_lookup (dict, "turns", "u", &u));
  g_assert_cmpuint (u, ==, turns);
  g_assert_true (g_variant_lookup (dict, "queued", "u", &u));
  g_assert_cmpuint (u, ==, 0);
  g_assert_true (g_variant_lookup (dict, "last_turn", "t", &last_turn));
  g_assert_cmpuint (last_turn, ==, turns);
  g_assert_true (g_variant_lookup (dict, "last_reason", "&s", &s));
  g_assert_cmpstr (s, ==, "end_turn");
  g_assert_true (g_variant_lookup (dict, "path", "&o", &s));
  g_assert_cmpstr (s, ==, path);
}

static void
test_prompt_basic (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:alice/basic";
  g_autofree char *path = session_path (thread);
  g_autofree char *added = g_strdup_printf ("%s %s", thread, path);
  g_autoptr (GVariant) list = NULL;
  g_autoptr (GVariant) entry = NULL;
  g_autoptr (GVariant) dict = NULL;
  g_autofree char *answer2 = NULL;
  guint32 pid = 0;
  guint64 turn;
  TurnRec *rec;

  start_daemon (fx, NULL, NULL, NULL);
  g_assert_cmpuint (count_sessions (fx), ==, 0);

  turn = prompt (fx, thread, "hello there");
  g_assert_cmpuint (turn, ==, 1);
  rec = wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "Hello from the demo agent"));
  g_assert_nonnull (
      strstr (rec->text->str, "I remember 0 earlier prompts in this session"));
  g_assert_nonnull (strstr (rec->text->str, "You said: \"hello there\""));
  /* A tool call and its update came through as they are. */
  g_assert_cmpuint (rec->updates->len, >, rec->chunks->len);
  /* SessionAdded is broadcast, so the prompter sees it too. */
  WAIT_FOR (collector_has (fx->c->added, added), 5000);

  list = list_sessions (fx);
  g_assert_cmpuint (g_variant_n_children (list), ==, 1);
  entry = g_variant_get_child_value (list, 0);
  assert_session_dict (fx, entry, thread, "idle", 1);
  dict = get_session (fx, thread, NULL);
  g_assert_nonnull (dict);
  assert_session_dict (fx, dict, thread, "idle", 1);
  g_assert_true (g_variant_lookup (dict, "pid", "u", &pid));
  g_assert_cmpuint (broker_u (fx, "SessionCount"), ==, 1);
  g_assert_cmpuint (broker_u (fx, "RunningCount"), ==, 1);
  g_assert_cmpuint (broker_u (fx, "BusyCount"), ==, 0);

  /* The same process carries on the conversation. */
  answer2 = prompt_ok (fx, thread, "and again");
  g_assert_nonnull (
      strstr (answer2, "I remember 1 earlier prompt in this session"));
  g_assert_nonnull (strstr (answer2, "the last one was \"hello there\""));
  g_assert_nonnull (collector_lookup (fx->c, thread, 2));
  g_assert_cmpuint (session_u (fx, thread, "turns"), ==, 2);
  g_assert_cmpuint (session_u (fx, thread, "pid"), ==, pid);
}

static void
test_object_manager (Fixture *fx, gconstpointer data)
{
  const char *thread = "slack:C123/1710000000.000001";
  g_autofree char *path = session_path (thread);
  g_autofree char *answer = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) objects = NULL;
  g_autoptr (GVariant) ifaces = NULL;
  g_autoptr (GVariant) props = NULL;
  g_autoptr (GVariant) state = NULL;
  const char *s;
  guint32 u;
  guint64 t;

  start_daemon (fx, NULL, NULL, NULL);
  answer = prompt_ok (fx, thread, "echo hi");
  g_assert_cmpstr (answer, ==, "echo hi");

  reply = g_dbus_connection_call_sync (
      fx->d.connection, BUS_NAME, BUS_PATH,
      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL,
      G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), G_DBUS_CALL_FLAGS_NONE,
      CALL_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  objects = g_variant_get_child_value (reply, 0);
  ifaces = g_variant_lookup_value (objects, path, G_VARIANT_TYPE ("a{sa{sv}}"));
  g_assert_nonnull (ifaces);
  props = g_variant_lookup_value (ifaces, SESSION_IFACE,
                                  G_VARIANT_TYPE ("a{sv}"));
  g_assert_nonnull (props);

  g_assert_true (g_variant_lookup (props, "Thread", "&s", &s));
  g_assert_cmpstr (s, ==, thread);
  g_assert_true (g_variant_lookup (props, "Agent", "&s", &s));
  g_assert_cmpstr (s, ==, "demo");
  g_assert_true (g_variant_lookup (props, "State", "&s", &s));
  g_assert_cmpstr (s, ==, "idle");
  g_assert_true (g_variant_lookup (props, "Owner", "u", &u));
  g_assert_cmpuint (u, ==, getuid ());
  g_assert_true (g_variant_lookup (props, "Cwd", "&s", &s));
  g_assert_true (g_str_has_prefix (s, fx->d.state_dir));
  g_assert_true (g_variant_lookup (props, "Pid", "u", &u));
  g_assert_cmpuint (u, ==, session_u (fx, thread, "pid"));
  g_assert_true (g_variant_lookup (props, "AcpSession", "&s", &s));
  g_assert_true (g_str_has_prefix (s, "demo-"));
  g_assert_true (g_variant_lookup (props, "Created", "t", &t));
  g_assert_cmpuint (t, >, 0);
  g_assert_true (g_variant_lookup (props, "LastActivity", "t", &t));
  g_assert_cmpuint (t, >, 0);
  g_assert_true (g_variant_lookup (props, "Turns", "u", &u));
  g_assert_cmpuint (u, ==, 1);
  g_assert_true (g_variant_lookup (props, "Queued", "u", &u));
  g_assert_cmpuint (u, ==, 0);

  /* The object answers Properties.Get directly too. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = g_dbus_connection_call_sync (
      fx->d.connection, BUS_NAME, path, "org.freedesktop.DBus.Properties",
      "Get", g_variant_new ("(ss)", SESSION_IFACE, "State"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
      &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &state);
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "idle");
}

static void
test_unknown_session (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) dict = NULL;
  g_autoptr (GVariant) reply = NULL;

  start_daemon (fx, NULL, NULL, NULL);
  dict = get_session (fx, "cli:nobody", &error);
  g_assert_null (dict);
  assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                      "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);
  reply = call (fx, "RemoveSession", g_variant_new ("(s)", "cli:nobody"), "()",
                &error);
  assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                      "org.agentbroker.Error.NoSuchSession");
  g_assert_cmpuint (count_sessions (fx), ==, 0);
}

static void
on_properties_changed (GDBusConnection *connection, const char *sender,
                       const char *path, const char *iface, const char *member,
                       GVariant *params, gpointer user_data)
{
  GPtrArray *states = user_data;
  g_autoptr (GVariant) changed = NULL;
  const char *iface_name, *state;

  g_variant_get (params, "(&s@a{sv}@as)", &iface_name, &changed, NULL);
  if (g_str_equal (iface_name, SESSION_IFACE)
      && g_variant_lookup (changed, "State", "&s", &state))
    g_ptr_array_add (states, g_strdup (state));
}

static void
test_properties_changed (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:props";
  g_autofree char *path = session_path (thread);
  g_autoptr (GPtrArray) states = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *answer = NULL;
  guint sub;

  start_daemon (fx, NULL, NULL, NULL);
  sub = g_dbus_connection_signal_subscribe (
      fx->d.connection, NULL, "org.freedesktop.DBus.Properties",
      "PropertiesChanged", path, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
      on_properties_changed, states, NULL);
  answer = prompt_ok (fx, thread, "echo hi");
  answer = (g_free (answer), prompt_ok (fx, thread, "sleep 0.3"));
  WAIT_FOR (states->len > 0
                && g_str_equal (states->pdata[states->len - 1], "idle"),
            5000);
  g_dbus_connection_signal_unsubscribe (fx->d.connection, sub);
  drain_main_context ();
  /* The second turn went busy and back to idle, seen as it happened. */
  g_assert_true (collector_has (states, "busy"));
  g_assert_true (collector_has (states, "idle"));
}

/* ---- tests: bad input --------------------------------------------------- */

static guint
count_dir_entries (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static void
assert_nothing_created (Fixture *fx)
{
  g_autofree char *work = g_build_filename (fx->d.state_dir, "work", NULL);

  g_assert_cmpuint (count_sessions (fx), ==, 0);
  g_assert_cmpuint (count_dir_entries (work), ==, 0);
  g_assert_cmpuint (broker_u (fx, "SessionCount"), ==, 0);
  g_assert_cmpuint (fx->c->added->len, ==, 0);
}

static void
test_invalid_thread (Fixture *fx, gconstpointer data)
{
  g_autofree char *long_id = g_strnfill (201, 'a');
  const char *bad[] = { "",       long_id,   "../x",   "/abs", "a b",
                        "a\x01b", ".hidden", "a/../b", "a\nb" };
  g_autofree char *max_id = g_strnfill (200, 'b');
  g_autofree char *answer = NULL;

  start_daemon (fx, NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 turn = prompt_on (fx->c, bad[i], "echo hi", NULL, &error);

      g_autofree char *shown = g_strescape (bad[i], NULL);

      g_test_message ("thread id \"%s\"", shown);
      g_assert_cmpuint (turn, ==, 0);
      assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                          "org.agentbroker.Error.InvalidArgument");
    }
  drain_main_context ();
  assert_nothing_created (fx);

  /* 200 bytes is still a thread id. */
  answer = prompt_ok (fx, max_id, "echo edge");
  g_assert_cmpstr (answer, ==, "echo edge");
}

static void
test_invalid_text (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) big = g_string_new ("echo ");
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx, NULL, NULL, NULL);
  while (big->len <= 1024 * 1024)
    g_string_append (big, "0123456789abcdef");
  turn = prompt_on (fx->c, "cli:big", big->str, NULL, &error);
  g_assert_cmpuint (turn, ==, 0);
  assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                      "org.agentbroker.Error.InvalidArgument");
  drain_main_context ();
  assert_nothing_created (fx);

  /* A large but allowed prompt goes through whole. */
  g_string_truncate (big, 100 * 1024);
  answer = prompt_ok (fx, "cli:big", big->str);
  g_assert_cmpuint (strlen (answer), ==, big->len);
  g_assert_cmpstr (answer, ==, big->str);
}

static void
test_unknown_agent (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guint64 turn;

  start_daemon (fx, NULL, NULL, NULL);
  turn = prompt_on (fx->c, "cli:agentless", "echo hi", "no-such-agent", &error);
  g_assert_cmpuint (turn, ==, 0);
  assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                      "org.agentbroker.Error.InvalidArgument");
  g_assert_nonnull (strstr (error->message, "no-such-agent"));
  drain_main_context ();
  assert_nothing_created (fx);
}

static void
test_agent_missing (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx,
                "  missing:\n"
                "    command: [/nonexistent/agent]\n",
                NULL, NULL);
  turn = prompt_on (fx->c, "cli:missing", "echo hi", "missing", &error);
  g_assert_cmpuint (turn, ==, 0);
  assert_error_named (error, AB_ERROR_AGENT_FAILED,
                      "org.agentbroker.Error.AgentFailed");
  g_assert_nonnull (strstr (error->message, "/nonexistent/agent"));

  /* The daemon is unharmed and other threads work. */
  answer = prompt_ok (fx, "cli:fine", "echo still here");
  g_assert_cmpstr (answer, ==, "echo still here");
}

static void
test_refuse_initialize (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) error2 = NULL;
  g_autofree char *answer = NULL;
  guint64 turn;

  start_daemon (fx,
                "  refuser:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    env: {AGENTBROKER_DEMO_MODE: refuse-initialize}\n",
                NULL, NULL);
  turn = prompt_on (fx->c, "cli:refused", "echo hi", "refuser", &error);
  g_assert_cmpuint (turn, ==, 0);
  assert_error_named (error, AB_ERROR_AGENT_FAILED,
                      "org.agentbroker.Error.AgentFailed");
  /* The agent's last stderr line. */
  g_assert_nonnull (strstr (error->message, "refusing initialize"));

  /* A second try is tried again (and fails the same way), not stuck. */
  turn = prompt_on (fx->c, "cli:refused", "echo hi", "refuser", &error2);
  g_assert_cmpuint (turn, ==, 0);
  assert_error_named (error2, AB_ERROR_AGENT_FAILED,
                      "org.agentbroker.Error.AgentFailed");
  g_assert_nonnull (strstr (error2->message, "refusing initialize"));

  /* A session that never got an agent can be listed and removed. */
  if (count_sessions (fx) > 0)
    {
      WAIT_FOR (state_is (fx, "cli:refused", "failed"), 5000);
      g_assert_cmpuint (session_u (fx, "cli:refused", "pid"), ==, 0);
      call_ok (fx, "RemoveSession", g_variant_new ("(s)", "cli:refused"));
      g_assert_cmpuint (count_sessions (fx), ==, 0);
    }

  answer = prompt_ok (fx, "cli:fine", "echo still here");
  g_assert_cmpstr (answer, ==, "echo still here");
}

/* ---- tests: the agent fails mid-turn ------------------------------------ */

typedef struct
{
  const char *prompt;
  const char *reason;
  const char *state; /* after the turn */
  const char *pool;
  const char *timeouts;
  gboolean retry_at_once; /* prompt again as soon as the turn ended */
} FailureCase;

static const FailureCase crash_case
    = { "crash", "agent-exited", "failed", NULL, NULL };
static const FailureCase garbage_case
    = { "garbage", "agent-error", "failed", NULL, NULL };
static const FailureCase longline_case
    = { "longline 100000", "agent-error", "failed",
        "  max_message_bytes: 64KiB\n", NULL };
static const FailureCase hang_case
    = { "hang", "timeout", "idle", NULL, "  turn_inactivity: 2s\n" };
/* An agent that ignores session/cancel is stopped after timeouts.kill;
 * whether that leaves the session failed or suspended is the daemon's
 * choice. */
static const FailureCase hanghard_case
    = { "hang-hard", "timeout", "failed|suspended", NULL,
        "  turn_inactivity: 2s\n" };
static const FailureCase garbage_retry_case
    = { "garbage", "agent-error", "failed", NULL, NULL, TRUE };

static void
test_agent_failure (Fixture *fx, gconstpointer data)
{
  const FailureCase *fc = data;
  const char *victim = "cli:victim", *bystander = "cli:bystander";
  g_autofree char *answer = NULL, *first = NULL;
  guint32 old_pid;
  guint64 bystander_turn, turn;
  TurnRec *rec, *brec;
  gint64 started;

  start_daemon (fx, NULL, fc->pool, fc->timeouts);
  /* The victim has a process already; the bystander is mid-turn when the
   * victim's agent fails. */
  first = prompt_ok (fx, victim, "echo warm-up");
  old_pid = session_u (fx, victim, "pid");
  bystander_turn = prompt (fx, bystander, "sleep 1.5");
  WAIT_FOR (turn_has_update (fx->c, bystander, bystander_turn), 10000);

  started = g_get_monotonic_time ();
  turn = prompt (fx, victim, fc->prompt);
  rec = wait_turn (fx->c, victim, turn, TURN_TIMEOUT_MS);
  if (fc->retry_at_once)
    {
      /* A client that retries as soon as it hears of the failure, while
       * the old agent may still be being stopped: the prompt is accepted
       * and runs on a new agent. */
      g_assert_cmpstr (rec->reason, ==, fc->reason);
      answer = prompt_ok (fx, victim, "echo back again");
      g_assert_cmpstr (answer, ==, "echo back again");
      g_assert_cmpuint (session_u (fx, victim, "pid"), !=, old_pid);
      WAIT_FOR (process_gone (old_pid), 5000);
      brec = wait_turn (fx->c, bystander, bystander_turn, TURN_TIMEOUT_MS);
      g_assert_cmpstr (brec->reason, ==, "end_turn");
      return;
    }
  if (g_strcmp0 (rec->reason, fc->reason) != 0)
    g_test_message ("\"%s\" ended %s (%s), expected %s", fc->prompt,
                    rec->reason, rec->message, fc->reason);
  g_assert_cmpstr (rec->reason, ==, fc->reason);
  /* A cause for the failures (a timeout may say nothing more). */
  if (!g_str_equal (fc->reason, "timeout"))
    g_assert_cmpstr (rec->message, !=, "");
  if (g_str_equal (fc->reason, "timeout"))
    /* turn_inactivity is 2 s: not sooner. */
    g_assert_cmpint (g_get_monotonic_time () - started, >=,
                     1500 * G_TIME_SPAN_MILLISECOND);
  WAIT_FOR (state_is (fx, victim, fc->state), 10000);
  if (!g_str_equal (fc->state, "idle"))
    {
      WAIT_FOR (process_gone (old_pid), 10000);
      g_assert_cmpuint (session_u (fx, victim, "pid"), ==, 0);
    }
  g_assert_cmpstr (session_tmp (fx, victim, "last_reason"), ==, fc->reason);

  /* The bystander did not notice. */
  brec = wait_turn (fx->c, bystander, bystander_turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (brec->reason, ==, "end_turn");
  g_assert_cmpstr (brec->text->str, ==, "sleeping 1.5 s");
  g_assert_cmpstr (session_tmp (fx, bystander, "state"), ==, "idle");

  /* The next prompt on the victim works (on a new process if it failed). */
  answer = prompt_ok (fx, victim, "echo back again");
  g_assert_cmpstr (answer, ==, "echo back again");
  g_assert_cmpstr (session_tmp (fx, victim, "state"), ==, "idle");
  if (!g_str_equal (fc->state, "idle"))
    g_assert_cmpuint (session_u (fx, victim, "pid"), !=, old_pid);
}

static void
test_agent_error (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:error";
  g_autofree char *reason = NULL, *message = NULL, *answer = NULL, *w = NULL;
  guint32 pid;

  start_daemon (fx, NULL, NULL, NULL);
  w = prompt_ok (fx, thread, "echo warm-up");
  pid = session_u (fx, thread, "pid");
  g_free (prompt_and_wait (fx, thread, "error", &reason, &message));
  g_assert_cmpstr (reason, ==, "agent-error");
  g_assert_nonnull (strstr (message, "demo failure"));
  g_assert_nonnull (strstr (message, "detailed demo failure"));
  g_assert_true (state_is (fx, thread, "idle"));
  g_assert_cmpuint (session_u (fx, thread, "pid"), ==, pid);
  answer = prompt_ok (fx, thread, "echo usable");
  g_assert_cmpstr (answer, ==, "echo usable");
  g_assert_cmpuint (session_u (fx, thread, "pid"), ==, pid);
}

/* ---- tests: queue and cancel -------------------------------------------- */

static void
test_queue_order (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:queue";
  g_autoptr (PromptCall) p1 = NULL;
  g_autoptr (PromptCall) p2 = NULL;
  g_autoptr (PromptCall) p3 = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *w = NULL;
  guint64 t1, t2, t3;
  TurnRec *r1, *r2, *r3;

  start_daemon (fx, NULL, NULL, NULL);
  w = prompt_ok (fx, thread, "echo warm-up");

  /* Back to back, without waiting for the replies. */
  p1 = prompt_send (fx->c, thread, "sleep 1", NULL);
  p2 = prompt_send (fx->c, thread, "echo second", NULL);
  p3 = prompt_send (fx->c, thread, "echo third", NULL);
  t1 = prompt_finish (p1, &error);
  g_assert_no_error (error);
  t2 = prompt_finish (p2, &error);
  g_assert_no_error (error);
  t3 = prompt_finish (p3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (t1, ==, 2);
  g_assert_cmpuint (t2, ==, t1 + 1);
  g_assert_cmpuint (t3, ==, t2 + 1);

  WAIT_FOR (state_is (fx, thread, "busy"), 5000);
  g_assert_cmpuint (session_u (fx, thread, "queued"), ==, 2);
  g_assert_cmpuint (broker_u (fx, "BusyCount"), ==, 1);

  r3 = wait_turn (fx->c, thread, t3, TURN_TIMEOUT_MS);
  r1 = collector_lookup (fx->c, thread, t1);
  r2 = collector_lookup (fx->c, thread, t2);
  g_assert_true (r1->ended && r2->ended && r3->ended);
  g_assert_cmpstr (r1->reason, ==, "end_turn");
  g_assert_cmpstr (r2->reason, ==, "end_turn");
  g_assert_cmpstr (r3->reason, ==, "end_turn");
  g_assert_cmpstr (r1->text->str, ==, "sleeping 1 s");
  g_assert_cmpstr (r2->text->str, ==, "echo second");
  g_assert_cmpstr (r3->text->str, ==, "echo third");
  /* One after the other: nothing of a turn before the previous ended. */
  g_assert_cmpuint (r1->ended_seq, <, r2->first_seq);
  g_assert_cmpuint (r2->ended_seq, <, r3->first_seq);
  g_assert_cmpuint (session_u (fx, thread, "queued"), ==, 0);
  g_assert_cmpuint (session_u (fx, thread, "turns"), ==, 4);
}

static void
test_queue_full (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:full";
  g_autoptr (GError) error = NULL;
  guint64 running, q1, q2, refused;

  start_daemon (fx, NULL, "  max_queued_prompts: 2\n", NULL);
  running = prompt (fx, thread, "sleep 30");
  WAIT_FOR (turn_has_update (fx->c, thread, running), 10000);
  q1 = prompt (fx, thread, "echo q1");
  q2 = prompt (fx, thread, "echo q2");
  g_assert_cmpuint (q2, ==, q1 + 1);
  refused = prompt_on (fx->c, thread, "echo q3", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  assert_error_named (error, AB_ERROR_BUSY, "org.agentbroker.Error.Busy");
  g_assert_cmpuint (session_u (fx, thread, "queued"), ==, 2);

  call_ok (fx, "Cancel", g_variant_new ("(s)", thread));
  WAIT_FOR (turn_ended (fx->c, thread, running), 5000);
}

static void
test_cancel (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:cancel";
  g_autofree char *answer = NULL;
  guint64 running, queued;
  gint64 cancelled_at;
  TurnRec *rec, *qrec;

  start_daemon (fx, NULL, NULL, NULL);
  running = prompt (fx, thread, "sleep 30");
  WAIT_FOR (turn_has_update (fx->c, thread, running), 10000);
  queued = prompt (fx, thread, "echo never");

  cancelled_at = g_get_monotonic_time ();
  call_ok (fx, "Cancel", g_variant_new ("(s)", thread));
  rec = wait_turn (fx->c, thread, running, 5000);
  g_assert_cmpstr (rec->reason, ==, "cancelled");
  g_assert_cmpint (g_get_monotonic_time () - cancelled_at, <,
                   5 * G_USEC_PER_SEC);

  /* The dropped prompt ends cancelled or never starts; it never runs. A
   * round trip after a short wait lets anything it sent arrive first. */
  WAIT_UNTIL (turn_ended (fx->c, thread, queued), 1000);
  g_assert_cmpuint (session_u (fx, thread, "queued"), ==, 0);
  drain_main_context ();
  qrec = collector_lookup (fx->c, thread, queued);
  if (qrec != NULL)
    {
      g_assert_cmpuint (qrec->updates->len, ==, 0);
      if (qrec->ended)
        g_assert_cmpstr (qrec->reason, ==, "cancelled");
    }
  WAIT_FOR (state_is (fx, thread, "idle"), 5000);

  answer = prompt_ok (fx, thread, "echo after cancel");
  g_assert_cmpstr (answer, ==, "echo after cancel");
}

/* ---- tests: streams ----------------------------------------------------- */

static void
assert_stream (TurnRec *rec, guint n, guint bytes)
{
  g_assert_nonnull (rec);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_cmpuint (rec->chunks->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      const char *chunk = rec->chunks->pdata[i];
      g_autofree char *prefix = g_strdup_printf ("%u ", i + 1);

      if (!g_str_has_prefix (chunk, prefix) || strlen (chunk) != bytes)
        g_test_message ("chunk %u of %s turn %" G_GUINT64_FORMAT ": \"%s\"",
                        i + 1, rec->path, rec->turn, chunk);
      g_assert_true (g_str_has_prefix (chunk, prefix));
      g_assert_cmpuint (strlen (chunk), ==, bytes);
    }
}

static void
test_streams_do_not_mix (Fixture *fx, gconstpointer data)
{
  g_autoptr (PromptCall) pa = NULL;
  g_autoptr (PromptCall) pb = NULL;
  g_autoptr (GError) error = NULL;
  guint64 ta, tb;
  TurnRec *ra, *rb;

  start_daemon (fx, NULL, NULL, NULL);
  /* Different chunk sizes tell the two streams apart. */
  pa = prompt_send (fx->c, "cli:stream/a", "stream 200 20", NULL);
  pb = prompt_send (fx->c, "cli:stream/b", "stream 200 40", NULL);
  ta = prompt_finish (pa, &error);
  g_assert_no_error (error);
  tb = prompt_finish (pb, &error);
  g_assert_no_error (error);
  ra = wait_turn (fx->c, "cli:stream/a", ta, TURN_TIMEOUT_MS);
  rb = wait_turn (fx->c, "cli:stream/b", tb, TURN_TIMEOUT_MS);
  assert_stream (ra, 200, 20);
  assert_stream (rb, 200, 40);
  /* Nothing went to a turn that does not exist. */
  for (guint i = 0; i < fx->c->turns->len; i++)
    {
      TurnRec *rec = fx->c->turns->pdata[i];

      g_assert_true (rec == ra || rec == rb || rec->turn == 0);
    }

  /* A big fast stream arrives whole and in order (batched or not). */
  ta = prompt (fx, "cli:stream/a", "stream 5000 24");
  ra = wait_turn (fx->c, "cli:stream/a", ta, TURN_TIMEOUT_MS);
  assert_stream (ra, 5000, 24);
  g_test_message ("5000 updates came in %u signals", ra->update_signals);
}

/* A second connection that neither prompted nor watched. */
static GDBusConnection *
second_connection (void)
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

/* A round trip from @connection to the daemon: whatever the daemon sent
 * to it before answering has been dispatched afterwards. */
static void
sync_with_daemon (GDBusConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply
      = call_on (connection, "ListSessions", NULL, "(aa{sv})", &error);

  g_assert_no_error (error);
  drain_main_context ();
}

static void
test_unicast_and_watch (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:unicast";
  g_autofree char *path = session_path (thread);
  g_autofree char *added = g_strdup_printf ("%s %s", thread, path);
  g_autoptr (GDBusConnection) other_conn = second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *a1 = NULL, *a2 = NULL, *a3 = NULL;
  Collector *other;
  TurnRec *rec;

  start_daemon (fx, NULL, NULL, NULL);
  other = collector_new (other_conn);
  sync_with_daemon (other_conn); /* its match rules are in place */

  a1 = prompt_ok (fx, thread, "stream 5");
  sync_with_daemon (other_conn);
  /* Broadcast: everyone sees the session appear. */
  WAIT_FOR (collector_has (other->added, added), 5000);
  /* Unicast: not a single streaming signal for the bystander. */
  g_assert_cmpuint (other->session_signals, ==, 0);
  g_assert_cmpuint (other->turns->len, ==, 0);

  /* Watching, it gets the stream of the next turn, whole. */
  reply = call_on (other_conn, "Watch", g_variant_new ("(s)", thread), "()",
                   &error);
  g_assert_no_error (error);
  a2 = prompt_ok (fx, thread, "stream 7");
  WAIT_FOR (turn_ended (other, thread, 2), 5000);
  rec = collector_lookup (other, thread, 2);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_cmpstr (rec->text->str, ==, a2);
  assert_stream (rec, 7, 16);

  /* After Unwatch, nothing again. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = call_on (other_conn, "Unwatch", g_variant_new ("(s)", thread), "()",
                   &error);
  g_assert_no_error (error);
  a3 = prompt_ok (fx, thread, "stream 3");
  sync_with_daemon (other_conn);
  g_assert_null (collector_lookup (other, thread, 3));

  collector_free (other);
}

static gboolean
has_turn0_commands (Collector *c, const char *thread)
{
  TurnRec *rec = collector_lookup (c, thread, 0);

  if (rec == NULL)
    return FALSE;
  for (guint i = 0; i < rec->updates->len; i++)
    if (strstr (rec->updates->pdata[i], "available_commands_update") != NULL)
      return TRUE;
  return FALSE;
}

static void
test_watch_all_turn0 (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:turn0";
  g_autoptr (GDBusConnection) watcher_conn = second_connection ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *answer = NULL;
  Collector *watcher;
  TurnRec *rec;

  start_daemon (fx, NULL, NULL, NULL);
  watcher = collector_new (watcher_conn);
  /* Watch everything before any session exists. */
  reply = call_on (watcher_conn, "Watch", g_variant_new ("(s)", "*"), "()",
                   &error);
  g_assert_no_error (error);

  answer = prompt_ok (fx, thread, "echo hi");
  /* The agent's update outside any turn, right after session/new. */
  WAIT_FOR (turn_ended (watcher, thread, 1), 5000);
  rec = collector_lookup (watcher, thread, 1);
  for (guint i = 0; i < rec->updates->len; i++)
    if (strstr (rec->updates->pdata[i], "available_commands_update") != NULL)
      g_test_message ("available_commands_update came as turn 1: %s",
                      (char *)rec->updates->pdata[i]);
  WAIT_FOR (has_turn0_commands (watcher, thread), 5000);
  /* The watcher also has the turn. */
  WAIT_FOR (turn_ended (watcher, thread, 1), 5000);
  rec = collector_lookup (watcher, thread, 1);
  g_assert_cmpstr (rec->text->str, ==, "echo hi");
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  /* Turn 0 never ends. */
  g_assert_false (turn_ended (watcher, thread, 0));
  collector_free (watcher);
}

/* ---- tests: pool -------------------------------------------------------- */

static void
test_idle_suspend_resume (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:sleepy";
  g_autofree char *a1 = NULL, *a2 = NULL, *acp1 = NULL, *acp2 = NULL;
  guint32 pid;

  start_daemon (fx, NULL, "  idle_timeout: 2s\n", NULL);
  a1 = prompt_ok (fx, thread, "remember this");
  pid = session_u (fx, thread, "pid");
  acp1 = session_s (fx, thread, "acp_session");

  WAIT_FOR (state_is (fx, thread, "suspended"), 8000);
  g_assert_cmpuint (session_u (fx, thread, "pid"), ==, 0);
  WAIT_FOR (process_gone (pid), 5000);
  g_assert_cmpuint (broker_u (fx, "RunningCount"), ==, 0);
  g_assert_cmpuint (broker_u (fx, "SessionCount"), ==, 1);
  drain_main_context ();
  g_assert_cmpuint (fx->c->removed->len, ==, 0);

  /* Resumed through session/load: the agent has its history back. */
  a2 = prompt_ok (fx, thread, "what do you remember");
  g_assert_nonnull (strstr (a2, "I remember 1 earlier prompt in this session"));
  g_assert_nonnull (strstr (a2, "the last one was \"remember this\""));
  acp2 = session_s (fx, thread, "acp_session");
  g_assert_cmpstr (acp2, ==, acp1);
  g_assert_cmpuint (session_u (fx, thread, "pid"), !=, 0);
  g_assert_cmpuint (session_u (fx, thread, "turns"), ==, 2);
}

static void
test_eviction (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a = NULL, *b = NULL, *c = NULL, *again = NULL;
  guint32 pid_a;
  guint64 tb, tc, refused;

  start_daemon (fx, NULL, "  max_sessions: 2\n", NULL);
  a = prompt_ok (fx, "cli:a", "echo a");
  pid_a = session_u (fx, "cli:a", "pid");
  b = prompt_ok (fx, "cli:b", "echo b");
  c = prompt_ok (fx, "cli:c", "echo c");

  /* The least recently active idle session made room. */
  g_assert_cmpstr (session_tmp (fx, "cli:a", "state"), ==, "suspended");
  g_assert_cmpuint (session_u (fx, "cli:a", "pid"), ==, 0);
  WAIT_FOR (process_gone (pid_a), 5000);
  g_assert_cmpstr (session_tmp (fx, "cli:b", "state"), ==, "idle");
  g_assert_cmpstr (session_tmp (fx, "cli:c", "state"), ==, "idle");
  g_assert_cmpuint (broker_u (fx, "RunningCount"), ==, 2);
  g_assert_cmpuint (broker_u (fx, "SessionCount"), ==, 3);

  /* Both running sessions busy: no room for a new one, nor a resume. */
  tb = prompt (fx, "cli:b", "sleep 10");
  tc = prompt (fx, "cli:c", "sleep 10");
  WAIT_FOR (turn_has_update (fx->c, "cli:b", tb), 10000);
  WAIT_FOR (turn_has_update (fx->c, "cli:c", tc), 10000);
  refused = prompt_on (fx->c, "cli:d", "echo d", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  assert_error_named (error, AB_ERROR_POOL_EXHAUSTED,
                      "org.agentbroker.Error.PoolExhausted");
  g_clear_error (&error);
  /* Refused, so nothing was accepted: no session for d. */
  g_assert_cmpuint (count_sessions (fx), ==, 3);
  refused = prompt_on (fx->c, "cli:a", "echo a", NULL, &error);
  g_assert_cmpuint (refused, ==, 0);
  assert_error_named (error, AB_ERROR_POOL_EXHAUSTED,
                      "org.agentbroker.Error.PoolExhausted");

  /* Room again once one is idle: a resumes and evicts the other. */
  call_ok (fx, "Cancel", g_variant_new ("(s)", "cli:b"));
  WAIT_FOR (turn_ended (fx->c, "cli:b", tb), 5000);
  WAIT_FOR (state_is (fx, "cli:b", "idle"), 5000);
  again = prompt_ok (fx, "cli:a", "echo a again");
  g_assert_cmpstr (again, ==, "echo a again");
  g_assert_cmpstr (session_tmp (fx, "cli:b", "state"), ==, "suspended");
  call_ok (fx, "Cancel", g_variant_new ("(s)", "cli:c"));
  WAIT_FOR (turn_ended (fx->c, "cli:c", tc), 5000);
}

/* ---- tests: removal ----------------------------------------------------- */

static void
test_remove (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:remove";
  const char *demo_mode = data;
  g_autofree char *path = session_path (thread);
  g_autofree char *removed = g_strdup_printf ("%s removed", thread);
  g_autofree char *agents = NULL;
  g_autofree char *answer = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) objects = NULL;
  g_autoptr (GVariant) dict = NULL;
  guint32 pid;
  int child = 0, pgid = 0;
  guint64 busy;
  gint64 started;

  if (demo_mode != NULL)
    agents = g_strdup_printf ("  stubborn:\n"
                              "    command: [agentbroker-demo-agent]\n"
                              "    env: {AGENTBROKER_DEMO_MODE: \"%s\"}\n",
                              demo_mode);
  start_daemon (fx, agents, NULL, "  kill: 1s\n");
  {
    g_autoptr (GError) perr = NULL;
    guint64 t = prompt_on (fx->c, thread, "fork-child",
                           demo_mode != NULL ? "stubborn" : NULL, &perr);
    TurnRec *rec;

    g_assert_no_error (perr);
    rec = wait_turn (fx->c, thread, t, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    answer = g_strdup (rec->text->str);
  }
  g_assert_cmpint (sscanf (answer, "fork-child: pid=%d pgid=%d", &child, &pgid),
                   ==, 2);
  pid = session_u (fx, thread, "pid");
  /* The agent leads its own process group; the grandchild is in it. */
  g_assert_cmpint (pgid, ==, (int)pid);
  g_assert_cmpint (getpgid (child), ==, pgid);
  g_assert_false (process_gone (child));

  /* Removed in the middle of a turn. */
  busy = prompt (fx, thread, "sleep 30");
  WAIT_FOR (turn_has_update (fx->c, thread, busy), 10000);
  started = g_get_monotonic_time ();
  reply
      = call (fx, "RemoveSession", g_variant_new ("(s)", thread), "()", &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_get_monotonic_time () - started, <, 10 * G_USEC_PER_SEC);

  /* Returned when the process was gone: no member of the group is left. */
  if (!process_gone (pid) || !process_gone (child))
    g_test_message ("after RemoveSession: agent %u %s, grandchild %d %s", pid,
                    process_gone (pid) ? "gone" : "ALIVE", child,
                    process_gone (child) ? "gone" : "ALIVE");
  g_assert_true (process_gone (pid));
  g_assert_true (process_gone (child));

  g_assert_cmpuint (count_sessions (fx), ==, 0);
  dict = get_session (fx, thread, &error);
  g_assert_null (dict);
  assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                      "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);
  WAIT_FOR (collector_has (fx->c->removed, removed), 5000);
  g_clear_pointer (&reply, g_variant_unref);
  reply = g_dbus_connection_call_sync (
      fx->d.connection, BUS_NAME, BUS_PATH,
      "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL,
      G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), G_DBUS_CALL_FLAGS_NONE,
      CALL_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  objects = g_variant_get_child_value (reply, 0);
  g_assert_false (g_variant_lookup (objects, path, "*", NULL));
  /* The turn in flight was ended for its prompter. */
  WAIT_FOR (turn_ended (fx->c, thread, busy), 5000);
  g_assert_cmpuint (broker_u (fx, "SessionCount"), ==, 0);
  g_assert_cmpuint (broker_u (fx, "RunningCount"), ==, 0);
}

/* ---- tests: permissions ------------------------------------------------- */

static void
test_permission_policy (Fixture *fx, gconstpointer data)
{
  const char *policy = data;
  g_autofree char *agents = NULL;
  g_autofree char *reason = NULL;
  g_autoptr (GError) error = NULL;
  guint64 turn;
  TurnRec *rec;

  agents = g_strdup_printf ("  guarded:\n"
                            "    command: [agentbroker-demo-agent]\n"
                            "    permissions: %s\n",
                            policy);
  start_daemon (fx, agents, NULL, NULL);
  turn = prompt_on (fx->c, "cli:perm", "permission", "guarded", &error);
  g_assert_no_error (error);
  rec = wait_turn (fx->c, "cli:perm", turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  if (g_str_equal (policy, "allow"))
    g_assert_nonnull (strstr (rec->text->str, "permission: allow_always"));
  else
    g_assert_nonnull (strstr (rec->text->str, "permission: reject_once"));
  /* Decided by policy: nobody was asked. */
  g_assert_cmpuint (fx->c->perms->len, ==, 0);
}

static void
test_permission_ask (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:ask";
  g_autofree char *path = session_path (thread);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  guint64 turn;
  PermRec *perm;
  TurnRec *rec;

  start_daemon (fx,
                "  asking:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    permissions: ask\n",
                NULL, NULL);
  turn = prompt_on (fx->c, thread, "permission", "asking", &error);
  g_assert_no_error (error);
  WAIT_FOR (fx->c->perms->len > 0, 10000);
  perm = fx->c->perms->pdata[0];
  g_assert_cmpstr (perm->path, ==, path);
  g_assert_cmpuint (perm->turn, ==, turn);
  g_assert_cmpstr (perm->request, !=, "");
  g_assert_nonnull (strstr (perm->request_json, "allow_once"));
  g_assert_nonnull (strstr (perm->request_json, "reject_once"));
  g_assert_false (turn_ended (fx->c, thread, turn));

  reply = call (fx, "AnswerPermission",
                g_variant_new ("(sss)", thread, perm->request, "allow_once"),
                "()", &error);
  g_assert_no_error (error);
  rec = wait_turn (fx->c, thread, turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  g_assert_nonnull (strstr (rec->text->str, "permission: allow_once"));
  g_assert_cmpuint (fx->c->perms->len, ==, 1);

  /* The request is answered: a second answer is refused with a named
   * error, not silently taken. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = call (fx, "AnswerPermission",
                g_variant_new ("(sss)", thread, perm->request, "allow_once"),
                "()", &error);
  g_assert_null (reply);
  g_assert_nonnull (error);
  g_assert_true (g_dbus_error_is_remote_error (error));
}

static void
test_permission_ask_timeout (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:ask-timeout";
  g_autoptr (GError) error = NULL;
  guint64 turn;
  gint64 started;
  TurnRec *rec;

  start_daemon (fx,
                "  asking:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    permissions: ask\n",
                NULL, "  permission: 1s\n");
  started = g_get_monotonic_time ();
  turn = prompt_on (fx->c, thread, "permission", "asking", &error);
  g_assert_no_error (error);
  WAIT_FOR (fx->c->perms->len > 0, 10000);
  rec = wait_turn (fx->c, thread, turn, 10000);
  g_assert_cmpstr (rec->reason, ==, "end_turn");
  if (strstr (rec->text->str, "permission: reject_once") == NULL)
    g_assert_nonnull (strstr (rec->text->str, "permission: cancelled"));
  g_assert_cmpint (g_get_monotonic_time () - started, >=,
                   800 * G_TIME_SPAN_MILLISECOND);
}

/* ---- tests: the agent's environment ------------------------------------- */

static char *
env_value (const char *listing, const char *name)
{
  g_auto (GStrv) lines = g_strsplit (listing, "\n", -1);
  g_autofree char *prefix = g_strconcat (name, "=", NULL);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix))
      return g_strdup (lines[i] + strlen (prefix));
  return NULL;
}

static void
test_environment (Fixture *fx, gconstpointer data)
{
  g_autofree char *creds = g_build_filename (fx->d.tmpdir, "creds", NULL);
  g_autofree char *key = g_build_filename (creds, "key", NULL);
  g_autofree char *env1 = NULL, *env2 = NULL;
  g_autofree char *cwd1 = NULL, *cwd2 = NULL;
  g_autofree char *work = g_build_filename (fx->d.state_dir, "work", NULL);
  g_autofree char *v = NULL;
  const char *allowed[] = { "HOME",
                            "PATH",
                            "USER",
                            "LANG",
                            "FOO",
                            "TOKEN",
                            "AB_TEST_INHERIT",
                            "AGENTBROKER_THREAD",
                            NULL };
  g_auto (GStrv) lines = NULL;
  struct stat st;

  g_assert_cmpint (g_mkdir_with_parents (creds, 0700), ==, 0);
  g_assert_true (g_file_set_contents (key, "s3cret", -1, NULL));
  ab_daemon_fixture_setenv (&fx->d, "AB_TEST_INHERIT", "yes");
  ab_daemon_fixture_setenv (&fx->d, "AB_TEST_SECRET", "leak");
  ab_daemon_fixture_setenv (&fx->d, "CREDENTIALS_DIRECTORY", creds);
  start_daemon (fx,
                "  envy:\n"
                "    command: [agentbroker-demo-agent]\n"
                "    env:\n"
                "      FOO: bar\n"
                "      TOKEN: {credential: key}\n"
                "    inherit_env: [AB_TEST_INHERIT]\n",
                NULL, NULL);

  {
    g_autoptr (GError) error = NULL;
    guint64 turn = prompt_on (fx->c, "a/b", "env", "envy", &error);
    TurnRec *rec;

    g_assert_no_error (error);
    rec = wait_turn (fx->c, "a/b", turn, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    env1 = g_strdup (rec->text->str);
    turn = prompt_on (fx->c, "a_b", "env", "envy", &error);
    g_assert_no_error (error);
    rec = wait_turn (fx->c, "a_b", turn, TURN_TIMEOUT_MS);
    g_assert_cmpstr (rec->reason, ==, "end_turn");
    env2 = g_strdup (rec->text->str);
  }
  g_test_message ("agent environment:\n%s", env1);

  v = env_value (env1, "FOO");
  g_assert_cmpstr (v, ==, "bar");
  g_free (v);
  v = env_value (env1, "TOKEN");
  g_assert_cmpstr (v, ==, "s3cret");
  g_free (v);
  v = env_value (env1, "AB_TEST_INHERIT");
  g_assert_cmpstr (v, ==, "yes");
  g_free (v);
  v = env_value (env1, "AGENTBROKER_THREAD");
  g_assert_cmpstr (v, ==, "a/b");
  g_free (v);
  v = env_value (env2, "AGENTBROKER_THREAD");
  g_assert_cmpstr (v, ==, "a_b");
  g_free (v);
  v = env_value (env1, "AB_TEST_SECRET");
  g_assert_null (v);

  /* Nothing else of the daemon's environment got through. */
  lines = g_strsplit (env1, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autofree char *name = NULL;
      const char *eq = strchr (lines[i], '=');

      if (g_str_has_prefix (lines[i], "cwd=") || eq == NULL)
        continue;
      name = g_strndup (lines[i], eq - lines[i]);
      if (!g_strv_contains (allowed, name))
        g_test_message ("unexpected variable in the agent's environment: %s",
                        lines[i]);
      g_assert_true (g_strv_contains (allowed, name));
    }

  /* Each thread its own directory under {state}/work, 0700. */
  cwd1 = env_value (env1, "cwd");
  cwd2 = env_value (env2, "cwd");
  g_assert_nonnull (cwd1);
  g_assert_nonnull (cwd2);
  g_assert_cmpstr (cwd1, !=, cwd2);
  g_assert_true (g_str_has_prefix (cwd1, work));
  g_assert_true (g_str_has_prefix (cwd2, work));
  g_assert_cmpstr (session_tmp (fx, "a/b", "cwd"), ==, cwd1);
  g_assert_cmpstr (session_tmp (fx, "a_b", "cwd"), ==, cwd2);
  g_assert_cmpint (stat (cwd1, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/sessions/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("prompt/basic", test_prompt_basic, NULL);
  ADD ("object-manager", test_object_manager, NULL);
  ADD ("properties-changed", test_properties_changed, NULL);
  ADD ("unknown-session", test_unknown_session, NULL);
  ADD ("bad-input/thread-id", test_invalid_thread, NULL);
  ADD ("bad-input/text-size", test_invalid_text, NULL);
  ADD ("bad-input/unknown-agent", test_unknown_agent, NULL);
  ADD ("bad-input/agent-missing", test_agent_missing, NULL);
  ADD ("bad-input/refuse-initialize", test_refuse_initialize, NULL);
  ADD ("failure/crash", test_agent_failure, &crash_case);
  ADD ("failure/garbage", test_agent_failure, &garbage_case);
  ADD ("failure/longline", test_agent_failure, &longline_case);
  ADD ("failure/hang-timeout", test_agent_failure, &hang_case);
  ADD ("failure/hang-hard", test_agent_failure, &hanghard_case);
  ADD ("failure/garbage-retry-at-once", test_agent_failure,
       &garbage_retry_case);
  ADD ("failure/error-response", test_agent_error, NULL);
  ADD ("queue/order", test_queue_order, NULL);
  ADD ("queue/full", test_queue_full, NULL);
  ADD ("cancel", test_cancel, NULL);
  ADD ("stream/no-mixing", test_streams_do_not_mix, NULL);
  ADD ("stream/unicast-and-watch", test_unicast_and_watch, NULL);
  ADD ("stream/turn0-to-watchers", test_watch_all_turn0, NULL);
  ADD ("pool/idle-suspend-resume", test_idle_suspend_resume, NULL);
  ADD ("pool/eviction", test_eviction, NULL);
  ADD ("remove/process-group", test_remove, NULL);
  ADD ("remove/ignores-sigterm", test_remove,
       "ignore-sigterm,ignore-stdin-eof");
  ADD ("permission/allow", test_permission_policy, "allow");
  ADD ("permission/deny", test_permission_policy, "deny");
  ADD ("permission/ask", test_permission_ask, NULL);
  ADD ("permission/ask-timeout", test_permission_ask_timeout, NULL);
  ADD ("environment", test_environment, NULL);
#undef ADD

  /* Remote errors map back to AB_ERROR once the domain is registered. */
  (void)ab_error_quark ();
  ab_test_bus_up ();
  status = g_test_run ();
  ab_test_bus_down ();
  return status;
}
