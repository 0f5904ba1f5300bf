/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — SIGKILL at random moments loses no session
 *
 * A hundred rounds on a private bus: the daemon starts on the state the
 * previous round left, a few sessions (new ones among them) are prompted
 * at once, and after a random delay the daemon is killed with SIGKILL,
 * whatever it was doing: starting agents, writing records, streaming.
 * After each kill every record file in the state directory parses; after
 * each restart no record was set aside, every session whose Prompt
 * succeeded (or that a restart listed before) is listed again, and only
 * sessions that were prompted are.
 *
 * The randomness comes from GTest's seed, printed at the start of the
 * output ("random seed: …"); run again with --seed=THAT to replay a
 * failure. AB_CRASH_ROUNDS overrides the number of rounds.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "daemon-fixture.h"
#include "error.h"
#include "scratch-dir.h"
#include "store.h"

#define ROUNDS 100
#define MAX_THREADS 12
#define MAX_KILL_DELAY_MS 400
#define TEST_ALARM_SECONDS 600 /* a hang guard; valgrind is slower */

typedef struct
{
  AbDaemonFixture d;
  GHashTable *attempted; /* threads ever prompted → GINT_TO_POINTER (1) */
  GHashTable *confirmed; /* threads known to exist: must never be lost */
  GPtrArray *threads;    /* attempted, in order, for picking */
  GArray *agents;        /* pids of agents of killed daemons */
} Fixture;

typedef struct
{
  Fixture *fx;
  char *thread;
  gboolean done;
  gboolean ok;
} PromptCall;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_setup (&fx->d, "default_agent: demo\n"
                                   "agents:\n"
                                   "  demo:\n"
                                   "    command: [agentbroker-demo-agent]\n"
                                   "pool:\n"
                                   "  max_sessions: 8\n"
                                   "timeouts:\n"
                                   "  drain: 5s\n"
                                   "  kill: 5s\n");
  fx->attempted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  fx->confirmed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  fx->threads = g_ptr_array_new_with_free_func (g_free);
  fx->agents = g_array_new (FALSE, FALSE, sizeof (pid_t));
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
}

static void
kill_agents (Fixture *fx)
{
  /* Each agent leads its own process group. */
  for (guint i = 0; i < fx->agents->len; i++)
    {
      pid_t pid = g_array_index (fx->agents, pid_t, i);

      if (pid > 1)
        kill (-pid, SIGKILL);
    }
  g_array_set_size (fx->agents, 0);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_stop_checked (&fx->d);
  kill_agents (fx);
  g_array_unref (fx->agents);
  g_ptr_array_unref (fx->threads);
  g_hash_table_unref (fx->confirmed);
  g_hash_table_unref (fx->attempted);
  ab_daemon_fixture_teardown (&fx->d);
}

/* Every record file on disk parses and belongs to a prompted thread;
 * read directly, as the next daemon will. Returns how many there are. */
static guint
check_records_on_disk (Fixture *fx)
{
  g_autofree char *store_dir = ab_store_dir (fx->d.state_dir);
  g_autoptr (GDir) dir = g_dir_open (store_dir, 0, NULL);
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (store_dir, name, NULL);
      g_autofree char *contents = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (AbSessionRecord) record = NULL;
      gsize len = 0;

      g_assert_false (g_str_has_suffix (name, ".corrupt"));
      if (!g_str_has_suffix (name, ".json"))
        continue;
      g_assert_true (g_file_get_contents (path, &contents, &len, &error));
      record = ab_session_record_parse (contents, len, &error);
      if (record == NULL)
        g_test_message ("record %s does not parse: %s\n%s", name,
                        error->message, contents);
      g_assert_no_error (error);
      g_assert_true (g_hash_table_contains (fx->attempted, record->thread));
      n++;
    }
  return n;
}

/* After a restart: nothing set aside, every session known to exist is
 * listed, and whatever is listed was prompted (and is now known). */
static void
check_sessions_listed (Fixture *fx, guint on_disk)
{
  g_autofree char *store_dir = ab_store_dir (fx->d.state_dir);
  g_autoptr (GVariant) list = ab_list_sessions (&fx->d);
  g_autoptr (GHashTable) listed
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter iter;
  gpointer key;

  g_assert_cmpuint (ab_count_suffix (store_dir, ".corrupt"), ==, 0);
  for (gsize i = 0; i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) dict = g_variant_get_child_value (list, i);
      const char *thread = NULL;

      g_assert_true (g_variant_lookup (dict, "thread", "&s", &thread));
      g_assert_true (g_hash_table_contains (fx->attempted, thread));
      g_hash_table_add (listed, g_strdup (thread));
    }
  g_hash_table_iter_init (&iter, fx->confirmed);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (listed, key))
      g_error ("session %s was lost", (const char *)key);
  g_assert_cmpuint (g_hash_table_size (listed), ==, on_disk);
  g_hash_table_iter_init (&iter, listed);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_add (fx->confirmed, g_strdup (key));
  g_assert_cmpuint (g_hash_table_size (listed), ==,
                    g_hash_table_size (fx->confirmed));
}

