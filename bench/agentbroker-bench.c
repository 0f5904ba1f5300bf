/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — what the daemon costs, measured next to what it
 * cannot beat.
 *
 * Runs its own dbus-daemon and the built agentbrokerd (temp config, state
 * and NOTIFY_SOCKET) and prints one table: each figure is a median over
 * repeated runs, with its spread, next to a baseline measured in the same
 * run. With --json the output ends with one JSON object on a line of its
 * own. Not a test: nothing here passes or fails on time.
 *
 *   relay      demo agent `stream N` → daemon → Update signals, 1 and 100
 *              sessions; baselines: a trivial emitter (one unicast signal
 *              per update, from a second connection) and the bench reading
 *              the agent's pipe itself (json-glib per line)
 *   latency    `pace 100 N` in 100 sessions (the agent stamps
 *              CLOCK_MONOTONIC, the bench subtracts on arrival) vs the
 *              emitter at the same rate; the same with the simplest relay
 *              (--floor: 100 agents of its own, one poll() loop, one
 *              signal per update) in the daemon's place; the emitter
 *              again while 100 agents write beside it, read and dropped
 *              (--agents: their load alone); again at 10 updates/s, and
 *              one agent's pipe read by the bench itself
 *   first      Prompt on a new thread → first Update vs the bench spawning
 *              and handshaking the demo agent itself
 *   drain      Drain() reply after the last turn's TurnEnded
 *   acp        the official SDK's client (node) reading `stream N` through
 *              `agentctl acp` next to the same client reading the demo
 *              agent itself, in turns (acp_proxy_vs_direct)
 *   scale      RSS, ListSessions and Reload() at 1,000 running sessions;
 *              start and ListSessions with 10,000 suspended records;
 *              each ListSessions also timed with an sd-bus client that
 *              leaves the reply undecoded, to show the client's share,
 *              and the same reply timed from a trivial GDBus service,
 *              to show what GDBus and the bus cost for it
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <json-glib/json-glib.h>
#include <systemd/sd-bus.h>

#include "bench-acp.h"
#include "bench-direct.h"
#include "bench-sink.h"
#include "bench-util.h"
#include "session-list.h"

#define BUS_NAME "org.agentbroker.Broker1"
#define BUS_PATH "/org/agentbroker/Broker1"
#define BROKER_IFACE "org.agentbroker.Broker1"
#define CALL_TIMEOUT_MS 120000
/* when paced agents start writing, after their prompt */
#define PACE_START_MS 300.0

typedef struct
{
  const char *mode; /* "full", "quick" or "smoke" */
  gboolean quick;   /* quick or smoke */
  guint runs;       /* repeated runs of each throughput figure */
  guint64 stream_n; /* updates per relay run (all sessions together) */
  guint stream_bytes;
  guint relay_sessions;
  guint pace_rate; /* updates per second per session */
  guint pace_n;    /* updates per session per latency run */
  guint first_runs;
  guint scale_sessions;
  guint suspended_records;
  guint start_runs; /* starts with and without the records */
  guint call_reps;  /* round trips per ListSessions/GetAll figure */
  guint64 acp_n;    /* updates per ACP client run */
} BenchPlan;

typedef struct
{
  BenchPlan plan;
  char *self_path;
  char *daemon_path;
  char *agent_path;
  char *builddir;
  char *bus_address;
  GDBusConnection *connection;
  sd_bus *wire; /* a client that leaves replies undecoded */
  BenchSink sink;
  GHashTable *series; /* key → BenchSeries */
  GPtrArray *order;   /* keys, in the order they were first used */
  guint pending_calls;
  guint failed_calls;
  char *tmpdir;
  GPid bus_pid;
  GPid daemon_pid; /* the daemon started last */
} Bench;

static BenchSeries *
series (Bench *b, const char *key)
{
  BenchSeries *s = g_hash_table_lookup (b->series, key);

  if (s == NULL)
    {
      s = bench_series_new (g_intern_string (key));
      g_hash_table_insert (b->series, (gpointer)s->key, s);
      g_ptr_array_add (b->order, (gpointer)s->key);
    }
  return s;
}

static void
add (Bench *b, const char *key, double v)
{
  bench_series_add (series (b, key), v);
}

static double
median (Bench *b, const char *key)
{
  return bench_series_median (series (b, key));
}

static char *
config_yaml (Bench *b)
{
  return g_strdup_printf ("default_agent: demo\n"
                          "agents:\n"
                          "  demo:\n"
                          "    command: [%s]\n"
                          "pool:\n"
                          "  max_sessions: 2000\n"
                          "  max_sessions_per_user: 0\n"
                          "  max_queued_prompts: 8\n"
                          "  idle_timeout: 2h\n",
                          b->agent_path);
}

/* ---- D-Bus calls ----------------------------------------------------- */

static GVariant *
call (Bench *b, const char *method, GVariant *params, const char *reply_type,
      GError **error)
{
  return g_dbus_connection_call_sync (
      b->connection, BUS_NAME, BUS_PATH, BROKER_IFACE, method, params,
      reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL,
      G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, error);
}

/* Round trip time of a call in ms until the whole reply has arrived, read
 * by sd-bus, which decodes a body only when asked: the daemon's and the
 * bus's share of a large reply, without the client's GVariant decoding. */
static double
timed_call_wire (Bench *b, const char *dest, const char *iface,
                 const char *method, const char *arg)
{
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message *reply = NULL;
  gint64 t0 = g_get_monotonic_time ();
  double ms;
  int r;

  if (arg != NULL)
    r = sd_bus_call_method (b->wire, dest, BUS_PATH, iface, method, &error,
                            &reply, "s", arg);
  else if (g_str_equal (method, "ListSessions"))
    r = sd_bus_call_method (b->wire, dest, BUS_PATH, iface, method, &error,
                            &reply, "a{sv}", 0);
  else
    r = sd_bus_call_method (b->wire, dest, BUS_PATH, iface, method, &error,
                            &reply, "");
  ms = (g_get_monotonic_time () - t0) / 1000.0;
  if (r < 0)
    {
      g_printerr ("%s: %s\n", method,
                  error.message != NULL ? error.message : g_strerror (-r));
      ms = NAN;
    }
  sd_bus_message_unref (reply);
  sd_bus_error_free (&error);
  return ms;
}

/* Round trip time of a call in ms, or NAN when it failed. */
static double
timed_call (Bench *b, const char *dest, const char *iface, const char *method,
            GVariant *params, GVariant **reply_out)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  gint64 t0 = g_get_monotonic_time ();

  reply = g_dbus_connection_call_sync (
      b->connection, dest, BUS_PATH, iface, method, params, NULL,
      G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, &error);
  if (reply == NULL)
    {
      g_printerr ("%s: %s\n", method, error->message);
      return NAN;
    }
  if (reply_out != NULL)
    *reply_out = g_steal_pointer (&reply);
  return (g_get_monotonic_time () - t0) / 1000.0;
}

static void
on_prompt_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Bench *b = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (reply == NULL)
    {
      if (b->failed_calls++ < 3)
        g_printerr ("Prompt: %s\n", error->message);
    }
  b->pending_calls--;
}

static void
prompt_async (Bench *b, const char *thread, const char *text)
{
  b->pending_calls++;
  g_dbus_connection_call (
      b->connection, BUS_NAME, BUS_PATH, BROKER_IFACE, "Prompt",
      g_variant_new ("(ssa{sv})", thread, text, NULL), G_VARIANT_TYPE ("(t)"),
      G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, on_prompt_reply, b);
}

static char *
thread_name (const char *prefix, guint i)
{
  return g_strdup_printf ("bench:%s/%u", prefix, i);
}

/* Waits for @count turns to end after @base had, and for every Prompt
 * reply. FALSE on a refused prompt or a timeout. */
