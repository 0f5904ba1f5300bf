/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the session record store's write queue (src/store.c)
 *
 * Records are written on worker threads; a newer record of the same
 * thread replaces one still waiting; callbacks come in the main context,
 * in order, once a record at least as new as theirs is on disk; flush and
 * delete leave nothing behind.
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bounded-wait.h"
#include "error.h"
#include "scratch-dir.h"
#include "store.h"

typedef struct
{
  char *dir;       /* a temporary directory */
  char *store_dir; /* dir/sessions, created by the first write */
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  fx->dir = g_dir_make_tmp ("ab-test-store-XXXXXX", &error);
  g_assert_no_error (error);
  fx->store_dir = ab_store_dir (fx->dir);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_store_flush ();
  ab_remove_tree (fx->dir);
  g_free (fx->dir);
  g_free (fx->store_dir);
}

static AbSessionRecord *
make_record (const char *thread, guint64 turns)
{
  AbSessionRecord *r = g_new0 (AbSessionRecord, 1);

  r->thread = g_strdup (thread);
  r->agent = g_strdup ("demo");
  r->owner = 1000;
  r->cwd = g_strdup ("/tmp");
  r->acp_session = g_strdup ("acp-1");
  r->created = 1;
  r->last_activity = 2;
  r->turns = turns;
  r->last_turn = turns > 0 ? turns - 1 : 0;
  r->running_turn = turns;
  r->running_text = g_strdup_printf ("prompt %" G_GUINT64_FORMAT, turns);
  return r;
}

/* The record of @thread on disk, or NULL. Read directly: loading the
 * whole store would remove other records' temporary files. */
static AbSessionRecord *
read_back (Fixture *fx, const char *thread, struct stat *st)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".json", NULL);
  g_autofree char *path = g_build_filename (fx->store_dir, name, NULL);
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  AbSessionRecord *r;
  gsize len;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return NULL;
  if (st != NULL)
    g_assert_cmpint (g_stat (path, st), ==, 0);
  r = ab_session_record_parse (contents, len, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (r->thread, ==, thread);
  return r;
}

/* ---- callbacks ---------------------------------------------------------- */

typedef struct
{
  Fixture *fx;
  const char *thread;
  guint64 turns; /* of the record waited for; 0: not checked on disk */
  GArray *order; /* guint64 turns, in callback order */
  guint *done;
  gboolean failed;
  GThread *thread_ran; /* where the callback ran */
} Wait;

static void
on_saved (gpointer user_data, const GError *error)
{
  Wait *w = user_data;
  g_autoptr (AbSessionRecord) on_disk = NULL;

  w->thread_ran = g_thread_self ();
  w->failed = error != NULL;
  if (w->order != NULL)
    g_array_append_val (w->order, w->turns);
  (*w->done)++;
  if (error != NULL || w->turns == 0)
    return;
  /* On disk already: this record, or a newer one. */
  on_disk = read_back (w->fx, w->thread, NULL);
  g_assert_nonnull (on_disk);
  g_assert_cmpuint (on_disk->turns, >=, w->turns);
}

static void
wait_done (guint *done, guint expected)
{
  AB_ITERATE_UNTIL (*done >= expected, 30000);
  g_assert_cmpuint (*done, ==, expected);
}

/* ---- tests ------------------------------------------------------------- */

static void
test_write (Fixture *fx, gconstpointer data)
{
  g_autoptr (AbSessionRecord) r = make_record ("cli:store/one", 3);
  g_autoptr (AbSessionRecord) back = NULL;
  guint done = 0;
  Wait w = { fx, "cli:store/one", 3, NULL, &done, FALSE, NULL };
  struct stat st;

  ab_store_save_async (fx->store_dir, r, on_saved, &w);
  /* The caller's copy is not needed once queued. */
  g_clear_pointer (&r, ab_session_record_free);
  wait_done (&done, 1);
  g_assert_false (w.failed);
  /* The callback ran in the main context's thread. */
  g_assert_true (w.thread_ran == g_thread_self ());

  back = read_back (fx, "cli:store/one", &st);
  g_assert_nonnull (back);
  g_assert_cmpuint (back->turns, ==, 3);
  g_assert_cmpuint (back->running_turn, ==, 3);
  g_assert_cmpstr (back->running_text, ==, "prompt 3");
  g_assert_cmpstr (back->acp_session, ==, "acp-1");
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (fx->store_dir, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".tmp"), ==, 0);
}

