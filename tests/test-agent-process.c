/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — spawning and tearing down real agent processes (sh -c) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "agent-launcher.h"
#include "agent-process.h"
#include "bounded-wait.h"
#include "error.h"

#define TEST_TIMEOUT_USEC (20 * G_USEC_PER_SEC)

typedef struct
{
  gboolean exited;
  int status;
  char *description;
  gboolean terminated;
} Watch;

static void
on_exited (AbAgentProcess *process, int status, const char *description,
           Watch *w)
{
  g_assert_false (w->exited);
  w->exited = TRUE;
  w->status = status;
  w->description = g_strdup (description);
}

/* The "lost" signal of an agent's connection. */
typedef struct
{
  gboolean done;
  char *reason;
  char *why;
} Lost;

static void
on_lost (AbAcpConnection *conn, const char *reason, const char *why, Lost *l)
{
  g_assert_false (l->done);
  l->done = TRUE;
  l->reason = g_strdup (reason);
  l->why = g_strdup (why);
}

static void
iterate_until (gboolean *flag)
{
  AB_ITERATE_UNTIL (*flag, TEST_TIMEOUT_USEC / 1000);
}

static void
drain_loop (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static const char *const test_env[]
    = { "PATH=/usr/local/bin:/usr/bin:/bin", "AB_TEST=1",
        "AGENTBROKER_THREAD=test:thread", NULL };

static AbAgentProcess *
spawn_sh (const char *script, const char *cwd, Watch *w)
{
  const char *argv[] = { "sh", "-c", script, NULL };
  g_autoptr (GError) error = NULL;
  AbAgentProcess *process;

  process = ab_agent_process_spawn (argv, test_env, cwd, "test:thread", &error);
  g_assert_no_error (error);
  g_assert_nonnull (process);
  if (w != NULL)
    g_signal_connect (process, "exited", G_CALLBACK (on_exited), w);
  return process;
}

/* Reads the agent's stdout until EOF, running the loop. */
static char *
read_stdout (AbAgentProcess *process)
{
  GPollableInputStream *out
      = G_POLLABLE_INPUT_STREAM (ab_agent_process_get_stdout (process));
  g_autoptr (GString) text = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

  for (;;)
    {
      char buf[1024];
      g_autoptr (GError) error = NULL;
      gssize n = g_pollable_input_stream_read_nonblocking (out, buf, sizeof buf,
                                                           NULL, &error);
      if (n == 0)
        break;
      if (n > 0)
        {
          g_string_append_len (text, buf, n);
          continue;
        }
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Reads one line of the agent's stdout. */
static char *
read_stdout_line (AbAgentProcess *process)
{
  GPollableInputStream *out
      = G_POLLABLE_INPUT_STREAM (ab_agent_process_get_stdout (process));
  g_autoptr (GString) text = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;

  while (text->len == 0 || text->str[text->len - 1] != '\n')
    {
      char c;
      g_autoptr (GError) error = NULL;
      gssize n
          = g_pollable_input_stream_read_nonblocking (out, &c, 1, NULL, &error);

      g_assert_cmpint (n, !=, 0);
      if (n > 0)
        {
          g_string_append_c (text, c);
          continue;
        }
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
    }
  g_string_truncate (text, text->len - 1);
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* A killed orphan may stay a zombie where PID 1 does not reap (some
 * containers); a zombie runs nothing, so it counts as gone. */
static gboolean
process_is_alive (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int)pid);
  g_autofree char *stat = NULL;
  const char *end;

  if (kill (pid, 0) == -1 && errno == ESRCH)
    return FALSE;
  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  end = strrchr (stat, ')');
  return end == NULL || (end[2] != 'Z' && end[2] != 'X');
}

static guint
count_fds (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static void
on_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Watch *w = user_data;
  g_autoptr (GError) error = NULL;

  g_assert_true (ab_agent_process_terminate_finish (AB_AGENT_PROCESS (source),
                                                    result, &error));
  g_assert_no_error (error);
  w->terminated = TRUE;
}

/* ------------------------------------------------------------------ */

static void
test_env_exact (void)
{
  const char *argv[] = { "env", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (AbAgentProcess) process = NULL;
  g_autofree char *out = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GPtrArray) got = g_ptr_array_new ();
  Watch w = { 0 };

  process
      = ab_agent_process_spawn (argv, test_env, NULL, "test:thread", &error);
  g_assert_no_error (error);
  g_signal_connect (process, "exited", G_CALLBACK (on_exited), &w);
  out = read_stdout (process);
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (*lines[i] != '\0')
      g_ptr_array_add (got, lines[i]);
  g_ptr_array_add (got, NULL);
  g_assert_cmpstrv ((const char *const *)got->pdata, test_env);
  iterate_until (&w.exited);
  g_free (w.description);
}

static void
test_build_env (void)
{
  const char *inherit[] = { "AB_PROXY", "AB_UNSET", NULL };
  g_autoptr (GPtrArray) extra = g_ptr_array_new ();
  g_auto (GStrv) env = NULL;

  g_setenv ("HOME", "/home/ab", TRUE);
  g_setenv ("PATH", "/usr/bin", TRUE);
  g_unsetenv ("USER");
  g_setenv ("LANG", "C.UTF-8", TRUE);
  g_setenv ("AB_PROXY", "http://proxy", TRUE);
  g_unsetenv ("AB_UNSET");
  g_setenv ("AB_SECRET", "leak", TRUE);

  g_ptr_array_add (extra, (char *)"API_KEY=k=v");
  g_ptr_array_add (extra, (char *)"LANG=de_DE.UTF-8");
  g_ptr_array_add (extra, (char *)"AGENTBROKER_THREAD=spoofed");
  env = ab_agent_build_env (inherit, extra, "cli:alice/x");

  {
    const char *const expected[] = { "HOME=/home/ab",
                                     "PATH=/usr/bin",
                                     "LANG=de_DE.UTF-8",
                                     "AB_PROXY=http://proxy",
                                     "API_KEY=k=v",
                                     "AGENTBROKER_THREAD=cli:alice/x",
                                     NULL };
    g_assert_cmpstrv (env, expected);
  }
}

static void
test_cwd (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("ab-agent-XXXXXX", &error);
  g_autofree char *real = NULL;
  g_autoptr (AbAgentProcess) process = NULL;
  g_autofree char *out = NULL;
  Watch w = { 0 };

  g_assert_no_error (error);
  real = realpath (dir, NULL);
  process = spawn_sh ("pwd -P", dir, &w);
  out = read_stdout (process);
  g_strchomp (out);
  g_assert_cmpstr (out, ==, real);
  iterate_until (&w.exited);
  g_free (w.description);
  rmdir (dir);
}

/* The direct launcher: working directory from the template (made 0700),
 * the profile's literal and credential environment, and a failure that
 * still says which directory was chosen. */
static void
test_direct_launcher (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *state = g_dir_make_tmp ("ab-launch-XXXXXX", &error);
  g_autofree char *creds = NULL;
  g_autofree char *key = NULL;
  g_autofree char *escaped = g_dbus_escape_object_path ("cli:a/b");
  g_autofree char *want_cwd = NULL;
  g_autofree char *real = NULL;
  g_autofree char *cwd = NULL;
  g_autofree char *out = NULL;
  g_autofree char *want_out = NULL;
  g_autoptr (AbAgentLauncher) launcher = ab_direct_launcher_new ();
  g_autofree char *seen = NULL;
  g_autoptr (AbAcpConnection) conn = NULL;
  g_autoptr (GPtrArray) env = g_ptr_array_new ();
  /* What the agent saw goes to a file: its stdout is the connection's. */
  char *command[] = { (char *)"sh", (char *)"-c",
                      (char *)"{ pwd -P; echo \"$AB_LITERAL\"; "
                              "echo \"$AB_KEY\"; } >../seen",
                      NULL };
  char *inherit[] = { NULL };
  AbEnvEntry literal = { (char *)"AB_LITERAL", (char *)"v1", NULL };
  AbEnvEntry secret = { (char *)"AB_KEY", NULL, (char *)"key" };
  AbAgentProfile prof = {
    .name = (char *)"t",
    .command = command,
    .env = env,
    .inherit_env = inherit,
    .working_directory = (char *)"{state}/work/{thread}",
  };
  struct stat st;
  Lost lost = { 0 };

  g_assert_no_error (error);
  g_ptr_array_add (env, &literal);
  g_ptr_array_add (env, &secret);
  creds = g_build_filename (state, "creds", NULL);
  key = g_build_filename (creds, "key", NULL);
  g_assert_cmpint (g_mkdir (creds, 0700), ==, 0);
  g_file_set_contents (key, "s3cret\n", -1, &error);
  g_assert_no_error (error);
  want_cwd = g_build_filename (state, "work", escaped, NULL);

  /* without $CREDENTIALS_DIRECTORY: refused, the directory chosen */
  g_unsetenv ("CREDENTIALS_DIRECTORY");
  conn = ab_agent_launcher_launch (launcher, &prof, "cli:a/b", state, 4096,
                                   &cwd, &error);
  g_assert_null (conn);
  g_assert_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_cmpstr (error->message, ==,
                   "agent 't' needs credential 'key' but "
                   "$CREDENTIALS_DIRECTORY is not set");
  g_assert_cmpstr (cwd, ==, want_cwd);
  g_clear_error (&error);
  g_clear_pointer (&cwd, g_free);

  g_setenv ("CREDENTIALS_DIRECTORY", creds, TRUE);
  conn = ab_agent_launcher_launch (launcher, &prof, "cli:a/b", state, 4096,
                                   &cwd, &error);
  g_unsetenv ("CREDENTIALS_DIRECTORY");
  g_assert_no_error (error);
  g_assert_nonnull (conn);
  g_assert_cmpuint (ab_acp_connection_get_pid (conn), >, 0);
  g_assert_cmpstr (cwd, ==, want_cwd);
  g_assert_cmpint (stat (cwd, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_signal_connect (conn, "lost", G_CALLBACK (on_lost), &lost);
  iterate_until (&lost.done);
  g_assert_cmpstr (lost.reason, ==, "agent-exited");
  /* whichever the daemon saw first: the end of its output, or the exit */
  if (g_strcmp0 (lost.why, "the agent closed its output") != 0)
    g_assert_cmpstr (lost.why, ==, "exited with status 0");
  real = realpath (cwd, NULL);
  seen = g_build_filename (state, "work", "seen", NULL);
  g_file_get_contents (seen, &out, NULL, &error);
  g_assert_no_error (error);
  want_out = g_strdup_printf ("%s\nv1\ns3cret\n", real);
  g_assert_cmpstr (out, ==, want_out);
  g_unlink (seen);
  g_free (lost.reason);
  g_free (lost.why);

  g_unlink (key);
  g_rmdir (creds);
  g_rmdir (cwd);
  g_rmdir (want_cwd);
  {
    g_autofree char *work = g_build_filename (state, "work", NULL);

    g_rmdir (work);
  }
  g_rmdir (state);
}

/* The value of the "Name:" line of /proc/PID/status in @status. */
static guint64
status_mask (const char *status, const char *name)
{
  const char *line = strstr (status, name);

  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen (name), NULL, 16);
}

/* The agent gets its pipes as 0, 1 and 2 and no other fd of the daemon,
 * leads its own process group, and starts with SIGPIPE at its default and
 * nothing blocked, whatever the daemon had. */
static void
test_child_state (void)
{
  int leaked = open ("/dev/null", O_RDONLY); /* inheritable on purpose */
  g_autoptr (AbAgentProcess) process = NULL;
  g_autofree char *script = NULL, *out = NULL;
  g_auto (GStrv) lines = NULL;
  struct sigaction ignore = { 0 }, old_pipe;
  sigset_t block, old_mask;
  Watch w = { 0 };

  g_assert_cmpint (leaked, >=, 3);
  sigemptyset (&block);
  sigaddset (&block, SIGUSR1);
  g_assert_cmpint (sigprocmask (SIG_BLOCK, &block, &old_mask), ==, 0);
  ignore.sa_handler = SIG_IGN;
  g_assert_cmpint (sigaction (SIGPIPE, &ignore, &old_pipe), ==, 0);

  script = g_strdup_printf ("if [ -e /proc/$$/fd/%d ]; then echo leaked; "
                            "else echo closed; fi; "
                            "set -- $(cat /proc/$$/stat); echo $5; "
                            "exec cat /proc/self/status",
                            leaked);
  process = spawn_sh (script, NULL, &w);
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  sigaction (SIGPIPE, &old_pipe, NULL);
  close (leaked);

  out = read_stdout (process);
  lines = g_strsplit (out, "\n", 3);
  g_assert_cmpuint (g_strv_length (lines), ==, 3);
  g_assert_cmpstr (lines[0], ==, "closed");
  g_assert_cmpint (atoi (lines[1]), ==, ab_agent_process_get_pid (process));
  g_assert_cmpuint (status_mask (lines[2], "\nSigBlk:") & (1u << (SIGUSR1 - 1)),
                    ==, 0);
  g_assert_cmpuint (status_mask (lines[2], "\nSigIgn:") & (1u << (SIGPIPE - 1)),
                    ==, 0);
  iterate_until (&w.exited);
  g_free (w.description);
}

/* A working directory that is missing is named as the cause. */
static void
test_missing_cwd (void)
{
  const char *argv[] = { "sh", "-c", "true", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (AbAgentProcess) process = NULL;
  guint fds = count_fds ();

  process = ab_agent_process_spawn (argv, test_env, "/nonexistent/ab-cwd", "t",
                                    &error);
  g_assert_null (process);
  g_assert_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_cmpstr (error->message, ==,
                   "cannot start agent command 'sh': working directory "
                   "'/nonexistent/ab-cwd' does not exist");
  g_assert_cmpuint (count_fds (), ==, fds);
}

static void
test_missing_binary (void)
{
  const char *argv[] = { "ab-no-such-agent", "--acp", NULL };
  const char *argv_path[] = { "/nonexistent/ab-agent", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) error2 = NULL;
  g_autoptr (AbAgentProcess) process = NULL;
  guint fds = count_fds ();

  process = ab_agent_process_spawn (argv, test_env, NULL, "t", &error);
  g_assert_null (process);
  g_assert_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_true (g_str_has_prefix (
      error->message, "agent command 'ab-no-such-agent' not found: "));

  process = ab_agent_process_spawn (argv_path, test_env, NULL, "t", &error2);
  g_assert_null (process);
  g_assert_error (error2, AB_ERROR, AB_ERROR_AGENT_FAILED);
  g_assert_true (g_str_has_prefix (
      error2->message, "agent command '/nonexistent/ab-agent' not found"));
  g_assert_cmpuint (count_fds (), ==, fds);
}

static void
test_stderr_tail (void)
{
  g_autoptr (AbAgentProcess) process = NULL;
  g_autoptr (GString) expected = g_string_new (NULL);
  g_autofree char *tail = NULL;
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;
  Watch w = { 0 };

  process = spawn_sh ("i=1; while [ $i -le 30 ]; do echo line$i >&2; "
                      "i=$((i+1)); done; printf 'last words' >&2; exit 3",
                      NULL, &w);
  iterate_until (&w.exited);
  g_assert_true (WIFEXITED (w.status));
  g_assert_cmpint (WEXITSTATUS (w.status), ==, 3);
  g_assert_cmpstr (w.description, ==, "exited with status 3");
  g_assert_cmpstr (ab_agent_process_get_exit_description (process), ==,
                   "exited with status 3");
  g_assert_false (ab_agent_process_is_running (process));

  for (int i = 12; i <= 30; i++)
    g_string_append_printf (expected, "line%d\n", i);
  g_string_append (expected, "last words");
  /* stderr EOF may be seen after the exit */
  for (;;)
    {
      g_free (tail);
      tail = ab_agent_process_get_stderr_tail (process);
      if (g_str_has_suffix (tail, "last words"))
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      ab_iterate_until_deadline (NULL, deadline);
    }
  g_assert_cmpstr (tail, ==, expected->str);
  g_free (w.description);
}

static void
test_exit_signal (void)
{
  g_autoptr (AbAgentProcess) process = NULL;
  Watch w = { 0 };

  process = spawn_sh ("kill -9 $$", NULL, &w);
  g_assert_true (ab_agent_process_is_running (process));
  iterate_until (&w.exited);
  g_assert_true (WIFSIGNALED (w.status));
  g_assert_cmpint (WTERMSIG (w.status), ==, SIGKILL);
  g_assert_cmpstr (w.description, ==, "killed by signal 9");
  g_free (w.description);
}

static void
test_terminate_group (void)
{
  g_autoptr (AbAgentProcess) process = NULL;
  g_autofree char *line = NULL;
  guint fds_before = count_fds ();
  pid_t pid, grandchild;
  Watch w = { 0 };

  /* both the agent and its child ignore SIGTERM (an ignored signal stays
   * ignored across exec): only the SIGKILL to the group ends them */
  process
      = spawn_sh ("trap '' TERM; sleep 1000 & echo $!; wait; wait", NULL, &w);
  pid = ab_agent_process_get_pid (process);
  g_assert_cmpint (pid, >, 0);
  g_assert_cmpint (getpgid (pid), ==, pid);
  line = read_stdout_line (process);
  grandchild = (pid_t)g_ascii_strtoll (line, NULL, 10);
  g_assert_cmpint (grandchild, >, 0);
  g_assert_cmpint (getpgid (grandchild), ==, pid);
  g_assert_true (process_is_alive (pid));
  g_assert_true (process_is_alive (grandchild));

  ab_agent_process_terminate_async (process, 200 * 1000, NULL, on_terminated,
                                    &w);
  iterate_until (&w.terminated);
  g_assert_true (w.exited);
  g_assert_true (WIFSIGNALED (w.status));
  g_assert_cmpint (WTERMSIG (w.status), ==, SIGKILL);
  g_assert_false (process_is_alive (pid));
  g_assert_false (process_is_alive (grandchild));
  g_assert_false (ab_agent_process_is_running (process));

  g_clear_object (&process);
  drain_loop ();
  g_assert_cmpuint (count_fds (), ==, fds_before);
  g_free (w.description);
}

static void
test_terminate_polite (void)
{
  g_autoptr (AbAgentProcess) process = NULL;
  Watch w = { 0 };
  Watch w2 = { 0 };

  /* an agent that leaves on EOF or SIGTERM: no SIGKILL needed */
  process = spawn_sh ("exec cat", NULL, &w);
  ab_agent_process_terminate_async (process, 30 * G_USEC_PER_SEC, NULL,
                                    on_terminated, &w);
  /* a second caller joins the same teardown */
  ab_agent_process_terminate_async (process, 30 * G_USEC_PER_SEC, NULL,
                                    on_terminated, &w2);
  iterate_until (&w.terminated);
  iterate_until (&w2.terminated);
  g_assert_true (w.exited);
  g_free (w.description);

  /* terminating what already ended completes at once */
  w.terminated = FALSE;
  ab_agent_process_terminate_async (process, 0, NULL, on_terminated, &w);
  iterate_until (&w.terminated);
}

static void
test_dispose_kills (void)
{
  AbAgentProcess *process;
  guint fds_before = count_fds ();
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_USEC;
  pid_t pid;

  process = spawn_sh ("trap '' TERM; exec sleep 1000", NULL, NULL);
  pid = ab_agent_process_get_pid (process);
  g_object_unref (process);
  /* GSubprocess's child watch reaps it on the loop */
  while (kill (pid, 0) == 0 || errno != ESRCH)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  drain_loop ();
  g_assert_cmpuint (count_fds (), ==, fds_before);
}

static void
test_kill_now (void)
{
  g_autoptr (AbAgentProcess) process = NULL;
  Watch w = { 0 };

  process = spawn_sh ("trap '' TERM; sleep 1000 & wait", NULL, &w);
  ab_agent_process_kill_now (process);
  iterate_until (&w.exited);
  g_assert_cmpstr (w.description, ==, "killed by signal 9");
  g_free (w.description);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);
  /* GTask's first use opens a process-wide eventfd; do it before any fd
   * counting so it is not mistaken for a leak */
  g_type_ensure (G_TYPE_TASK);

  g_test_add_func ("/agent-process/env-exact", test_env_exact);
  g_test_add_func ("/agent-process/build-env", test_build_env);
  g_test_add_func ("/agent-process/cwd", test_cwd);
  g_test_add_func ("/agent-process/direct-launcher", test_direct_launcher);
  g_test_add_func ("/agent-process/child-state", test_child_state);
  g_test_add_func ("/agent-process/missing-cwd", test_missing_cwd);
  g_test_add_func ("/agent-process/missing-binary", test_missing_binary);
  g_test_add_func ("/agent-process/stderr-tail", test_stderr_tail);
  g_test_add_func ("/agent-process/exit-signal", test_exit_signal);
  g_test_add_func ("/agent-process/terminate-group", test_terminate_group);
  g_test_add_func ("/agent-process/terminate-polite", test_terminate_polite);
  g_test_add_func ("/agent-process/dispose-kills", test_dispose_kills);
  g_test_add_func ("/agent-process/kill-now", test_kill_now);

  return g_test_run ();
}
