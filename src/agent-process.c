/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one agent process: spawn, stderr to the journal, teardown */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <syslog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <systemd/sd-journal.h>

#include "agent-process.h"
#include "error.h"
#include "fd-watch.h"

/* at most this many stderr lines per window are logged, per agent */
#define STDERR_BURST_LINES 200
#define STDERR_WINDOW_USEC (10 * G_USEC_PER_SEC)
/* how often the group is checked for stragglers once the agent is reaped */
#define GROUP_POLL_MSEC 20
/* how long stragglers may take to die after the last SIGKILL */
#define GROUP_GIVE_UP_USEC (2 * G_USEC_PER_SEC)

typedef struct
{
  AbAgentProcess *self; /* unowned; the waiter dies before self */
  GTask *task;
  GSource *cancel_source;
} TerminateWaiter;

struct _AbAgentProcess
{
  GObject parent_instance;

  char *thread;
  char *command; /* argv[0], for messages */
  GPid pid;
  pid_t pgid;
  gboolean running;
  gboolean group_gone; /* once seen empty, never signal the pgid again */
  int wait_status;
  char *exit_description;
  AbChildWatch *child_watch;
  GOutputStream *stdin_stream;
  GInputStream *stdout_stream;

  /* stderr */
  int stderr_fd; /* -1 once closed */
  AbFdWatch *stderr_watch;
  gboolean to_journal;
  char stderr_line[AB_AGENT_STDERR_MAX_LINE];
  gsize stderr_line_len;
  GQueue stderr_tail; /* char *, oldest first */
  gint64 window_start;
  guint window_lines;
  guint suppressed;
  GSource *window_source;

  /* teardown */
  gboolean terminating;
  gint64 sigkill_time; /* 0 until the group got SIGKILL */
  GSource *kill_source;
  GSource *poll_source;
  GPtrArray *waiters; /* TerminateWaiter * */
};

static void handle_iface_init (AbAgentHandleInterface *iface);

G_DEFINE_TYPE_WITH_CODE (AbAgentProcess, ab_agent_process, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (AB_TYPE_AGENT_HANDLE,
                                                handle_iface_init))

static void check_terminated (AbAgentProcess *self);

/* ------------------------------------------------------------------ */
/* stderr                                                              */
/* ------------------------------------------------------------------ */

static void
log_agent_line (AbAgentProcess *self, int priority, const char *message)
{
  if (self->to_journal)
    sd_journal_send ("MESSAGE=%s", message, "PRIORITY=%d", priority,
                     "AGENTBROKER_THREAD=%s", self->thread,
                     "SYSLOG_IDENTIFIER=agentbrokerd", "AGENT_PID=%d",
                     (int)self->pid, NULL);
  else
    g_message ("agent %s[%d]: %s", self->thread, (int)self->pid, message);
}

static void
flush_suppressed (AbAgentProcess *self)
{
  g_autofree char *message = NULL;

  if (self->suppressed == 0)
    return;
  message = g_strdup_printf ("suppressed %u lines of agent stderr",
                             self->suppressed);
  log_agent_line (self, LOG_NOTICE, message);
  self->suppressed = 0;
}

static gboolean
on_window_end (gpointer user_data)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (user_data);

  g_clear_pointer (&self->window_source, g_source_unref);
  flush_suppressed (self);
  self->window_start = g_get_monotonic_time ();
  self->window_lines = 0;
  return G_SOURCE_REMOVE;
}