/* Many writes of one record in a row: every callback comes, in order,
 * each after a record at least as new as its own is on disk; the last
 * record stands. */
static void
test_coalesce_in_order (Fixture *fx, gconstpointer data)
{
  const guint n = 200;
  const char *thread = "cli:store/many";
  g_autoptr (GArray) order = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autofree Wait *waits = g_new0 (Wait, n);
  g_autoptr (AbSessionRecord) back = NULL;
  guint done = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr (AbSessionRecord) r = make_record (thread, i + 1);

      waits[i] = (Wait){ fx, thread, i + 1, order, &done, FALSE, NULL };
      ab_store_save_async (fx->store_dir, r, on_saved, &waits[i]);
    }
  wait_done (&done, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (g_array_index (order, guint64, i), ==, i + 1);
  back = read_back (fx, thread, NULL);
  g_assert_cmpuint (back->turns, ==, n);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".tmp"), ==, 0);
}

/* Several records at once, each in order; flush waits for all of them
 * and runs the callbacks without the main loop. */
static void
test_many_records_flush (Fixture *fx, gconstpointer data)
{
  const guint records = 40, writes = 10;
  g_autofree Wait *waits = g_new0 (Wait, records * writes);
  GArray *orders[40];
  g_autofree char **threads = g_new0 (char *, records + 1);
  guint done = 0;

  for (guint k = 0; k < records; k++)
    {
      threads[k] = g_strdup_printf ("cli:store/r%u", k);
      orders[k] = g_array_new (FALSE, FALSE, sizeof (guint64));
    }
  for (guint i = 0; i < writes; i++)
    for (guint k = 0; k < records; k++)
      {
        g_autoptr (AbSessionRecord) r = make_record (threads[k], i + 1);
        Wait *w = &waits[i * records + k];

        *w = (Wait){ fx, threads[k], i + 1, orders[k], &done, FALSE, NULL };
        ab_store_save_async (fx->store_dir, r, on_saved, w);
      }

  /* No main loop iteration: flush runs the callbacks itself. */
  g_assert_true (ab_store_flush ());
  g_assert_cmpuint (done, ==, records * writes);
  g_assert_false (ab_store_flush ());
  for (guint k = 0; k < records; k++)
    {
      g_autoptr (AbSessionRecord) back = read_back (fx, threads[k], NULL);

      g_assert_cmpuint (back->turns, ==, writes);
      g_assert_cmpuint (orders[k]->len, ==, writes);
      for (guint i = 0; i < writes; i++)
        g_assert_cmpuint (g_array_index (orders[k], guint64, i), ==, i + 1);
      g_array_unref (orders[k]);
    }
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".json"), ==, records);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".tmp"), ==, 0);
  /* Nothing left for the main loop either. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (done, ==, records * writes);
  g_strfreev (g_steal_pointer (&threads));
}

/* A delete waits for the writes queued before it: the record does not
 * come back. */
static void
test_delete_after_writes (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:store/deleted";
  g_autoptr (GError) error = NULL;
  g_autoptr (AbSessionRecord) back = NULL;
  guint done = 0;
  Wait w[20];

  for (guint i = 0; i < G_N_ELEMENTS (w); i++)
    {
      g_autoptr (AbSessionRecord) r = make_record (thread, i + 1);

      w[i] = (Wait){ fx, thread, 0, NULL, &done, FALSE, NULL };
      ab_store_save_async (fx->store_dir, r, on_saved, &w[i]);
    }
  g_assert_true (ab_store_delete (fx->store_dir, thread, &error));
  g_assert_no_error (error);
  back = read_back (fx, thread, NULL);
  g_assert_null (back);
  ab_store_flush ();
  g_assert_cmpuint (done, ==, G_N_ELEMENTS (w));
  back = read_back (fx, thread, NULL);
  g_assert_null (back);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".json"), ==, 0);
}

/* A write that cannot be done says why, to every caller it had. */
static void
test_write_fails (Fixture *fx, gconstpointer data)
{
  g_autofree char *file = g_build_filename (fx->dir, "not-a-dir", NULL);
  g_autofree char *bad_dir = g_build_filename (file, "sessions", NULL);
  g_autoptr (GError) error = NULL;
  guint done = 0;
  Wait w[3];

  g_file_set_contents (file, "", 0, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (w); i++)
    {
      g_autoptr (AbSessionRecord) r = make_record ("cli:store/fails", i + 1);

      w[i] = (Wait){ fx, "cli:store/fails", i + 1, NULL, &done, FALSE, NULL };
      ab_store_save_async (bad_dir, r, on_saved, &w[i]);
    }
  wait_done (&done, G_N_ELEMENTS (w));
  for (guint i = 0; i < G_N_ELEMENTS (w); i++)
    g_assert_true (w[i].failed);
}

