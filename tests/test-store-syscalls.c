/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test: the system calls of a record save, in order (src/store.c)
 *
 * A record is durable only if it is written to a temporary file, that file
 * is fsync'd, renamed over the record, and the directory fsync'd, in this
 * order; the record's own name is never opened for writing. Neither a
 * store that writes in place nor one that skips the fsync before the
 * rename shows in any file's contents short of a power cut, so this test
 * watches the calls themselves: it runs itself again with the shim
 * tests/syscall-log.so preloaded, which logs every open, write, fsync,
 * rename and close under the test's directory, per thread (the store
 * writes on worker threads).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "scratch-dir.h"
#include "store.h"

typedef struct
{
  char *tid;
  char *op;
  char *path;
  char *arg;
} Event;

static void
event_free (Event *e)
{
  g_free (e->tid);
  g_free (e->op);
  g_free (e->path);
  g_free (e->arg);
  g_free (e);
}

static GPtrArray *
read_log (const char *log_path)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GError) error = NULL;
  GPtrArray *events
      = g_ptr_array_new_with_free_func ((GDestroyNotify)event_free);

  g_file_get_contents (log_path, &text, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) f = g_strsplit (lines[i], "\t", 4);
      Event *e;

      if (lines[i][0] == '\0')
        continue;
      g_assert_cmpuint (g_strv_length (f), ==, 4);
      e = g_new0 (Event, 1);
      e->tid = g_strdup (f[0]);
      e->op = g_strdup (f[1]);
      e->path = g_strdup (f[2]);
      e->arg = g_strdup (f[3]);
      g_ptr_array_add (events, e);
    }
  return events;
}

static char *
record_path (const char *store_dir, const char *thread)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".json", NULL);

  return g_build_filename (store_dir, name, NULL);
}

/* A record as read back from its text: what is in it does not matter
 * here, only how it is written. */
static AbSessionRecord *
make_record (const char *thread, guint64 turns)
{
  g_autofree char *json = g_strdup_printf (
      "{\"version\": 1, \"thread\": \"%s\", \"agent\": \"demo\", "
      "\"owner\": 1000, \"cwd\": \"/\", \"created\": 1, "
      "\"last_activity\": 1, \"turns\": %" G_GUINT64_FORMAT "}",
      thread, turns);
  g_autoptr (GError) error = NULL;
  AbSessionRecord *r = ab_session_record_parse (json, strlen (json), &error);

  g_assert_no_error (error);
  return r;
}

#define EV(i) ((Event *)g_ptr_array_index (events, (i)))

static gboolean
is_sync (const Event *e)
{
  return g_str_equal (e->op, "fsync") || g_str_equal (e->op, "fdatasync");
}

/* The save that ended with the rename at @r: its temporary file opened,
 * written, synced, then the rename, then the directory synced, all in the
 * rename's thread. Returns the bytes written. */
static gsize
check_save (GPtrArray *events, guint r, const char *store_dir)
{
  const Event *rename = EV (r);
  const char *tmp = rename->path;
  g_autofree char *tmp_dir = g_path_get_dirname (tmp);
  gint open_at = -1, last_write = -1, synced = -1, dir_opened = -1,
       dir_synced = -1;
  gsize written = 0;

  g_assert_cmpstr (tmp, !=, rename->arg);
  /* In the same directory: a rename across file systems is no rename. */
  g_assert_cmpstr (tmp_dir, ==, store_dir);

  for (gint i = (gint)r - 1; i >= 0 && open_at < 0; i--)
    {
      const Event *e = EV (i);

      if (!g_str_equal (e->tid, rename->tid) || !g_str_equal (e->path, tmp))
        continue;
      if (g_str_equal (e->op, "open"))
        open_at = i;
      else if (g_str_equal (e->op, "write"))
        {
          if (last_write < 0)
            last_write = i;
          g_assert_cmpint (atoi (e->arg), >=, 0);
          written += (gsize)atoi (e->arg);
        }
      else if (is_sync (e) && last_write < 0)
        synced = i;
    }
  if (open_at < 0)
    g_error ("%s renamed over %s without being opened first", tmp, rename->arg);
  g_assert_true (g_str_has_prefix (EV (open_at)->arg, "w,creat"));
  if (last_write < 0 || written == 0)
    g_error ("%s renamed over %s without being written", tmp, rename->arg);
  if (synced < 0)
    g_error ("%s renamed over %s without an fsync after its last write", tmp,
             rename->arg);

  for (guint i = r + 1; i < events->len && dir_synced < 0; i++)
    {
      const Event *e = EV (i);

      if (!g_str_equal (e->tid, rename->tid))
        continue;
      if (g_str_equal (e->path, store_dir) && g_str_equal (e->op, "open"))
        dir_opened = (gint)i;
      else if (g_str_equal (e->path, store_dir) && is_sync (e)
               && dir_opened >= 0)
        dir_synced = (gint)i;
      else if (g_str_equal (e->op, "open") && g_str_has_prefix (e->arg, "w"))
        break; /* the thread's next save began */
    }
  if (dir_synced < 0)
    g_error ("the directory was not synced after %s was renamed over %s", tmp,
             rename->arg);
  g_assert_cmpint (open_at, <, last_write);
  g_assert_cmpint (last_write, <, synced);
  g_assert_cmpint (synced, <, (gint)r);
  g_assert_cmpint ((gint)r, <, dir_synced);
  return written;
}