static void
handle_stderr_line (AbAgentProcess *self, const char *line, gsize len)
{
  /* D-Bus error messages and journal fields want valid UTF-8 */
  g_autofree char *text = g_utf8_make_valid (line, (gssize)len);
  gint64 now = g_get_monotonic_time ();

  g_queue_push_tail (&self->stderr_tail, g_strdup (text));
  while (g_queue_get_length (&self->stderr_tail) > AB_AGENT_STDERR_TAIL_LINES)
    g_free (g_queue_pop_head (&self->stderr_tail));

  if (self->window_source == NULL
      && now - self->window_start >= STDERR_WINDOW_USEC)
    {
      self->window_start = now;
      self->window_lines = 0;
    }

  if (self->window_lines < STDERR_BURST_LINES)
    {
      self->window_lines++;
      log_agent_line (self, LOG_INFO, text);
      return;
    }

  self->suppressed++;
  if (self->window_source == NULL)
    {
      gint64 remaining = self->window_start + STDERR_WINDOW_USEC - now;

      self->window_source
          = g_timeout_source_new ((guint)(MAX (remaining, 0) / 1000));
      g_source_set_callback (self->window_source, on_window_end, self, NULL);
      g_source_attach (self->window_source, NULL);
    }
}

static void
handle_stderr_bytes (AbAgentProcess *self, const char *data, gsize len)
{
  while (len > 0)
    {
      const char *nl = memchr (data, '\n', len);
      gsize chunk = nl != NULL ? (gsize)(nl - data) : len;
      gsize room = sizeof self->stderr_line - self->stderr_line_len;
      gsize take = MIN (chunk, room);

      memcpy (self->stderr_line + self->stderr_line_len, data, take);
      self->stderr_line_len += take;
      data += take;
      len -= take;

      if (self->stderr_line_len == sizeof self->stderr_line
          || (take == chunk && nl != NULL))
        {
          /* a complete line, or a long one cut into bounded pieces */
          handle_stderr_line (self, self->stderr_line, self->stderr_line_len);
          self->stderr_line_len = 0;
        }
      if (take == chunk && nl != NULL)
        {
          data++;
          len--;
        }
    }
}

static void
on_stderr_readable (gpointer user_data)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (user_data);
  char buf[4096];
  gssize n;

  do
    n = read (self->stderr_fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n > 0)
    {
      handle_stderr_bytes (self, buf, (gsize)n);
      return;
    }

  if (n < 0)
    g_warning ("cannot read stderr of agent %s[%d]: %s", self->thread,
               (int)self->pid, g_strerror (errno));
  if (self->stderr_line_len > 0)
    handle_stderr_line (self, self->stderr_line, self->stderr_line_len);
  self->stderr_line_len = 0;
  ab_fd_watch_clear_and_close (&self->stderr_watch, &self->stderr_fd);
}

char *
ab_agent_process_get_stderr_tail (AbAgentProcess *self)
{
  GString *tail = g_string_new (NULL);
  GList *l;

  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), NULL);

  l = self->stderr_tail.head;
  /* the partial line below counts as one of the last lines */
  if (self->stderr_line_len > 0
      && g_queue_get_length (&self->stderr_tail) == AB_AGENT_STDERR_TAIL_LINES)
    l = l->next;
  for (; l != NULL; l = l->next)
    {
      if (tail->len > 0)
        g_string_append_c (tail, '\n');
      g_string_append (tail, l->data);
    }
  /* a line still waiting for its '\n' may be what explains a crash */
  if (self->stderr_line_len > 0)
    {
      g_autofree char *partial = g_utf8_make_valid (
          self->stderr_line, (gssize)self->stderr_line_len);

      if (tail->len > 0)
        g_string_append_c (tail, '\n');
      g_string_append (tail, partial);
    }
  return g_string_free (tail, FALSE);
}

/* ------------------------------------------------------------------ */
/* Exit and teardown                                                   */
/* ------------------------------------------------------------------ */

static gboolean
group_is_gone (AbAgentProcess *self)
{
  if (!self->group_gone && kill (-self->pgid, 0) == -1 && errno == ESRCH)
    self->group_gone = TRUE;
  return self->group_gone;
}

/* kill(-pgid, 0) also counts zombies, and where PID 1 is not a reaper
 * (some containers) a killed orphan stays a zombie for ever.  A zombie
 * holds no memory and runs nothing, so only living members count. */