static gboolean
wait_all (Bench *b, const char *prefix, guint64 base, guint count,
          guint timeout_ms)
{
  if (!bench_sink_wait_turns (&b->sink, base + count, timeout_ms))
    {
      g_printerr ("%s: %" G_GUINT64_FORMAT " of %u turns ended in time\n",
                  prefix, bench_sink_turns_ended (&b->sink) - base, count);
      return FALSE;
    }
  while (b->pending_calls > 0)
    g_main_context_iteration (NULL, TRUE);
  return b->failed_calls == 0;
}

/* Prompts @text on threads prefix/first … prefix/first+count-1 at once and
 * waits for every turn to end. FALSE on a refused prompt or a timeout. */
static gboolean
prompt_all (Bench *b, const char *prefix, guint first, guint count,
            const char *text, guint timeout_ms)
{
  guint64 base = bench_sink_turns_ended (&b->sink);

  b->failed_calls = 0;
  for (guint i = first; i < first + count; i++)
    {
      g_autofree char *thread = thread_name (prefix, i);

      prompt_async (b, thread, text);
    }
  return wait_all (b, prefix, base, count, timeout_ms);
}

/* ---- relay throughput ------------------------------------------------- */

/* Updates per second through the daemon, @sessions streaming at once. */
static double
relay_run (Bench *b, guint sessions)
{
  guint64 per = b->plan.stream_n / sessions;
  g_autofree char *text = g_strdup_printf ("stream %" G_GUINT64_FORMAT " %u",
                                           per, b->plan.stream_bytes);
  gint64 t0;
  guint64 got;

  bench_sink_reset (&b->sink, FALSE);
  t0 = g_get_monotonic_time ();
  if (!prompt_all (b, "relay", 0, sessions, text, 300000))
    return NAN;
  got = b->sink.updates;
  if (got != per * sessions)
    g_printerr ("relay: %" G_GUINT64_FORMAT " updates of %" G_GUINT64_FORMAT
                "\n",
                got, per * sessions);
  add (b,
       sessions == 1 ? "relay_messages_per_run_1"
                     : "relay_messages_per_run_100",
       (double)b->sink.messages);
  return got / ((b->sink.last_turn_ended_us - t0) / 1e6);
}

/* Starts this program in one of its helper modes (--emit, --floor) and
 * waits for its "ready"; @out (may be NULL) gets its stdout, for what it
 * prints after. */
static GSubprocess *
helper_spawn (const char *const *argv, GDataInputStream **out)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = NULL;
  g_autoptr (GDataInputStream) stdout_lines = NULL;
  g_autofree char *line = NULL;

  p = g_subprocess_newv (
      argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
      &error);
  if (p == NULL)
    {
      g_printerr ("%s: %s\n", argv[1], error->message);
      return NULL;
    }
  stdout_lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (p));
  line = g_data_input_stream_read_line (stdout_lines, NULL, NULL, NULL);
  if (g_strcmp0 (line, "ready") != 0)
    {
      g_printerr ("%s did not start\n", argv[1]);
      return NULL;
    }
  if (out != NULL)
    *out = g_steal_pointer (&stdout_lines);
  return g_steal_pointer (&p);
}

/* The line a helper waits for after "ready". */
static void
helper_go (GSubprocess *p)
{
  g_output_stream_write_all (g_subprocess_get_stdin_pipe (p), "go\n", 3, NULL,
                             NULL, NULL);
  g_output_stream_flush (g_subprocess_get_stdin_pipe (p), NULL, NULL);
}

static GSubprocess *
emitter_spawn (Bench *b, guint64 n, guint rate, guint streams)
{
  g_autofree char *n_str = g_strdup_printf ("%" G_GUINT64_FORMAT, n);
  g_autofree char *bytes_str = g_strdup_printf ("%u", b->plan.stream_bytes);
  g_autofree char *rate_str = g_strdup_printf ("%u", rate);
  g_autofree char *streams_str = g_strdup_printf ("%u", streams);
  const char *argv[] = { b->self_path,
                         "--emit",
                         b->bus_address,
                         g_dbus_connection_get_unique_name (b->connection),
                         n_str,
                         bytes_str,
                         rate_str,
                         streams_str,
                         NULL };

  return helper_spawn (argv, NULL);
}

static gboolean
emitter_go (Bench *b, GSubprocess *p, guint streams, gint64 *t0)
{
  bench_sink_reset (&b->sink, TRUE);
  *t0 = g_get_monotonic_time ();
  helper_go (p);
  if (!bench_sink_wait_turns (&b->sink, streams, 300000))
    return FALSE;
  g_subprocess_wait (p, NULL, NULL);
  return TRUE;
}

/* Updates per second from the trivial emitter, one signal each. */
static double
emitter_rate_run (Bench *b)
{
  g_autoptr (GSubprocess) p = emitter_spawn (b, b->plan.stream_n, 0, 1);
  gint64 t0;

  if (p == NULL || !emitter_go (b, p, 1, &t0))
    return NAN;
  return b->sink.updates / ((b->sink.last_turn_ended_us - t0) / 1e6);
}

/* Updates per second read and parsed by the bench from the agent's pipe. */
static double
direct_rate_run (Bench *b)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BenchDirect) d
      = bench_direct_start (b->agent_path, b->tmpdir, &error);
  g_autofree char *text = NULL;
  guint64 chunks = 0;
  gint64 t0, t1;

  if (d == NULL)
    {
      g_printerr ("direct: %s\n", error->message);
      return NAN;
    }
  text = g_strdup_printf ("stream %" G_GUINT64_FORMAT " %u", b->plan.stream_n,
                          b->plan.stream_bytes);
  t0 = g_get_monotonic_time ();
  if (!bench_direct_prompt (d, text, &chunks, NULL, NULL, &error))
    {
      g_printerr ("direct: %s\n", error->message);
      return NAN;
    }
  t1 = g_get_monotonic_time ();
  return chunks / ((t1 - t0) / 1e6);
}

static void
bench_relay (Bench *b)
{
  /* Sessions exist and their agents run before anything is timed. */
  if (!prompt_all (b, "relay", 0, b->plan.relay_sessions, "stream 1", 120000))
    return;
  for (guint r = 0; r < b->plan.runs; r++)
    {
      add (b, "relay_rate_1", relay_run (b, 1));
      add (b, "dbus_rate", emitter_rate_run (b));
      add (b, "direct_rate", direct_rate_run (b));
      add (b, "relay_rate_100", relay_run (b, b->plan.relay_sessions));
    }
}

/* ---- added latency at a steady rate ----------------------------------- */

/* ListSessions' parameters with no filter (floating). */
static GVariant *
no_options (void)
{
  return g_variant_new ("(a{sv})", NULL);
}

/* The reply of ListSessions as it was before the struct array, one a{sv}
 * per session with the same names and values (floating). */
static GVariant *
dict_reply (GVariant *reply)
{
  g_autoptr (GVariant) structs = g_variant_get_child_value (reply, 0);
  g_autoptr (GPtrArray) dicts = ab_session_list_to_dicts (structs);
  GVariant *array = g_variant_new_array (G_VARIANT_TYPE_VARDICT,
                                         (GVariant **)dicts->pdata, dicts->len);

  return g_variant_new_tuple (&array, 1);
}

/* thread → pid of every session. */
static GHashTable *
session_pids (Bench *b, guint *running)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariantIter) iter = NULL;
  GVariant *entry;
  GHashTable *pids
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  *running = 0;
  if (isnan (timed_call (b, BUS_NAME, BROKER_IFACE, "ListSessions",
                         no_options (), &reply)))
    return pids;
  g_variant_get (reply, "(" AB_SESSION_LIST_TYPE ")", &iter);
  while ((entry = g_variant_iter_next_value (iter)) != NULL)
    {
      const char *thread = NULL;
      guint32 pid = 0;

      g_variant_get_child (entry, 0, "&s", &thread);
      g_variant_get_child (entry, 3, "u", &pid);
      if (pid != 0)
        (*running)++;
      g_hash_table_insert (pids, g_strdup (thread), GUINT_TO_POINTER (pid));
      g_variant_unref (entry);
    }
  return pids;
}

