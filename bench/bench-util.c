/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — statistics, processes and the private bus */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bench-util.h"

BenchSeries *
bench_series_new (const char *key)
{
  BenchSeries *s = g_new0 (BenchSeries, 1);

  s->key = key;
  s->values = g_array_new (FALSE, FALSE, sizeof (double));
  return s;
}

void
bench_series_free (BenchSeries *s)
{
  if (s == NULL)
    return;
  g_array_unref (s->values);
  g_free (s);
}

void
bench_series_add (BenchSeries *s, double v)
{
  g_array_append_val (s->values, v);
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

double
bench_series_median (const BenchSeries *s)
{
  g_autoptr (GArray) copy = NULL;
  guint n = s->values->len;

  if (n == 0)
    return NAN;
  copy = g_array_copy (s->values);
  g_array_sort (copy, compare_doubles);
  if (n % 2 == 1)
    return g_array_index (copy, double, n / 2);
  return (g_array_index (copy, double, n / 2 - 1)
          + g_array_index (copy, double, n / 2))
         / 2;
}

double
bench_series_min (const BenchSeries *s)
{
  double m = INFINITY;

  for (guint i = 0; i < s->values->len; i++)
    m = MIN (m, g_array_index (s->values, double, i));
  return s->values->len > 0 ? m : NAN;
}

double
bench_series_max (const BenchSeries *s)
{
  double m = -INFINITY;

  for (guint i = 0; i < s->values->len; i++)
    m = MAX (m, g_array_index (s->values, double, i));
  return s->values->len > 0 ? m : NAN;
}

static int
compare_int64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

  return x < y ? -1 : x > y;
}

double
bench_percentile (GArray *values, double pct)
{
  guint idx;

  if (values->len == 0)
    return NAN;
  g_array_sort (values, compare_int64);
  idx = (guint)(pct / 100.0 * (values->len - 1) + 0.5);
  return (double)g_array_index (values, gint64, MIN (idx, values->len - 1));
}

gboolean
bench_stamp_age (const char *text, gint64 now, gint64 *age_us)
{
  const char *t = strstr (text, " t=");

  if (t == NULL)
    return FALSE;
  *age_us = now - g_ascii_strtoll (t + 3, NULL, 10);
  return TRUE;
}

double
bench_cpu_seconds (GPid pid)
{
  clockid_t clock;
  struct timespec ts;

  /* The scheduler's own count, to the nanosecond, of all the process's
   * threads. /proc/PID/stat's utime and stime are in clock ticks (10 ms):
   * a process that wakes up for a few microseconds at a time, as the demo
   * agents and the bus do, moves them by a tick or none. */
  if (clock_getcpuclockid (pid, &clock) != 0 || clock_gettime (clock, &ts) != 0)
    return NAN;
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

gint64
bench_rss_kib (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int)pid);
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return -1;
  line = strstr (text, "\nVmRSS:");
  if (line == NULL)
    return -1;
  return g_ascii_strtoll (line + strlen ("\nVmRSS:"), NULL, 10);
}

GSubprocess *
bench_bus_up (char **address, GError **error)
{
  g_autoptr (GSubprocess) bus = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autofree char *line = NULL;

  bus = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, error, "dbus-daemon",
                          "--session", "--nofork", "--nopidfile",
                          "--print-address=1", NULL);
  if (bus == NULL)
    return NULL;
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (bus));
  line = g_data_input_stream_read_line (out, NULL, NULL, error);
  if (line == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                             "dbus-daemon printed no address");
      return NULL;
    }
  *address = g_strstrip (g_steal_pointer (&line));
  return g_steal_pointer (&bus);
}

GDBusConnection *
bench_bus_connect (const char *address, GError **error)
{
  return g_dbus_connection_new_for_address_sync (
      address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
          | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, error);
}

static gpointer read_notifications (gpointer user_data);

BenchDaemon *
bench_daemon_new (const char *config_yaml, GError **error)
{
  g_autoptr (BenchDaemon) d = g_new0 (BenchDaemon, 1);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  d->notify_fd = -1;
  g_mutex_init (&d->lock);
  g_cond_init (&d->ready_cond);
  d->dir = g_dir_make_tmp ("agentbroker-bench-XXXXXX", error);
  if (d->dir == NULL)
    return NULL;
  d->config_path = g_build_filename (d->dir, "agentbroker.yaml", NULL);
  d->state_dir = g_build_filename (d->dir, "state", NULL);
  d->log_path = g_build_filename (d->dir, "daemon.log", NULL);
  d->notify_path = g_build_filename (d->dir, "notify", NULL);
  if (g_mkdir_with_parents (d->state_dir, 0700) != 0
      || !g_file_set_contents (d->config_path, config_yaml, -1, error))
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create %s",
                     d->state_dir);
      return NULL;
    }

  /* Our own NOTIFY_SOCKET: READY=1 is the moment a start is over. */
  d->notify_fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_strlcpy (addr.sun_path, d->notify_path, sizeof addr.sun_path);
  if (d->notify_fd < 0
      || bind (d->notify_fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot bind %s: %s", d->notify_path, g_strerror (errno));
      return NULL;
    }
  d->notify_thread = g_thread_new ("notify", read_notifications, d);
  return g_steal_pointer (&d);
}