static gboolean
group_has_live_members (pid_t pgid)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc", 0, NULL);
  const char *name;

  if (dir == NULL)
    return TRUE;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *stat = NULL;
      const char *end;
      char state;
      long long ppid, pgrp;

      if (!g_ascii_isdigit (name[0]))
        continue;
      path = g_build_filename ("/proc", name, "stat", NULL);
      if (!g_file_get_contents (path, &stat, NULL, NULL))
        continue; /* exited meanwhile */
      /* "pid (comm) state ppid pgrp ...": comm may contain anything */
      end = strrchr (stat, ')');
      if (end == NULL
          || sscanf (end + 1, " %c %lld %lld", &state, &ppid, &pgrp) != 3)
        continue;
      if (pgrp == pgid && state != 'Z' && state != 'X')
        return TRUE;
    }
  return FALSE;
}

/* TRUE once no living process of the agent's group remains */
static gboolean
group_is_dead (AbAgentProcess *self)
{
  return group_is_gone (self) || !group_has_live_members (self->pgid);
}

static void
signal_group (AbAgentProcess *self, int signo)
{
  if (group_is_gone (self))
    return;
  if (kill (-self->pgid, signo) == -1 && errno == ESRCH)
    self->group_gone = TRUE;
}

static char *
describe_wait_status (int status)
{
  if (WIFEXITED (status))
    return g_strdup_printf ("exited with status %d", WEXITSTATUS (status));
  if (WIFSIGNALED (status))
    return g_strdup_printf ("killed by signal %d", WTERMSIG (status));
  return g_strdup_printf ("ended with wait status %d", status);
}

static void
on_child_exited (GPid pid, int status, gpointer user_data)
{
  AbAgentProcess *self = g_object_ref (AB_AGENT_PROCESS (user_data));

  g_clear_pointer (&self->child_watch, ab_child_watch_free);
  self->running = FALSE;
  self->wait_status = status;
  self->exit_description = describe_wait_status (status);
  /* the sooner an empty group is noticed, the smaller the window in which
   * its id could be reused by an unrelated process */
  (void)group_is_gone (self);

  g_signal_emit_by_name (self, "exited", self->wait_status,
                         self->exit_description);
  if (self->terminating)
    check_terminated (self);
  g_object_unref (self);
}

static void
waiter_free (TerminateWaiter *waiter)
{
  if (waiter->cancel_source != NULL)
    {
      g_source_destroy (waiter->cancel_source);
      g_source_unref (waiter->cancel_source);
    }
  g_clear_object (&waiter->task);
  g_free (waiter);
}

static void
complete_waiters (AbAgentProcess *self)
{
  g_autoptr (GPtrArray) waiters = g_steal_pointer (&self->waiters);

  self->waiters = g_ptr_array_new_with_free_func ((GDestroyNotify)waiter_free);
  for (guint i = 0; i < waiters->len; i++)
    {
      TerminateWaiter *waiter = g_ptr_array_index (waiters, i);
      g_autoptr (GTask) task = g_steal_pointer (&waiter->task);

      if (task != NULL)
        g_task_return_boolean (task, TRUE);
    }
}

static gboolean
on_group_poll (gpointer user_data)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (user_data);

  g_clear_pointer (&self->poll_source, g_source_unref);
  check_terminated (self);
  return G_SOURCE_REMOVE;
}

static gboolean
on_kill_timeout (gpointer user_data)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (user_data);

  g_clear_pointer (&self->kill_source, g_source_unref);
  signal_group (self, SIGKILL);
  self->sigkill_time = g_get_monotonic_time ();
  return G_SOURCE_REMOVE;
}

/* Completes the teardown once the agent is reaped and its group is
 * empty; until then polls the group, since nothing notifies us when
 * processes we are not the parent of die. */