/* CPU time used so far by each part of the path, in seconds. */
typedef struct
{
  gint64 at;
  double daemon;
  double agents;
  double bus;
  double client;  /* the bench, which receives the signals */
  double emitter; /* reaped children */
} CpuUse;

/* The emitter is timed after its exit, among the reaped children. */
static double
children_cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_CHILDREN, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
cpu_use_read (Bench *b, GHashTable *agent_pids, CpuUse *u)
{
  GHashTableIter it;
  gpointer pid;

  u->at = g_get_monotonic_time ();
  u->daemon = bench_cpu_seconds (b->daemon_pid);
  u->bus = bench_cpu_seconds (b->bus_pid);
  u->client = bench_cpu_seconds (getpid ());
  u->emitter = children_cpu_seconds ();
  u->agents = 0;
  if (agent_pids == NULL)
    return;
  g_hash_table_iter_init (&it, agent_pids);
  while (g_hash_table_iter_next (&it, NULL, &pid))
    if (GPOINTER_TO_UINT (pid) != 0)
      u->agents += bench_cpu_seconds ((GPid)GPOINTER_TO_UINT (pid));
}

/* Cores each part of the path used between @t0 and @t1: relay_cpu_daemon,
 * relay_cpu_agents, relay_cpu_bus, relay_cpu_client, relay_cpu_all; or
 * dbus_cpu_emitter, dbus_cpu_bus, dbus_cpu_client, dbus_cpu_all. */
static void
add_cpu_use (Bench *b, gboolean relay, const CpuUse *t0, const CpuUse *t1)
{
  static const struct
  {
    const char *part;
    gsize offset;
    gboolean relay, emitter; /* on which path */
  } parts[] = {
    { "daemon", G_STRUCT_OFFSET (CpuUse, daemon), TRUE, FALSE },
    { "agents", G_STRUCT_OFFSET (CpuUse, agents), TRUE, FALSE },
    { "emitter", G_STRUCT_OFFSET (CpuUse, emitter), FALSE, TRUE },
    { "bus", G_STRUCT_OFFSET (CpuUse, bus), TRUE, TRUE },
    { "client", G_STRUCT_OFFSET (CpuUse, client), TRUE, TRUE },
  };
  const char *prefix = relay ? "relay" : "dbus";
  double wall = (t1->at - t0->at) / 1e6, all = 0;

  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      g_autofree char *key
          = g_strdup_printf ("%s_cpu_%s", prefix, parts[i].part);
      double used = G_STRUCT_MEMBER (double, t1, parts[i].offset)
                    - G_STRUCT_MEMBER (double, t0, parts[i].offset);

      if (!(relay ? parts[i].relay : parts[i].emitter))
        continue;
      all += used;
      add (b, key, used / wall);
    }
  {
    g_autofree char *key = g_strdup_printf ("%s_cpu_all", prefix);

    add (b, key, all / wall);
  }
}

static void
add_latency (Bench *b, const char *prefix)
{
  g_autofree char *p50 = g_strconcat (prefix, "_p50_us", NULL);
  g_autofree char *p99 = g_strconcat (prefix, "_p99_us", NULL);

  add (b, p50, bench_percentile (b->sink.latency_us, 50));
  add (b, p99, bench_percentile (b->sink.latency_us, 99));
}

/* One run of @n updates per session at @rate per second in every relay
 * session, then the emitter at the same rate: @suffix "" or "_light". */
static void
latency_run (Bench *b, guint rate, guint n, const char *suffix)
{
  g_autofree char *relay_key = g_strconcat ("relay_latency", suffix, NULL);
  g_autofree char *dbus_key = g_strconcat ("dbus_latency", suffix, NULL);
  guint sessions = b->plan.relay_sessions;
  /* what each part of the path costs, at the target's rate only */
  gboolean cpu = suffix[0] == '\0';
  g_autoptr (GSubprocess) p = NULL;
  g_autoptr (GHashTable) agents = NULL;
  CpuUse before, after;
  guint running;
  guint64 base;
  gint64 t0;

  /* Each agent's first update comes a little later than the one before,
   * as the emitter spreads its streams over the interval: agents prompted
   * together would otherwise write in step, 100 updates at once.  And
   * only once the 100 prompts are accepted, recorded and passed on, so
   * that their handling is not counted in the updates' latency. */
  if (cpu)
    agents = session_pids (b, &running);
  bench_sink_reset (&b->sink, TRUE);
  base = bench_sink_turns_ended (&b->sink);
  b->failed_calls = 0;
  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < sessions; i++)
    {
      g_autofree char *thread = thread_name ("relay", i);
      g_autofree char *text = g_strdup_printf (
          "pace %u %u %u %.3f", rate, n, b->plan.stream_bytes,
          PACE_START_MS + i * 1000.0 / rate / sessions);

      prompt_async (b, thread, text);
    }
  /* CPU counted from when the agents start writing; the replies wait */
  g_usleep (
      (gulong)MAX (t0 + PACE_START_MS * 1000 - g_get_monotonic_time (), 0));
  cpu_use_read (b, agents, &before);
  if (wait_all (b, "relay", base, sessions, 300000))
    {
      cpu_use_read (b, agents, &after);
      if (b->sink.latency_us->len != (guint64)sessions * n)
        g_printerr ("latency: %u samples of %u\n", b->sink.latency_us->len,
                    sessions * n);
      add_latency (b, relay_key);
      if (cpu)
        add_cpu_use (b, TRUE, &before, &after);
    }
  p = emitter_spawn (b, n, rate, sessions);
  cpu_use_read (b, NULL, &before);
  if (p != NULL && emitter_go (b, p, sessions, &t0))
    {
      cpu_use_read (b, NULL, &after);
      add_latency (b, dbus_key);
      if (cpu)
        add_cpu_use (b, FALSE, &before, &after);
    }
}

/* The simplest relay (@mode "--floor") or its agents alone ("--agents"):
 * 100 demo agents of its own, to be started with "go". */
static GSubprocess *
floor_spawn (Bench *b, const char *mode, guint rate, guint n,
             GDataInputStream **out)
{
  g_autofree char *streams_str = g_strdup_printf ("%u", b->plan.relay_sessions);
  g_autofree char *rate_str = g_strdup_printf ("%u", rate);
  g_autofree char *n_str = g_strdup_printf ("%u", n);
  g_autofree char *bytes_str = g_strdup_printf ("%u", b->plan.stream_bytes);
  g_autofree char *start_str = g_strdup_printf ("%.0f", PACE_START_MS);
  const char *argv[]
      = { b->self_path,   mode,
          b->bus_address, g_dbus_connection_get_unique_name (b->connection),
          b->agent_path,  b->tmpdir,
          streams_str,    rate_str,
          n_str,          bytes_str,
          start_str,      NULL };

  return helper_spawn (argv, out);
}

/* The simplest relay (bench --floor) with its own 100 agents, at @rate:
 * what a plain relay doing the daemon's job with GDBus costs on this
 * machine. Keys floor_latency@suffix_p50_us and _p99_us; at the target's
 * rate also the cores each part of its path used (floor_cpu_*). */