/* A save that fails half way (the file-size limit cuts its write short)
 * leaves the record before it as it was: loadable, nothing set aside, no
 * temporary file left behind. A record written in place would be cut. */
static void
test_failed_save_keeps_previous (Fixture *fx, gconstpointer data)
{
  const char *thread = "cli:store/kept";
  g_autoptr (AbSessionRecord) first = make_record (thread, 1);
  g_autoptr (AbSessionRecord) second = make_record (thread, 2);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (AbSessionRecord) back = NULL;
  g_autofree char *before = ab_session_record_to_json (first);
  struct rlimit saved_limit, limit;
  struct sigaction ignore = { .sa_handler = SIG_IGN }, saved_action;
  guint done = 0;
  Wait w1 = { fx, thread, 1, NULL, &done, FALSE, NULL };
  Wait w2 = { fx, thread, 0, NULL, &done, FALSE, NULL };

  ab_store_save_async (fx->store_dir, first, on_saved, &w1);
  wait_done (&done, 1);
  g_assert_false (w1.failed);

  /* The second record is far longer than the limit, the first shorter. */
  g_free (second->running_text);
  second->running_text = g_strnfill (64 * 1024, 'x');
  g_assert_cmpuint (strlen (before), <, 4096);
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved_limit), ==, 0);
  limit = saved_limit;
  limit.rlim_cur = 4096;
  g_assert_cmpint (sigaction (SIGXFSZ, &ignore, &saved_action), ==, 0);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  ab_store_save_async (fx->store_dir, second, on_saved, &w2);
  wait_done (&done, 2);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved_limit), ==, 0);
  g_assert_cmpint (sigaction (SIGXFSZ, &saved_action, NULL), ==, 0);
  g_assert_true (w2.failed);

  /* The first record, byte for byte, and loadable. */
  back = read_back (fx, thread, NULL);
  g_assert_nonnull (back);
  g_assert_cmpuint (back->turns, ==, 1);
  g_assert_cmpstr (back->running_text, ==, "prompt 1");
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".tmp"), ==, 0);
  loaded = ab_store_load_all (fx->store_dir);
  g_assert_cmpuint (loaded->len, ==, 1);
  g_assert_cmpstr (((AbSessionRecord *)loaded->pdata[0])->thread, ==, thread);
  g_assert_cmpuint (((AbSessionRecord *)loaded->pdata[0])->turns, ==, 1);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".corrupt"), ==, 0);
  g_assert_cmpuint (ab_count_suffix (fx->store_dir, ".json"), ==, 1);
}

/* A turn handed over at a restart comes back with all it needs; a record
 * naming a prompter that is no unique bus name is refused; without a
 * request id there is nothing to go on with. */
