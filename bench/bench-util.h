/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — statistics, processes and the private bus */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A series of measurements of one figure. */
typedef struct
{
  const char *key;
  GArray *values; /* of double */
} BenchSeries;

BenchSeries *bench_series_new (const char *key);
void bench_series_free (BenchSeries *s);
void bench_series_add (BenchSeries *s, double v);
double bench_series_median (const BenchSeries *s);
double bench_series_min (const BenchSeries *s);
double bench_series_max (const BenchSeries *s);
/* Percentile (0–100) of an array of gint64, sorted in place. */
double bench_percentile (GArray *values, double pct);
/* How long before @now (monotonic µs) a paced update was written, from the
 * "t=<µs>" stamp in @text (an update's JSON, or a line holding one); FALSE
 * when @text carries no stamp. */
gboolean bench_stamp_age (const char *text, gint64 now, gint64 *age_us);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchSeries, bench_series_free)

/* CPU time @pid (all its threads, live or ended) has used so far, in
 * seconds, or NAN. */
double bench_cpu_seconds (GPid pid);

/* VmRSS of @pid in KiB, or -1. */
gint64 bench_rss_kib (GPid pid);

/* A private dbus-daemon; returns its address, or NULL with @error set. */
GSubprocess *bench_bus_up (char **address, GError **error);
/* A new connection to the bus at @address, registered (Hello done). */
GDBusConnection *bench_bus_connect (const char *address, GError **error);

/* The built agentbrokerd, with its own config, state and notify socket. */
typedef struct
{
  char *dir; /* temp dir holding all of it */
  char *config_path;
  char *state_dir;
  char *log_path;
  char *notify_path;
  int notify_fd;
  GThread *notify_thread; /* reads every notification, as systemd does */
  GMutex lock;
  GCond ready_cond;
  gint64 ready_at; /* monotonic time of READY=1; 0 until then */
  gboolean stopping;
  GSubprocess *proc;
  GPid pid;
  gint64 ready_us; /* spawn → READY=1 */
} BenchDaemon;

BenchDaemon *bench_daemon_new (const char *config_yaml, GError **error);
/* Spawns agentbrokerd and waits for READY=1 on its notify socket. */
gboolean bench_daemon_start (BenchDaemon *d, const char *daemon_path,
                             const char *bus_address, GError **error);
/* SIGTERM, wait (SIGKILL after @timeout_ms). */
void bench_daemon_stop (BenchDaemon *d, guint timeout_ms);
void bench_daemon_free (BenchDaemon *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchDaemon, bench_daemon_free)

/* rm -rf @dir (a bench temp dir). */
void bench_remove_tree (const char *dir);

G_END_DECLS