static void
floor_run (Bench *b, guint rate, guint n, const char *suffix)
{
  g_autofree char *key = g_strconcat ("floor_latency", suffix, NULL);
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (GSubprocess) p = floor_spawn (b, "--floor", rate, n, &out);
  g_autofree char *cpu_line = NULL;
  double relay_cores, agents_cores;
  CpuUse before, after;
  gint64 t0;

  if (p == NULL)
    return;
  bench_sink_reset (&b->sink, TRUE);
  t0 = g_get_monotonic_time ();
  helper_go (p);
  g_usleep (
      (gulong)MAX (t0 + PACE_START_MS * 1000 - g_get_monotonic_time (), 0));
  cpu_use_read (b, NULL, &before);
  if (!bench_sink_wait_turns (&b->sink, b->plan.relay_sessions, 300000))
    {
      g_printerr ("simplest relay: its turns did not all end\n");
      return;
    }
  cpu_use_read (b, NULL, &after);
  cpu_line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
  g_subprocess_wait (p, NULL, NULL);
  add_latency (b, key);
  if (suffix[0] != '\0')
    return;
  if (cpu_line == NULL
      || sscanf (cpu_line, "cpu %lf %lf", &relay_cores, &agents_cores) != 2)
    {
      g_printerr ("simplest relay: no CPU figures\n");
      return;
    }
  {
    double wall = (after.at - before.at) / 1e6;
    double bus = (after.bus - before.bus) / wall;
    double client = (after.client - before.client) / wall;

    add (b, "floor_cpu_relay", relay_cores);
    add (b, "floor_cpu_agents", agents_cores);
    add (b, "floor_cpu_bus", bus);
    add (b, "floor_cpu_client", client);
    add (b, "floor_cpu_all", relay_cores + agents_cores + bus + client);
  }
}

/* The emitter at the target's rate while 100 demo agents write at that
 * rate too, on the same schedule, read and dropped by a process that does
 * nothing else (bench --agents): what the agents' load alone, before any
 * relay work, does to the emitter's path on this machine. Keys
 * dbus_loaded_latency_p50_us and _p99_us, loaded_cpu_agents and
 * loaded_cpu_reader. */
static void
loaded_emitter_run (Bench *b)
{
  guint sessions = b->plan.relay_sessions;
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (GSubprocess) agents
      = floor_spawn (b, "--agents", b->plan.pace_rate, b->plan.pace_n, &out);
  g_autoptr (GSubprocess) emitter = NULL;
  g_autofree char *cpu_line = NULL;
  double reader_cores, agents_cores;
  gint64 t0;

  if (agents == NULL)
    return;
  emitter = emitter_spawn (b, b->plan.pace_n, b->plan.pace_rate, sessions);
  if (emitter == NULL)
    return;
  t0 = g_get_monotonic_time ();
  helper_go (agents);
  g_usleep (
      (gulong)MAX (t0 + PACE_START_MS * 1000 - g_get_monotonic_time (), 0));
  if (!emitter_go (b, emitter, sessions, &t0))
    return;
  add_latency (b, "dbus_loaded_latency");
  cpu_line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
  g_subprocess_wait (agents, NULL, NULL);
  if (cpu_line != NULL
      && sscanf (cpu_line, "cpu %lf %lf", &reader_cores, &agents_cores) == 2)
    {
      add (b, "loaded_cpu_reader", reader_cores);
      add (b, "loaded_cpu_agents", agents_cores);
    }
}

/* One agent at the target's rate, read by the bench from its pipe: what
 * the one hop the relay adds to the emitter's path costs on this machine. */
static void
pipe_latency_run (Bench *b)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (BenchDirect) d
      = bench_direct_start (b->agent_path, b->tmpdir, &error);
  g_autoptr (GArray) latency_us = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *text = g_strdup_printf (
      "pace %u %u %u", b->plan.pace_rate, b->plan.pace_n, b->plan.stream_bytes);
  guint64 chunks;

  if (d == NULL
      || !bench_direct_prompt (d, text, &chunks, NULL, latency_us, &error))
    {
      g_printerr ("direct: %s\n", error->message);
      return;
    }
  add (b, "pipe_latency_p50_us", bench_percentile (latency_us, 50));
  add (b, "pipe_latency_p99_us", bench_percentile (latency_us, 99));
}

/* At the target's rate, and at a tenth of it: what the daemon adds when
 * the machine is not saturated; and one pipe hop on its own. */
static void
bench_latency (Bench *b)
{
  for (guint r = 0; r < b->plan.runs; r++)
    {
      latency_run (b, b->plan.pace_rate, b->plan.pace_n, "");
      floor_run (b, b->plan.pace_rate, b->plan.pace_n, "");
      loaded_emitter_run (b);
      latency_run (b, b->plan.pace_rate / 10, b->plan.pace_n / 10, "_light");
      floor_run (b, b->plan.pace_rate / 10, b->plan.pace_n / 10, "_light");
      pipe_latency_run (b);
    }
  bench_sink_reset (&b->sink, FALSE);
}

/* ---- first update of a new thread -------------------------------------- */

static void
bench_first_update (Bench *b)
{
  for (guint r = 0; r < b->plan.first_runs; r++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *thread = thread_name ("first", r);
      gint64 t0, first = 0;
      guint64 chunks;

      bench_sink_reset (&b->sink, FALSE);
      t0 = g_get_monotonic_time ();
      prompt_async (b, thread, "stream 1");
      if (bench_sink_wait_first_update (&b->sink, 60000))
        add (b, "first_update_ms",
             (bench_sink_first_update (&b->sink) - t0) / 1000.0);
      bench_sink_wait_turns (&b->sink, 1, 60000);
      while (b->pending_calls > 0)
        g_main_context_iteration (NULL, TRUE);

      /* The same agent, spawned and handshaken by the bench. */
      t0 = g_get_monotonic_time ();
      {
        g_autoptr (BenchDirect) d
            = bench_direct_start (b->agent_path, b->tmpdir, &error);

        if (d != NULL
            && bench_direct_prompt (d, "stream 1", &chunks, &first, NULL,
                                    &error))
          add (b, "direct_first_update_ms", (first - t0) / 1000.0);
        else
          g_printerr ("direct first update: %s\n", error->message);
      }
    }
}

/* ---- Drain() return ---------------------------------------------------- */

static void
bench_drain (Bench *b)
{
  for (guint r = 0; r < MAX (b->plan.runs, 5); r++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GVariant) reply = NULL;
      gint64 returned;

      bench_sink_reset (&b->sink, FALSE);
      prompt_async (b, "bench:drain", "sleep 0.2");
      if (!bench_sink_wait_first_update (&b->sink, 60000))
        continue;
      reply = call (b, "Drain", g_variant_new ("(u)", 30), "(uu)", &error);
      returned = g_get_monotonic_time ();
      if (reply == NULL)
        g_printerr ("Drain: %s\n", error->message);
      else if (bench_sink_turns_ended (&b->sink) == 0)
        g_printerr ("Drain returned before the turn's TurnEnded\n");
      else
        add (b, "drain_return_ms",
             (returned - b->sink.last_turn_ended_us) / 1000.0);
      g_clear_pointer (&reply, g_variant_unref);
      reply = call (b, "Resume", NULL, NULL, &error);
      if (reply == NULL)
        g_printerr ("Resume: %s\n", error->message);
      while (b->pending_calls > 0)
        g_main_context_iteration (NULL, TRUE);
    }
}

/* ---- the ACP front door ---------------------------------------------- */

/* The SDK client reading the demo agent through `agentctl acp` and
 * directly, one run of each in turn, so that both see the same machine:
 * the ratio of each pair is a sample of acp_proxy_vs_direct.  The client
 * (node, validating every message) is the slower reader here, as it is
 * for an editor. */
static void
bench_acp (Bench *b)
{
  g_autofree char *node = NULL, *script = NULL, *why = NULL;
  g_autofree char *agentctl
      = g_build_filename (b->builddir, "src", "agentctl", NULL);
  g_autofree char *cwd = g_build_filename (b->tmpdir, "acp-direct", NULL);
  const char *const proxy[] = { agentctl, "--user", "acp", NULL };
  const char *const direct[] = { b->agent_path, NULL };

  if (!bench_acp_find (b->builddir, &node, &script, &why))
    {
      g_printerr ("acp: not measured: %s\n", why);
      return;
    }
  g_mkdir_with_parents (cwd, 0700);
  for (guint r = 0; r < b->plan.runs; r++)
    {
      double through = bench_acp_rate (node, script, b->bus_address, "/",
                                       b->plan.acp_n, proxy);
      double alone = bench_acp_rate (node, script, b->bus_address, cwd,
                                     b->plan.acp_n, direct);

      if (isnan (through) || isnan (alone))
        continue;
      add (b, "acp_proxy_rate", through);
      add (b, "acp_direct_rate", alone);
      add (b, "acp_proxy_vs_direct", through / alone);
    }
}