static void
check_terminated (AbAgentProcess *self)
{
  g_autoptr (AbAgentProcess) hold G_GNUC_UNUSED = g_object_ref (self);

  if (self->running || self->poll_source != NULL)
    return;

  if (!group_is_dead (self))
    {
      if (self->sigkill_time == 0
          || g_get_monotonic_time () - self->sigkill_time < GROUP_GIVE_UP_USEC)
        {
          self->poll_source = g_timeout_source_new (GROUP_POLL_MSEC);
          g_source_set_callback (self->poll_source, on_group_poll, self, NULL);
          g_source_attach (self->poll_source, NULL);
          return;
        }
      g_warning ("process group %d of agent %s still has members after "
                 "SIGKILL; giving up waiting",
                 (int)self->pgid, self->thread);
    }

  if (self->kill_source != NULL)
    {
      g_source_destroy (self->kill_source);
      g_clear_pointer (&self->kill_source, g_source_unref);
    }
  complete_waiters (self);
}

static gboolean
on_terminate_cancelled (GCancellable *cancellable, gpointer user_data)
{
  TerminateWaiter *waiter = user_data;
  g_autoptr (GTask) task = g_steal_pointer (&waiter->task);

  g_clear_pointer (&waiter->cancel_source, g_source_unref);
  if (task != NULL)
    g_task_return_error_if_cancelled (task);
  return G_SOURCE_REMOVE;
}

void
ab_agent_process_terminate_async (AbAgentProcess *self,
                                  gint64 kill_timeout_usec,
                                  GCancellable *cancellable,
                                  GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  TerminateWaiter *waiter;

  g_return_if_fail (AB_IS_AGENT_PROCESS (self));

  waiter = g_new0 (TerminateWaiter, 1);
  waiter->self = self;
  waiter->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (waiter->task, ab_agent_process_terminate_async);
  if (cancellable != NULL)
    {
      waiter->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (waiter->cancel_source,
                             G_SOURCE_FUNC (on_terminate_cancelled), waiter,
                             NULL);
      g_source_attach (waiter->cancel_source, NULL);
    }
  g_ptr_array_add (self->waiters, waiter);

  if (!self->terminating)
    {
      self->terminating = TRUE;

      /* EOF on stdin is the polite way to ask an ACP agent to leave */
      if (self->stdin_stream != NULL)
        g_output_stream_close (self->stdin_stream, NULL, NULL);

      signal_group (self, SIGTERM);
      if (!group_is_gone (self))
        {
          self->kill_source = g_timeout_source_new (
              (guint)(MAX (kill_timeout_usec, 0) / 1000));
          g_source_set_callback (self->kill_source, on_kill_timeout, self,
                                 NULL);
          g_source_attach (self->kill_source, NULL);
        }
    }

  /* completes from an idle at the earliest: GTask defers returns made in
   * the iteration that created it */
  check_terminated (self);
}

gboolean
ab_agent_process_terminate_finish (AbAgentProcess *self, GAsyncResult *result,
                                   GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
ab_agent_process_kill_now (AbAgentProcess *self)
{
  g_return_if_fail (AB_IS_AGENT_PROCESS (self));

  signal_group (self, SIGKILL);
  if (self->sigkill_time == 0)
    self->sigkill_time = g_get_monotonic_time ();
}

gboolean
ab_agent_process_send_signal (AbAgentProcess *self, int signo, GError **error)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), FALSE);

  if (group_is_gone (self) || kill (-self->pgid, signo) == -1)
    {
      int saved = errno;

      g_set_error (
          error, AB_ERROR, AB_ERROR_FAILED,
          _ ("cannot signal the agent's process group %d: %s"), (int)self->pgid,
          group_is_gone (self) ? _ ("no process is left") : g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */
/* ------------------------------------------------------------------ */

/* The file execvp() would run for @name, searched in the PATH of the
 * agent's environment @envp, or NULL with @error set. */
static char *
find_command (const char *name, const char *const *envp, GError **error)
{
  const char *path = g_environ_getenv ((char **)envp, "PATH");
  g_auto (GStrv) dirs = NULL;

  if (strchr (name, '/') != NULL)
    {
      int saved;

      if (access (name, X_OK) == 0)
        return g_strdup (name);
      saved = errno;
      if (saved == ENOENT || saved == ENOTDIR)
        g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                     _ ("agent command '%s' not found: %s"), name,
                     g_strerror (saved));
      else
        g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                     _ ("cannot start agent command '%s': %s"), name,
                     g_strerror (saved));
      return NULL;
    }
  if (path == NULL)
    path = "/usr/local/bin:/usr/bin:/bin";
  dirs = g_strsplit (path, ":", -1);
  for (guint i = 0; dirs[i] != NULL; i++)
    {
      g_autofree char *file
          = g_build_filename (dirs[i][0] != '\0' ? dirs[i] : ".", name, NULL);

      if (access (file, X_OK) == 0
          && g_file_test (file, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&file);
    }
  g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
               _ ("agent command '%s' not found: no such program in PATH "
                  "(%s)"),
               name, path);
  return NULL;
}