/* sd_notify() blocks once the socket's queue is full: like systemd, read
 * every message as it comes, whatever the bench is doing meanwhile. */
static gpointer
read_notifications (gpointer user_data)
{
  BenchDaemon *d = user_data;
  char buf[4096];

  for (;;)
    {
      struct pollfd pfd = { .fd = d->notify_fd, .events = POLLIN };
      ssize_t n;
      gboolean stop;

      g_mutex_lock (&d->lock);
      stop = d->stopping;
      g_mutex_unlock (&d->lock);
      if (stop)
        return NULL;
      if (poll (&pfd, 1, 100) <= 0)
        continue;
      n = recv (d->notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT);
      if (n <= 0)
        continue;
      buf[n] = '\0';
      if (strncmp (buf, "READY=1", 7) == 0 || strstr (buf, "\nREADY=1") != NULL)
        {
          g_mutex_lock (&d->lock);
          if (d->ready_at == 0)
            d->ready_at = g_get_monotonic_time ();
          g_cond_signal (&d->ready_cond);
          g_mutex_unlock (&d->lock);
        }
    }
}

/* Waits for READY=1; FALSE at @deadline. */
static gboolean
wait_ready (BenchDaemon *d, gint64 deadline)
{
  gboolean ready;

  g_mutex_lock (&d->lock);
  while (d->ready_at == 0
         && g_cond_wait_until (&d->ready_cond, &d->lock, deadline))
    ;
  ready = d->ready_at != 0;
  g_mutex_unlock (&d->lock);
  return ready;
}

gboolean
bench_daemon_start (BenchDaemon *d, const char *daemon_path,
                    const char *bus_address, GError **error)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  int log_fd;
  gint64 start;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (launcher, "STATE_DIRECTORY", d->state_dir,
                                TRUE);
  g_subprocess_launcher_setenv (launcher, "DBUS_SESSION_BUS_ADDRESS",
                                bus_address, TRUE);
  g_subprocess_launcher_setenv (launcher, "NOTIFY_SOCKET", d->notify_path,
                                TRUE);
  g_subprocess_launcher_unsetenv (launcher, "G_MESSAGES_DEBUG");
  g_subprocess_launcher_unsetenv (launcher, "WATCHDOG_USEC");
  log_fd = open (d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot open %s: %s", d->log_path, g_strerror (errno));
      return FALSE;
    }
  g_subprocess_launcher_take_stderr_fd (launcher, dup (log_fd));
  g_subprocess_launcher_take_stdout_fd (launcher, log_fd);

  g_mutex_lock (&d->lock);
  d->ready_at = 0;
  g_mutex_unlock (&d->lock);
  start = g_get_monotonic_time ();
  d->proc
      = g_subprocess_launcher_spawn (launcher, error, daemon_path, "--session",
                                     "--config", d->config_path, NULL);
  if (d->proc == NULL)
    return FALSE;
  d->pid = (GPid)atoi (g_subprocess_get_identifier (d->proc));
  if (!wait_ready (d, start + 120 * G_USEC_PER_SEC))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "agentbrokerd sent no READY=1 within 120 s (log: %s)",
                   d->log_path);
      return FALSE;
    }
  d->ready_us = d->ready_at - start;
  return TRUE;
}

void
bench_daemon_stop (BenchDaemon *d, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64)timeout_ms * 1000;

  if (d->proc == NULL)
    return;
  g_subprocess_send_signal (d->proc, SIGTERM);
  while (g_subprocess_get_identifier (d->proc) != NULL
         && g_get_monotonic_time () < deadline)
    {
      /* The identifier goes away once the child is reaped, which needs
       * the main context's child watch. */
      g_main_context_iteration (NULL, FALSE);
      g_usleep (5000);
    }
  if (g_subprocess_get_identifier (d->proc) != NULL)
    {
      g_printerr ("agentbrokerd did not stop in %u ms; killing it\n",
                  timeout_ms);
      g_subprocess_force_exit (d->proc);
      g_subprocess_wait (d->proc, NULL, NULL);
    }
  g_clear_object (&d->proc);
}

void
bench_remove_tree (const char *dir)
{
  g_autofree char *quoted = g_shell_quote (dir);
  g_autofree char *cmd = g_strdup_printf ("rm -rf %s", quoted);

  if (system (cmd) != 0)
    g_printerr ("cannot remove %s\n", dir);
}

void
bench_daemon_free (BenchDaemon *d)
{
  if (d == NULL)
    return;
  if (d->proc != NULL)
    bench_daemon_stop (d, 30000);
  if (d->notify_thread != NULL)
    {
      g_mutex_lock (&d->lock);
      d->stopping = TRUE;
      g_mutex_unlock (&d->lock);
      g_thread_join (d->notify_thread);
    }
  if (d->notify_fd >= 0)
    close (d->notify_fd);
  g_mutex_clear (&d->lock);
  g_cond_clear (&d->ready_cond);
  if (d->dir != NULL && g_getenv ("AB_BENCH_KEEP") == NULL)
    bench_remove_tree (d->dir);
  g_free (d->dir);
  g_free (d->config_path);
  g_free (d->state_dir);
  g_free (d->log_path);
  g_free (d->notify_path);
  g_free (d);
}