/* ---- scale: 1,000 running sessions --------------------------------------- */

static gboolean
same_pids (GHashTable *a, GHashTable *b)
{
  GHashTableIter it;
  gpointer k, v;

  if (g_hash_table_size (a) != g_hash_table_size (b))
    return FALSE;
  g_hash_table_iter_init (&it, a);
  while (g_hash_table_iter_next (&it, &k, &v))
    if (g_hash_table_lookup (b, k) != v)
      return FALSE;
  return TRUE;
}

static gboolean
start_daemon (Bench *b, BenchDaemon *d)
{
  g_autoptr (GError) error = NULL;

  if (!bench_daemon_start (d, b->daemon_path, b->bus_address, &error))
    {
      g_printerr ("%s\n", error->message);
      return FALSE;
    }
  b->daemon_pid = d->pid;
  return TRUE;
}

/* ListSessions timed at the daemon, with GDBus decoding the reply and
 * without (sd-bus), then the same reply from a trivial GDBus service:
 * @key_ms, @key_wire_ms, @key_lister_ms, @key_lister_wire_ms. Beside it,
 * in the same loop, another trivial service answers the old a{sv} per
 * session built from the same reply (@key_dict_ms); @ratio_key is the
 * struct reply's time over the dictionaries', call by call. */
static void
time_list_sessions (Bench *b, const char *key, const char *ratio_key)
{
  g_autofree char *ms = g_strconcat (key, "_ms", NULL);
  g_autofree char *wire_ms = g_strconcat (key, "_wire_ms", NULL);
  g_autofree char *lister_ms = g_strconcat (key, "_lister_ms", NULL);
  g_autofree char *lister_wire_ms = g_strconcat (key, "_lister_wire_ms", NULL);
  g_autofree char *dict_ms = g_strconcat (key, "_dict_ms", NULL);
  g_autofree char *encode_ms = g_strconcat (key, "_encode_ms", NULL);
  g_autofree char *decode_ms = g_strconcat (key, "_decode_ms", NULL);
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) dicts = NULL;
  g_autoptr (BenchLister) lister = NULL;
  g_autoptr (BenchLister) dict_lister = NULL;
  g_autoptr (GError) error = NULL;

  /* The last reply is the one the trivial service will serve. */
  for (guint i = 0; i < b->plan.call_reps; i++)
    {
      g_clear_pointer (&reply, g_variant_unref);
      add (b, ms,
           timed_call (b, BUS_NAME, BROKER_IFACE, "ListSessions", no_options (),
                       &reply));
      add (b, wire_ms,
           timed_call_wire (b, BUS_NAME, BROKER_IFACE, "ListSessions", NULL));
    }
  if (reply == NULL)
    return;
  for (guint i = 0; i < b->plan.call_reps; i++)
    {
      double encode, decode;

      bench_marshal_times (reply, &encode, &decode);
      add (b, encode_ms, encode);
      add (b, decode_ms, decode);
    }
  dicts = g_variant_ref_sink (dict_reply (reply));
  lister = bench_lister_start (b->bus_address, reply, &error);
  if (lister != NULL)
    dict_lister = bench_lister_start (b->bus_address, dicts, &error);
  if (dict_lister == NULL)
    {
      g_printerr ("lister: %s\n", error->message);
      return;
    }
  for (guint i = 0; i < b->plan.call_reps; i++)
    {
      double structs_ms, dicts_ms;

      structs_ms = timed_call (b, bench_lister_name (lister), BROKER_IFACE,
                               "ListSessions", no_options (), NULL);
      dicts_ms = timed_call (b, bench_lister_name (dict_lister), BROKER_IFACE,
                             "ListSessions", no_options (), NULL);
      add (b, lister_ms, structs_ms);
      add (b, dict_ms, dicts_ms);
      add (b, ratio_key, structs_ms / dicts_ms);
      add (b, lister_wire_ms,
           timed_call_wire (b, bench_lister_name (lister), BROKER_IFACE,
                            "ListSessions", NULL));
    }
}

static void
bench_scale_running (Bench *b)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *yaml = config_yaml (b);
  g_autoptr (BenchDaemon) d = bench_daemon_new (yaml, &error);
  g_autoptr (GHashTable) before = NULL;
  g_autoptr (GHashTable) after = NULL;
  guint n = b->plan.scale_sessions, running = 0;
  gint64 rss0, rss1, t0;

  if (d == NULL || !start_daemon (b, d))
    return;
  for (guint i = 0; i < b->plan.call_reps; i++)
    {
      add (b, "getall_ms",
           timed_call (b, BUS_NAME, "org.freedesktop.DBus.Properties", "GetAll",
                       g_variant_new ("(s)", BROKER_IFACE), NULL));
      add (b, "getall_wire_ms",
           timed_call_wire (b, BUS_NAME, "org.freedesktop.DBus.Properties",
                            "GetAll", BROKER_IFACE));
    }
  for (guint i = 0; i < 5; i++)
    add (b, "reload_0_ms",
         timed_call (b, BUS_NAME, BROKER_IFACE, "Reload", NULL, NULL));
  g_usleep (200000);
  rss0 = bench_rss_kib (d->pid);

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i += 100)
    if (!prompt_all (b, "scale", i, MIN (100, n - i), "stream 1", 300000))
      return;
  add (b, "spawn_1000_s", (g_get_monotonic_time () - t0) / 1e6);
  g_usleep (500000);
  rss1 = bench_rss_kib (d->pid);
  add (b, "rss_0_kib", (double)rss0);
  add (b, "rss_1000_kib", (double)rss1);
  add (b, "rss_per_session_kib", (double)(rss1 - rss0) / n);

  before = session_pids (b, &running);
  if (running != n)
    g_printerr ("scale: %u sessions running, not %u\n", running, n);
  time_list_sessions (b, "list_1000", "list_1000_vs_dict");
  for (guint i = 0; i < 5; i++)
    add (b, "reload_1000_ms",
         timed_call (b, BUS_NAME, BROKER_IFACE, "Reload", NULL, NULL));
  after = session_pids (b, &running);
  add (b, "reload_agents_restarted", same_pids (before, after) ? 0 : (double)n);
  bench_daemon_stop (d, 60000);
}

/* ---- scale: 10,000 suspended records ------------------------------------- */

static gboolean
write_records (const char *state_dir, guint n, GError **error)
{
  g_autofree char *dir = g_build_filename (state_dir, "sessions", NULL);
  gint64 now = g_get_real_time ();

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create %s",
                   dir);
      return FALSE;
    }
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *thread = thread_name ("suspended", i);
      g_autofree char *hash
          = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
      g_autofree char *name = g_strconcat (hash, ".json", NULL);
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *json = g_strdup_printf (
          "{\"version\":1,\"thread\":\"%s\",\"agent\":\"demo\","
          "\"owner\":%u,\"cwd\":\"%s/work/suspended-%u\","
          "\"acp_session\":\"bench-%u\",\"created\":%" G_GINT64_FORMAT
          ",\"last_activity\":%" G_GINT64_FORMAT ",\"turns\":1,"
          "\"last_turn\":1,\"last_reason\":\"end_turn\","
          "\"interrupted_reported\":false}",
          thread, (guint)getuid (), state_dir, i, i, now, now);

      if (!g_file_set_contents_full (path, json, -1, G_FILE_SET_CONTENTS_NONE,
                                     0600, error))
        return FALSE;
    }
  return TRUE;
}