/* The records the killed daemon left parse; a new daemon starts on them
 * and lists every session known. */
static void
restart_and_check (Fixture *fx)
{
  g_autoptr (GError) error = NULL;
  guint on_disk = check_records_on_disk (fx);

  AB_WAIT_FOR (!ab_broker_name_has_owner (fx->d.connection), 10000);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  check_sessions_listed (fx, on_disk);
}

static void
on_prompt_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  PromptCall *p = user_data;
  g_autoptr (GVariant) reply = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         NULL);
  p->ok = reply != NULL;
  p->done = TRUE;
}

static const char *
pick_thread (Fixture *fx)
{
  if (fx->threads->len == 0
      || (fx->threads->len < MAX_THREADS && g_test_rand_int_range (0, 3) == 0))
    {
      char *thread = g_strdup_printf ("cli:crash/%u", fx->threads->len);

      g_ptr_array_add (fx->threads, thread);
      g_hash_table_add (fx->attempted, g_strdup (thread));
      return thread;
    }
  return g_ptr_array_index (
      fx->threads, g_test_rand_int_range (0, (gint32)fx->threads->len));
}

/* The agents running now, to kill after the daemon. */
static void
remember_agents (Fixture *fx)
{
  g_autoptr (GVariant) list = ab_list_sessions (&fx->d);

  for (gsize i = 0; i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) dict = g_variant_get_child_value (list, i);
      guint32 pid = 0;

      if (g_variant_lookup (dict, "pid", "u", &pid) && pid > 1)
        {
          pid_t p = (pid_t)pid;

          g_array_append_val (fx->agents, p);
        }
    }
}

static gboolean
all_done (PromptCall *calls, guint n)
{
  for (guint i = 0; i < n; i++)
    if (!calls[i].done)
      return FALSE;
  return TRUE;
}

static void
round_run (Fixture *fx, guint round)
{
  PromptCall calls[6] = { 0 };
  guint n_calls = (guint)g_test_rand_int_range (1, G_N_ELEMENTS (calls) + 1);
  guint delay = (guint)g_test_rand_int_range (0, MAX_KILL_DELAY_MS + 1);

  restart_and_check (fx);

  for (guint i = 0; i < n_calls; i++)
    {
      /* Turns of a few chunks: records at their start and end. */
      g_autofree char *text
          = g_strdup_printf ("stream %d 32", g_test_rand_int_range (1, 20));

      calls[i].fx = fx;
      calls[i].thread = g_strdup (pick_thread (fx));
      g_dbus_connection_call (
          fx->d.connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE, "Prompt",
          g_variant_new (
              "(ss@a{sv})", calls[i].thread, text,
              g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0)),
          G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE, AB_CALL_TIMEOUT_MS,
          NULL, on_prompt_reply, &calls[i]);
    }
  g_test_message ("round %u: %u prompts, SIGKILL after %u ms", round, n_calls,
                  delay);
  AB_WAIT_UNTIL (FALSE, delay);
  remember_agents (fx);
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGKILL), ==, 128 + SIGKILL);
  kill_agents (fx);
  /* The calls still out fail now that the daemon is gone. */
  AB_WAIT_FOR (all_done (calls, n_calls), AB_CALL_TIMEOUT_MS);
  for (guint i = 0; i < n_calls; i++)
    {
      /* A session whose Prompt succeeded exists from now on. */
      if (calls[i].ok)
        g_hash_table_add (fx->confirmed, g_strdup (calls[i].thread));
      g_free (calls[i].thread);
    }
}

static void
test_random_kills (Fixture *fx, gconstpointer data)
{
  const char *env = g_getenv ("AB_CRASH_ROUNDS");
  guint rounds = env != NULL ? (guint)atoi (env) : ROUNDS;

  for (guint round = 0; round < rounds; round++)
    round_run (fx, round);

  /* The last kill too: a start after it finds everything. */
  restart_and_check (fx);
  g_test_message ("%u sessions after %u kills",
                  g_hash_table_size (fx->confirmed), rounds);
  g_assert_cmpuint (g_hash_table_size (fx->confirmed), >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  ab_test_bus_up ();
  g_test_add ("/crash/random-kills", Fixture, NULL, fixture_up,
              test_random_kills, fixture_down);
  return ab_test_run ();
}