/* Every save of the record @thread: how many renames made it, and the
 * size of what the last one wrote. The record's name is never opened
 * for writing. */
static guint
check_record (GPtrArray *events, const char *store_dir, const char *thread,
              gsize *last_written)
{
  g_autofree char *path = record_path (store_dir, thread);
  guint renames = 0;

  for (guint i = 0; i < events->len; i++)
    {
      const Event *e = EV (i);

      if (g_str_equal (e->path, path) && g_str_equal (e->op, "open")
          && !g_str_equal (e->arg, "r"))
        g_error ("the record %s was opened for writing (%s): written in place",
                 path, e->arg);
      if (g_str_equal (e->op, "rename") && g_str_equal (e->arg, path))
        {
          *last_written = check_save (events, i, store_dir);
          renames++;
        }
    }
  return renames;
}

static void
print_log (GPtrArray *events)
{
  for (guint i = 0; i < events->len; i++)
    g_test_message ("%s %s %s %s", EV (i)->tid, EV (i)->op, EV (i)->path,
                    EV (i)->arg);
}

/* Two records written at once on the worker threads, then one of them
 * again: three saves, each in the order that makes it durable. */
static void
test_save_sequence (void)
{
  const char *dir = g_getenv ("AB_SYSCALL_LOG_DIR");
  g_autofree char *store_dir = ab_store_dir (dir);
  const char *threads[] = { "cli:syscalls/one", "cli:syscalls/two" };
  g_autoptr (GPtrArray) events = NULL;
  guint expected[] = { 2, 1 };

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autoptr (AbSessionRecord) r = make_record (threads[i], 1);

      ab_store_save_async (store_dir, r, NULL, NULL);
    }
  ab_store_flush ();
  {
    g_autoptr (AbSessionRecord) r = make_record (threads[0], 2);

    ab_store_save_async (store_dir, r, NULL, NULL);
    ab_store_flush ();
  }

  events = read_log (g_getenv ("AB_SYSCALL_LOG"));
  print_log (events);
  /* The shim is there: else nothing below would be checked. */
  g_assert_cmpuint (events->len, >, 0);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autofree char *path = record_path (store_dir, threads[i]);
      g_autofree char *contents = NULL;
      gsize written = 0, len = 0;

      g_assert_cmpuint (check_record (events, store_dir, threads[i], &written),
                        ==, expected[i]);
      /* What the last save wrote is the record now on disk. */
      g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
      g_assert_cmpuint (written, ==, len);
    }
}

/* Runs this program again with the shim preloaded, logging the calls
 * under a new temporary directory. */
static void
run_with_shim (char **argv)
{
  g_autofree char *shim
      = g_test_build_filename (G_TEST_BUILT, "syscall-log.so", NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ab-test-syscalls-XXXXXX", &error);
  g_autofree char *log = NULL;
  g_autofree char *preload = NULL;
  g_autofree char *asan = NULL;

  g_assert_no_error (error);
  if (!g_file_test (shim, G_FILE_TEST_IS_REGULAR))
    g_error ("%s is missing: build the tests with make check", shim);
  log = g_strconcat (dir, ".log", NULL);
  preload = g_getenv ("LD_PRELOAD") != NULL
                ? g_strconcat (shim, ":", g_getenv ("LD_PRELOAD"), NULL)
                : g_strdup (shim);
  /* A sanitizer build must accept a library preloaded before its own. */
  asan = g_strconcat (g_getenv ("ASAN_OPTIONS") ?: "",
                      g_getenv ("ASAN_OPTIONS") != NULL ? ":" : "",
                      "verify_asan_link_order=0", NULL);
  g_setenv ("AB_SYSCALL_LOG_DIR", dir, TRUE);
  g_setenv ("AB_SYSCALL_LOG", log, TRUE);
  g_setenv ("LD_PRELOAD", preload, TRUE);
  g_setenv ("ASAN_OPTIONS", asan, TRUE);
  execv ("/proc/self/exe", argv);
  g_error ("cannot run %s again: %s", argv[0], g_strerror (errno));
}

int
main (int argc, char **argv)
{
  g_auto (GStrv) args = g_strdupv (argv);
  int status;

  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("AB_SYSCALL_LOG") == NULL)
    run_with_shim (args);

  g_test_add_func ("/store-syscalls/save-sequence", test_save_sequence);
  status = g_test_run ();
  ab_remove_tree (g_getenv ("AB_SYSCALL_LOG_DIR"));
  g_unlink (g_getenv ("AB_SYSCALL_LOG"));
  return status;
}