static void
bench_scale_suspended (Bench *b)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *yaml = config_yaml (b);
  g_autoptr (BenchDaemon) empty = bench_daemon_new (yaml, &error);
  g_autoptr (BenchDaemon) full = NULL;
  guint n = b->plan.suspended_records, runs = b->plan.start_runs;

  full = empty != NULL ? bench_daemon_new (yaml, &error) : NULL;
  if (full == NULL || !write_records (full->state_dir, n, &error))
    {
      g_printerr ("suspended: %s\n", error->message);
      return;
    }
  /* Alternating, so both see the same machine. */
  for (guint r = 0; r < runs; r++)
    {
      if (!start_daemon (b, empty))
        return;
      add (b, "start_0_ms", empty->ready_us / 1000.0);
      bench_daemon_stop (empty, 60000);
      if (!start_daemon (b, full))
        return;
      add (b, "start_10000_ms", full->ready_us / 1000.0);
      if (r + 1 < runs)
        bench_daemon_stop (full, 60000);
    }
  {
    guint running = 0;
    g_autoptr (GHashTable) all = session_pids (b, &running);

    if (g_hash_table_size (all) != n)
      g_printerr ("suspended: %u sessions listed, not %u\n",
                  g_hash_table_size (all), n);
  }
  time_list_sessions (b, "list_10000_suspended", "list_10000_vs_dict");
  bench_daemon_stop (full, 60000);
}

/* ---- report ------------------------------------------------------------ */

/* @key: what a figure adds to its baseline, median against median. */
static void
add_added (Bench *b, const char *key, const char *figure, const char *base)
{
  add (b, key, median (b, figure) - median (b, base));
}

static void
derive (Bench *b)
{
  /* Each latency figure against the emitter's at the same rate: the
   * daemon's, the simplest relay's, the emitter's beside the agents. */
  static const char *const latency[][3] = {
    /* added key prefix, figure, baseline */
    { "latency", "relay_latency", "dbus_latency" },
    { "latency_light", "relay_latency_light", "dbus_latency_light" },
    { "floor", "floor_latency", "dbus_latency" },
    { "floor_light", "floor_latency_light", "dbus_latency_light" },
    { "loaded", "dbus_loaded_latency", "dbus_latency" },
  };
  static const char *const percentiles[] = { "p50", "p99" };
  double relay1 = median (b, "relay_rate_1");

  add (b, "relay_vs_dbus_1", relay1 / median (b, "dbus_rate"));
  add (b, "relay_vs_direct_1", relay1 / median (b, "direct_rate"));
  add (b, "relay_100_vs_1", median (b, "relay_rate_100") / relay1);
  for (guint i = 0; i < G_N_ELEMENTS (latency); i++)
    for (guint j = 0; j < G_N_ELEMENTS (percentiles); j++)
      {
        g_autofree char *key
            = g_strdup_printf ("%s_%s_added_us", latency[i][0], percentiles[j]);
        g_autofree char *figure
            = g_strdup_printf ("%s_%s_us", latency[i][1], percentiles[j]);
        g_autofree char *base
            = g_strdup_printf ("%s_%s_us", latency[i][2], percentiles[j]);

        add_added (b, key, figure, base);
      }
  add_added (b, "floor_cpu_all_added", "floor_cpu_all", "dbus_cpu_all");
  add_added (b, "floor_cpu_relay_added", "floor_cpu_relay", "dbus_cpu_emitter");
  add_added (b, "cpu_all_added", "relay_cpu_all", "dbus_cpu_all");
  add_added (b, "cpu_sender_added", "relay_cpu_daemon", "dbus_cpu_emitter");
  add_added (b, "cpu_bus_added", "relay_cpu_bus", "dbus_cpu_bus");
  add_added (b, "cpu_client_added", "relay_cpu_client", "dbus_cpu_client");
  add_added (b, "first_update_added_ms", "first_update_ms",
             "direct_first_update_ms");
  add_added (b, "reload_1000_added_ms", "reload_1000_ms", "reload_0_ms");
  add_added (b, "start_10000_added_ms", "start_10000_ms", "start_0_ms");
}

static void
print_row (Bench *b, const char *label, const char *key, const char *base_key,
           const char *figure_key, const char *target_text, gboolean met)
{
  BenchSeries *s = series (b, key);
  g_autofree char *value = NULL;
  g_autofree char *base = NULL;

  value = g_strdup_printf ("%.4g [%.4g..%.4g]", bench_series_median (s),
                           bench_series_min (s), bench_series_max (s));
  if (base_key != NULL)
    {
      BenchSeries *bs = series (b, base_key);

      base = g_strdup_printf ("%s %.4g [%.4g..%.4g]", base_key,
                              bench_series_median (bs), bench_series_min (bs),
                              bench_series_max (bs));
    }
  printf ("%-38s %-30s %-44s %-10.4g %-24s %s\n", label, value,
          base != NULL ? base : "—", median (b, figure_key), target_text,
          isnan (median (b, figure_key)) ? "n/a"
          : target_text[0] == '('        ? ""
          : met                          ? "met"
                                         : "MISSED");
}

/* JSON has no NaN: a figure that could not be measured is null. */
static void
add_number (JsonBuilder *jb, double v)
{
  if (isfinite (v))
    json_builder_add_double_value (jb, v);
  else
    json_builder_add_null_value (jb);
}