static void
test_handed_over (void)
{
  const AbSessionRecord handed = {
    .thread = (char *)"cli:handed",
    .agent = (char *)"demo",
    .cwd = (char *)"/tmp",
    .acp_session = (char *)"s-1",
    .turns = 3,
    .last_turn = 2,
    .running_turn = 3,
    .running_text = (char *)"stream 2000",
    .handed_over = TRUE,
    .running_rpc_id = G_GINT64_CONSTANT (1764870000000001),
    .running_sender = (char *)":1.42",
    .permission_rpc_id = (char *)"7",
    .permission_params = (char *)"{\"sessionId\":\"s-1\"}",
    .stream_seq = G_GUINT64_CONSTANT (1764870000004242),
    .title = (char *)"Fixing the \"parser\" \xc3\xa9",
  };
  g_autofree char *json = ab_session_record_to_json (&handed);
  g_autoptr (GError) error = NULL;
  g_autoptr (AbSessionRecord) back = NULL;
  g_autoptr (AbSessionRecord) slow = NULL;
  g_autoptr (AbSessionRecord) bad = NULL;
  g_autoptr (AbSessionRecord) no_id = NULL;
  g_autofree char *bad_json = NULL;
  g_autofree char *no_id_json = NULL;

  back = ab_session_record_parse (json, strlen (json), &error);
  g_assert_no_error (error);
  g_assert_true (back->handed_over);
  g_assert_cmpint (back->running_rpc_id, ==, handed.running_rpc_id);
  g_assert_cmpstr (back->running_sender, ==, ":1.42");
  g_assert_cmpstr (back->permission_rpc_id, ==, "7");
  g_assert_cmpstr (back->permission_params, ==, handed.permission_params);
  g_assert_cmpuint (back->stream_seq, ==, handed.stream_seq);
  g_assert_cmpstr (back->title, ==, handed.title);
  /* json-glib reads it the same */
  slow = ab_session_record_parse_full (json, strlen (json), FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (slow->running_rpc_id, ==, handed.running_rpc_id);
  g_assert_cmpuint (slow->stream_seq, ==, handed.stream_seq);
  g_assert_cmpstr (slow->title, ==, handed.title);
  g_assert_cmpstr (slow->running_sender, ==, ":1.42");

  bad_json
      = g_strconcat ("{\"version\":1,\"thread\":\"cli:x\",\"agent\":\"demo\","
                     "\"cwd\":\"/\",\"turns\":1,\"running_turn\":1,"
                     "\"handed_over\":true,\"running_rpc_id\":5,"
                     "\"running_sender\":\"org.example.Spoof\"}",
                     NULL);
  bad = ab_session_record_parse (bad_json, strlen (bad_json), &error);
  g_assert_null (bad);
  g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "running_sender"));
  g_clear_error (&error);

  no_id_json = g_strconcat ("{\"version\":1,\"thread\":\"cli:x\",\"agent\":"
                            "\"demo\",\"cwd\":\"/\",\"turns\":1,"
                            "\"running_turn\":1,\"handed_over\":true}",
                            NULL);
  no_id = ab_session_record_parse (no_id_json, strlen (no_id_json), &error);
  g_assert_no_error (error);
  g_assert_false (no_id->handed_over);

  /* Every pending permission request goes over, as an array; more than
   * a session can have waiting is refused, by name. */
  for (guint n = 2; n <= 9; n += 7)
    {
      g_autoptr (GString) text = g_string_new (
          "{\"version\":1,\"thread\":\"cli:x\",\"agent\":\"demo\","
          "\"cwd\":\"/\",\"turns\":1,\"running_turn\":1,"
          "\"handed_over\":true,\"running_rpc_id\":5,\"permissions\":[");
      g_autoptr (AbSessionRecord) many = NULL;
      g_autofree char *again = NULL;

      for (guint i = 0; i < n; i++)
        g_string_append_printf (text, "%s{\"rpc_id\":\"%u\",\"params\":\"{}\"}",
                                i > 0 ? "," : "", i + 6);
      g_string_append (text, "]}");
      many = ab_session_record_parse (text->str, text->len, &error);
      if (n > AB_STORE_MAX_PERMISSIONS)
        {
          g_assert_null (many);
          g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT);
          g_assert_nonnull (strstr (error->message, "permissions"));
          g_clear_error (&error);
          continue;
        }
      g_assert_no_error (error);
      g_assert_cmpuint (
          json_array_get_length (json_node_get_array (many->permissions)), ==,
          n);
      /* and written back as read */
      again = ab_session_record_to_json (many);
      g_assert_nonnull (strstr (again, "\"rpc_id\":\"7\""));
    }

  /* A stream number below zero is refused, by name. */
  for (guint fast = 0; fast < 2; fast++)
    {
      const char *negative = "{\"version\":1,\"thread\":\"cli:x\",\"agent\":"
                             "\"demo\",\"cwd\":\"/\",\"stream_seq\":-1}";
      g_autoptr (AbSessionRecord) refused = ab_session_record_parse_full (
          negative, strlen (negative), fast, &error);

      g_assert_null (refused);
      g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "stream_seq"));
      g_clear_error (&error);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func)                                                        \
  g_test_add ("/store/" name, Fixture, NULL, fixture_up, func, fixture_down)
  ADD ("write", test_write);
  ADD ("coalesce-in-order", test_coalesce_in_order);
  ADD ("many-records-flush", test_many_records_flush);
  ADD ("delete-after-writes", test_delete_after_writes);
  ADD ("write-fails", test_write_fails);
  ADD ("failed-save-keeps-previous", test_failed_save_keeps_previous);
#undef ADD
  g_test_add_func ("/store/handed-over", test_handed_over);
  return g_test_run ();
}