/* A close-on-exec pipe whose ends are above 0, 1 and 2, so the child's
 * dup2() onto those can never overwrite another of its pipes (the daemon
 * may have been started with one of them closed). */
static gboolean
open_pipe (int fds[2])
{
  int saved;

  if (pipe2 (fds, O_CLOEXEC) != 0)
    return FALSE;
  for (int i = 0; i < 2; i++)
    if (fds[i] < 3)
      {
        int moved = fcntl (fds[i], F_DUPFD_CLOEXEC, 3);

        close (fds[i]);
        fds[i] = moved;
      }
  if (fds[0] >= 0 && fds[1] >= 0)
    return TRUE;
  saved = errno;
  if (fds[0] >= 0)
    close (fds[0]);
  if (fds[1] >= 0)
    close (fds[1]);
  errno = saved;
  return FALSE;
}

/* posix_spawn, not fork: the child shares the daemon's memory until it
 * execs, so starting an agent costs the same whatever the daemon's size.
 * The child leads its own process group, so teardown reaches everything
 * the agent starts; it gets the pipes as 0, 1 and 2 and no other fd of
 * the daemon; SIGPIPE, which the daemon ignores, and the signal mask are
 * reset, as ignored signals and the mask would otherwise survive exec. */
static int
spawn_in_group (const char *file, const char *const *argv,
                const char *const *envp, const char *cwd, const int child[3],
                pid_t *pid)
{
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t none, defaults;
  int r;

  posix_spawn_file_actions_init (&actions);
  posix_spawnattr_init (&attr);
  for (int fd = 0; fd < 3; fd++)
    posix_spawn_file_actions_adddup2 (&actions, child[fd], fd);
  posix_spawn_file_actions_addclosefrom_np (&actions, 3);
  if (cwd != NULL)
    posix_spawn_file_actions_addchdir_np (&actions, cwd);
  sigemptyset (&none);
  sigemptyset (&defaults);
  sigaddset (&defaults, SIGPIPE);
  posix_spawnattr_setsigmask (&attr, &none);
  posix_spawnattr_setsigdefault (&attr, &defaults);
  posix_spawnattr_setpgroup (&attr, 0);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP
                                       | POSIX_SPAWN_SETSIGMASK
                                       | POSIX_SPAWN_SETSIGDEF);
  r = posix_spawn (pid, file, &actions, &attr, (char *const *)argv,
                   (char *const *)envp);
  posix_spawnattr_destroy (&attr);
  posix_spawn_file_actions_destroy (&actions);
  return r;
}