static void
report (Bench *b, gboolean json)
{
  g_autofree char *load = NULL;
  double r1 = median (b, "relay_rate_1");

  derive (b);
  g_file_get_contents ("/proc/loadavg", &load, NULL, NULL);
  printf ("\nagentbroker bench (%s; %u runs; %ld CPUs; loadavg %s)\n",
          b->plan.mode, b->plan.runs, sysconf (_SC_NPROCESSORS_ONLN),
          load != NULL ? g_strstrip (load) : "?");
  printf ("%-38s %-30s %-44s %-10s %-24s %s\n", "figure", "median [min..max]",
          "baseline median [min..max]", "vs base", "target", "");
  print_row (b, "relay 1 session (updates/s)", "relay_rate_1", "dbus_rate",
             "relay_vs_dbus_1", ">= 2.0 × raw D-Bus",
             median (b, "relay_vs_dbus_1") >= 2.0);
  print_row (b, "relay 1 session (updates/s)", "relay_rate_1", "direct_rate",
             "relay_vs_direct_1", ">= 0.4 × direct pipe",
             median (b, "relay_vs_direct_1") >= 0.4);
  print_row (b, "relay 100 sessions, sum (updates/s)", "relay_rate_100",
             "relay_rate_1", "relay_100_vs_1", ">= 0.8 × 1 session",
             median (b, "relay_100_vs_1") >= 0.8);
  print_row (b, "latency p50, 100x100/s (us)", "relay_latency_p50_us",
             "dbus_latency_p50_us", "latency_p50_added_us", "<= +150 us",
             median (b, "latency_p50_added_us") <= 150);
  print_row (b, "latency p99, 100x100/s (us)", "relay_latency_p99_us",
             "dbus_latency_p99_us", "latency_p99_added_us", "<= +1000 us",
             median (b, "latency_p99_added_us") <= 1000);
  /* Where the machine's two cores go at that rate: the emitter's path
   * has neither the agents nor the daemon's reading. */
  print_row (b, "  CPU at 100x100/s, all (cores)", "relay_cpu_all",
             "dbus_cpu_all", "cpu_all_added", "(breakdown)", TRUE);
  print_row (b, "    daemon (vs emitter)", "relay_cpu_daemon",
             "dbus_cpu_emitter", "cpu_sender_added", "(breakdown)", TRUE);
  print_row (b, "    the 100 agents", "relay_cpu_agents", NULL,
             "relay_cpu_agents", "(breakdown)", TRUE);
  print_row (b, "    dbus-daemon", "relay_cpu_bus", "dbus_cpu_bus",
             "cpu_bus_added", "(breakdown)", TRUE);
  print_row (b, "    receiving client (the bench)", "relay_cpu_client",
             "dbus_cpu_client", "cpu_client_added", "(breakdown)", TRUE);
  print_row (b, "  p50 at 100x10/s (us)", "relay_latency_light_p50_us",
             "dbus_latency_light_p50_us", "latency_light_p50_added_us",
             "(breakdown)", TRUE);
  print_row (b, "  p99 at 100x10/s (us)", "relay_latency_light_p99_us",
             "dbus_latency_light_p99_us", "latency_light_p99_added_us",
             "(breakdown)", TRUE);
  /* The same path with the simplest relay in the daemon's place. */
  print_row (b, "  simplest relay, p50 at 100x100/s", "floor_latency_p50_us",
             "dbus_latency_p50_us", "floor_p50_added_us", "(floor)", TRUE);
  print_row (b, "  simplest relay, p99 at 100x100/s", "floor_latency_p99_us",
             "dbus_latency_p99_us", "floor_p99_added_us", "(floor)", TRUE);
  print_row (b, "    its path's CPU, all (cores)", "floor_cpu_all",
             "dbus_cpu_all", "floor_cpu_all_added", "(floor)", TRUE);
  print_row (b, "      the relay (vs emitter)", "floor_cpu_relay",
             "dbus_cpu_emitter", "floor_cpu_relay_added", "(floor)", TRUE);
  print_row (b, "      its 100 agents", "floor_cpu_agents", NULL,
             "floor_cpu_agents", "(floor)", TRUE);
  /* No relay at all: the emitter, with the agents' load beside it. */
  print_row (b, "  emitter + 100 agents writing, p50",
             "dbus_loaded_latency_p50_us", "dbus_latency_p50_us",
             "loaded_p50_added_us", "(floor)", TRUE);
  print_row (b, "  emitter + 100 agents writing, p99",
             "dbus_loaded_latency_p99_us", "dbus_latency_p99_us",
             "loaded_p99_added_us", "(floor)", TRUE);
  print_row (b, "    the agents, their reader (cores)", "loaded_cpu_agents",
             "loaded_cpu_reader", "loaded_cpu_agents", "(floor)", TRUE);
  print_row (b, "  simplest relay, p50 at 100x10/s",
             "floor_latency_light_p50_us", "dbus_latency_light_p50_us",
             "floor_light_p50_added_us", "(floor)", TRUE);
  print_row (b, "  simplest relay, p99 at 100x10/s",
             "floor_latency_light_p99_us", "dbus_latency_light_p99_us",
             "floor_light_p99_added_us", "(floor)", TRUE);
  print_row (b, "  one agent read directly, p50 (us)", "pipe_latency_p50_us",
             NULL, "pipe_latency_p50_us", "(breakdown)", TRUE);
  print_row (b, "  one agent read directly, p99 (us)", "pipe_latency_p99_us",
             NULL, "pipe_latency_p99_us", "(breakdown)", TRUE);
  print_row (b, "first update, new thread (ms)", "first_update_ms",
             "direct_first_update_ms", "first_update_added_ms", "<= +5 ms",
             median (b, "first_update_added_ms") <= 5);
  print_row (b, "daemon RSS per session @1000 (KiB)", "rss_per_session_kib",
             "rss_0_kib", "rss_per_session_kib", "<= 64 KiB",
             median (b, "rss_per_session_kib") <= 64);
  print_row (b, "ListSessions, 1000 running (ms)", "list_1000_ms", "getall_ms",
             "list_1000_ms", "<= 10 ms", median (b, "list_1000_ms") <= 10);
  print_row (b, "ListSessions, 10000 suspended (ms)", "list_10000_suspended_ms",
             "getall_ms", "list_10000_suspended_ms", "<= 100 ms",
             median (b, "list_10000_suspended_ms") <= 100);
  print_row (b, "  of which not client decoding (ms)", "list_1000_wire_ms",
             "getall_wire_ms", "list_1000_wire_ms", "(breakdown)", TRUE);
  print_row (b, "  of which not client decoding (ms)",
             "list_10000_suspended_wire_ms", "getall_wire_ms",
             "list_10000_suspended_wire_ms", "(breakdown)", TRUE);
  print_row (b, "  same reply, trivial GDBus service", "list_1000_lister_ms",
             "list_1000_lister_wire_ms", "list_1000_lister_ms", "(floor)",
             TRUE);
  print_row (b, "  same reply, trivial GDBus service",
             "list_10000_suspended_lister_ms",
             "list_10000_suspended_lister_wire_ms",
             "list_10000_suspended_lister_ms", "(floor)", TRUE);
  print_row (b, "  struct reply / old a{sv} reply", "list_1000_vs_dict",
             "list_1000_dict_ms", "list_1000_vs_dict", "(breakdown)", TRUE);
  print_row (b, "ListSessions 10000: structs / a{sv}", "list_10000_vs_dict",
             "list_10000_suspended_dict_ms", "list_10000_vs_dict", "<= 0.5",
             median (b, "list_10000_vs_dict") <= 0.5);
  print_row (b, "  GDBus alone: encode, decode (ms)", "list_1000_encode_ms",
             "list_1000_decode_ms", "list_1000_encode_ms", "(floor)", TRUE);
  print_row (b, "  GDBus alone: encode, decode (ms)",
             "list_10000_suspended_encode_ms", "list_10000_suspended_decode_ms",
             "list_10000_suspended_encode_ms", "(floor)", TRUE);
  print_row (b, "Reload(), 1000 idle sessions (ms)", "reload_1000_ms",
             "reload_0_ms", "reload_1000_added_ms", "<= +50 ms, 0 restarted",
             median (b, "reload_1000_added_ms") <= 50
                 && median (b, "reload_agents_restarted") == 0);
  print_row (b, "start -> READY=1, 10000 records (ms)", "start_10000_ms",
             "start_0_ms", "start_10000_added_ms", "<= +1000 ms",
             median (b, "start_10000_added_ms") <= 1000);
  print_row (b, "Drain() after last TurnEnded (ms)", "drain_return_ms", NULL,
             "drain_return_ms", "<= 10 ms",
             median (b, "drain_return_ms") <= 10);
  print_row (b, "ACP client via agentctl acp (upd/s)", "acp_proxy_rate",
             "acp_direct_rate", "acp_proxy_vs_direct", ">= 0.8 × agent direct",
             median (b, "acp_proxy_vs_direct") >= 0.8);
  printf ("(relay batching: %.1f updates per Update signal with 1 session; "
          "1000 agents spawned in %.1f s)\n",
          r1 > 0 ? b->plan.stream_n / median (b, "relay_messages_per_run_1")
                 : NAN,
          median (b, "spawn_1000_s"));

  if (json)
    {
      g_autoptr (JsonBuilder) jb = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *text = NULL;
      static const char *const keys[] = {
        "relay_rate_1",          "relay_vs_dbus_1",
        "relay_vs_direct_1",     "relay_rate_100",
        "latency_p50_added_us",  "latency_p99_added_us",
        "first_update_added_ms", "rss_per_session_kib",
        "list_1000_ms",          "list_10000_suspended_ms",
        "list_10000_vs_dict",    "reload_1000_added_ms",
        "start_10000_added_ms",  "drain_return_ms",
        "acp_proxy_vs_direct",
      };

      json_builder_begin_object (jb);
      for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
        {
          json_builder_set_member_name (jb, keys[i]);
          add_number (jb, median (b, keys[i]));
        }
      json_builder_set_member_name (jb, "quick");
      json_builder_add_boolean_value (jb, b->plan.quick);
      json_builder_set_member_name (jb, "mode");
      json_builder_add_string_value (jb, b->plan.mode);
      json_builder_set_member_name (jb, "loadavg");
      json_builder_add_string_value (jb, load != NULL ? load : "");
      json_builder_set_member_name (jb, "raw");
      json_builder_begin_object (jb);
      for (guint i = 0; i < b->order->len; i++)
        {
          BenchSeries *s = series (b, b->order->pdata[i]);

          json_builder_set_member_name (jb, s->key);
          json_builder_begin_array (jb);
          for (guint j = 0; j < s->values->len; j++)
            add_number (jb, g_array_index (s->values, double, j));
          json_builder_end_array (jb);
        }
      json_builder_end_object (jb);
      json_builder_end_object (jb);
      root = json_builder_get_root (jb);
      text = json_to_string (root, FALSE);
      printf ("%s\n", text);
    }
}