AbAgentProcess *
ab_agent_process_spawn (const char *const *argv, const char *const *envp,
                        const char *cwd, const char *thread, GError **error)
{
  g_autoptr (AbAgentProcess) self = NULL;
  g_autoptr (GError) watch_error = NULL;
  g_autofree char *file = NULL;
  int pipes[3][2], child[3];
  int r;

  g_return_val_if_fail (envp != NULL, NULL);
  g_return_val_if_fail (thread != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
    {
      g_set_error_literal (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                           _ ("agent command is empty"));
      return NULL;
    }

  file = find_command (argv[0], envp, error);
  if (file == NULL)
    return NULL;
  for (int i = 0; i < 3; i++)
    if (!open_pipe (pipes[i]))
      {
        int saved = errno;

        for (int j = 0; j < i; j++)
          {
            close (pipes[j][0]);
            close (pipes[j][1]);
          }
        g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                     _ ("cannot start agent command '%s': %s"), argv[0],
                     g_strerror (saved));
        return NULL;
      }
  /* The child reads stdin and writes stdout and stderr. */
  child[0] = pipes[0][0];
  child[1] = pipes[1][1];
  child[2] = pipes[2][1];

  self = g_object_new (AB_TYPE_AGENT_PROCESS, NULL);
  self->thread = g_strdup (thread);
  self->command = g_strdup (argv[0]);

  /* The child is reaped by our own watch on the main loop, so its pid
   * (and with it the pgid) cannot be reused before we have seen the exit.
   * A failed exec is reported here, synchronously. */
  r = spawn_in_group (file, argv, envp, cwd, child, &self->pid);
  for (int i = 0; i < 3; i++)
    close (child[i]);
  if (r != 0)
    {
      close (pipes[0][1]);
      close (pipes[1][0]);
      close (pipes[2][0]);
      self->pid = 0;
      if (r == ENOENT && cwd != NULL && !g_file_test (cwd, G_FILE_TEST_IS_DIR))
        g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                     _ ("cannot start agent command '%s': working directory "
                        "'%s' does not exist"),
                     argv[0], cwd);
      else
        g_set_error (error, AB_ERROR, AB_ERROR_AGENT_FAILED,
                     _ ("cannot start agent command '%s': %s"), argv[0],
                     g_strerror (r));
      return NULL;
    }

  self->pgid = self->pid;
  self->running = TRUE;
  self->child_watch = ab_child_watch_new (self->pid, on_child_exited, self);

  g_unix_set_fd_nonblocking (pipes[0][1], TRUE, NULL);
  g_unix_set_fd_nonblocking (pipes[1][0], TRUE, NULL);
  g_unix_set_fd_nonblocking (pipes[2][0], TRUE, NULL);
  self->stdin_stream = g_unix_output_stream_new (pipes[0][1], TRUE);
  self->stdout_stream = g_unix_input_stream_new (pipes[1][0], TRUE);
  self->stderr_fd = pipes[2][0];

  self->to_journal = g_log_writer_is_journald (fileno (stderr));
  self->window_start = g_get_monotonic_time ();
  self->stderr_watch = ab_fd_watch_new (self->stderr_fd, on_stderr_readable,
                                        self, &watch_error);
  if (self->stderr_watch == NULL)
    {
      /* The agent runs on; what it writes to stderr fails (EPIPE). */
      g_warning ("cannot read stderr of agent %s[%d]: %s", self->thread,
                 (int)self->pid, watch_error->message);
      ab_fd_watch_clear_and_close (&self->stderr_watch, &self->stderr_fd);
    }

  return g_steal_pointer (&self);
}

GPid
ab_agent_process_get_pid (AbAgentProcess *self)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), 0);

  return self->pid;
}

GOutputStream *
ab_agent_process_get_stdin (AbAgentProcess *self)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), NULL);

  return self->stdin_stream;
}

GInputStream *
ab_agent_process_get_stdout (AbAgentProcess *self)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), NULL);

  return self->stdout_stream;
}

gboolean
ab_agent_process_is_running (AbAgentProcess *self)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), FALSE);

  return self->running;
}

const char *
ab_agent_process_get_exit_description (AbAgentProcess *self)
{
  g_return_val_if_fail (AB_IS_AGENT_PROCESS (self), NULL);

  return self->exit_description;
}