/* ---- main -------------------------------------------------------------- */

static void
raise_fd_limit (void)
{
  struct rlimit rl;

  /* Each running session holds three pipes in the daemon. */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
}

static char *
find_builddir (const char *argv0)
{
  const char *env = g_getenv ("AB_BENCH_BUILDDIR");
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;

  if (env != NULL)
    return g_strdup (env);
  dir = g_path_get_dirname (exe != NULL ? exe : argv0);
  /* bench/agentbroker-bench (or bench/.libs/…) → the build tree's top. */
  return g_path_get_dirname (dir);
}

/* @smoke: one short run of each part, to see that the bench works (make
 * check); its figures mean little. */
static void
plan_init (BenchPlan *p, gboolean quick, gboolean smoke)
{
  p->mode = smoke ? "smoke" : quick ? "quick" : "full";
  p->quick = quick || smoke;
  p->runs = smoke ? 1 : quick ? 3 : 5;
  /* With 100 sessions a turn's start and end (prompt call, records,
   * state signals) cost the daemon about as much as 400 updates: runs are
   * long enough that they stay a small part of a run. */
  p->stream_n = smoke ? 20000 : quick ? 100000 : 400000;
  p->stream_bytes = 16;
  p->relay_sessions = 100;
  p->pace_rate = 100;
  p->pace_n = smoke ? 20 : quick ? 100 : 300;
  p->first_runs = smoke ? 1 : quick ? 5 : 10;
  p->scale_sessions = 1000;
  p->suspended_records = 10000;
  p->start_runs = smoke ? 1 : quick ? 2 : 3;
  p->call_reps = smoke ? 1 : quick ? 5 : 20;
  p->acp_n = smoke ? 2000 : quick ? 20000 : 50000;
}

int
main (int argc, char **argv)
{
  gboolean quick = FALSE, smoke = FALSE, json = FALSE;
  char *only = NULL;
  GOptionEntry entries[] = {
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick,
      "Fewer and shorter runs (about 2 minutes)", NULL },
    { "smoke", 0, 0, G_OPTION_ARG_NONE, &smoke,
      "One short run of each part: shows the bench works, measures little",
      NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "End with one JSON object on a line of its own", NULL },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only,
      "Comma-separated parts: relay,latency,first,drain,acp,running,"
      "suspended",
      "PARTS" },
    { NULL },
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) bus = NULL;
  g_autoptr (BenchDaemon) d = NULL;
  g_autofree char *builddir = NULL;
  g_autofree char *yaml = NULL;
  const char *wire_name = NULL;
  g_auto (GStrv) parts = NULL;
  Bench b = { 0 };

  if (argc == 11
      && (g_str_equal (argv[1], "--floor")
          || g_str_equal (argv[1], "--agents")))
    return bench_floor_main (
        argv[2], argv[3], argv[4], argv[5], (guint)atoi (argv[6]),
        (guint)atoi (argv[7]), g_ascii_strtoull (argv[8], NULL, 10),
        (guint)atoi (argv[9]), g_ascii_strtod (argv[10], NULL),
        g_str_equal (argv[1], "--floor"));
  if (argc == 8 && g_str_equal (argv[1], "--emit"))
    return bench_emitter_main (
        argv[2], argv[3], g_ascii_strtoull (argv[4], NULL, 10),
        (guint)atoi (argv[5]), (guint)atoi (argv[6]), (guint)atoi (argv[7]));

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Measures agentbrokerd next to its baselines.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("agentbroker-bench: %s\n", error->message);
      return 2;
    }
  parts = g_strsplit (
      only != NULL ? only : "relay,latency,first,drain,acp,running,suspended",
      ",", -1);

  raise_fd_limit ();
  plan_init (&b.plan, quick, smoke);
  builddir = find_builddir (argv[0]);
  b.builddir = builddir;
  b.self_path = g_file_read_link ("/proc/self/exe", NULL);
  b.daemon_path = g_build_filename (builddir, "src", "agentbrokerd", NULL);
  b.agent_path
      = g_build_filename (builddir, "src", "agentbroker-demo-agent", NULL);
  b.series = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                    (GDestroyNotify)bench_series_free);
  b.order = g_ptr_array_new ();
  b.tmpdir = g_dir_make_tmp ("agentbroker-bench-XXXXXX", &error);
  if (b.tmpdir == NULL || (bus = bench_bus_up (&b.bus_address, &error)) == NULL)
    {
      g_printerr ("agentbroker-bench: %s\n", error->message);
      return 1;
    }
  b.bus_pid
      = (GPid)g_ascii_strtoll (g_subprocess_get_identifier (bus), NULL, 10);
  b.connection = bench_bus_connect (b.bus_address, &error);
  if (b.connection == NULL)
    {
      g_printerr ("agentbroker-bench: %s\n", error->message);
      return 1;
    }
  bench_sink_init (&b.sink, b.connection);
  /* Connected now (the unique name waits for Hello): a connection still
   * authenticating when a long phase ends would have been dropped by the
   * bus meanwhile. */
  if (sd_bus_new (&b.wire) < 0 || sd_bus_set_address (b.wire, b.bus_address) < 0
      || sd_bus_set_bus_client (b.wire, 1) < 0 || sd_bus_start (b.wire) < 0
      || sd_bus_get_unique_name (b.wire, &wire_name) < 0)
    {
      g_printerr ("agentbroker-bench: cannot connect with sd-bus\n");
      return 1;
    }

  yaml = config_yaml (&b);
  d = bench_daemon_new (yaml, &error);
  if (d == NULL || !start_daemon (&b, d))
    return 1;
  if (g_strv_contains ((const char *const *)parts, "relay")
      || g_strv_contains ((const char *const *)parts, "latency"))
    {
      g_printerr ("bench: relay and latency ...\n");
      if (g_strv_contains ((const char *const *)parts, "relay"))
        bench_relay (&b);
      else
        prompt_all (&b, "relay", 0, b.plan.relay_sessions, "stream 1", 120000);
      if (g_strv_contains ((const char *const *)parts, "latency"))
        bench_latency (&b);
    }
  if (g_strv_contains ((const char *const *)parts, "first"))
    {
      g_printerr ("bench: first update ...\n");
      bench_first_update (&b);
    }
  if (g_strv_contains ((const char *const *)parts, "drain"))
    {
      g_printerr ("bench: drain ...\n");
      bench_drain (&b);
    }
  if (g_strv_contains ((const char *const *)parts, "acp"))
    {
      g_printerr ("bench: ACP front door ...\n");
      bench_acp (&b);
    }
  bench_daemon_stop (d, 60000);
  if (g_strv_contains ((const char *const *)parts, "running"))
    {
      g_printerr ("bench: 1000 running sessions ...\n");
      bench_scale_running (&b);
    }
  if (g_strv_contains ((const char *const *)parts, "suspended"))
    {
      g_printerr ("bench: 10000 suspended sessions ...\n");
      bench_scale_suspended (&b);
    }

  report (&b, json);

  g_dbus_connection_close_sync (b.connection, NULL, NULL);
  g_clear_object (&b.connection);
  g_subprocess_send_signal (bus, SIGTERM);
  g_subprocess_wait (bus, NULL, NULL);
  if (g_getenv ("AB_BENCH_KEEP") == NULL)
    bench_remove_tree (b.tmpdir);
  g_free (b.tmpdir);
  g_free (b.self_path);
  g_free (b.daemon_path);
  g_free (b.agent_path);
  g_free (b.bus_address);
  g_free (only);
  g_ptr_array_unref (b.order);
  g_hash_table_unref (b.series);
  return 0;
}