static void
destroy_source (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

static void
reap_only (GPid pid, int status, gpointer user_data)
{
  g_spawn_close_pid (pid);
}

static void
ab_agent_process_dispose (GObject *object)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (object);

  /* Never leave an agent behind, alive or as a zombie: kill its group and
   * hand the reaping to a watch that needs nothing of this object. */
  if (self->pid > 0 && (self->running || !self->group_gone))
    signal_group (self, SIGKILL);
  if (self->child_watch != NULL)
    {
      g_clear_pointer (&self->child_watch, ab_child_watch_free);
      g_child_watch_add (self->pid, reap_only, NULL);
    }
  ab_fd_watch_clear_and_close (&self->stderr_watch, &self->stderr_fd);
  destroy_source (&self->kill_source);
  destroy_source (&self->poll_source);
  if (self->window_source != NULL)
    {
      destroy_source (&self->window_source);
      flush_suppressed (self);
    }
  if (self->waiters != NULL)
    g_ptr_array_set_size (self->waiters, 0);
  g_clear_object (&self->stdin_stream);
  g_clear_object (&self->stdout_stream);

  G_OBJECT_CLASS (ab_agent_process_parent_class)->dispose (object);
}

static void
ab_agent_process_finalize (GObject *object)
{
  AbAgentProcess *self = AB_AGENT_PROCESS (object);

  g_queue_clear_full (&self->stderr_tail, g_free);
  g_clear_pointer (&self->waiters, g_ptr_array_unref);
  g_free (self->thread);
  g_free (self->command);
  g_free (self->exit_description);

  G_OBJECT_CLASS (ab_agent_process_parent_class)->finalize (object);
}

static void
ab_agent_process_init (AbAgentProcess *self)
{
  g_queue_init (&self->stderr_tail);
  self->stderr_fd = -1;
  self->waiters = g_ptr_array_new_with_free_func ((GDestroyNotify)waiter_free);
}

static void
ab_agent_process_class_init (AbAgentProcessClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_agent_process_dispose;
  object_class->finalize = ab_agent_process_finalize;
}

/* ---- as an AbAgentHandle ----------------------------------------------- */

static guint
handle_get_pid (AbAgentHandle *handle)
{
  return (guint)ab_agent_process_get_pid (AB_AGENT_PROCESS (handle));
}

static const char *
handle_get_exit_description (AbAgentHandle *handle)
{
  return ab_agent_process_get_exit_description (AB_AGENT_PROCESS (handle));
}

static char *
handle_get_stderr_tail (AbAgentHandle *handle)
{
  return ab_agent_process_get_stderr_tail (AB_AGENT_PROCESS (handle));
}

static void
handle_terminate_async (AbAgentHandle *handle, gint64 kill_timeout_usec,
                        GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data)
{
  ab_agent_process_terminate_async (AB_AGENT_PROCESS (handle),
                                    kill_timeout_usec, cancellable, callback,
                                    user_data);
}

static gboolean
handle_terminate_finish (AbAgentHandle *handle, GAsyncResult *result,
                         GError **error)
{
  return ab_agent_process_terminate_finish (AB_AGENT_PROCESS (handle), result,
                                            error);
}

static void
handle_kill_now (AbAgentHandle *handle)
{
  ab_agent_process_kill_now (AB_AGENT_PROCESS (handle));
}

static gboolean
handle_send_signal (AbAgentHandle *handle, int signo, GError **error)
{
  return ab_agent_process_send_signal (AB_AGENT_PROCESS (handle), signo, error);
}

static void
handle_iface_init (AbAgentHandleInterface *iface)
{
  iface->get_pid = handle_get_pid;
  iface->get_exit_description = handle_get_exit_description;
  iface->get_stderr_tail = handle_get_stderr_tail;
  iface->terminate_async = handle_terminate_async;
  iface->terminate_finish = handle_terminate_finish;
  iface->kill_now = handle_kill_now;
  iface->send_signal = handle_send_signal;
}
